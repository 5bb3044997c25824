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
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "key_lookup.h"
#include "row_insert.h"
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
	Oid			relid = mdm_relid(shard_local_name(table, NULL), RowExclusiveLock);
	Relation	rel;
	TupleDesc	desc;
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
