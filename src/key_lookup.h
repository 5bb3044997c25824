/*
 * key_lookup.h
 *		One row by its primary key, straight from the index and the heap
 *		(key_lookup.c).
 */
#ifndef KEY_LOOKUP_H
#define KEY_LOOKUP_H

#include "postgres.h"

#include "executor/tuptable.h"
#include "nodes/lockoptions.h"
#include "storage/lockdefs.h"
#include "utils/inval.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

extern Oid	mdm_relid(const char *name, LOCKMODE mode);
extern AttrNumber mdm_attnum(Oid relid, const char *name);
extern Relation key_lookup_open(const char *table, const char *index, LOCKMODE lockmode,
								Relation *idx);
extern RegProcedure key_lookup_eqproc(Relation idx, int i);
extern void key_lookup_relcache_callback(RelcacheCallbackFunction func);
extern Snapshot key_lookup_begin(void);
extern void key_lookup_end(Snapshot snapshot);
extern bool key_lookup(Snapshot snapshot, const char *table, const char *index, int nkeys,
					   const Datum *keys,
					   void (*read) (TupleTableSlot *slot, Oid relid, void *arg), void *arg);
extern bool key_lookup_locked(Snapshot snapshot, const char *table, const char *index,
							  int nkeys, const Datum *keys, LockTupleMode mode,
							  void (*read) (TupleTableSlot *slot, Oid relid, void *arg),
							  void *arg);
extern bool key_lookup_locked_if(Snapshot snapshot, const char *table, const char *index,
								 int nkeys, const Datum *keys, LockTupleMode mode,
								 bool (*filter) (TupleTableSlot *slot, Oid relid, void *arg),
								 void *filter_arg,
								 void (*read) (TupleTableSlot *slot, Oid relid, void *arg),
								 void *arg);
extern Datum key_lookup_column(TupleTableSlot *slot, Oid relid, const char *name, bool *isnull);
extern bool key_lookup_bool(TupleTableSlot *slot, Oid relid, const char *name);

#endif							/* KEY_LOOKUP_H */
