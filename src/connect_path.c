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
 * are locked as before.
 */
#include "mdm_paths.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "spi_plans.h"

/* $1 device, $2 SHA-256 */
static SavedPlan identity_plan = {
	"SELECT FROM mdm.device_identities b"
	" WHERE b.device_id = $1 AND b.cert_sha256 = $2"
	"   AND (b.bound_via <> 'trust anchor' OR b.not_after >= now())",
	2, {TEXTOID, BYTEAOID}
};

/* $1 device, $2 enrollment, $3 Idle?, $4 clock time, $5 msg */
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

/* Store a report about a queued command, or record it as an orphan. */
static void
store_report(MdmRequest *r)
{
	bool		not_now = strcmp(r->message_type, "NotNow") == 0;
	pg_uuid_t  *cmd = palloc(sizeof(pg_uuid_t));
	PlanArgs	a;

	args_channel(&a, r);
	plan_arg(&a, 2, UUIDPGetDatum(cmd), false);
	plan_arg_text(&a, 3, r->message_type);
	plan_arg(&a, 4, JsonbPGetDatum(r->msg), false);
	plan_arg(&a, 5, TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()), !not_now);
	plan_arg(&a, 6, Int32GetDatum(not_now ? 1 : 0), false);
	if (!parse_uuid(r->command_uuid, cmd) || run_plan(&result_plan, &a, false, 0) == 0)
	{
		plan_arg_text(&a, 2, r->command_uuid);
		run_plan(&orphan_plan, &a, false, 0);
		return;
	}
	if (!not_now)
	{
		run_plan(&finished_plan, &a, false, 0);
		run_plan(&delivery_plan, &a, false, 0);
		if (strcmp(r->message_type, "Acknowledged") == 0 &&
			(msg_has_key(r->msg, "QueryResponses") || msg_has_key(r->msg, "SecurityInfo")))
			run_plan(&inventory_plan, &a, false, 0);
	}
}

/* The next command of the current exchange, marked sent, as the reply. */
static void
next_command(MdmRequest *r, Datum exchange_start, MdmReply *reply)
{
	PlanArgs	a;
	bool		isnull;
	Datum		plist;

	for (;;)
	{
		Datum		cmd;

		args_channel(&a, r);
		plan_arg(&a, 2, exchange_start, false);
		plan_arg(&a, 3, TimestampTzGetDatum(GetCurrentTimestamp()), false);
		if (run_plan(&next_plan, &a, false, 0) == 0)
		{
			reply_empty(reply, 200);
			return;
		}
		plist = result_datum(1, &isnull);
		if (!isnull)
			break;
		/* each turn clears one item: the loop ends */
		cmd = result_datum(2, &isnull);
		ereport(WARNING,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("queued command %s of enrollment \"%s\" has no command row",
						DatumGetCString(DirectFunctionCall1(uuid_out, cmd)), r->enrollment_id),
				 errdetail("The queue item was cleared (cleared_reason \"command missing\").")));
		plan_arg(&a, 2, cmd, false);
		run_plan(&missing_plan, &a, false, 0);
	}
	reply->status = 200;
	reply->content_type = (text *) DatumGetPointer(SPI_datumTransfer(
								CStringGetTextDatum("application/xml"), false, -1));
	reply->body = (bytea *) DatumGetPointer(SPI_datumTransfer(plist, false, -1));
}

/* Inside an SPI connection: handle one command report and fill *reply. */
void
report_dispatch(MdmRequest *r, MdmReply *reply)
{
	bool		idle = strcmp(r->message_type, "Idle") == 0;
	PlanArgs	a;
	Datum		exchange_start;
	bool		isnull;

	plan_args_init(&a);
	plan_arg_text(&a, 0, r->device_id);
	plan_arg(&a, 1, PointerGetDatum(r->id.sha256), r->id.sha256 == NULL);
	if (run_plan(&identity_plan, &a, false, 1) == 0)
		check_identity_sql(r, false);

	args_channel(&a, r);
	plan_arg(&a, 2, BoolGetDatum(idle), false);
	plan_arg(&a, 3, TimestampTzGetDatum(GetCurrentTimestamp()), false);
	plan_arg(&a, 4, JsonbPGetDatum(r->msg), false);
	if (run_plan(&seen_plan, &a, false, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("enrollment \"%s\" is not enrolled", r->enrollment_id),
				 errdetail("A command report arrived before the channel's TokenUpdate.")));
	exchange_start = result_datum(1, &isnull);

	if (!idle)
		store_report(r);
	if (mdm_events)
		record_event(r, true);
	/* (never distributed: every item is written at once there) */
	if (!plans_distributed() && has_queue_fanouts())
	{
		args_channel(&a, r);
		run_plan(&fanout_plan, &a, false, 0);
	}
	next_command(r, exchange_start, reply);
}
