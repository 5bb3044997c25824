/*
 * connect_path.c
 *		The command reports behind mdm.connect(), in C: Idle, Acknowledged,
 *		Error, CommandFormatError and NotNow.
 *
 * For each report: the identity against the device's binding (the SQL
 * check runs only when it does not match), the enrollment row updated and
 * locked (reports of one channel are handled one at a time), the result
 * stored (or an orphan recorded) with its profile delivery outcome and,
 * for DeviceInformation and SecurityInfo answers, the inventory
 * (mdm_internal._store_inventory(), schema/80_console.sql), and the next command of
 * the exchange handed out and marked sent.
 *
 * Every statement filters by the device ID, takes its clock time as a
 * parameter (no volatile function in an UPDATE) and names its columns, so
 * that a distributed layout can route the whole report to the node that
 * owns the device.  Each is planned once per backend (spi_plans.c).  The
 * statements are those the PL/pgSQL handler ran, in the same order, so rows
 * are locked as before.  On a single server (and on the Citus worker that
 * holds the device's shards) the usual report needs no executor: the
 * identity is read by key (as the check-in's lookup reads it); the
 * channel's row is updated by key and locked as the UPDATE locked it
 * (row_update.c; test/isolation/specs/connect_seen_locks.spec); the result
 * of a queued command is inserted as the INSERT ... ON CONFLICT inserts a
 * row that conflicts with none (row_insert_new()); the queue item is
 * marked finished by key, its trigger's WHEN evaluated (row_update_if());
 * the profile-delivery and fan-out statements run only when their index
 * has a row they could act on (key_prefix_exists(), may_have_fanout()); and
 * the next command is read from the pending index in the statement's
 * order, locked FOR UPDATE SKIP LOCKED and marked sent (next_by_key();
 * test/isolation/specs/connect_item_locks.spec).  Whenever a table is not
 * one these handle (a trigger, a constraint, a result row already there,
 * an index not usable), the statement runs instead.
 */
#include "mdm_paths.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "key_lookup.h"
#include "row_insert.h"
#include "row_update.h"
#include "shard_local.h"
#include "spi_plans.h"

/* $1 device, $2 SHA-256 (distributed; on a single server bound_identity_ok()) */
static SavedPlan identity_plan = {
	"SELECT FROM mdm.device_identities b"
	" WHERE b.device_id = $1 AND b.cert_sha256 = $2"
	"   AND (b.bound_via <> 'trust anchor' OR b.not_after >= now())",
	2, {TEXTOID, BYTEAOID}
};

/*
 * $1 device, $2 enrollment, $3 Idle?, $4 clock time, $5 msg; on a single
 * server the row is updated without a statement (seen_by_key())
 */
static SavedPlan seen_plan = {
	"UPDATE mdm.nano_enrollments"
	"   SET last_seen_at = now(),"
	"       exchange_started_at = CASE WHEN $3 THEN $4"
	"                                  ELSE coalesce(exchange_started_at, '-infinity') END,"
	"       not_on_console = coalesce(($5->'NotOnConsole')::boolean, not_on_console)"
	" WHERE device_id = $1 AND id = $2"
	" RETURNING exchange_started_at",
	5, {TEXTOID, TEXTOID, BOOLOID, TIMESTAMPTZOID, JSONBOID}
};

/* $1 device, $2 enrollment, $3 CommandUUID as sent, $4 status, $5 msg */
static SavedPlan orphan_plan = {
	"INSERT INTO mdm.orphan_reports (device_id, enrollment_id, command_uuid, status, result)"
	" VALUES ($1, $2, $3, $4, $5)",
	5, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID}
};

/*
 * The result, if the command was queued to this enrollment (no row comes
 * back if it was not: the report is an orphan).
 * $1 device, $2 enrollment, $3 command, $4 status, $5 msg, $6 NotNow time, $7 NotNow count
 */
static SavedPlan result_plan = {
	"INSERT INTO mdm.nano_command_results AS r"
	"  (device_id, id, command_uuid, status, result, not_now_at, not_now_tally)"
	" SELECT $1, $2, $3, $4, $5, $6, $7"
	"  WHERE EXISTS (SELECT FROM mdm.nano_enrollment_queue q"
	"                WHERE q.device_id = $1 AND q.id = $2 AND q.command_uuid = $3)"
	" ON CONFLICT (device_id, id, command_uuid) DO UPDATE SET"
	"  status = excluded.status, result = excluded.result,"
	"  not_now_at = coalesce(r.not_now_at, excluded.not_now_at),"
	"  not_now_tally = r.not_now_tally + excluded.not_now_tally,"
	"  updated_at = excluded.updated_at"
	" RETURNING 1",
	7, {TEXTOID, TEXTOID, UUIDOID, TEXTOID, JSONBOID, TIMESTAMPTZOID, INT4OID}
};

/* $1 device, $2 enrollment, $3 command */
static SavedPlan finished_plan = {
	"UPDATE mdm.nano_enrollment_queue SET active = false, finished_at = now()"
	" WHERE device_id = $1 AND id = $2 AND command_uuid = $3 AND active",
	3, {TEXTOID, TEXTOID, UUIDOID}
};

/* InstallProfile / RemoveProfile outcomes (schema/60_profiles.sql); $4 status, $5 msg */
static SavedPlan delivery_plan = {
	"UPDATE mdm.profile_deliveries"
	"   SET status = CASE WHEN $4 = 'Acknowledged'"
	"                     THEN CASE WHEN operation = 'install' THEN 'installed' ELSE 'removed' END"
	"                     ELSE 'failed' END,"
	"       error_chain = $5->'ErrorChain', updated_at = now()"
	" WHERE device_id = $1 AND enrollment_id = $2 AND command_uuid = $3",
	5, {TEXTOID, TEXTOID, UUIDOID, TEXTOID, JSONBOID}
};

/*
 * Inventory from a DeviceInformation or SecurityInfo answer
 * (schema/80_console.sql).  $1 device, $3 command, $5 msg
 */
static SavedPlan inventory_plan = {
	"SELECT mdm_internal._store_inventory($1, $3, $5)",
	5, {TEXTOID, TEXTOID, UUIDOID, TEXTOID, JSONBOID}
};

/*
 * The next command of the exchange, locked (one that another report of the
 * channel holds is skipped), marked sent, with its plist.
 * $1 device, $2 enrollment, $3 exchange start, $4 clock time
 */
static SavedPlan next_plan = {
	"WITH next AS ("
	"  SELECT q.command_uuid FROM mdm.nano_enrollment_queue q"
	"   WHERE q.device_id = $1 AND q.id = $2 AND q.active"
	"     AND (q.sent_at IS NULL OR q.sent_at < $3)"
	"   ORDER BY q.priority DESC, q.created_at, q.command_uuid"
	"   LIMIT 1"
	"   FOR UPDATE SKIP LOCKED),"
	" sent AS ("
	"  UPDATE mdm.nano_enrollment_queue q SET sent_at = $4, sent_count = q.sent_count + 1"
	"    FROM next n"
	"   WHERE q.device_id = $1 AND q.id = $2 AND q.command_uuid = n.command_uuid"
	"  RETURNING q.command_uuid, q.plist)"
	/* a command of one target is in its item; others in nano_commands */
	" SELECT coalesce(s.plist, c.plist), s.command_uuid FROM sent s"
	"  LEFT JOIN mdm.nano_commands c ON s.plist IS NULL AND c.command_uuid = s.command_uuid",
	4, {TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID}
};

/*
 * The chunks of large fan-outs that may hold this enrollment get their
 * queue items before the next command is looked for (schema/30_queue.sql,
 * mdm.queue_fanouts): with none waiting, one probe of an empty index.
 * $1 device, $2 enrollment
 */
static SavedPlan fanout_plan = {
	"SELECT mdm_internal._expand_queue_fanouts($2, $2) FROM (SELECT) AS one"
	" WHERE EXISTS (SELECT FROM mdm.queue_fanouts f"
	"               WHERE f.first_id COLLATE \"C\" <= $2 AND f.last_id COLLATE \"C\" >= $2)",
	2, {TEXTOID, TEXTOID}
};

/*
 * Has this database the table of large fan-outs (from 1.1 on)?  A database
 * still at 1.0 runs this library until it is upgraded.  Once seen, kept.
 */
static bool
has_queue_fanouts(void)
{
	static bool known = false;

	if (!known)
		known = OidIsValid(get_relname_relid("queue_fanouts", get_namespace_oid("mdm", false)));
	return known;
}

/*
 * False when fanout_plan's EXISTS is false (no chunk waits whose range
 * holds the enrollment: the usual case): the range index read directly,
 * under the snapshot the statement would take.  True when a chunk may
 * hold it, or the index is not one this reads (the statement runs).
 */
static bool
may_have_fanout(MdmRequest *r)
{
	static const StrategyNumber strategy[2] = {BTLessEqualStrategyNumber,
	BTGreaterEqualStrategyNumber};
	Relation	rel;
	Relation	idx;
	ScanKeyData skey[2];
	IndexScanDesc scan;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	Datum		id = CStringGetTextDatum(r->enrollment_id);
	bool		found = true;

	rel = key_lookup_open("queue_fanouts", "queue_fanouts_range", AccessShareLock, &idx);
	if (idx->rd_index->indrelid == RelationGetRelid(rel) && idx->rd_rel->relam == BTREE_AM_OID &&
		idx->rd_index->indnkeyatts == 2 && idx->rd_index->indisvalid &&
		idx->rd_index->indisready && idx->rd_index->indislive &&
		idx->rd_indcollation[0] == C_COLLATION_OID && idx->rd_indcollation[1] == C_COLLATION_OID &&
		idx->rd_opcintype[0] == TEXTOID && idx->rd_opcintype[1] == TEXTOID)
	{
		/* first_id COLLATE "C" <= $2 AND last_id COLLATE "C" >= $2 */
		for (int i = 0; i < 2; i++)
		{
			Oid			op = get_opfamily_member(idx->rd_opfamily[i], TEXTOID, TEXTOID,
												 strategy[i]);

			if (!OidIsValid(op))
				elog(ERROR, "no comparison operator for column %d of index \"%s\"", i + 1,
					 RelationGetRelationName(idx));
			ScanKeyEntryInitialize(&skey[i], 0, i + 1, strategy[i], InvalidOid,
								   C_COLLATION_OID, get_opcode(op), id);
		}
		snapshot = key_lookup_begin();
		slot = table_slot_create(rel, NULL);
		scan = index_beginscan(rel, idx, snapshot, 2, 0);
		index_rescan(scan, skey, 2, NULL, 0);
		found = index_getnext_slot(scan, ForwardScanDirection, slot);
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		key_lookup_end(snapshot);
	}
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return found;
}

/*
 * An item whose command row is gone (deleted by hand, or pruned while an
 * import queued it) cannot be handed out: it is cleared, so that it is
 * neither offered nor pushed for again.  $1 device, $2 enrollment, $3 command
 */
static SavedPlan missing_plan = {
	"UPDATE mdm.nano_enrollment_queue q"
	"   SET active = false, cleared_at = now(), cleared_reason = 'command missing'"
	" WHERE q.device_id = $1 AND q.id = $2 AND q.command_uuid = $3 AND q.active",
	3, {TEXTOID, TEXTOID, UUIDOID}
};

/*
 * A CommandUUID as the uuid type reads it (any case, braces, a hyphen after
 * any group of four digits); false if it is not one, which makes the report
 * an orphan.
 */
static bool
parse_uuid(const char *s, pg_uuid_t *out)
{
	bool		braces = (s[0] == '{');

	if (braces)
		s++;
	for (int i = 0; i < UUID_LEN; i++)
	{
		int			hi,
					lo;

		if (!isxdigit((unsigned char) s[0]) || !isxdigit((unsigned char) s[1]))
			return false;
		hi = isdigit((unsigned char) s[0]) ? s[0] - '0' : (tolower((unsigned char) s[0]) - 'a' + 10);
		lo = isdigit((unsigned char) s[1]) ? s[1] - '0' : (tolower((unsigned char) s[1]) - 'a' + 10);
		out->data[i] = (unsigned char) (hi << 4 | lo);
		s += 2;
		if (s[0] == '-' && (i % 2) == 1 && i < UUID_LEN - 1)
			s++;
	}
	if (braces)
	{
		if (*s != '}')
			return false;
		s++;
	}
	return *s == '\0';
}

static void
args_channel(PlanArgs *a, MdmRequest *r)
{
	plan_args_init(a);
	plan_arg_text(a, 0, r->device_id);
	plan_arg_text(a, 1, r->enrollment_id);
}

/* finished_plan's "AND active" */
static bool
item_active(TupleTableSlot *slot, Oid relid, void *arg)
{
	return key_lookup_bool(slot, relid, "active");
}

/* finished_plan's SET list */
static bool
finished_values(TupleTableSlot *old, Oid relid, Datum *values, bool *nulls, void *arg)
{
	values[0] = BoolGetDatum(false);
	nulls[0] = false;
	values[1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	nulls[1] = false;
	return true;
}

/*
 * finished_plan on a single server: the queue item updated by key
 * (row_update.c; its trigger's WHEN, which a finished item never meets, is
 * evaluated there).  False if the statement must run instead.
 */
static bool
finished_by_key(MdmRequest *r, pg_uuid_t *cmd)
{
	static const char *const cols[] = {"active", "finished_at"};
	Datum		keys[3];

	if (plans_distributed())
		return false;
	keys[0] = CStringGetTextDatum(r->device_id);
	keys[1] = CStringGetTextDatum(r->enrollment_id);
	keys[2] = UUIDPGetDatum(cmd);
	return row_update_if("nano_enrollment_queue", "nano_enrollment_queue_pkey", 3, keys,
						 item_active, 2, cols, finished_values, NULL) != ROW_UPDATE_STATEMENT;
}

/* delivery_plan's filter, on a row of profile_deliveries_command */
static bool
delivery_match(TupleTableSlot *slot, Oid relid, void *arg)
{
	bool		isnull;
	Datum		d = key_lookup_column(slot, relid, "enrollment_id", &isnull);

	return !isnull && strcmp(TextDatumGetCString(d), (const char *) arg) == 0;
}

/*
 * False when delivery_plan would update no row (every command but an
 * InstallProfile or RemoveProfile of a profile assignment): on a single
 * server the command's index of profile_deliveries is read under the
 * snapshot the statement would take; nothing is locked, as the statement
 * locks nothing when it finds no row.
 */
static bool
may_have_delivery(MdmRequest *r, pg_uuid_t *cmd)
{
	Snapshot	snapshot;
	Datum		keys[2];
	int			n;

	if (plans_distributed())
		return true;
	keys[0] = CStringGetTextDatum(r->device_id);
	keys[1] = UUIDPGetDatum(cmd);
	snapshot = key_lookup_begin();
	n = key_prefix_exists(snapshot, "profile_deliveries", "profile_deliveries_command", 2,
						  keys, delivery_match, r->enrollment_id);
	key_lookup_end(snapshot);
	return n != 0;
}

typedef enum Queued
{
	QUEUED_NO,					/* not queued to this enrollment: an orphan */
	QUEUED_YES,					/* queued: its result stored */
	QUEUED_UNKNOWN				/* result_plan must run */
} Queued;

/* key_lookup()'s callback when only whether the row exists counts */
static void
read_nothing(TupleTableSlot *slot, Oid relid, void *arg)
{
}

/*
 * result_plan on a single server, for a command queued to this enrollment
 * that has no result yet: whether its queue item exists read by key under
 * the snapshot the statement takes (nothing locked, as the statement's
 * EXISTS locks nothing), the result inserted as the statement inserts a
 * row that conflicts with none (row_insert_new()).  QUEUED_UNKNOWN when the
 * statement must run: distributed, or a result row already there (its ON
 * CONFLICT DO UPDATE), or a table the insert declines.
 */
static Queued
result_by_key(MdmRequest *r, pg_uuid_t *cmd, bool not_now)
{
	static const char *const cols[] = {
		"device_id", "id", "command_uuid", "status", "result", "not_now_at", "not_now_tally"
	};
	Datum		values[7];
	bool		nulls[7] = {false, false, false, false, false, false, false};
	Snapshot	snapshot;
	Queued		queued = QUEUED_UNKNOWN;

	if (plans_distributed())
		return QUEUED_UNKNOWN;
	values[0] = CStringGetTextDatum(r->device_id);
	values[1] = CStringGetTextDatum(r->enrollment_id);
	values[2] = UUIDPGetDatum(cmd);
	values[3] = CStringGetTextDatum(r->message_type);
	values[4] = JsonbPGetDatum(r->msg);
	values[5] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	nulls[5] = !not_now;
	values[6] = Int32GetDatum(not_now ? 1 : 0);
	snapshot = key_lookup_begin();
	if (!key_lookup(snapshot, "nano_enrollment_queue", "nano_enrollment_queue_pkey", 3, values,
					read_nothing, NULL))
		queued = QUEUED_NO;
	else if (row_insert_new("nano_command_results", 7, cols, values, nulls) == ROW_INSERT_DONE)
		queued = QUEUED_YES;
	key_lookup_end(snapshot);
	return queued;
}

/* Store a report about a queued command, or record it as an orphan. */
static void
store_report(MdmRequest *r)
{
	bool		not_now = strcmp(r->message_type, "NotNow") == 0;
	pg_uuid_t  *cmd = palloc(sizeof(pg_uuid_t));
	PlanArgs	a;
	Queued		queued = QUEUED_NO;

	args_channel(&a, r);
	plan_arg(&a, 2, UUIDPGetDatum(cmd), false);
	plan_arg_text(&a, 3, r->message_type);
	plan_arg(&a, 4, JsonbPGetDatum(r->msg), false);
	plan_arg(&a, 5, TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()), !not_now);
	plan_arg(&a, 6, Int32GetDatum(not_now ? 1 : 0), false);
	if (parse_uuid(r->command_uuid, cmd))
	{
		queued = result_by_key(r, cmd, not_now);
		if (queued == QUEUED_UNKNOWN)
			queued = run_plan(&result_plan, &a, false, 0) > 0 ? QUEUED_YES : QUEUED_NO;
	}
	if (queued != QUEUED_YES)
	{
		plan_arg_text(&a, 2, r->command_uuid);
		run_plan(&orphan_plan, &a, false, 0);
		return;
	}
	if (!not_now)
	{
		if (!finished_by_key(r, cmd))
			run_plan(&finished_plan, &a, false, 0);
		if (may_have_delivery(r, cmd))
			run_plan(&delivery_plan, &a, false, 0);
		if (strcmp(r->message_type, "Acknowledged") == 0 &&
			(msg_has_key(r->msg, "QueryResponses") || msg_has_key(r->msg, "SecurityInfo")))
			run_plan(&inventory_plan, &a, false, 0);
	}
}

/* next_plan's filter, on a row of the pending index */
static bool
pending_match(TupleTableSlot *slot, Oid relid, void *arg)
{
	TimestampTz start = *(TimestampTz *) arg;
	bool		isnull;
	Datum		sent;

	if (!key_lookup_bool(slot, relid, "active"))
		return false;
	sent = key_lookup_column(slot, relid, "sent_at", &isnull);
	return isnull || DatumGetTimestampTz(sent) < start;
}

/*
 * False when next_plan would find no command (the Acknowledged that ends
 * an exchange, the poll of an empty queue): on a single server the pending
 * index is read directly, under the snapshot the statement would take;
 * only rows it finds could the statement lock.
 */
static bool
may_have_next(MdmRequest *r, Datum exchange_start)
{
	TimestampTz start = DatumGetTimestampTz(exchange_start);
	Snapshot	snapshot;
	Datum		keys[2];
	int			n;

	if (plans_distributed())
		return true;
	keys[0] = CStringGetTextDatum(r->device_id);
	keys[1] = CStringGetTextDatum(r->enrollment_id);
	snapshot = key_lookup_begin();
	n = key_prefix_exists(snapshot, "nano_enrollment_queue", "nano_enrollment_queue_pending", 2,
						  keys, pending_match, &start);
	key_lookup_end(snapshot);
	return n != 0;
}

/* An item handed out whose command row is gone: cleared, with a warning. */
static void
missing_command(MdmRequest *r, Datum cmd)
{
	PlanArgs	a;

	ereport(WARNING,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("queued command %s of enrollment \"%s\" has no command row",
					DatumGetCString(DirectFunctionCall1(uuid_out, cmd)), r->enrollment_id),
			 errdetail("The queue item was cleared (cleared_reason \"command missing\").")));
	args_channel(&a, r);
	plan_arg(&a, 2, cmd, false);
	run_plan(&missing_plan, &a, false, 0);
}

/* A pending item next_plan could hand out, in its ORDER BY's terms */
typedef struct NextItem
{
	ItemPointerData tid;
	int32		priority;
	TimestampTz created_at;
	pg_uuid_t	uuid;
} NextItem;

/* ORDER BY q.priority DESC, q.created_at, q.command_uuid */
static int
next_item_cmp(const void *a, const void *b)
{
	const NextItem *x = a;
	const NextItem *y = b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	if (x->created_at != y->created_at)
		return x->created_at < y->created_at ? -1 : 1;
	return memcmp(x->uuid.data, y->uuid.data, UUID_LEN);
}

typedef enum NextResult
{
	NEXT_NONE,					/* nothing to hand out */
	NEXT_FOUND,					/* *plist: the command, marked sent */
	NEXT_MISSING,				/* *cmd marked sent, but its command row is gone */
	NEXT_STATEMENT				/* next_plan must run */
} NextResult;

/* next_plan's filter (with the channel's keys, for a row's later version) */
static bool
next_match(TupleTableSlot *slot, Oid relid, MdmRequest *r, TimestampTz start)
{
	bool		isnull;
	Datum		d;

	if (!key_lookup_bool(slot, relid, "active"))
		return false;
	d = key_lookup_column(slot, relid, "sent_at", &isnull);
	if (!isnull && DatumGetTimestampTz(d) >= start)
		return false;
	d = key_lookup_column(slot, relid, "device_id", &isnull);
	if (isnull || strcmp(TextDatumGetCString(d), r->device_id) != 0)
		return false;
	d = key_lookup_column(slot, relid, "id", &isnull);
	return !isnull && strcmp(TextDatumGetCString(d), r->enrollment_id) == 0;
}

/* the sent CTE's SET list */
static bool
sent_values(TupleTableSlot *old, Oid relid, Datum *values, bool *nulls, void *arg)
{
	bool		isnull;
	Datum		count = key_lookup_column(old, relid, "sent_count", &isnull);

	values[0] = TimestampTzGetDatum(*(TimestampTz *) arg);
	nulls[0] = false;
	/* sent_count is NOT NULL; NULL + 1 would be NULL, which declines */
	values[1] = isnull ? (Datum) 0 : Int32GetDatum(DatumGetInt32(count) + 1);
	nulls[1] = isnull;
	if (!isnull && DatumGetInt32(count) == PG_INT32_MAX)
		return false;			/* the statement raises the overflow */
	return true;
}

/* key_lookup()'s callback: the command row's plist, copied */
static void
read_command_plist(TupleTableSlot *slot, Oid relid, void *arg)
{
	bool		isnull;
	Datum		d = key_lookup_column(slot, relid, "plist", &isnull);

	*(Datum *) arg = isnull ? (Datum) 0 : PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
}

/*
 * next_plan on a single server, without the executor: the channel's
 * pending items read from the pending index under the snapshot the
 * statement takes, in its order; each locked FOR UPDATE SKIP LOCKED (a
 * row another transaction holds is skipped; in READ COMMITTED a row
 * changed meanwhile is locked in its latest version and checked again,
 * as LockRows does, and one that no longer matches is passed over, still
 * locked; in REPEATABLE READ that is a serialization failure), the first
 * one locked marked sent (row_update_row()) and its plist read, from the
 * item or its command row.
 */
static NextResult
next_by_key(MdmRequest *r, TimestampTz start, TimestampTz clock, Datum *plist, pg_uuid_t *cmd)
{
	static const char *const cols[] = {"sent_at", "sent_count"};
	Relation	rel;
	Relation	idx;
	Oid			relid;
	ScanKeyData skey[2];
	IndexScanDesc scan;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	NextItem   *items = NULL;
	int			nitems = 0;
	int			maxitems = 0;
	NextResult	result = NEXT_NONE;
	Datum		keys[2];

	if (plans_distributed())
		return NEXT_STATEMENT;
	/* the statement's table lock (its UPDATE's) */
	rel = key_lookup_open("nano_enrollment_queue", "nano_enrollment_queue_pending",
						  RowExclusiveLock, &idx);
	relid = RelationGetRelid(rel);
	if (!row_update_allowed(rel, 2, cols) ||
		idx->rd_index->indrelid != relid || idx->rd_rel->relam != BTREE_AM_OID ||
		idx->rd_index->indnkeyatts < 2 || !idx->rd_index->indisvalid ||
		!idx->rd_index->indisready || !idx->rd_index->indislive)
	{
		index_close(idx, NoLock);
		table_close(rel, NoLock);
		return NEXT_STATEMENT;
	}
	keys[0] = CStringGetTextDatum(r->device_id);
	keys[1] = CStringGetTextDatum(r->enrollment_id);
	for (int i = 0; i < 2; i++)
		ScanKeyEntryInitialize(&skey[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[i], key_lookup_eqproc(idx, i), keys[i]);

	snapshot = key_lookup_begin();
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, idx, snapshot, 2, 0);
	index_rescan(scan, skey, 2, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d;

		slot_getallattrs(slot);
		if (!next_match(slot, relid, r, start))
			continue;
		if (nitems == maxitems)
		{
			maxitems = maxitems ? 2 * maxitems : 4;
			items = items ? repalloc(items, sizeof(NextItem) * maxitems)
				: palloc(sizeof(NextItem) * maxitems);
		}
		items[nitems].tid = slot->tts_tid;
		d = key_lookup_column(slot, relid, "priority", &isnull);
		items[nitems].priority = isnull ? 0 : DatumGetInt32(d);
		d = key_lookup_column(slot, relid, "created_at", &isnull);
		items[nitems].created_at = isnull ? 0 : DatumGetTimestampTz(d);
		d = key_lookup_column(slot, relid, "command_uuid", &isnull);
		if (isnull)
			continue;			/* NOT NULL: cannot happen */
		memcpy(&items[nitems].uuid, DatumGetUUIDP(d), sizeof(pg_uuid_t));
		nitems++;
	}
	index_endscan(scan);
	if (nitems > 1)
		qsort(items, nitems, sizeof(NextItem), next_item_cmp);

	for (int i = 0; i < nitems && result == NEXT_NONE; i++)
	{
		ItemPointerData tid = items[i].tid;
		TM_FailureData tmfd;
		TM_Result	res;
		bool		isnull;
		Datum		d;

		res = table_tuple_lock(rel, &tid, snapshot, slot, GetCurrentCommandId(true),
							   LockTupleExclusive, LockWaitSkip,
							   IsolationUsesXactSnapshot() ? 0 : TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
							   &tmfd);
		switch (res)
		{
			case TM_Ok:
				break;
			case TM_WouldBlock:
			case TM_SelfModified:
				continue;
			case TM_Updated:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent update")));
				elog(ERROR, "unexpected table_tuple_lock status: %u", res);
				break;
			case TM_Deleted:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent update")));
				continue;
			case TM_Invisible:
				elog(ERROR, "attempted to lock invisible tuple");
				break;
			default:
				elog(ERROR, "unrecognized table_tuple_lock status: %u", res);
		}
		slot_getallattrs(slot);
		/* a later version: checked again, as LockRows' recheck does */
		if (tmfd.traversed && !next_match(slot, relid, r, start))
			continue;
		if (row_update_row(rel, snapshot, slot, 2, cols, sent_values, &clock) != ROW_UPDATE_DONE)
		{
			result = NEXT_STATEMENT;	/* it finds the row this transaction locked */
			break;
		}
		*cmd = items[i].uuid;
		d = key_lookup_column(slot, relid, "plist", &isnull);
		if (!isnull)
		{
			/* the item's plist is kept packed (mdm.raw_message) */
			*plist = PointerGetDatum(raw_message_unpack(d));
			result = NEXT_FOUND;
		}
		else
		{
			Datum		k = UUIDPGetDatum(cmd);

			*plist = (Datum) 0;
			key_lookup(snapshot, "nano_commands", "nano_commands_pkey", 1, &k,
					   read_command_plist, plist);
			result = *plist != (Datum) 0 ? NEXT_FOUND : NEXT_MISSING;
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	key_lookup_end(snapshot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return result;
}

/* next_plan (after may_have_next()): true with *plist, or false for none */
static bool
next_by_statement(MdmRequest *r, Datum exchange_start, Datum *plist)
{
	PlanArgs	a;
	bool		isnull;

	if (!may_have_next(r, exchange_start))
		return false;
	for (;;)
	{
		args_channel(&a, r);
		plan_arg(&a, 2, exchange_start, false);
		plan_arg(&a, 3, TimestampTzGetDatum(GetCurrentTimestamp()), false);
		if (run_plan(&next_plan, &a, false, 0) == 0)
			return false;
		*plist = result_datum(1, &isnull);
		if (!isnull)
			return true;
		/* each turn clears one item: the loop ends */
		missing_command(r, result_datum(2, &isnull));
	}
}

/* The next command of the current exchange, marked sent, as the reply. */
static void
next_command(MdmRequest *r, Datum exchange_start, MdmReply *reply)
{
	TimestampTz clock = GetCurrentTimestamp();
	NextResult	res;
	Datum		plist = (Datum) 0;
	pg_uuid_t	uuid;

	/* each turn that finds a command row missing clears its item: it ends */
	while ((res = next_by_key(r, DatumGetTimestampTz(exchange_start), clock, &plist, &uuid))
		   == NEXT_MISSING)
		missing_command(r, UUIDPGetDatum(&uuid));
	if (res == NEXT_STATEMENT)
		res = next_by_statement(r, exchange_start, &plist) ? NEXT_FOUND : NEXT_NONE;
	if (res == NEXT_NONE)
	{
		reply_empty(reply, 200);
		return;
	}
	reply->status = 200;
	reply->content_type = (text *) DatumGetPointer(SPI_datumTransfer(
								CStringGetTextDatum("application/xml"), false, -1));
	reply->body = (bytea *) DatumGetPointer(SPI_datumTransfer(plist, false, -1));
}

typedef struct SeenUpdate
{
	MdmRequest *r;
	bool		idle;
	TimestampTz clock;
	Datum		exchange_start;
} SeenUpdate;

/* seen_plan's SET list, from the locked row */
static bool
seen_values(TupleTableSlot *old, Oid relid, Datum *values, bool *nulls, void *arg)
{
	SeenUpdate *u = arg;
	bool		isnull;
	Datum		d;

	values[0] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	nulls[0] = false;
	if (u->idle)
		values[1] = TimestampTzGetDatum(u->clock);
	else
	{
		d = key_lookup_column(old, relid, "exchange_started_at", &isnull);
		values[1] = isnull ? TimestampTzGetDatum(DT_NOBEGIN) : d;
	}
	nulls[1] = false;
	u->exchange_start = values[1];

	/* coalesce(($5->'NotOnConsole')::boolean, not_on_console) */
	coalesce_bool(old, relid, u->r->msg, "NotOnConsole", "not_on_console", &values[2], &nulls[2]);
	return true;
}

/*
 * seen_plan on a single server: the channel's row updated by key
 * (row_update.c).  Returns false if the statement must run instead; else
 * *found and, if found, *exchange_start are set.
 */
static bool
seen_by_key(MdmRequest *r, bool idle, TimestampTz clock, bool *found, Datum *exchange_start)
{
	static const char *const cols[] = {"last_seen_at", "exchange_started_at", "not_on_console"};
	SeenUpdate	u;
	Datum		keys[2];

	if (plans_distributed())
		return false;
	u.r = r;
	u.idle = idle;
	u.clock = clock;
	u.exchange_start = (Datum) 0;
	keys[0] = CStringGetTextDatum(r->device_id);
	keys[1] = CStringGetTextDatum(r->enrollment_id);
	switch (row_update("nano_enrollments", "nano_enrollments_pkey", 2, keys, 3, cols,
					   seen_values, &u))
	{
		case ROW_UPDATE_DONE:
			*found = true;
			*exchange_start = u.exchange_start;
			return true;
		case ROW_UPDATE_NOT_FOUND:
			*found = false;
			return true;
		case ROW_UPDATE_STATEMENT:
			break;
	}
	return false;
}

/* Inside an SPI connection: handle one command report and fill *reply. */
void
report_dispatch(MdmRequest *r, MdmReply *reply)
{
	bool		idle = strcmp(r->message_type, "Idle") == 0;
	PlanArgs	a;
	Datum		exchange_start;
	bool		isnull;

	TimestampTz clock;
	bool		found;

	if (plans_distributed())
	{
		plan_args_init(&a);
		plan_arg_text(&a, 0, r->device_id);
		plan_arg(&a, 1, PointerGetDatum(r->id.sha256), r->id.sha256 == NULL);
		if (run_plan(&identity_plan, &a, false, 1) == 0)
			check_identity_sql(r, false);
	}
	else if (!bound_identity_ok(r))
		check_identity_sql(r, false);

	clock = GetCurrentTimestamp();
	if (!seen_by_key(r, idle, clock, &found, &exchange_start))
	{
		args_channel(&a, r);
		plan_arg(&a, 2, BoolGetDatum(idle), false);
		plan_arg(&a, 3, TimestampTzGetDatum(clock), false);
		plan_arg(&a, 4, JsonbPGetDatum(r->msg), false);
		found = run_plan(&seen_plan, &a, false, 0) > 0;
		if (found)
			exchange_start = result_datum(1, &isnull);
	}
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("enrollment \"%s\" is not enrolled", r->enrollment_id),
				 errdetail("A command report arrived before the channel's TokenUpdate.")));

	if (!idle)
		store_report(r);
	if (mdm_events)
		record_event(r, true);
	/* (never distributed: every item is written at once there) */
	if (!plans_distributed() && has_queue_fanouts() && may_have_fanout(r))
	{
		args_channel(&a, r);
		run_plan(&fanout_plan, &a, false, 0);
	}
	next_command(r, exchange_start, reply);
}
