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
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "storage/lmgr.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "row_insert.h"
#include "row_update.h"
#include "shard_local.h"

/*
 * Insert one row into mdm.<table>: cols[i] = values[i] (NULL if
 * nulls[i]), every other column NULL.  Returns false, having done
 * nothing, when the table is not one this can insert into (see above).
 */
bool
row_insert(const char *table, int ncols, const char *const *cols, const Datum *values,
		   const bool *nulls)
{
	Oid			relid = get_relname_relid(shard_local_name(table, NULL),
										  get_namespace_oid("mdm", false));
	Relation	rel;
	TupleDesc	desc;
	TupleTableSlot *slot;
	EState	   *estate;
	ResultRelInfo *rri;

	if (!OidIsValid(relid))
		elog(ERROR, "relation \"mdm.%s\" does not exist", table);
	rel = table_open(relid, RowExclusiveLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->trigdesc != NULL ||
		(rel->rd_att->constr != NULL && rel->rd_att->constr->num_check > 0) ||
		rel->rd_rel->relrowsecurity || rel->rd_rel->relispartition)
	{
		table_close(rel, NoLock);
		return false;
	}
	desc = RelationGetDescr(rel);
	slot = table_slot_create(rel, NULL);
	ExecClearTuple(slot);
	for (int a = 0; a < desc->natts; a++)
	{
		slot->tts_values[a] = (Datum) 0;
		slot->tts_isnull[a] = true;
	}
	for (int i = 0; i < ncols; i++)
	{
		AttrNumber	attnum = get_attnum(relid, cols[i]);

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
			/* the statement applies the default, domain or NOT NULL */
			ExecDropSingleTupleTableSlot(slot);
			table_close(rel, NoLock);
			return false;
		}
	}
	ExecStoreVirtualTuple(slot);

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
	Oid			relid = get_relname_relid(shard_local_name(table, NULL),
										  get_namespace_oid("mdm", false));
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

	if (!OidIsValid(relid))
		elog(ERROR, "relation \"mdm.%s\" does not exist", table);
	rel = table_open(relid, RowExclusiveLock);
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
		AttrNumber	attnum = get_attnum(relid, cols[i]);

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
