/*
 * row_insert.c
 *		Inserting one row straight through the table access method and the
 *		table's indexes, for the check-in log (checkin_path.c).
 *
 * An INSERT over SPI pays an executor start-up and end (ModifyTable and a
 * Result node, their expressions and tuple slots) for one row of plain
 * values.  Here the row is formed, inserted and indexed as the executor
 * would (table_tuple_insert(), then ExecInsertIndexTuples(): the same
 * unique checks and errors), in a new command of the transaction as a
 * statement of a VOLATILE function would be.  Only for a plain table
 * without triggers, CHECK constraints or row security (none of which is
 * applied here), not a partition, whose columns are none of a domain
 * (its checks), identity or generated, and whose columns left out have no
 * default and may be NULL (a DBA may add one): row_insert() returns false
 * otherwise and the caller runs its statement, which applies all of it.
 * Distributed, into the device's local shard (shard_local.c), on the worker
 * that holds it; elsewhere the caller runs its statement.
 *
 * row_insert_checked() also evaluates the table's CHECK constraints (from
 * expressions planned once per backend, row_update.c), may leave out a
 * statement trigger the caller knows cannot concern its row, and does
 * INSERT ... ON CONFLICT DO UPDATE ... WHERE false on one arbiter index:
 * the queue item and push job of a one-target enqueue (enqueue_path.c).
 * row_insert_new() inserts a row as INSERT ... ON CONFLICT does when no
 * row conflicts on any unique index, defaults evaluated: a command
 * report's result row (connect_path.c).
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "key_lookup.h"
#include "row_insert.h"
#include "row_update.h"
#include "shard_local.h"

/*
 * A slot of rel holding cols[i] = values[i] (NULL if nulls[i]) and NULL in
 * every other column, stored; NULL, having kept nothing, when the row
 * needs what only the statement applies: a default or NOT NULL for a
 * column left NULL, an identity or generated column, a domain's checks.
 */
static TupleTableSlot *
plain_row_slot(Relation rel, const char *table, int ncols, const char *const *cols,
			   const Datum *values, const bool *nulls)
{
	Oid			relid = RelationGetRelid(rel);
	TupleDesc	desc = RelationGetDescr(rel);
	TupleTableSlot *slot = table_slot_create(rel, NULL);

	ExecClearTuple(slot);
	for (int a = 0; a < desc->natts; a++)
	{
		slot->tts_values[a] = (Datum) 0;
		slot->tts_isnull[a] = true;
	}
	for (int i = 0; i < ncols; i++)
	{
		AttrNumber	attnum = mdm_attnum(relid, cols[i]);

		if (attnum <= 0)
			elog(ERROR, "column \"%s\" of relation \"mdm.%s\" does not exist", cols[i], table);
		slot->tts_values[attnum - 1] = nulls[i] ? (Datum) 0 : values[i];
		slot->tts_isnull[attnum - 1] = nulls[i];
	}
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (att->attisdropped)
			continue;
		if ((slot->tts_isnull[a] && (att->attnotnull || att->atthasdef)) ||
			att->attidentity || att->attgenerated ||
			get_typtype(att->atttypid) == TYPTYPE_DOMAIN)
		{
			ExecDropSingleTupleTableSlot(slot);
			return NULL;
		}
	}
	ExecStoreVirtualTuple(slot);
	return slot;
}

/*
 * Insert one row into mdm.<table>: cols[i] = values[i] (NULL if
 * nulls[i]), every other column NULL.  Returns false, having done
 * nothing, when the table is not one this can insert into (see above).
 */
bool
row_insert(const char *table, int ncols, const char *const *cols, const Datum *values,
		   const bool *nulls)
{
	Oid			relid = mdm_relid(shard_local_name(table, NULL), RowExclusiveLock);
	Relation	rel;
	TupleTableSlot *slot;
	EState	   *estate;
	ResultRelInfo *rri;

	rel = table_open(relid, NoLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->trigdesc != NULL ||
		(rel->rd_att->constr != NULL && rel->rd_att->constr->num_check > 0) ||
		rel->rd_rel->relrowsecurity || rel->rd_rel->relispartition)
	{
		table_close(rel, NoLock);
		return false;
	}
	slot = plain_row_slot(rel, table, ncols, cols, values, nulls);
	if (slot == NULL)
	{
		/* the statement applies the default, domain or NOT NULL */
		table_close(rel, NoLock);
		return false;
	}

	/* a new command, as for a statement of a VOLATILE function */
	CommandCounterIncrement();
	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	table_tuple_insert(rel, slot, GetCurrentCommandId(true), 0, NULL);
	if (rri->ri_NumIndices > 0)
		list_free(ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL));
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);
	return true;
}

/*
 * Can row_insert_checked() insert into rel?  Besides what row_insert()
 * requires (but CHECK constraints, which it evaluates): no rewrite rule,
 * and no trigger that the INSERT would fire but statement-level INSERT
 * triggers of the function skip_trigger_fn (the caller knows their check
 * cannot concern its row); with an arbiter (ON CONFLICT DO UPDATE), no
 * INSERT or UPDATE trigger at all, as the statement would fire the UPDATE
 * statement triggers too.
 */
static bool
insertable(Relation rel, const RowInsertRules *rules)
{
	TriggerDesc *trig = rel->trigdesc;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
		rel->rd_rel->relrowsecurity || rel->rd_rules != NULL)
		return false;
	for (int i = 0; trig != NULL && i < trig->numtriggers; i++)
	{
		Trigger    *t = &trig->triggers[i];

		if (TRIGGER_FOR_UPDATE(t->tgtype) && rules->arbiter != NULL)
			return false;
		if (!TRIGGER_FOR_INSERT(t->tgtype))
			continue;
		if (rules->arbiter != NULL || TRIGGER_FOR_ROW(t->tgtype) ||
			t->tgfoid != rules->skip_trigger_fn || !OidIsValid(t->tgfoid))
			return false;
	}
	return true;
}

/*
 * The row that conflicts with ours on the arbiter, at *tid: locked as ON
 * CONFLICT DO UPDATE locks it before it evaluates its WHERE (FOR NO KEY
 * UPDATE: the update it stands for sets no key column).  Returns false
 * when the row was updated or deleted meanwhile (READ COMMITTED: the
 * caller tries again, as the executor does), raising the executor's errors
 * where it raises them.
 */
static bool
lock_conflicting(Relation rel, ItemPointer tid, Snapshot snapshot, CommandId cid)
{
	TupleTableSlot *existing = table_slot_create(rel, NULL);
	TM_FailureData tmfd;
	TM_Result	res;
	bool		isnull;
	TransactionId xmin;

	res = table_tuple_lock(rel, tid, snapshot, existing, cid, LockTupleNoKeyExclusive,
						   LockWaitBlock, 0, &tmfd);
	switch (res)
	{
		case TM_Ok:
			break;
		case TM_Invisible:
			xmin = DatumGetTransactionId(slot_getsysattr(existing, MinTransactionIdAttributeNumber,
														 &isnull));
			if (TransactionIdIsCurrentTransactionId(xmin))
				ereport(ERROR,
						(errcode(ERRCODE_CARDINALITY_VIOLATION),
						 errmsg("%s command cannot affect row a second time",
								"ON CONFLICT DO UPDATE"),
						 errhint("Ensure that no rows proposed for insertion within the same command have duplicate constrained values.")));
			elog(ERROR, "attempted to lock invisible tuple");
			break;
		case TM_SelfModified:
			elog(ERROR, "unexpected self-updated tuple");
			break;
		case TM_Updated:
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update")));
			ExecDropSingleTupleTableSlot(existing);
			return false;
		case TM_Deleted:
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent delete")));
			ExecDropSingleTupleTableSlot(existing);
			return false;
		default:
			elog(ERROR, "unrecognized table_tuple_lock status: %u", res);
	}
	/* a row this transaction's snapshot does not see (ExecCheckTupleVisible()) */
	if (IsolationUsesXactSnapshot() && !table_tuple_satisfies_snapshot(rel, existing, snapshot))
	{
		xmin = DatumGetTransactionId(slot_getsysattr(existing, MinTransactionIdAttributeNumber,
													 &isnull));
		if (!TransactionIdIsCurrentTransactionId(xmin))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize access due to concurrent update")));
	}
	ExecDropSingleTupleTableSlot(existing);
	return true;
}

/*
 * Insert one row into mdm.<table> as INSERT ... VALUES (every column
 * named: those left out are NULL) would, in the current command of the
 * transaction under snapshot (the caller's statement, key_lookup_begin()):
 * CHECK constraints evaluated (row_checks_hold()), NOT NULL, index entries
 * and their unique checks.  With rules->arbiter, as INSERT ... ON CONFLICT
 * (<that unique index>) DO UPDATE ... WHERE false: when a row conflicts
 * (live, or committed while this waited for its inserter) it is locked
 * and nothing is inserted (ROW_INSERT_CONFLICT); else the row is inserted
 * speculatively, as the executor does, and the check made again if a
 * concurrent insertion won.  Returns ROW_INSERT_STATEMENT, having
 * done nothing, when the table or the row is one this does not insert
 * (insertable(), a NULL for a NOT NULL column or one with a default, a
 * column of a domain, identity or generated, a CHECK that fails, an
 * arbiter not usable): the caller runs its statement, which applies all
 * of it (and raises the errors).
 */
RowInsertResult
row_insert_checked(const char *table, int ncols, const char *const *cols, const Datum *values,
				   const bool *nulls, Snapshot snapshot, const RowInsertRules *rules)
{
	Relation	rel = table_open(mdm_relid(shard_local_name(table, NULL), RowExclusiveLock),
									 NoLock);
	TupleTableSlot *slot;
	EState	   *estate;
	ResultRelInfo *rri;
	List	   *arbiters = NIL;
	CommandId	cid;
	RowInsertResult result = ROW_INSERT_DONE;

	if (!insertable(rel, rules))
	{
		table_close(rel, NoLock);
		return ROW_INSERT_STATEMENT;
	}
	slot = plain_row_slot(rel, table, ncols, cols, values, nulls);
	if (slot == NULL)
	{
		table_close(rel, NoLock);
		return ROW_INSERT_STATEMENT;
	}
	if (!row_checks_hold(rel, slot))
	{
		ExecDropSingleTupleTableSlot(slot);
		table_close(rel, NoLock);
		return ROW_INSERT_STATEMENT;
	}

	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, rules->arbiter != NULL);
	if (rules->arbiter != NULL)
	{
		Oid			idxid = get_relname_relid(shard_local_name(table, rules->arbiter),
											  RelationGetNamespace(rel));
		bool		usable = false;

		for (int i = 0; i < rri->ri_NumIndices; i++)
		{
			Form_pg_index ix = rri->ri_IndexRelationDescs[i]->rd_index;

			if (ix->indexrelid == idxid)
				usable = ix->indisunique && ix->indimmediate && ix->indisvalid &&
					ix->indisready && ix->indislive;
		}
		if (!usable)
		{
			ExecCloseIndices(rri);
			FreeExecutorState(estate);
			ExecDropSingleTupleTableSlot(slot);
			table_close(rel, NoLock);
			return ROW_INSERT_STATEMENT;
		}
		arbiters = list_make1_oid(idxid);
	}

	cid = GetCurrentCommandId(true);
	if (arbiters == NIL)
	{
		table_tuple_insert(rel, slot, cid, 0, NULL);
		if (rri->ri_NumIndices > 0)
			list_free(ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL));
	}
	else
	{
		for (;;)
		{
			ItemPointerData conflict;
			uint32		token;
			bool		spec_conflict = false;

			CHECK_FOR_INTERRUPTS();
			if (!ExecCheckIndexConstraints(rri, slot, estate, &conflict, arbiters))
			{
				if (lock_conflicting(rel, &conflict, snapshot, cid))
				{
					result = ROW_INSERT_CONFLICT;
					break;
				}
				continue;		/* updated or deleted meanwhile: again */
			}
			token = SpeculativeInsertionLockAcquire(GetCurrentTransactionId());
			table_tuple_insert_speculative(rel, slot, cid, 0, NULL, token);
			list_free(ExecInsertIndexTuples(rri, slot, estate, false, true, &spec_conflict,
											arbiters));
			table_tuple_complete_speculative(rel, slot, token, !spec_conflict);
			SpeculativeInsertionLockRelease(GetCurrentTransactionId());
			if (!spec_conflict)
				break;
			/* a concurrent insertion won: check again (it may be gone) */
		}
	}
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);
	list_free(arbiters);
	return result;
}

/*
 * INSERT INTO mdm.<table> (cols) VALUES (values) ON CONFLICT DO ..., for a
 * row that conflicts with none: inserted as the executor inserts it then
 * (a speculative insertion: the unique indexes checked first, waiting for
 * a transaction that is inserting the same key, the row written with a
 * speculative token, indexed, and confirmed or, should a conflicting row
 * have come meanwhile, taken back), in the current command under the
 * caller's snapshot (key_lookup_begin()).  The columns left out get their
 * defaults; the CHECK constraints are evaluated (row_checks_hold()).
 * Returns ROW_INSERT_DONE; ROW_INSERT_CONFLICT when a row has the key
 * (nothing written: the caller's statement does what ON CONFLICT says);
 * ROW_INSERT_STATEMENT when the table or row is one this does not insert
 * (a trigger, row security, a partition, a column of a domain, identity or
 * generated, a NULL for a NOT NULL column, a CHECK that fails).
 */
RowInsertResult
row_insert_new(const char *table, int ncols, const char *const *cols, const Datum *values,
			   const bool *nulls)
{
	Oid			relid = mdm_relid(shard_local_name(table, NULL), RowExclusiveLock);
	Relation	rel;
	TupleDesc	desc;
	TupleTableSlot *slot;
	EState	   *estate;
	ResultRelInfo *rri;
	ExprContext *econtext;
	bool	   *given;
	RowInsertResult result = ROW_INSERT_STATEMENT;
	ItemPointerData conflict;
	bool		spec_conflict = false;
	uint32		token;

	rel = table_open(relid, NoLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->trigdesc != NULL ||
		rel->rd_rel->relrowsecurity || rel->rd_rel->relispartition)
	{
		table_close(rel, NoLock);
		return ROW_INSERT_STATEMENT;
	}
	desc = RelationGetDescr(rel);
	slot = table_slot_create(rel, NULL);
	ExecClearTuple(slot);
	given = palloc0(sizeof(bool) * desc->natts);
	for (int i = 0; i < ncols; i++)
	{
		AttrNumber	attnum = mdm_attnum(relid, cols[i]);

		if (attnum <= 0)
			elog(ERROR, "column \"%s\" of relation \"mdm.%s\" does not exist", cols[i], table);
		slot->tts_values[attnum - 1] = nulls[i] ? (Datum) 0 : values[i];
		slot->tts_isnull[attnum - 1] = nulls[i];
		given[attnum - 1] = true;
	}
	estate = CreateExecutorState();
	econtext = GetPerTupleExprContext(estate);
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (att->attisdropped)
		{
			slot->tts_values[a] = (Datum) 0;
			slot->tts_isnull[a] = true;
			continue;
		}
		if (att->attidentity || att->attgenerated ||
			get_typtype(att->atttypid) == TYPTYPE_DOMAIN)
			goto done;
		if (!given[a])
		{
			/* the column's default, as the statement evaluates it */
			Node	   *def = att->atthasdef ? build_column_default(rel, a + 1) : NULL;

			slot->tts_values[a] = (Datum) 0;
			slot->tts_isnull[a] = true;
			if (def != NULL)
				slot->tts_values[a] =
					ExecEvalExpr(ExecInitExpr(expression_planner((Expr *) def), NULL),
								 econtext, &slot->tts_isnull[a]);
		}
		if (slot->tts_isnull[a] && att->attnotnull)
			goto done;			/* the statement raises the NOT NULL violation */
	}
	ExecStoreVirtualTuple(slot);
	if (!row_checks_hold(rel, slot))
		goto done;				/* the statement raises the CHECK violation */

	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, true);
	for (int i = 0; i < rri->ri_NumIndices; i++)
		if (!rri->ri_IndexRelationDescs[i]->rd_index->indimmediate)
		{
			/* a deferrable unique index: the statement says what it does */
			ExecCloseIndices(rri);
			goto done;
		}
	/* every unique index an arbiter: a row with any of their keys conflicts */
	if (!ExecCheckIndexConstraints(rri, slot, estate, &conflict, NIL))
		result = ROW_INSERT_CONFLICT;
	else
	{
		token = SpeculativeInsertionLockAcquire(GetCurrentTransactionId());
		table_tuple_insert_speculative(rel, slot, GetCurrentCommandId(true), 0, NULL, token);
		if (rri->ri_NumIndices > 0)
			list_free(ExecInsertIndexTuples(rri, slot, estate, false, true, &spec_conflict, NIL));
		table_tuple_complete_speculative(rel, slot, token, !spec_conflict);
		SpeculativeInsertionLockRelease(GetCurrentTransactionId());
		result = spec_conflict ? ROW_INSERT_CONFLICT : ROW_INSERT_DONE;
	}
	ExecCloseIndices(rri);
done:
	FreeExecutorState(estate);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);
	return result;
}
