/*
 * row_insert.h
 *		One row inserted straight through the table access method
 *		(row_insert.c).
 */
#ifndef ROW_INSERT_H
#define ROW_INSERT_H

#include "postgres.h"

#include "utils/snapshot.h"

extern bool row_insert(const char *table, int ncols, const char *const *cols,
					   const Datum *values, const bool *nulls);

typedef enum RowInsertResult
{
	ROW_INSERT_DONE,			/* inserted */
	ROW_INSERT_CONFLICT,		/* with an arbiter: a conflicting row, now locked */
	ROW_INSERT_STATEMENT		/* not done: the caller runs its statement */
} RowInsertResult;

/* What row_insert_checked() does beyond row_insert() (row_insert.c). */
typedef struct RowInsertRules
{
	Oid			skip_trigger_fn;	/* its statement-level INSERT triggers are not fired */
	const char *arbiter;		/* ON CONFLICT on this unique index, or NULL */
} RowInsertRules;

extern RowInsertResult row_insert_checked(const char *table, int ncols,
										  const char *const *cols, const Datum *values,
										  const bool *nulls, Snapshot snapshot,
										  const RowInsertRules *rules);

extern RowInsertResult row_insert_new(const char *table, int ncols, const char *const *cols,
									  const Datum *values, const bool *nulls);

#endif							/* ROW_INSERT_H */
