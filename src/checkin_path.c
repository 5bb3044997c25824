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
 * place where messages are kept as received (packed: raw_message.c).
 *
 * Every statement filters by the device ID, names its columns (no
 * whole-row arguments) and has no volatile function in an ON CONFLICT DO
 * UPDATE SET, so that a distributed layout can route the whole check-in to
 * the node that owns the device.  Each is planned once per backend
 * (spi_plans.c).  The statements are those the PL/pgSQL dispatcher ran, in
 * the same order, so rows are locked as before.  On a single server four of
 * them need no executor: the lookup reads its rows by key and the
 * pushability re-read locks its row by key (key_lookup.c), the log row is
 * inserted directly (row_insert.c), and the TokenUpdate of a channel that
 * has its row updates it by key (row_update.c; the upsert runs when there
 * is none).
 */
#include "mdm_paths.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "common/int.h"
#include "key_lookup.h"
#include "row_insert.h"
#include "row_update.h"
#include "spi_plans.h"

/*
 * The one lookup: whether the message type may arrive on this channel, the
 * identity is the bound one (and still good), the device is enrolled and
 * the channel can be pushed.  On a single server read by key, one row
 * after the other (lookup_by_key()); distributed, this statement.
 * $1 device, $2 enrollment, $3 message type, $4 enrollment type, $5 SHA-256
 */
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

typedef struct CheckinLookup
{
	MdmRequest *r;
	bool		channel_ok;
	bool		identity_ok;
	bool		enrolled;
	bool		pushable;
} CheckinLookup;

static bool
text_column_is(TupleTableSlot *slot, Oid relid, const char *name, const char *value)
{
	bool		isnull;
	Datum		d = key_lookup_column(slot, relid, name, &isnull);

	return !isnull && strcmp(TextDatumGetCString(d), value) == 0;
}

/* lookup_plan's first column: NULLs decide as they do there */
static void
read_message_type(TupleTableSlot *slot, Oid relid, void *arg)
{
	CheckinLookup *l = arg;
	const char *type = l->r->type;
	bool		channel;
	bool		user_enrollment;
	bool		macos_ue_null;

	if (strcmp(type, "Device") == 0 || strcmp(type, "User Enrollment (Device)") == 0)
		channel = key_lookup_bool(slot, relid, "macos_device_channel") ||
			key_lookup_bool(slot, relid, "ios_device_channel") ||
			key_lookup_bool(slot, relid, "shared_ipad_device_channel") ||
			key_lookup_bool(slot, relid, "tvos_supported") ||
			key_lookup_bool(slot, relid, "visionos_supported") ||
			key_lookup_bool(slot, relid, "watchos_supported");
	else
		channel = key_lookup_bool(slot, relid, "macos_user_channel") ||
			key_lookup_bool(slot, relid, "shared_ipad_user_channel");
	user_enrollment = strcmp(type, "User Enrollment (Device)") == 0 ||
		strcmp(type, "User Enrollment") == 0;
	(void) key_lookup_column(slot, relid, "macos_user_enrollment", &macos_ue_null);
	/* true only where NOT (forbidden for User Enrollment) is true, not NULL */
	l->channel_ok = channel &&
		(!user_enrollment ||
		 (!macos_ue_null && !text_column_is(slot, relid, "macos_user_enrollment", "forbidden")) ||
		 text_column_is(slot, relid, "ios_user_enrollment", "allowed"));
}

static void
read_binding(TupleTableSlot *slot, Oid relid, void *arg)
{
	CheckinLookup *l = arg;
	bytea	   *sha = l->r->id.sha256;
	bool		isnull;
	Datum		d = key_lookup_column(slot, relid, "cert_sha256", &isnull);
	bytea	   *bound;

	if (isnull || sha == NULL)
		return;
	bound = DatumGetByteaPP(d);
	if (VARSIZE_ANY_EXHDR(bound) != VARSIZE_ANY_EXHDR(sha) ||
		memcmp(VARDATA_ANY(bound), VARDATA_ANY(sha), VARSIZE_ANY_EXHDR(sha)) != 0)
		return;
	if (!text_column_is(slot, relid, "bound_via", "trust anchor"))
		l->identity_ok = true;
	else
	{
		d = key_lookup_column(slot, relid, "not_after", &isnull);
		l->identity_ok = !isnull &&
			DatumGetTimestampTz(d) >= GetCurrentTransactionStartTimestamp();
	}
}

/*
 * On a single server: is the message's identity the device's bound one, and
 * still good?  (The command reports' check: connect_path.c.)
 */
bool
bound_identity_ok(MdmRequest *r)
{
	CheckinLookup l;
	Snapshot	snapshot = key_lookup_begin();
	Datum		keys[1];

	memset(&l, 0, sizeof(l));
	l.r = r;
	keys[0] = CStringGetTextDatum(r->device_id);
	key_lookup(snapshot, "device_identities", "device_identities_pkey", 1, keys,
			   read_binding, &l);
	key_lookup_end(snapshot);
	return l.identity_ok;
}

static void
read_device(TupleTableSlot *slot, Oid relid, void *arg)
{
	((CheckinLookup *) arg)->enrolled = true;
}

static void
read_enrollment(TupleTableSlot *slot, Oid relid, void *arg)
{
	bool		isnull;

	(void) key_lookup_column(slot, relid, "token_invalid_at", &isnull);
	((CheckinLookup *) arg)->pushable = key_lookup_bool(slot, relid, "enabled") && isnull;
}

/* lookup_plan on a single server, each row by its key */
static void
lookup_by_key(CheckinLookup *l)
{
	MdmRequest *r = l->r;
	Snapshot	snapshot = key_lookup_begin();
	Datum		keys[2];

	keys[0] = CStringGetTextDatum(r->message_type);
	key_lookup(snapshot, "apple_checkin_messages", "apple_checkin_messages_pkey", 1, keys,
			   read_message_type, l);
	keys[0] = CStringGetTextDatum(r->device_id);
	key_lookup(snapshot, "device_identities", "device_identities_pkey", 1, keys,
			   read_binding, l);
	keys[1] = CStringGetTextDatum(r->enrollment_id);
	/*
	 * A channel's row names its device by a foreign key (ON DELETE
	 * CASCADE): when the channel is there, so is the device, and its row
	 * is not read.
	 */
	if (key_lookup(snapshot, "nano_enrollments", "nano_enrollments_pkey", 2, keys,
				   read_enrollment, l))
		l->enrolled = true;
	else
		key_lookup(snapshot, "nano_devices", "nano_devices_pkey", 1, keys, read_device, l);
	key_lookup_end(snapshot);
}

static void
lookup(MdmRequest *r, CheckinLookup *l)
{
	PlanArgs	a;

	memset(l, 0, sizeof(*l));
	l->r = r;
	if (!plans_distributed())
	{
		lookup_by_key(l);
		return;
	}
	plan_args_init(&a);
	plan_arg_text(&a, 0, r->device_id);
	plan_arg_text(&a, 1, r->enrollment_id);
	plan_arg_text(&a, 2, r->message_type);
	plan_arg_text(&a, 3, r->type);
	plan_arg(&a, 4, PointerGetDatum(r->id.sha256), r->id.sha256 == NULL);
	if (run_plan(&lookup_plan, &a, false, 1) != 1)
		elog(ERROR, "check-in lookup returned no row");
	l->channel_ok = result_bool(1);
	l->identity_ok = result_bool(2);
	l->enrolled = result_bool(3);
	l->pushable = result_bool(4);
}

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

/*
 * the check-in log (mdm.checkin_log = all); on a single server the row is
 * inserted without a statement (log_message(), row_insert.c).  The body,
 * bytea here, is packed by the assignment cast to mdm.raw_message.
 */
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

/* The check-in log's row of this message, with the HTTP status of its reply. */
static void
log_message(MdmRequest *r, int32 status)
{
	static const char *const cols[] = {
		"device_id", "id", "enrollment_id", "message_type", "received_at", "body",
		"identity_cert_sha256", "mdm_signature", "reply_status"
	};
	PlanArgs	a;

	plan_args_init(&a);
	plan_arg_text(&a, 0, r->device_id);
	plan_arg_text(&a, 1, r->enrollment_id);
	plan_arg_text(&a, 2, r->message_type);
	plan_arg(&a, 3, PointerGetDatum(r->raw), false);
	plan_arg(&a, 4, PointerGetDatum(r->id.sha256), r->id.sha256 == NULL);
	plan_arg(&a, 5, PointerGetDatum(r->signature), r->signature == NULL);
	plan_arg(&a, 6, Int32GetDatum(status), false);
	if (!plans_distributed())
	{
		Oid			seq = get_relname_relid("checkin_messages_id_seq",
											get_namespace_oid("mdm", false));
		Datum		values[9];
		bool		nulls[9];

		if (!OidIsValid(seq))
			elog(ERROR, "sequence \"mdm.checkin_messages_id_seq\" does not exist");
		/* the columns' defaults: nextval() and now() */
		values[0] = a.values[0];
		values[1] = DirectFunctionCall1(nextval_oid, ObjectIdGetDatum(seq));
		values[2] = a.values[1];
		values[3] = a.values[2];
		values[4] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		for (int i = 3; i < 7; i++)
			values[i + 2] = a.values[i];
		/* the body packed as the column's type keeps it (raw_message.c) */
		values[5] = raw_message_pack(r->raw);
		for (int i = 0; i < 9; i++)
			nulls[i] = false;
		nulls[6] = r->id.sha256 == NULL;
		nulls[7] = r->signature == NULL;
		if (row_insert("checkin_messages", 9, cols, values, nulls))
			return;
	}
	run_plan(&log_plan, &a, false, 0);
}

/* pushable_plan; on a single server, the row read by key and locked (key_lookup.c) */
static bool
pushable_locked(MdmRequest *r)
{
	CheckinLookup l;
	PlanArgs	a;

	if (!plans_distributed())
	{
		Snapshot	snapshot = key_lookup_begin();
		Datum		keys[2];
		bool		found;

		memset(&l, 0, sizeof(l));
		keys[0] = CStringGetTextDatum(r->device_id);
		keys[1] = CStringGetTextDatum(r->enrollment_id);
		found = key_lookup_locked(snapshot, "nano_enrollments", "nano_enrollments_pkey", 2,
								  keys, LockTupleNoKeyExclusive, read_enrollment, &l);
		key_lookup_end(snapshot);
		return found && l.pushable;
	}
	plan_args_init(&a);
	plan_arg_text(&a, 0, r->device_id);
	plan_arg_text(&a, 1, r->enrollment_id);
	return run_plan(&pushable_plan, &a, false, 1) == 1 && result_bool(1);
}

extern Datum mdm_plist_data(PG_FUNCTION_ARGS);	/* plist_write.c */

/*
 * coalesce((msg->key)::boolean, old column), the cast with its errors (the
 * SET lists of the TokenUpdate here and of a report's last-seen update,
 * connect_path.c)
 */
void
coalesce_bool(TupleTableSlot *old, Oid relid, Jsonb *msg, const char *key, const char *column,
			  Datum *value, bool *isnull)
{
	JsonbValue *v = msg_value(msg, key);

	if (v == NULL || v->type == jbvNull)
		*value = key_lookup_column(old, relid, column, isnull);
	else
	{
		*value = DirectFunctionCall1(jsonb_bool, JsonbPGetDatum(JsonbValueToJsonb(v)));
		*isnull = false;
	}
}

/* enrollment_plan's DO UPDATE SET list, in C (token_update_by_key()) */
static const char *const token_update_cols[] = {
	"type", "topic", "push_magic", "token_hex", "enabled", "token_invalid_at",
	"token_invalid_reason", "token_update_tally", "token_update", "token_update_at",
	"awaiting_configuration", "not_on_console", "last_seen_at", "updated_at"
};

/*
 * A TokenUpdate's update by key: the message, and whether the channel was
 * pushable, read from its row once locked (pushable_plan's re-read, which
 * needs the same lock: the row is found and locked once for both).
 */
typedef struct TokenUpdateState
{
	MdmRequest *r;
	bool		locked;			/* the row was found and locked */
	bool		pushable;		/* then: enabled AND token_invalid_at IS NULL */
} TokenUpdateState;

static bool
token_update_values(TupleTableSlot *old, Oid relid, Datum *values, bool *nulls, void *arg)
{
	TokenUpdateState *st = arg;
	MdmRequest *r = st->r;
	CheckinLookup l;
	Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	JsonbValue *topic = msg_value(r->msg, "Topic");
	JsonbValue *magic = msg_value(r->msg, "PushMagic");
	JsonbValue *token = msg_value(r->msg, "Token");
	bool		isnull;
	int32		tally;
	Datum		bytes;

	/* the locked row, as pushable_locked() reads it */
	memset(&l, 0, sizeof(l));
	read_enrollment(old, relid, &l);
	st->locked = true;
	st->pushable = l.pushable;
	/* the message's keys are checked (mdm_message.c); else the statement decides */
	if (topic == NULL || topic->type != jbvString || magic == NULL ||
		magic->type != jbvString || token == NULL || token->type != jbvBinary)
		return false;
	bytes = DirectFunctionCall1(mdm_plist_data, JsonbPGetDatum(JsonbValueToJsonb(token)));
	tally = DatumGetInt32(key_lookup_column(old, relid, "token_update_tally", &isnull));
	if (isnull)
		return false;
	if (pg_add_s32_overflow(tally, 1, &tally))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("integer out of range")));
	memset(nulls, false, sizeof(bool) * lengthof(token_update_cols));
	values[0] = CStringGetTextDatum(r->type);
	values[1] = PointerGetDatum(cstring_to_text_with_len(topic->val.string.val,
														  topic->val.string.len));
	values[2] = PointerGetDatum(cstring_to_text_with_len(magic->val.string.val,
														  magic->val.string.len));
	values[3] = DirectFunctionCall2(binary_encode, bytes, CStringGetTextDatum("hex"));
	values[4] = BoolGetDatum(true);
	nulls[5] = true;
	nulls[6] = true;
	values[7] = Int32GetDatum(tally);
	values[8] = PointerGetDatum(r->raw);
	nulls[8] = logged();
	values[9] = now;
	coalesce_bool(old, relid, r->msg, "AwaitingConfiguration", "awaiting_configuration",
				  &values[10], &nulls[10]);
	coalesce_bool(old, relid, r->msg, "NotOnConsole", "not_on_console",
				  &values[11], &nulls[11]);
	values[12] = now;
	values[13] = now;
	return true;
}

/* user_plan's DO UPDATE SET list, in C (user_by_key()) */
static const char *const user_cols[] = {"user_short_name", "user_long_name", "updated_at"};

static bool
user_values(TupleTableSlot *old, Oid relid, Datum *values, bool *nulls, void *arg)
{
	MdmRequest *r = arg;

	for (int i = 0; i < 2; i++)
	{
		JsonbValue *v = msg_value(r->msg, i == 0 ? "UserShortName" : "UserLongName");

		if (v == NULL)
			values[i] = key_lookup_column(old, relid, user_cols[i], &nulls[i]);
		else if (v->type == jbvString)
		{
			values[i] = PointerGetDatum(cstring_to_text_with_len(v->val.string.val,
																  v->val.string.len));
			nulls[i] = false;
		}
		else
			return false;		/* (checked to be strings: mdm_message.c) */
	}
	values[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	nulls[2] = false;
	return true;
}

/*
 * user_plan for a user that has its row, on a single server: updated by key
 * (row_update.c).  False if the statement must run (no row: it inserts one).
 */
static bool
user_by_key(MdmRequest *r)
{
	Datum		keys[2];

	if (plans_distributed())
		return false;
	keys[0] = CStringGetTextDatum(r->device_id);
	keys[1] = CStringGetTextDatum(r->user_id);
	return row_update("nano_users", "nano_users_pkey", 2, keys, lengthof(user_cols), user_cols,
					  user_values, r) == ROW_UPDATE_DONE;
}

/*
 * enrollment_plan for a channel that has its row, on a single server: the
 * row updated by key (row_update.c), as the statement's DO UPDATE would
 * update it.  False if the statement must run (no row: it inserts one).
 */
static bool
token_update_by_key(TokenUpdateState *st)
{
	MdmRequest *r = st->r;
	Datum		keys[2];

	if (plans_distributed())
		return false;
	keys[0] = CStringGetTextDatum(r->device_id);
	keys[1] = CStringGetTextDatum(r->enrollment_id);
	return row_update("nano_enrollments", "nano_enrollments_pkey", 2, keys,
					  lengthof(token_update_cols), token_update_cols,
					  token_update_values, st) == ROW_UPDATE_DONE;
}

static void
token_update(MdmRequest *r, bool was_pushable, MdmReply *reply)
{
	PlanArgs	a;
	TokenUpdateState st;
	bool		done;

	plan_args_init(&a);
	plan_arg_text(&a, 0, r->device_id);
	if (r->user_id != NULL)
	{
		plan_arg_text(&a, 1, r->user_id);
		plan_arg(&a, 2, JsonbPGetDatum(r->msg), false);
		if (!user_by_key(r))
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
	plan_arg_text(&a, 2, r->user_id);
	plan_arg_text(&a, 3, r->type);
	plan_arg(&a, 4, JsonbPGetDatum(r->msg), false);
	plan_arg(&a, 5, PointerGetDatum(r->raw), logged());
	/*
	 * Pushable again under the row's lock: read by the update by key when
	 * it locked the row (whether it then updated it or left it to the
	 * statement), else locked and read here before the statement runs, as
	 * the dispatcher always did.
	 */
	st.r = r;
	st.locked = false;
	st.pushable = false;
	done = token_update_by_key(&st);
	if (was_pushable)
		was_pushable = st.locked ? st.pushable : pushable_locked(r);
	if (!done)
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
	CheckinLookup l;
	bool		channel_ok,
				identity_ok,
				enrolled,
				pushable;
	PlanArgs	a;

	lookup(r, &l);
	channel_ok = l.channel_ok;
	identity_ok = l.identity_ok;
	enrolled = l.enrolled;
	pushable = l.pushable;

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
		log_message(r, reply->status);
	if (mdm_events)
		record_event(r, false);
}
