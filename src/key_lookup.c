/*
 * key_lookup.c
 *		Reading one row by its primary key straight from the index and the
 *		heap, for the check-in dispatcher's lookup (checkin_path.c).
 *
 * The dispatcher's one lookup reads four rows by their keys: the message
 * type in Apple's schema, the device's identity binding, the device and
 * the channel.  As one statement over SPI it paid an executor start-up of a
 * four-way join and kept four B-tree scans (27 kB of scan state each,
 * allocated with malloc) alive at once, which made the heap grow and shrink
 * (brk) on every check-in.  Read here one after the other, one scan at a
 * time, with the snapshot and the locks the statement took: one fresh
 * snapshot for the four, after CommandCounterIncrement(), as SPI takes for
 * a statement of a VOLATILE function, and AccessShareLock on each table and
 * index, kept to the end of the transaction.  Rows are not locked (the
 * statement did not lock them either).  The pushability re-read locks its
 * row as its SELECT ... FOR NO KEY UPDATE did (key_lookup_locked()).
 *
 * Distributed (docs/citus.md), the tables on a node are shells and the rows
 * are in shards: on the worker that holds the device, the rows are read
 * from its local shards and their indexes (shard_local.c,
 * shard_local_name()); elsewhere the dispatcher keeps its statement
 * (spi_plans.c, plans_distributed()).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "key_lookup.h"
#include "shard_local.h"

/*
 * Names resolved once per backend.  Every check-in reads five or six rows
 * by key and updates one or two: each opened its table and index by name
 * (the schema's name, then the relation's, two catalog lookups) and read
 * each column's number by its name, about a tenth of a TokenUpdate.  The
 * relation a name stands for is kept until pg_class or pg_namespace
 * changes (any row: a rename, a drop, a new index); a column's number
 * until pg_attribute changes.  An entry is found by a hash of the name
 * (and table) and checked against a copy of the name, in small tables
 * where a newcomer replaces what was there.
 */
#define NAME_CACHE_SIZE 256

typedef struct NameEntry
{
	Oid			relid;			/* attnums: the table; relations: the result */
	Oid			userid;			/* relations: whose USAGE of the schema was checked */
	uint64		generation;		/* of the cache, when made */
	AttrNumber	attnum;
	char		name[NAMEDATALEN];
} NameEntry;

static NameEntry relnames[NAME_CACHE_SIZE];
static NameEntry attnames[NAME_CACHE_SIZE];
static uint64 relname_generation = 1;
static uint64 attname_generation = 1;
static bool name_callbacks = false;

static void
relname_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	relname_generation++;
}

static void
attname_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	attname_generation++;
}

static void
name_callbacks_register(void)
{
	if (name_callbacks)
		return;
	CacheRegisterSyscacheCallback(RELNAMENSP, relname_invalidate, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, relname_invalidate, (Datum) 0);
	/* (a syscache callback: the relcache's are few, 10 for every extension) */
	CacheRegisterSyscacheCallback(ATTNAME, attname_invalidate, (Datum) 0);
	name_callbacks = true;
}

static inline NameEntry *
name_slot(NameEntry *table, const char *name, Oid relid)
{
	uint32		h = 2166136261u ^ ((uint32) relid * 2654435761u);

	for (const char *c = name; *c; c++)
		h = (h ^ (unsigned char) *c) * 16777619u;
	return &table[h % NAME_CACHE_SIZE];
}

/*
 * The OID of relation mdm.<name>, locked in mode, as RangeVarGetRelid()
 * finds and locks it (an error if there is none): the name is resolved
 * after the lock, with the invalidations the lock brought.  A name
 * resolved before is taken as it was when no pg_class or pg_namespace
 * change has arrived since (none either while the lock was taken).
 */
Oid
mdm_relid(const char *name, LOCKMODE mode)
{
	NameEntry  *e = name_slot(relnames, name, InvalidOid);
	uint64		generation;
	Oid			relid;

	name_callbacks_register();
	if (e->generation == relname_generation &&
		e->userid == GetUserId() && strcmp(e->name, name) == 0)
	{
		generation = relname_generation;
		relid = e->relid;
		LockRelationOid(relid, mode);
		if (generation == relname_generation)
			return relid;
		/* something was renamed or dropped meanwhile: the name again */
		UnlockRelationOid(relid, mode);
	}
	generation = relname_generation;
	relid = RangeVarGetRelid(makeRangeVar("mdm", (char *) name, -1), mode, false);
	if (strlen(name) < NAMEDATALEN)
	{
		strlcpy(e->name, name, NAMEDATALEN);
		e->relid = relid;
		e->userid = GetUserId();
		e->generation = generation;
	}
	return relid;
}

/* The number of column name of relid; InvalidAttrNumber if it has none. */
AttrNumber
mdm_attnum(Oid relid, const char *name)
{
	NameEntry  *e = name_slot(attnames, name, relid);
	uint64		generation;

	name_callbacks_register();
	if (e->relid == relid && e->generation == attname_generation &&
		strcmp(e->name, name) == 0)
		return e->attnum;
	generation = attname_generation;
	if (strlen(name) < NAMEDATALEN)
	{
		strlcpy(e->name, name, NAMEDATALEN);
		e->relid = relid;
		e->attnum = get_attnum(relid, name);
		e->generation = generation;
		return e->attnum;
	}
	return get_attnum(relid, name);
}

/*
 * One relcache callback for the caches of the C paths (this file's
 * equality functions, row_update.c's rules): a backend has only ten, and
 * Citus takes several.
 */
#define MAX_RELCACHE_USERS 4
static RelcacheCallbackFunction relcache_users[MAX_RELCACHE_USERS];
static int	nrelcache_users = 0;
static bool relcache_registered = false;

/* The equality functions of the columns of the indexes scanned by key. */
typedef struct IndexEq
{
	Oid			indexrelid;
	int			nkeys;			/* known for the first nkeys columns */
	RegProcedure eqproc[INDEX_MAX_KEYS];
} IndexEq;

#define MAX_INDEX_EQ 32
static IndexEq index_eq[MAX_INDEX_EQ];
static int	next_index_eq = 0;

static void
relcache_changed(Datum arg, Oid relid)
{
	for (int i = 0; i < MAX_INDEX_EQ; i++)
		if (relid == InvalidOid || index_eq[i].indexrelid == relid)
			index_eq[i].indexrelid = InvalidOid;
	for (int i = 0; i < nrelcache_users; i++)
		relcache_users[i] (arg, relid);
}

static void
relcache_register(void)
{
	if (!relcache_registered)
	{
		CacheRegisterRelcacheCallback(relcache_changed, (Datum) 0);
		relcache_registered = true;
	}
}

/* Have func called, as a relcache callback is, through this file's one. */
void
key_lookup_relcache_callback(RelcacheCallbackFunction func)
{
	relcache_register();
	for (int i = 0; i < nrelcache_users; i++)
		if (relcache_users[i] == func)
			return;
	if (nrelcache_users == MAX_RELCACHE_USERS)
		elog(ERROR, "out of mdm_user relcache callback slots");
	relcache_users[nrelcache_users++] = func;
}

/*
 * Open mdm.<table> (the device's local shard on a Citus worker) with
 * lockmode and, if index is not NULL, its index mdm.<index> (returned in
 * *idx, locked AccessShareLock), as a statement finds them (mdm_relid()).
 */
Relation
key_lookup_open(const char *table, const char *index, LOCKMODE lockmode, Relation *idx)
{
	Relation	rel = table_open(mdm_relid(shard_local_name(table, NULL), lockmode), NoLock);

	if (index != NULL)
		*idx = index_open(mdm_relid(shard_local_name(table, index), AccessShareLock), NoLock);
	return rel;
}

/*
 * The equality function of column i (from 0) of an index, for a scan
 * key; an internal error if there is none.  Kept per index until its
 * relcache entry is invalidated.
 */
RegProcedure
key_lookup_eqproc(Relation idx, int i)
{
	IndexEq    *n = NULL;
	Oid			eqop;

	relcache_register();
	for (int k = 0; k < MAX_INDEX_EQ; k++)
		if (index_eq[k].indexrelid == RelationGetRelid(idx))
		{
			n = &index_eq[k];
			break;
		}
	if (n != NULL && i < n->nkeys)
		return n->eqproc[i];
	eqop = get_opfamily_member(idx->rd_opfamily[i], idx->rd_opcintype[i],
							   idx->rd_opcintype[i], BTEqualStrategyNumber);
	if (!OidIsValid(eqop))
		elog(ERROR, "no equality operator for column %d of index \"%s\"", i + 1,
			 RelationGetRelationName(idx));
	if (n == NULL && i == 0)
	{
		n = &index_eq[next_index_eq];
		next_index_eq = (next_index_eq + 1) % MAX_INDEX_EQ;
		n->indexrelid = RelationGetRelid(idx);
		n->nkeys = 0;
	}
	if (n != NULL && i == n->nkeys)
		n->eqproc[n->nkeys++] = get_opcode(eqop);
	return get_opcode(eqop);
}

/* A column's number in a table; an internal error if it is missing. */
static AttrNumber
column(Oid relid, const char *name)
{
	AttrNumber	attnum = mdm_attnum(relid, name);

	if (attnum == InvalidAttrNumber)
		elog(ERROR, "column \"%s\" of relation \"%s\" does not exist", name, get_rel_name(relid));
	return attnum;
}

/*
 * Lock the row the slot holds as SELECT ... FOR <mode> does, waiting for a
 * writer that holds it.  Returns false if the row is gone (deleted, or its
 * key changed, by a transaction that committed meanwhile); in READ
 * COMMITTED a row updated meanwhile is locked and read in its latest
 * version, in REPEATABLE READ and SERIALIZABLE that is a serialization
 * failure, as in the executor (ExecLockRows()).
 */
static bool
lock_row(Relation rel, Relation idx, Snapshot snapshot, TupleTableSlot *slot,
		 LockTupleMode mode, int nkeys, const ScanKeyData *skey,
		 bool (*filter) (TupleTableSlot *slot, Oid relid, void *arg), void *filter_arg)
{
	TM_FailureData tmfd;
	TM_Result	result;

	result = table_tuple_lock(rel, &slot->tts_tid, snapshot, slot,
							  GetCurrentCommandId(true), mode, LockWaitBlock,
							  IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
							  &tmfd);
	switch (result)
	{
		case TM_Ok:
			break;
		case TM_SelfModified:
			/* changed by a later command of this statement: not possible here */
			return false;
		case TM_Updated:
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update")));
			elog(ERROR, "unexpected table_tuple_lock status: %u", result);
			break;
		case TM_Deleted:
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent delete")));
			return false;
		case TM_Invisible:
			elog(ERROR, "attempted to lock invisible tuple");
			break;
		default:
			elog(ERROR, "unrecognized table_tuple_lock status: %u", result);
	}
	if (tmfd.traversed)
	{
		/* a later version: it must still have the keys (the executor's recheck) */
		slot_getallattrs(slot);
		for (int i = 0; i < nkeys; i++)
		{
			AttrNumber	attnum = idx->rd_index->indkey.values[i];

			if (slot->tts_isnull[attnum - 1] ||
				!DatumGetBool(FunctionCall2Coll((FmgrInfo *) &skey[i].sk_func,
												skey[i].sk_collation,
												slot->tts_values[attnum - 1],
												skey[i].sk_argument)))
				return false;
		}
		/* and the rest of the statement's condition */
		if (filter != NULL && !filter(slot, RelationGetRelid(rel), filter_arg))
			return false;
	}
	return true;
}

/*
 * The snapshot of the lookups that make up one statement: what a statement
 * of a VOLATILE function sees.  Release it with key_lookup_end().
 */
Snapshot
key_lookup_begin(void)
{
	CommandCounterIncrement();
	return RegisterSnapshot(GetTransactionSnapshot());
}

void
key_lookup_end(Snapshot snapshot)
{
	UnregisterSnapshot(snapshot);
}

static bool
fetch(Snapshot snapshot, const char *table, const char *index, int nkeys, const Datum *keys,
	  const LockTupleMode *mode,
	  bool (*filter) (TupleTableSlot *slot, Oid relid, void *arg), void *filter_arg,
	  void (*read) (TupleTableSlot *slot, Oid relid, void *arg), void *arg)
{
	Oid			relid;
	Relation	rel;
	Relation	idx;
	ScanKeyData skey[INDEX_MAX_KEYS];
	IndexScanDesc scan = NULL;
	TableScanDesc heapscan = NULL;
	TupleTableSlot *slot;
	bool		usable;
	bool		found;

	Assert(nkeys > 0 && nkeys <= INDEX_MAX_KEYS);
	rel = key_lookup_open(table, index, mode ? RowShareLock : AccessShareLock, &idx);
	relid = RelationGetRelid(rel);
	/* an index not (or no longer) usable: read the table as a statement would */
	usable = idx->rd_index->indisvalid && idx->rd_index->indisready && idx->rd_index->indislive;
	if (idx->rd_index->indrelid != relid || !idx->rd_index->indisunique ||
		idx->rd_index->indnkeyatts != nkeys)
		elog(ERROR, "index \"mdm.%s\" is not a unique index of %d columns on \"mdm.%s\"",
			 index, nkeys, table);

	for (int i = 0; i < nkeys; i++)
		ScanKeyEntryInitialize(&skey[i], 0, usable ? i + 1 : idx->rd_index->indkey.values[i],
							   BTEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[i], key_lookup_eqproc(idx, i), keys[i]);

	slot = table_slot_create(rel, NULL);
	if (usable)
	{
		scan = index_beginscan(rel, idx, snapshot, nkeys, 0);
		index_rescan(scan, skey, nkeys, NULL, 0);
		found = index_getnext_slot(scan, ForwardScanDirection, slot);
	}
	else
	{
		heapscan = table_beginscan(rel, snapshot, nkeys, skey);
		found = table_scan_getnextslot(heapscan, ForwardScanDirection, slot);
	}
	/* a row the rest of the condition rejects is not locked */
	if (found && filter != NULL)
	{
		slot_getallattrs(slot);
		found = filter(slot, relid, filter_arg);
	}
	if (found && mode != NULL)
		found = lock_row(rel, idx, snapshot, slot, *mode, nkeys, skey, filter, filter_arg);
	if (found)
	{
		slot_getallattrs(slot);
		read(slot, relid, arg);
	}
	if (scan)
		index_endscan(scan);
	else
		table_endscan(heapscan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return found;
}

/*
 * Read the row of mdm.<table> whose unique index mdm.<index> has the keys
 * keys[0 .. nkeys-1] (text or bytea, compared with the index's own
 * operators and collation), as of the snapshot from key_lookup_begin().  Returns false if there is none; else calls
 * read(slot, relid, arg) with the row while its buffer is pinned, which
 * must copy what it keeps.
 */
bool
key_lookup(Snapshot snapshot, const char *table, const char *index, int nkeys,
		   const Datum *keys,
		   void (*read) (TupleTableSlot *slot, Oid relid, void *arg), void *arg)
{
	return fetch(snapshot, table, index, nkeys, keys, NULL, NULL, NULL, read, arg);
}

/* The same, the row locked as SELECT ... FOR <mode> locks it (lock_row()). */
bool
key_lookup_locked(Snapshot snapshot, const char *table, const char *index, int nkeys,
				  const Datum *keys, LockTupleMode mode,
				  void (*read) (TupleTableSlot *slot, Oid relid, void *arg), void *arg)
{
	return fetch(snapshot, table, index, nkeys, keys, &mode, NULL, NULL, read, arg);
}

/*
 * The same, for a row that filter(slot, relid, filter_arg) accepts: as the
 * statement's snapshot sees it (a row it rejects is not locked), and in its
 * latest version if that is another (a row it then rejects stays locked,
 * as after the executor's recheck).
 */
bool
key_lookup_locked_if(Snapshot snapshot, const char *table, const char *index, int nkeys,
					 const Datum *keys, LockTupleMode mode,
					 bool (*filter) (TupleTableSlot *slot, Oid relid, void *arg),
					 void *filter_arg,
					 void (*read) (TupleTableSlot *slot, Oid relid, void *arg), void *arg)
{
	return fetch(snapshot, table, index, nkeys, keys, &mode, filter, filter_arg, read, arg);
}

/* The value of a column of the slot's row; *isnull set. */
Datum
key_lookup_column(TupleTableSlot *slot, Oid relid, const char *name, bool *isnull)
{
	return slot_getattr(slot, column(relid, name), isnull);
}

/* A boolean column; NULL counts as false. */
bool
key_lookup_bool(TupleTableSlot *slot, Oid relid, const char *name)
{
	bool		isnull;
	Datum		d = key_lookup_column(slot, relid, name, &isnull);

	return !isnull && DatumGetBool(d);
}
