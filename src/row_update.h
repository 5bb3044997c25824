/*
 * row_update.h
 *		One row updated by its key straight through the table access method
 *		(row_update.c).
 */
#ifndef ROW_UPDATE_H
#define ROW_UPDATE_H

#include "postgres.h"

#include "executor/tuptable.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

typedef enum RowUpdateResult
{
	ROW_UPDATE_DONE,
	ROW_UPDATE_NOT_FOUND,
	ROW_UPDATE_STATEMENT
} RowUpdateResult;

/*
 * The new values of the columns set, from the old row (locked, in old);
 * false to leave the update to the caller's statement.
 */
typedef bool (*RowUpdateNew) (TupleTableSlot *old, Oid relid, Datum *values, bool *nulls,
							  void *arg);

extern RowUpdateResult row_update(const char *table, const char *index, int nkeys,
								  const Datum *keys, int ncols, const char *const *cols,
								  RowUpdateNew compute, void *arg);

extern RowUpdateResult row_update_if(const char *table, const char *index, int nkeys,
									 const Datum *keys,
									 bool (*filter) (TupleTableSlot *slot, Oid relid, void *arg),
									 int ncols, const char *const *cols,
									 RowUpdateNew compute, void *arg);
extern bool row_update_allowed(Relation rel, int ncols, const char *const *cols);
extern RowUpdateResult row_update_row(Relation rel, Snapshot snapshot, TupleTableSlot *old,
									  int ncols, const char *const *cols,
									  RowUpdateNew compute, void *arg);

extern bool row_checks_hold(Relation rel, TupleTableSlot *slot);

extern int	key_prefix_exists(Snapshot snapshot, const char *table, const char *index, int nkeys,
							  const Datum *keys,
							  bool (*match) (TupleTableSlot *slot, Oid relid, void *arg),
							  void *arg);

#endif							/* ROW_UPDATE_H */
