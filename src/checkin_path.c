/*
 * checkin_path.c
 *		The check-in dispatcher behind mdm.checkin(), and TokenUpdate, in C.
 *
 * One lookup checks the message type against the channel (Apple's schema),
 * the identity against the device's binding and that the device is
 * enrolled, and reads whether the channel can be pushed; the SQL functions
 * that explain a failure (or bind a first identity) run only when one does
 * not pass.  TokenUpdate, the most frequent check-in, runs its statements
 * from here; the other message types call their handler in
 * schema/20_checkin.sql.  Then last_seen_at and the check-in log, the one
 * place where messages are kept as received (compressed, see log_body()).
 *
 * Every statement filters by the device ID, names its columns (no
 * whole-row arguments) and has no volatile function in an ON CONFLICT DO
 * UPDATE SET, so that a distributed layout can route the whole check-in to
 * the node that owns the device.  Each is planned once per backend
 * (spi_plans.c).  The statements are those the PL/pgSQL dispatcher ran, in
 * the same order, so rows are locked as before.
 */
#include "mdm_paths.h"

#include "access/toast_compression.h"
#include "access/toast_internals.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"

#include "spi_plans.h"

/* $1 device, $2 enrollment, $3 message type, $4 enrollment type, $5 SHA-256 */
static SavedPlan lookup_plan = {
	"SELECT coalesce(CASE WHEN $4 IN ('Device', 'User Enrollment (Device)')"
	"                     THEN m.macos_device_channel OR m.ios_device_channel"
	"                          OR m.shared_ipad_device_channel OR m.tvos_supported"
	"                          OR m.visionos_supported OR m.watchos_supported"
	"                     ELSE m.macos_user_channel OR m.shared_ipad_user_channel END"
	"                AND NOT ($4 IN ('User Enrollment (Device)', 'User Enrollment')"
	"                         AND m.macos_user_enrollment = 'forbidden'"
	"                         AND m.ios_user_enrollment IS DISTINCT FROM 'allowed'), false),"
	"       coalesce(b.cert_sha256 = $5"
	"                AND (b.bound_via <> 'trust anchor' OR b.not_after >= now()), false),"
	"       d.id IS NOT NULL,"
	"       coalesce(e.enabled AND e.token_invalid_at IS NULL, false)"
	"  FROM (SELECT) AS one"
	"  LEFT JOIN mdm.apple_checkin_messages m ON m.message_type = $3"
	"  LEFT JOIN mdm.device_identities b ON b.device_id = $1"
	"  LEFT JOIN mdm.nano_devices d ON d.id = $1"
	"  LEFT JOIN mdm.nano_enrollments e ON e.device_id = $1 AND e.id = $2",
	5, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, BYTEAOID}
};

static SavedPlan channel_plan = {
	"SELECT mdm_internal._check_checkin_channel($1, $2)", 2, {TEXTOID, TEXTOID}
};

/* TokenUpdate: $1 device, $2 user or enrollment, ..., $n msg */
static SavedPlan user_plan = {
	"INSERT INTO mdm.nano_users AS u (device_id, id, user_short_name, user_long_name)"
	" VALUES ($1, $2, $3->>'UserShortName', $3->>'UserLongName')"
	" ON CONFLICT (device_id, id) DO UPDATE SET"
	"  user_short_name = coalesce(excluded.user_short_name, u.user_short_name),"
	"  user_long_name = coalesce(excluded.user_long_name, u.user_long_name),"
	"  updated_at = excluded.updated_at",
	3, {TEXTOID, TEXTOID, JSONBOID}
};

static SavedPlan unlock_token_plan = {
	"INSERT INTO mdm.device_secrets AS s (device_id, unlock_token, unlock_token_at)"
	" VALUES ($1, mdm.plist_data($2->'UnlockToken'), now())"
	" ON CONFLICT (device_id) DO UPDATE SET"
	"  unlock_token = excluded.unlock_token, unlock_token_at = excluded.unlock_token_at",
	2, {TEXTOID, JSONBOID}
};

/*
 * The dispatcher's lookup read whether the channel was pushable without a
 * lock: a 410 for the old token (push_result), a CheckOut or an
 * Authenticate may have committed since, or be about to.  It is read again
 * under the row lock the upsert takes anyway, or the channel would come
 * back without the reconcile and the push its waiting commands need.
 * $1 device, $2 enrollment
 */
static SavedPlan pushable_plan = {
	"SELECT e.enabled AND e.token_invalid_at IS NULL FROM mdm.nano_enrollments e"
	" WHERE e.device_id = $1 AND e.id = $2"
	" FOR NO KEY UPDATE",
	2, {TEXTOID, TEXTOID}
};

/* $1 device, $2 enrollment, $3 user, $4 type, $5 msg, $6 raw unless logged */
static SavedPlan enrollment_plan = {
	"INSERT INTO mdm.nano_enrollments AS e"
	"  (device_id, id, user_id, type, topic, push_magic, token_hex, token_update,"
	"   token_update_at, awaiting_configuration, not_on_console, last_seen_at)"
	" VALUES ($1, $2, $3, $4, $5->>'Topic', $5->>'PushMagic',"
	"         encode(mdm.plist_data($5->'Token'), 'hex'), $6, now(),"
	"         ($5->'AwaitingConfiguration')::boolean, ($5->'NotOnConsole')::boolean, now())"
	" ON CONFLICT (device_id, id) DO UPDATE SET"
	"  type = excluded.type, topic = excluded.topic, push_magic = excluded.push_magic,"
	"  token_hex = excluded.token_hex, enabled = true,"
	"  token_invalid_at = NULL, token_invalid_reason = NULL,"
	"  token_update_tally = e.token_update_tally + 1,"
	"  token_update = excluded.token_update, token_update_at = excluded.token_update_at,"
	"  awaiting_configuration = coalesce(excluded.awaiting_configuration, e.awaiting_configuration),"
	"  not_on_console = coalesce(excluded.not_on_console, e.not_on_console),"
	"  last_seen_at = excluded.last_seen_at, updated_at = excluded.updated_at",
	6, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, BYTEAOID}
};

/*
 * A channel's first TokenUpdate, its first after a re-enrollment or
 * CheckOut, or its first since APNs called its token dead: the profiles its
 * labels assign, which may have waited for it, are queued now, in this
 * transaction (schema/60_profiles.sql), and commands queued while it could
 * not be pushed get their push.
 */
static SavedPlan reconcile_plan = {
	"SELECT mdm_internal._reconcile_devices(ARRAY[$1])", 1, {TEXTOID}
};
static SavedPlan waiting_push_plan = {
	"SELECT mdm_internal._announce_pushes(ARRAY[ROW($1, $2, $3, NULL)::mdm_internal._target])"
	"  FROM (SELECT) AS one"
	" WHERE EXISTS (SELECT FROM mdm.nano_enrollment_queue q"
	"               WHERE q.device_id = $1 AND q.id = $2 AND q.active)",
	3, {TEXTOID, TEXTOID, TEXTOID}
};

/* The other message types: their handlers in schema/20_checkin.sql. */
typedef enum HandlerArg
{
	ARG_DEVICE, ARG_ENROLLMENT, ARG_USER, ARG_MSG, ARG_RAW, ARG_UNLOGGED_RAW, ARG_CERT, ARG_NONE
} HandlerArg;

typedef struct CheckinHandler
{
	const char *message_type;
	HandlerArg	args[4];
	SavedPlan	plan;
} CheckinHandler;

static CheckinHandler handlers[] = {
	{"Authenticate", {ARG_DEVICE, ARG_MSG, ARG_UNLOGGED_RAW, ARG_CERT},
	{"SELECT * FROM mdm_internal._checkin_authenticate($1, $2, $3, $4)", 4,
	{TEXTOID, JSONBOID, BYTEAOID, BYTEAOID}}},
	{"UserAuthenticate", {ARG_DEVICE, ARG_USER, ARG_MSG, ARG_RAW},
	{"SELECT * FROM mdm_internal._checkin_user_authenticate($1, $2, $3, $4)", 4,
	{TEXTOID, TEXTOID, JSONBOID, BYTEAOID}}},
	{"CheckOut", {ARG_DEVICE, ARG_NONE},
	{"SELECT * FROM mdm_internal._checkin_checkout($1)", 1, {TEXTOID}}},
	{"SetBootstrapToken", {ARG_DEVICE, ARG_MSG, ARG_NONE},
	{"SELECT * FROM mdm_internal._checkin_set_bootstrap_token($1, $2)", 2, {TEXTOID, JSONBOID}}},
	{"GetBootstrapToken", {ARG_DEVICE, ARG_NONE},
	{"SELECT * FROM mdm_internal._checkin_get_bootstrap_token($1)", 1, {TEXTOID}}},
	{"DeclarativeManagement", {ARG_ENROLLMENT, ARG_MSG, ARG_NONE},
	{"SELECT * FROM mdm_internal._checkin_declarative_management($1, $2)", 2, {TEXTOID, JSONBOID}}},
	{"GetToken", {ARG_ENROLLMENT, ARG_MSG, ARG_NONE},
	{"SELECT * FROM mdm_internal._checkin_get_token($1, $2)", 2, {TEXTOID, JSONBOID}}},
};

/* every check-in but Authenticate and TokenUpdate sets last_seen_at here */
static SavedPlan last_seen_plan = {
	"UPDATE mdm.nano_enrollments SET last_seen_at = now()"
	" WHERE device_id = $1 AND id = $2",
	2, {TEXTOID, TEXTOID}
};

/* the check-in log (mdm.checkin_log = all) */
static SavedPlan log_plan = {
	"INSERT INTO mdm.checkin_messages"
	"  (device_id, enrollment_id, message_type, body, identity_cert_sha256, mdm_signature,"
	"   reply_status)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7)",
	7, {TEXTOID, TEXTOID, TEXTOID, BYTEAOID, BYTEAOID, TEXTOID, INT4OID}
};

/*
 * Is every check-in logged (mdm.checkin_log)?  Then the log is the one
 * place a message is kept as received; otherwise the last Authenticate and
 * TokenUpdate are kept on their rows.
 */
static bool
logged(void)
{
	return mdm_checkin_log == MDM_CHECKIN_LOG_ALL;
}

/*
 * The body of a log row, compressed with LZ4 as TOAST compresses values,
 * though a check-in (about 1 kB) is below the size at which TOAST would try
 * (about 2 kB): a plist compresses to about half, and the log is most of
 * the bytes kept per device.  Readers see the bytes as received (a
 * compressed value is decompressed wherever it is read).  The bytes as
 * they are when compressing does not save at least 2 bytes.
 */
static Datum
log_body(bytea *raw)
{
	Datum		c;

	if (VARATT_IS_EXTENDED(raw) && !VARATT_IS_SHORT(raw))
		return PointerGetDatum(raw);	/* compressed or external already */
	c = toast_compress_datum(PointerGetDatum(raw), TOAST_LZ4_COMPRESSION);
	return c != (Datum) 0 ? c : PointerGetDatum(raw);
}

static void
token_update(MdmRequest *r, bool was_pushable, MdmReply *reply)
{
	PlanArgs	a;

	plan_args_init(&a);
	plan_arg_text(&a, 0, r->device_id);
	if (r->user_id != NULL)
	{
		plan_arg_text(&a, 1, r->user_id);
		plan_arg(&a, 2, JsonbPGetDatum(r->msg), false);
		run_plan(&user_plan, &a, false, 0);
	}
	else if (msg_has_key(r->msg, "UnlockToken"))
	{
		plan_arg(&a, 1, JsonbPGetDatum(r->msg), false);
		run_plan(&unlock_token_plan, &a, false, 0);
	}

	plan_args_init(&a);
	plan_arg_text(&a, 0, r->device_id);
	plan_arg_text(&a, 1, r->enrollment_id);
	if (was_pushable)
		was_pushable = run_plan(&pushable_plan, &a, false, 1) == 1 && result_bool(1);
	plan_arg_text(&a, 2, r->user_id);
	plan_arg_text(&a, 3, r->type);
	plan_arg(&a, 4, JsonbPGetDatum(r->msg), false);
	plan_arg(&a, 5, PointerGetDatum(r->raw), logged());
	run_plan(&enrollment_plan, &a, false, 0);

	if (!was_pushable)
	{
		run_plan(&reconcile_plan, &a, false, 0);
		plan_arg_text(&a, 2, r->type);
		run_plan(&waiting_push_plan, &a, false, 0);
	}
	reply_empty(reply, 200);
}

static void
call_handler(MdmRequest *r, MdmReply *reply)
{
	for (size_t i = 0; i < lengthof(handlers); i++)
	{
		CheckinHandler *h = &handlers[i];
		PlanArgs	a;

		if (strcmp(h->message_type, r->message_type) != 0)
			continue;
		plan_args_init(&a);
		for (int j = 0; j < h->plan.nargs; j++)
		{
			switch (h->args[j])
			{
				case ARG_DEVICE:
					plan_arg_text(&a, j, r->device_id);
					break;
				case ARG_ENROLLMENT:
					plan_arg_text(&a, j, r->enrollment_id);
					break;
				case ARG_USER:
					plan_arg_text(&a, j, r->user_id);
					break;
				case ARG_MSG:
					plan_arg(&a, j, JsonbPGetDatum(r->msg), false);
					break;
				case ARG_RAW:
					plan_arg(&a, j, PointerGetDatum(r->raw), false);
					break;
				case ARG_UNLOGGED_RAW:
					plan_arg(&a, j, PointerGetDatum(r->raw), logged());
					break;
				case ARG_CERT:
					plan_arg(&a, j, PointerGetDatum(r->id.der), r->id.der == NULL);
					break;
				case ARG_NONE:
					break;
			}
		}
		if (run_plan(&h->plan, &a, false, 1) != 1)
			elog(ERROR, "check-in handler for %s returned no reply", h->message_type);
		reply_from_result(reply);
		return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("check-in message type \"%s\" is not supported", r->message_type)));
}

/* Inside an SPI connection: handle one check-in and fill *reply. */
void
checkin_dispatch(MdmRequest *r, MdmReply *reply)
{
	bool		authenticate = strcmp(r->message_type, "Authenticate") == 0;
	bool		token = strcmp(r->message_type, "TokenUpdate") == 0;
	bool		channel_ok,
				identity_ok,
				enrolled,
				pushable;
	PlanArgs	a;

	plan_args_init(&a);
	plan_arg_text(&a, 0, r->device_id);
	plan_arg_text(&a, 1, r->enrollment_id);
	plan_arg_text(&a, 2, r->message_type);
	plan_arg_text(&a, 3, r->type);
	plan_arg(&a, 4, PointerGetDatum(r->id.sha256), r->id.sha256 == NULL);
	if (run_plan(&lookup_plan, &a, false, 1) != 1)
		elog(ERROR, "check-in lookup returned no row");
	channel_ok = result_bool(1);
	identity_ok = result_bool(2);
	enrolled = result_bool(3);
	pushable = result_bool(4);

	/* a certificate that is not the bound one is parsed (and may be refused) first */
	if (!identity_ok)
		identity_complete(&r->id);
	if (!channel_ok)
	{
		PlanArgs	c;

		plan_args_init(&c);
		plan_arg_text(&c, 0, r->message_type);
		plan_arg_text(&c, 1, r->type);
		run_plan(&channel_plan, &c, false, 0);	/* raises */
	}
	if (!identity_ok)
		check_identity_sql(r, authenticate);
	if (!authenticate && !enrolled)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("device \"%s\" is not enrolled", r->device_id),
				 errdetail("A %s message arrived before the device's Authenticate.",
						   r->message_type)));

	if (token)
		token_update(r, pushable, reply);
	else
		call_handler(r, reply);

	if (!authenticate && !token)
	{
		plan_args_init(&a);
		plan_arg_text(&a, 0, r->device_id);
		plan_arg_text(&a, 1, r->enrollment_id);
		run_plan(&last_seen_plan, &a, false, 0);
	}
	if (logged())
	{
		plan_args_init(&a);
		plan_arg_text(&a, 0, r->device_id);
		plan_arg_text(&a, 1, r->enrollment_id);
		plan_arg_text(&a, 2, r->message_type);
		plan_arg(&a, 3, log_body(r->raw), false);
		plan_arg(&a, 4, PointerGetDatum(r->id.sha256), r->id.sha256 == NULL);
		plan_arg(&a, 5, PointerGetDatum(r->signature), r->signature == NULL);
		plan_arg(&a, 6, Int32GetDatum(reply->status), false);
		run_plan(&log_plan, &a, false, 0);
	}
	if (mdm_events)
		record_event(r, false);
}
