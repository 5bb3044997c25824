/*
 * row_update.c
 *		Updating one row by its primary key straight through the table access
 *		method: the channel's row at every command report (connect_path.c)
 *		and at a TokenUpdate (checkin_path.c); and whether a non-unique index
 *		has a matching row (key_prefix_exists(), the poll that finds nothing
 *		to hand out).
 *
 * An UPDATE over SPI pays an executor start-up and end (ModifyTable, an
 * index scan, projections, EvalPlanQual state) and, on every execution,
 * reads each CHECK constraint of the table back from its stored text and
 * plans it again (ExecConstraints(): the prepared expressions live in a
 * ResultRelInfo made per execution), whatever columns the UPDATE sets.
 * A command report sets three columns of its channel that no constraint
 * reads; for the two reports of a connect cycle that was a fifth of the
 * server's work.  A TokenUpdate sets columns that three of the four CHECK
 * constraints of nano_enrollments read: they are evaluated here from
 * expressions planned once per backend.
 *
 * Here the row is found and locked as the UPDATE finds and locks it
 * (key_lookup_locked(): a fresh snapshot after CommandCounterIncrement(),
 * FOR NO KEY UPDATE, waiting for a writer, the latest version in READ
 * COMMITTED and its key checked again, a serialization failure in
 * REPEATABLE READ), the new version formed from the old one, checked and
 * written with table_tuple_update(), and its index entries made with
 * ExecInsertIndexTuples() when the update is not HOT.  What the executor
 * would also do is done or declined:
 *	- CHECK constraints: those that read a column set here, and those not
 *	  validated (an old row may fail them), are evaluated, from expressions
 *	  read and planned once per backend (made again when the table's
 *	  relcache entry is invalidated); should one fail, nothing has been
 *	  written and the caller runs its statement, which raises the error.
 *	  The others read only columns the update keeps, which the row
 *	  satisfied already.
 *	- NOT NULL of a column set here: a NULL for it declines.
 *	- Triggers: a statement-level UPDATE trigger, or a row-level one
 *	  without a column list, declines (either would fire); a trigger
 *	  "UPDATE OF" columns, or a foreign key's (which fires only when its
 *	  key columns change), declines only when the update sets one of its
 *	  columns.
 *	- Row security, a partition, a stored generated column, a column of a
 *	  domain type set here, or an index whose uniqueness is checked at
 *	  commit (deferrable) decline.
 * Distributed (docs/citus.md), the row is updated in the device's local
 * shard (shard_local.c, shard_local_name()) on the worker that holds it;
 * elsewhere the caller runs its statement (plans_distributed()).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteManip.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "key_lookup.h"
#include "row_update.h"
#include "shard_local.h"

/* What a table allows, read once per backend (until its relcache entry changes). */
typedef struct UpdateRules
{
	Oid			relid;
	bool		valid;
	MemoryContext cxt;
	bool		statement_only; /* every UPDATE takes the statement */
	Bitmapset  *trigger_cols;	/* setting one of these fires a row trigger */
	int			nwhen;			/* row triggers with a WHEN condition: */
	List	  **when_quals;		/* the condition, planned (OLD inner, NEW outer) */
	Bitmapset **when_cols;		/* its columns ("UPDATE OF"), NULL for any */
	Bitmapset  *domain_cols;	/* columns of a domain type */
	Bitmapset  *key_cols;		/* setting one of these locks FOR UPDATE */
	int			ncheck;
	Expr	  **checks;			/* planned CHECK expressions */
	Bitmapset **check_cols;		/* the columns each reads */
	bool	   *check_valid;	/* validated (every row satisfies it) */
	ExprState **check_states;	/* made when first evaluated, kept in cxt */
	ExprState **when_states;
} UpdateRules;

#define MAX_RULES 8
static UpdateRules rules[MAX_RULES];
static bool callback_registered = false;

static void
rules_invalidate(Datum arg, Oid relid)
{
	for (int i = 0; i < MAX_RULES; i++)
		if (relid == InvalidOid || rules[i].relid == relid)
			rules[i].valid = false;
}

/* The columns a foreign key's trigger on rel compares (its side of the key). */
static void
add_constraint_columns(Oid conoid, Oid relid, Bitmapset **cols, bool *statement_only)
{
	HeapTuple	tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
	Form_pg_constraint con;
	AttrNumber	conkey[INDEX_MAX_KEYS];
	AttrNumber	confkey[INDEX_MAX_KEYS];
	Oid			pf_eq[INDEX_MAX_KEYS];
	Oid			pp_eq[INDEX_MAX_KEYS];
	Oid			ff_eq[INDEX_MAX_KEYS];
	AttrNumber	set_cols[INDEX_MAX_KEYS];
	int			nset;
	int			numfks;

	if (!HeapTupleIsValid(tup))
	{
		*statement_only = true;
		return;
	}
	con = (Form_pg_constraint) GETSTRUCT(tup);
	if (con->contype != CONSTRAINT_FOREIGN)
	{
		ReleaseSysCache(tup);
		*statement_only = true;
		return;
	}
	DeconstructFkConstraintRow(tup, &numfks, conkey, confkey, pf_eq, pp_eq, ff_eq, &nset, set_cols);
	for (int i = 0; i < numfks; i++)
	{
		if (con->conrelid == relid)
			*cols = bms_add_member(*cols, conkey[i]);
		if (con->confrelid == relid)
			*cols = bms_add_member(*cols, confkey[i]);
	}
	ReleaseSysCache(tup);
}

/* Does the expression read a system column or a whole row? */
static bool
reads_system_column(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var) && ((Var *) node)->varattno <= 0)
		return true;
	return expression_tree_walker(node, reads_system_column, context);
}

/*
 * A trigger's WHEN condition as TriggerEnabled() prepares it (OLD the inner
 * tuple, NEW the outer one), planned; NULL if it reads a system column or a
 * whole row (then the trigger counts as one without a condition).
 */
static List *
when_qual(const char *tgqual)
{
	Node	   *qual = stringToNode(tgqual);

	ChangeVarNodes(qual, PRS2_OLD_VARNO, INNER_VAR, 0);
	ChangeVarNodes(qual, PRS2_NEW_VARNO, OUTER_VAR, 0);
	if (reads_system_column(qual, NULL))
		return NULL;
	return (List *) expression_planner((Expr *) make_ands_implicit((Expr *) qual));
}

static void
rules_build(UpdateRules *u, Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	TupleDesc	desc = RelationGetDescr(rel);
	TriggerDesc *trig = rel->trigdesc;
	MemoryContext old;
	List	   *indexes;
	ListCell   *lc;

	if (u->cxt == NULL)
		u->cxt = AllocSetContextCreate(CacheMemoryContext, "mdm_user row update rules",
									   ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(u->cxt);
	old = MemoryContextSwitchTo(u->cxt);
	u->relid = relid;
	u->statement_only = rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_rel->relispartition || rel->rd_rel->relrowsecurity ||
		(desc->constr != NULL && desc->constr->has_generated_stored);
	u->trigger_cols = NULL;
	u->domain_cols = NULL;
	u->nwhen = 0;
	u->when_quals = palloc(sizeof(List *));
	u->when_cols = palloc(sizeof(Bitmapset *));
	for (int i = 0; trig != NULL && i < trig->numtriggers; i++)
	{
		Trigger    *t = &trig->triggers[i];
		List	   *qual;

		if (!TRIGGER_FOR_UPDATE(t->tgtype))
			continue;
		if (!TRIGGER_FOR_ROW(t->tgtype))
			u->statement_only = true;
		else if (t->tgisinternal && OidIsValid(t->tgconstraint) &&
				 RI_FKey_trigger_type(t->tgfoid) != RI_TRIGGER_NONE)
			add_constraint_columns(t->tgconstraint, relid, &u->trigger_cols, &u->statement_only);
		else if (!t->tgisinternal && t->tgqual != NULL && t->tgoldtable == NULL &&
				 t->tgnewtable == NULL && (qual = when_qual(t->tgqual)) != NULL)
		{
			/* fires only for rows its WHEN holds for: evaluated at each update */
			Bitmapset  *cols = NULL;

			for (int j = 0; j < t->tgnattr; j++)
				cols = bms_add_member(cols, t->tgattr[j]);
			u->when_quals = repalloc(u->when_quals, sizeof(List *) * (u->nwhen + 1));
			u->when_cols = repalloc(u->when_cols, sizeof(Bitmapset *) * (u->nwhen + 1));
			u->when_quals[u->nwhen] = qual;
			u->when_cols[u->nwhen] = cols;
			u->nwhen++;
		}
		else if (t->tgnattr > 0)
			for (int j = 0; j < t->tgnattr; j++)
				u->trigger_cols = bms_add_member(u->trigger_cols, t->tgattr[j]);
		else
			u->statement_only = true;
	}
	for (int a = 0; a < desc->natts; a++)
		if (get_typtype(TupleDescAttr(desc, a)->atttypid) == TYPTYPE_DOMAIN)
			u->domain_cols = bms_add_member(u->domain_cols, a + 1);

	/* (attribute numbers offset as pull_varattnos() offsets them) */
	u->key_cols = NULL;
	{
		Bitmapset  *keys = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_KEY);
		int			m = -1;

		while ((m = bms_next_member(keys, m)) >= 0)
			u->key_cols = bms_add_member(u->key_cols,
										 Max(m + FirstLowInvalidHeapAttributeNumber, 0));
	}
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);

		if (!idx->rd_index->indimmediate)
			u->statement_only = true;
		index_close(idx, AccessShareLock);
	}

	u->ncheck = desc->constr ? desc->constr->num_check : 0;
	u->checks = palloc0(sizeof(Expr *) * Max(u->ncheck, 1));
	u->check_cols = palloc0(sizeof(Bitmapset *) * Max(u->ncheck, 1));
	u->check_valid = palloc0(sizeof(bool) * Max(u->ncheck, 1));
	u->check_states = palloc0(sizeof(ExprState *) * Max(u->ncheck, 1));
	u->when_states = palloc0(sizeof(ExprState *) * Max(u->nwhen, 1));
	for (int i = 0; i < u->ncheck; i++)
	{
		ConstrCheck *c = &desc->constr->check[i];
		Bitmapset  *attrs = NULL;
		int			m = -1;

		/* as ExecRelCheck() prepares it: read, then planned */
		u->checks[i] = expression_planner((Expr *) stringToNode(c->ccbin));
		pull_varattnos((Node *) u->checks[i], 1, &attrs);
		/* pull_varattnos() offsets by FirstLowInvalidHeapAttributeNumber */
		while ((m = bms_next_member(attrs, m)) >= 0)
		{
			AttrNumber	attnum = m + FirstLowInvalidHeapAttributeNumber;

			u->check_cols[i] = bms_add_member(u->check_cols[i], Max(attnum, 0));
		}
		/* a whole-row reference (attnum 0) reads every column */
		u->check_valid[i] = c->ccvalid && !bms_is_member(0, u->check_cols[i]);
	}
	MemoryContextSwitchTo(old);
	u->valid = true;
}

static UpdateRules *
rules_for(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	UpdateRules *free_slot = NULL;

	if (!callback_registered)
	{
		key_lookup_relcache_callback(rules_invalidate);
		callback_registered = true;
	}
	for (int i = 0; i < MAX_RULES; i++)
	{
		if (rules[i].relid == relid)
		{
			if (!rules[i].valid)
				rules_build(&rules[i], rel);
			return &rules[i];
		}
		if (free_slot == NULL && (rules[i].relid == InvalidOid || !rules[i].valid))
			free_slot = &rules[i];
	}
	if (free_slot == NULL)
	{
		/* all in use (a Citus worker's many shards): the slots are made again in turn */
		static int	evict = 0;

		free_slot = &rules[evict];
		evict = (evict + 1) % MAX_RULES;
	}
	rules_build(free_slot, rel);
	return free_slot;
}

typedef struct UpdateState
{
	Relation	rel;
	UpdateRules *rules;
	Snapshot	snapshot;
	int			ncols;
	const AttrNumber *attnums;
	Bitmapset  *set_cols;
	RowUpdateNew compute;
	void	   *arg;
	RowUpdateResult result;
	bool		all_checks;		/* a new row: every CHECK is evaluated */
} UpdateState;

/* Do the CHECK constraints that may not hold for the new row hold? */
static bool
checks_hold(UpdateState *s, TupleTableSlot *slot)
{
	UpdateRules *u = s->rules;
	ExprContext *econtext = NULL;
	bool		ok = true;

	for (int i = 0; i < u->ncheck && ok; i++)
	{
		ExprState  *state;

		if (!s->all_checks && u->check_valid[i] && !bms_overlap(u->check_cols[i], s->set_cols))
			continue;
		if (econtext == NULL)
		{
			econtext = CreateStandaloneExprContext();
			econtext->ecxt_scantuple = slot;
		}
		if (u->check_states[i] == NULL)
		{
			/* made once, as the expression is (CHECK allows no subquery) */
			MemoryContext old = MemoryContextSwitchTo(u->cxt);

			u->check_states[i] = ExecInitExpr(u->checks[i], NULL);
			MemoryContextSwitchTo(old);
		}
		state = u->check_states[i];
		/* NULL passes, as a CHECK constraint's result does */
		ok = ExecCheck(state, econtext);
	}
	if (econtext != NULL)
		FreeExprContext(econtext, true);
	return ok;
}

/* Does no row trigger's WHEN hold for this update (old row, new row)? */
static bool
triggers_quiet(UpdateState *s, TupleTableSlot *old, TupleTableSlot *new)
{
	UpdateRules *u = s->rules;
	ExprContext *econtext = NULL;
	bool		quiet = true;

	for (int i = 0; i < u->nwhen && quiet; i++)
	{
		if (u->when_cols[i] != NULL && !bms_overlap(u->when_cols[i], s->set_cols))
			continue;
		if (econtext == NULL)
		{
			econtext = CreateStandaloneExprContext();
			econtext->ecxt_innertuple = old;
			econtext->ecxt_outertuple = new;
		}
		if (u->when_states[i] == NULL)
		{
			/* made once, as the expression is (WHEN allows no subquery) */
			MemoryContext old = MemoryContextSwitchTo(u->cxt);

			u->when_states[i] = ExecInitQual(u->when_quals[i], NULL);
			MemoryContextSwitchTo(old);
		}
		quiet = !ExecQual(u->when_states[i], econtext);
	}
	if (econtext != NULL)
		FreeExprContext(econtext, true);
	return quiet;
}

/*
 * Does a new row of rel (slot, every column set) satisfy every CHECK
 * constraint of its table?  Evaluated from the expressions planned once
 * per backend; for an INSERT done without a statement (row_insert.c),
 * which runs its statement instead if not (the statement raises the
 * error).
 */
bool
row_checks_hold(Relation rel, TupleTableSlot *slot)
{
	UpdateState s;

	memset(&s, 0, sizeof(s));
	s.rel = rel;
	s.rules = rules_for(rel);
	s.all_checks = true;
	return checks_hold(&s, slot);
}

/* key_lookup_locked()'s callback: the row is locked, its latest version in old */
static void
update_locked(TupleTableSlot *old, Oid relid, void *arg)
{
	UpdateState *s = arg;
	Relation	rel = s->rel;
	TupleDesc	desc = RelationGetDescr(rel);
	TupleTableSlot *slot;
	Datum	   *values = palloc(sizeof(Datum) * s->ncols);
	bool	   *nulls = palloc(sizeof(bool) * s->ncols);
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	TM_Result	res;
	bool		update_indexes;

	if (!s->compute(old, relid, values, nulls, s->arg))
		return;
	slot = table_slot_create(rel, NULL);
	ExecClearTuple(slot);
	memcpy(slot->tts_values, old->tts_values, sizeof(Datum) * desc->natts);
	memcpy(slot->tts_isnull, old->tts_isnull, sizeof(bool) * desc->natts);
	for (int i = 0; i < s->ncols; i++)
	{
		AttrNumber	attnum = s->attnums[i];

		if (nulls[i] && TupleDescAttr(desc, attnum - 1)->attnotnull)
		{
			/* the statement raises the NOT NULL violation */
			ExecDropSingleTupleTableSlot(slot);
			return;
		}
		slot->tts_values[attnum - 1] = nulls[i] ? (Datum) 0 : values[i];
		slot->tts_isnull[attnum - 1] = nulls[i];
	}
	ExecStoreVirtualTuple(slot);
	if (!checks_hold(s, slot) || !triggers_quiet(s, old, slot))
	{
		/* the statement raises the CHECK violation or fires the trigger */
		ExecDropSingleTupleTableSlot(slot);
		return;
	}

	res = table_tuple_update(rel, &old->tts_tid, slot, GetCurrentCommandId(true), s->snapshot,
							 InvalidSnapshot, true, &tmfd, &lockmode, &update_indexes);
	if (res != TM_Ok)
		elog(ERROR, "unexpected table_tuple_update status %u of a locked row", res);
	if (update_indexes)
	{
		EState	   *estate = CreateExecutorState();
		ResultRelInfo *rri = makeNode(ResultRelInfo);

		/*
		 * No range table entry (index 0): ExecInsertIndexTuples() then finds
		 * no updated columns for its "index unchanged" hint, which only
		 * steers B-tree bottom-up deletion.
		 */
		InitResultRelInfo(rri, rel, 0, NULL, 0);
		ExecOpenIndices(rri, false);
		if (rri->ri_NumIndices > 0)
			list_free(ExecInsertIndexTuples(rri, slot, estate, true, false, NULL, NIL));
		ExecCloseIndices(rri);
		FreeExecutorState(estate);
	}
	/* what the caller may read of the new row: values[] as computed */
	ExecDropSingleTupleTableSlot(slot);
	s->result = ROW_UPDATE_DONE;
}

/*
 * UPDATE mdm.<table> SET cols[i] = ... WHERE <unique index mdm.<index>> =
 * keys, the new values computed by compute(old row, relid, values, nulls,
 * arg) while the row is locked (it may be called and its values not
 * written, see below; it returns false to leave the update to the
 * statement).
 * Returns ROW_UPDATE_DONE, ROW_UPDATE_NOT_FOUND (no such row: nothing
 * done), or ROW_UPDATE_STATEMENT when the caller must run its statement
 * instead (the table or the new row is one this does not update; see the
 * top of the file): then nothing was written, though the row may be
 * locked, which the statement does anyway.
 */
/*
 * Can the columns cols[] of rel be set here (else the statement runs)?
 * Fills the update's state.
 */
static bool
update_prepare(UpdateState *s, Relation rel, int ncols, const char *const *cols)
{
	AttrNumber *attnums = palloc(sizeof(AttrNumber) * ncols);

	memset(s, 0, sizeof(*s));
	s->rel = rel;
	s->rules = rules_for(rel);
	if (s->rules->statement_only)
		return false;
	for (int i = 0; i < ncols; i++)
	{
		attnums[i] = mdm_attnum(RelationGetRelid(rel), cols[i]);
		if (attnums[i] <= 0)
			elog(ERROR, "column \"%s\" of relation \"%s\" does not exist", cols[i],
				 RelationGetRelationName(rel));
		s->set_cols = bms_add_member(s->set_cols, attnums[i]);
	}
	if (bms_overlap(s->set_cols, s->rules->trigger_cols) ||
		bms_overlap(s->set_cols, s->rules->domain_cols) ||
		bms_overlap(s->set_cols, s->rules->key_cols))
		return false;
	s->ncols = ncols;
	s->attnums = attnums;
	s->result = ROW_UPDATE_STATEMENT;
	return true;
}

/*
 * UPDATE mdm.<table> SET cols[i] = ... WHERE <unique index mdm.<index>> =
 * keys, the new values computed by compute(old row, relid, values, nulls,
 * arg) while the row is locked (it may be called and its values not
 * written, see below; it returns false to leave the update to the
 * statement).
 * Returns ROW_UPDATE_DONE, ROW_UPDATE_NOT_FOUND (no such row: nothing
 * done), or ROW_UPDATE_STATEMENT when the caller must run its statement
 * instead (the table or the new row is one this does not update; see the
 * top of the file): then nothing was written, though the row may be
 * locked, which the statement does anyway.
 */
RowUpdateResult
row_update(const char *table, const char *index, int nkeys, const Datum *keys,
		   int ncols, const char *const *cols, RowUpdateNew compute, void *arg)
{
	return row_update_if(table, index, nkeys, keys, NULL, ncols, cols, compute, arg);
}

/*
 * The same, with the rest of the statement's WHERE clause: filter(row,
 * relid, arg) on the row as the statement's snapshot sees it (a row it
 * rejects is not locked) and, should the row have changed meanwhile, on
 * its latest version once locked (the executor's recheck; a row that no
 * longer passes stays locked, as it does there).  Either way the result
 * is ROW_UPDATE_NOT_FOUND.
 */
RowUpdateResult
row_update_if(const char *table, const char *index, int nkeys, const Datum *keys,
			  bool (*filter) (TupleTableSlot *slot, Oid relid, void *arg),
			  int ncols, const char *const *cols, RowUpdateNew compute, void *arg)
{
	UpdateState s;
	Relation	rel;
	bool		found;

	/* the UPDATE's table lock, taken first, as the statement takes it */
	rel = key_lookup_open(table, NULL, RowExclusiveLock, NULL);
	if (!update_prepare(&s, rel, ncols, cols))
	{
		table_close(rel, NoLock);
		return ROW_UPDATE_STATEMENT;
	}
	s.compute = compute;
	s.arg = arg;
	s.snapshot = key_lookup_begin();
	found = key_lookup_locked_if(s.snapshot, table, index, nkeys, keys, LockTupleNoKeyExclusive,
								 filter, arg, update_locked, &s);
	key_lookup_end(s.snapshot);
	table_close(rel, NoLock);
	return found ? s.result : ROW_UPDATE_NOT_FOUND;
}

/*
 * May cols[] of rel (opened by the caller with RowExclusiveLock) be set by
 * row_update_row()?  If not, the caller runs its statement.  (A trigger's
 * WHEN condition is known only for a given row: row_update_row() may
 * still decline.)
 */
bool
row_update_allowed(Relation rel, int ncols, const char *const *cols)
{
	UpdateState s;

	return update_prepare(&s, rel, ncols, cols);
}

/*
 * Update a row the caller found and locked as the statement would have
 * (old: its latest version, every column read, in rel opened with
 * RowExclusiveLock; snapshot the statement's), as row_update() does.
 * Returns ROW_UPDATE_DONE, or ROW_UPDATE_STATEMENT (nothing written).
 */
RowUpdateResult
row_update_row(Relation rel, Snapshot snapshot, TupleTableSlot *old, int ncols,
			   const char *const *cols, RowUpdateNew compute, void *arg)
{
	UpdateState s;

	if (!update_prepare(&s, rel, ncols, cols))
		return ROW_UPDATE_STATEMENT;
	s.compute = compute;
	s.arg = arg;
	s.snapshot = snapshot;
	update_locked(old, RelationGetRelid(rel), &s);
	return s.result;
}

/*
 * Is there a row of mdm.<table> whose index mdm.<index> (a B-tree) starts
 * with keys[0 .. nkeys-1] and that match(slot, relid, arg) accepts, as of
 * snapshot?  Rows are not locked.  Returns -1 if the index cannot be read
 * (not valid, ready or live: the caller runs its statement), else 0 or 1.
 */
int
key_prefix_exists(Snapshot snapshot, const char *table, const char *index, int nkeys,
				  const Datum *keys,
				  bool (*match) (TupleTableSlot *slot, Oid relid, void *arg), void *arg)
{
	Relation	idx;
	Relation	rel = key_lookup_open(table, index, AccessShareLock, &idx);
	Oid			relid = RelationGetRelid(rel);
	ScanKeyData skey[INDEX_MAX_KEYS];
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int			found = 0;

	if (idx->rd_index->indrelid != relid || idx->rd_rel->relam != BTREE_AM_OID ||
		idx->rd_index->indnkeyatts < nkeys)
		elog(ERROR, "index \"mdm.%s\" is not a B-tree of at least %d columns on \"mdm.%s\"",
			 index, nkeys, table);
	if (!idx->rd_index->indisvalid || !idx->rd_index->indisready || !idx->rd_index->indislive)
	{
		index_close(idx, NoLock);
		table_close(rel, NoLock);
		return -1;
	}
	for (int i = 0; i < nkeys; i++)
		ScanKeyEntryInitialize(&skey[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[i], key_lookup_eqproc(idx, i), keys[i]);
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, idx, snapshot, nkeys, 0);
	index_rescan(scan, skey, nkeys, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		slot_getallattrs(slot);
		if (match(slot, relid, arg))
		{
			found = 1;
			break;
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return found;
}
