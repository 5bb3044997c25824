/*
 * fanout_path.c
 *		A large fan-out's targets resolved, and cut into chunks, in C:
 *		mdm_internal._fanout_targets() and mdm_internal._fanout_chunks()
 *		(schema/30_queue.sql, mdm.queue_fanouts).
 *
 * A large fan-out keeps its targets as chunks of distinct enrollment IDs
 * in byte order, read without a lock.  As SQL (DISTINCT over unnest(), a
 * hash join with nano_enrollments, a sort in COLLATE "C", two array_agg()s,
 * then unnest() WITH ORDINALITY, GROUP BY and array_agg() again for the
 * chunks) that was most of a fan-out's time: 100,000 IDs hashed twice,
 * split_part() per ID, the joined rows sorted, and the IDs copied into
 * aggregates twice.  Here the IDs are sorted in byte order once (memcmp;
 * an input already sorted is recognised in one pass) and made distinct in
 * place, and each row of nano_enrollments read by a sequential scan (what
 * the hash join read) is looked up among them by binary search.  An ID
 * matches a row whose id is the ID and whose device_id is the ID up to
 * its first ':' (split_part(id, ':', 1)), the join's condition.  The rows
 * are read under the statement's snapshot, without a lock, as the join
 * read them.  The chunks are slices of the sorted IDs.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

typedef struct FanoutId
{
	Datum		id;				/* the element of the caller's array */
	const char *data;			/* its bytes */
	int			len;
	int			device_len;		/* bytes before the first ':' */
	Datum		type;			/* its enrollment's type; 0 until found */
} FanoutId;

/* byte order: COLLATE "C" (memcmp, then the shorter first) */
static int
id_cmp(const void *a, const void *b)
{
	const FanoutId *x = (const FanoutId *) a;
	const FanoutId *y = (const FanoutId *) b;
	int			r = memcmp(x->data, y->data, Min(x->len, y->len));

	if (r != 0)
		return r;
	return (x->len > y->len) - (x->len < y->len);
}

static AttrNumber
column(Relation rel, const char *name)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), name);

	if (attnum == InvalidAttrNumber)
		elog(ERROR, "column \"%s\" of relation \"mdm.nano_enrollments\" does not exist", name);
	return attnum;
}

/*
 * The enrollment types seen, each kept once (the CHECK of nano_enrollments
 * allows five): the result array copies the value, not a copy per ID.
 */
#define MAX_TYPES 16

typedef struct TypeSet
{
	int			n;
	Datum		types[MAX_TYPES];
} TypeSet;

static Datum
intern_type(TypeSet *ts, Datum value)
{
	text	   *t = DatumGetTextPP(value);
	const char *data = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);

	for (int i = 0; i < ts->n; i++)
	{
		text	   *k = (text *) DatumGetPointer(ts->types[i]);

		if ((int) (VARSIZE(k) - VARHDRSZ) == len && memcmp(VARDATA(k), data, len) == 0)
			return ts->types[i];
	}
	{
		Datum		copy = PointerGetDatum(cstring_to_text_with_len(data, len));

		if (ts->n < MAX_TYPES)
			ts->types[ts->n++] = copy;
		return copy;
	}
}

/*
 * The elements of a text array, without a copy of it: an expanded array
 * (a PL/pgSQL variable, passed read-only) is read where it is.
 */
static void
array_elements(AnyArrayType *arr, Datum **elems, bool **nulls, int *nelems)
{
	if (VARATT_IS_EXPANDED_HEADER(arr))
	{
		ExpandedArrayHeader *eah = &arr->xpn;

		if (eah->element_type != TEXTOID)
			elog(ERROR, "expected a text array");
		deconstruct_expanded_array(eah);	/* (allowed for a read-only one) */
		*elems = eah->dvalues;
		*nulls = eah->dnulls;
		*nelems = eah->nelems;
	}
	else
		deconstruct_array(&arr->flt, TEXTOID, -1, false, TYPALIGN_INT, elems, nulls, nelems);
}

/* mdm_internal._targets(enrollment_ids), for its errors (it raises them) */
static void
targets_errors(Datum ids, bool isnull)
{
	Oid			argtypes[1] = {TEXTARRAYOID};
	Datum		values[1] = {ids};
	char		nulls[1] = {isnull ? 'n' : ' '};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT mdm_internal._targets($1)", 1, argtypes, values, nulls,
							  true, 1) != SPI_OK_SELECT)
		elog(ERROR, "mdm_internal._targets failed");
	SPI_finish();
}

/*
 * mdm_internal._fanout_targets(enrollment_ids text[], OUT ids text[], OUT types text[])
 *
 * The enrollments behind the IDs: the distinct IDs found, in byte order,
 * and their types.  No IDs, a NULL among them, an unknown ID: the error of
 * mdm_internal._targets(); the same ID twice is no error.
 */
PG_FUNCTION_INFO_V1(mdm_fanout_targets);
Datum
mdm_fanout_targets(PG_FUNCTION_ARGS)
{
	AnyArrayType *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	int			n = 0;
	FanoutId   *ids;
	Relation	rel;
	AttrNumber	att_device;
	AttrNumber	att_id;
	AttrNumber	att_type;
	TableScanDesc scan;
	TupleTableSlot *slot;
	TypeSet		ts;
	Datum	   *out_ids;
	Datum	   *out_types;
	int			found = 0;
	TupleDesc	tupdesc;
	Datum		values[2] = {(Datum) 0, (Datum) 0};
	bool		rnulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	if (PG_ARGISNULL(0))
	{
		targets_errors((Datum) 0, true);
		rnulls[0] = rnulls[1] = true;
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, rnulls)));
	}
	arr = PG_GETARG_ANY_ARRAY_P(0);
	array_elements(arr, &elems, &nulls, &nelems);
	if (nelems == 0 || (nulls != NULL && memchr(nulls, true, nelems) != NULL))
		targets_errors(PG_GETARG_DATUM(0), false);

	ids = palloc(sizeof(FanoutId) * Max(nelems, 1));
	for (int i = 0; i < nelems; i++)
	{
		text	   *t;
		const char *colon;

		if (nulls && nulls[i])
			continue;			/* never found (the caller raises the error) */
		t = DatumGetTextPP(elems[i]);
		ids[n].id = PointerGetDatum(t);
		ids[n].data = VARDATA_ANY(t);
		ids[n].len = VARSIZE_ANY_EXHDR(t);
		colon = memchr(ids[n].data, ':', ids[n].len);
		ids[n].device_len = colon ? colon - ids[n].data : ids[n].len;
		ids[n].type = (Datum) 0;
		n++;
	}
	/* distinct, in byte order */
	qsort(ids, n, sizeof(FanoutId), id_cmp);
	if (n > 1)
	{
		int			m = 1;

		for (int i = 1; i < n; i++)
			if (id_cmp(&ids[i], &ids[m - 1]) != 0)
				ids[m++] = ids[i];
		n = m;
	}

	rel = table_openrv(makeRangeVar("mdm", "nano_enrollments", -1), AccessShareLock);
	att_device = column(rel, "device_id");
	att_id = column(rel, "id");
	att_type = column(rel, "type");
	memset(&ts, 0, sizeof(ts));
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while (n > 0 && table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d;
		text	   *t;
		FanoutId	key;
		FanoutId   *hit;
		bool		match;

		CHECK_FOR_INTERRUPTS();
		d = slot_getattr(slot, att_id, &isnull);
		if (isnull)
			continue;
		t = DatumGetTextPP(d);
		key.data = VARDATA_ANY(t);
		key.len = VARSIZE_ANY_EXHDR(t);
		hit = bsearch(&key, ids, n, sizeof(FanoutId), id_cmp);
		if ((Pointer) t != DatumGetPointer(d))
			pfree(t);
		if (hit == NULL || hit->type != (Datum) 0)
			continue;
		/* e.device_id = split_part(t.id, ':', 1) */
		d = slot_getattr(slot, att_device, &isnull);
		if (isnull)
			continue;
		t = DatumGetTextPP(d);
		match = (int) VARSIZE_ANY_EXHDR(t) == hit->device_len &&
			memcmp(VARDATA_ANY(t), hit->data, hit->device_len) == 0;
		if ((Pointer) t != DatumGetPointer(d))
			pfree(t);
		if (!match)
			continue;
		d = slot_getattr(slot, att_type, &isnull);
		if (isnull)
			continue;
		hit->type = intern_type(&ts, d);
		found++;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);

	out_ids = palloc(sizeof(Datum) * Max(found, 1));
	out_types = palloc(sizeof(Datum) * Max(found, 1));
	found = 0;
	for (int i = 0; i < n; i++)
	{
		if (ids[i].type == (Datum) 0)
			continue;
		out_ids[found] = ids[i].id;
		out_types[found] = ids[i].type;
		found++;
	}
	if (found == 0)
	{
		/* array_agg() over no rows: NULL */
		rnulls[0] = rnulls[1] = true;
	}
	else
	{
		values[0] = PointerGetDatum(construct_array(out_ids, found, TEXTOID, -1, false, TYPALIGN_INT));
		values[1] = PointerGetDatum(construct_array(out_types, found, TEXTOID, -1, false, TYPALIGN_INT));
	}
	/* unknown IDs (the error), or only the same ID twice */
	if (found != nelems)
		targets_errors(PG_GETARG_DATUM(0), false);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, rnulls)));
}

/*
 * mdm_internal._fanout_chunks(ids text[], size integer)
 *		RETURNS TABLE (chunk integer, targets text[])
 * (STRICT) The IDs cut into slices of size elements, in order: chunk 0 the
 * first size of them, and so on.
 */
typedef struct ChunkState
{
	Datum	   *elems;
	int			nelems;
	int			size;
	int			next;
	TupleDesc	tupdesc;
} ChunkState;

PG_FUNCTION_INFO_V1(mdm_fanout_chunks);
Datum
mdm_fanout_chunks(PG_FUNCTION_ARGS)
{
	FuncCallContext *fctx;
	ChunkState *st;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;
		AnyArrayType *arr;
		bool	   *nulls;
		TupleDesc	tupdesc;

		fctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(fctx->multi_call_memory_ctx);
		if (PG_GETARG_INT32(1) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("chunk size must be positive")));
		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		st = palloc0(sizeof(ChunkState));
		st->tupdesc = BlessTupleDesc(tupdesc);
		st->size = PG_GETARG_INT32(1);
		arr = PG_GETARG_ANY_ARRAY_P(0);
		array_elements(arr, &st->elems, &nulls, &st->nelems);
		if (nulls != NULL && memchr(nulls, true, st->nelems) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("enrollment IDs must not be NULL")));
		fctx->user_fctx = st;
		MemoryContextSwitchTo(old);
	}
	fctx = SRF_PERCALL_SETUP();
	st = fctx->user_fctx;
	if (st->next < st->nelems)
	{
		int			n = Min(st->size, st->nelems - st->next);
		Datum		values[2];
		bool		nulls[2] = {false, false};
		int32		chunk = st->next / st->size;

		values[0] = Int32GetDatum(chunk);
		values[1] = PointerGetDatum(construct_array(st->elems + st->next, n, TEXTOID, -1, false,
													TYPALIGN_INT));
		st->next += n;
		SRF_RETURN_NEXT(fctx, HeapTupleGetDatum(heap_form_tuple(st->tupdesc, values, nulls)));
	}
	SRF_RETURN_DONE(fctx);
}
