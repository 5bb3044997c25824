/*
 * enqueue_path.c
 *		mdm.enqueue() for one target, in C.
 *
 * Queuing a command to one enrollment is the commonest enqueue (a console
 * acting on a device, the connect cycle); the set machinery of
 * mdm_internal._enqueue() (schema/30_queue.sql: _targets(), arrays of composites,
 * unnest()) costs about as much as the rows it writes.  Here the target,
 * its platform and the RequestType's rule are read in one lookup, then the
 * queue item, which keeps the command itself (its RequestType and plist:
 * a command of one target has no nano_commands row, schema/30_queue.sql),
 * and the push job are written with plans kept per backend (one
 * statement), and NOTIFY is sent once if a push job was created.  Every
 * row written is the target device's: under Citus, one worker.  On a single
 * server none of that is a statement (enqueue_direct()): the three rows are
 * read by key and the two written straight into the tables, which costs
 * about a third of the statements' work.
 *
 * Only the plain case takes this path: one enrollment ID, the inner
 * command dictionary with a RequestType other than InstallProfile (whose
 * profile is checked at enqueue), non-NULL options, and a target that
 * exists and whose channel takes the command.  Everything else, errors
 * included, goes to mdm_internal._enqueue(), so the errors and their order are
 * the same.  The writes are the rows mdm_internal._enqueue() writes for one target.
 */
#include "mdm_user.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/uuid.h"

#include "key_lookup.h"
#include "row_insert.h"
#include "shard_local.h"
#include "spi_plans.h"

/*
 * The target, its platform and whether its channel takes the RequestType.
 * The enrollment row is locked FOR KEY SHARE (the lock a foreign key would
 * take: the queue item has none), here before anything is written: whatever waits for
 * the writers of a device's work (FOR UPDATE of its enrollments) waits for
 * this call from its first statement, and this call, coming later, waits
 * for it and reads the enrollment it left.
 * $1 enrollment ID, $2 RequestType
 */
static SavedPlan target_plan = {
	"SELECT e.device_id, rt.request_type IS NOT NULL,"
	"       CASE WHEN e.type = 'User' THEN rt.macos_user_channel"
	"            WHEN e.type = 'Shared iPad' THEN rt.shared_ipad_user_channel"
	"            WHEN e.type = 'User Enrollment' THEN rt.macos_user_channel"
	"                 AND rt.macos_user_enrollment IS DISTINCT FROM 'forbidden'"
	"            ELSE (CASE WHEN p.platform = 'macOS' THEN rt.macos_device_channel"
	"                       WHEN p.platform = 'iOS' THEN rt.ios_device_channel OR rt.shared_ipad_device_channel"
	"                       WHEN p.platform = 'tvOS' THEN rt.tvos_supported"
	"                       WHEN p.platform = 'visionOS' THEN rt.visionos_supported"
	"                       WHEN p.platform = 'watchOS' THEN rt.watchos_supported"
	"                       ELSE rt.macos_device_channel OR rt.ios_device_channel"
	"                            OR rt.shared_ipad_device_channel OR rt.tvos_supported"
	"                            OR rt.visionos_supported OR rt.watchos_supported END)"
	"                 AND (e.type <> 'User Enrollment (Device)' OR"
	"                      (CASE WHEN p.platform = 'iOS' THEN rt.ios_user_enrollment"
	"                            ELSE rt.macos_user_enrollment END) IS DISTINCT FROM 'forbidden')"
	"       END"
	"  FROM mdm.nano_enrollments e"
	"  LEFT JOIN mdm.nano_devices d ON d.id = e.device_id"
	"  CROSS JOIN LATERAL (SELECT mdm.device_platform(d.model) AS platform) p"
	"  LEFT JOIN mdm.apple_request_types rt ON rt.request_type = $2"
	" WHERE e.device_id = split_part($1, ':', 1) AND e.id = $1"
	"   FOR KEY SHARE OF e",
	2, {TEXTOID, TEXTOID}
};

/*
 * The queue item with its command, and the push job, in one statement.  The
 * push job is made as mdm_internal._announce_pushes() makes it (schema/40_push.sql):
 * a pending job that this coalesces into stays locked until commit.
 * $1 device, $2 enrollment, $3 CommandUUID, $4 priority, $5 RequestType, $6 command
 */
static SavedPlan queue_plan = {
	"WITH item AS ("
	"  INSERT INTO mdm.nano_enrollment_queue (device_id, id, command_uuid, priority, request_type, plist)"
	"  VALUES ($1, $2, $3, $4, $5, mdm.jsonb_to_plist(jsonb_build_object("
	"          'CommandUUID', upper($3::text), 'Command', $6)))),"
	/* (the push job in a CTE too: Citus counts a row that met the conflict as inserted) */
	" created AS ("
	" INSERT INTO mdm.push_jobs AS j (device_id, enrollment_id)"
	" SELECT e.device_id, e.id FROM mdm.nano_enrollments e"
	"  WHERE e.device_id = $1 AND e.id = $2 AND e.enabled AND e.token_invalid_at IS NULL"
	" ON CONFLICT (device_id, enrollment_id) WHERE state = 'pending'"
	"  DO UPDATE SET not_before = j.not_before WHERE false"
	" RETURNING 1)"
	" SELECT 1 FROM created",
	6, {TEXTOID, TEXTOID, UUIDOID, INT4OID, TEXTOID, JSONBOID}
};

/* The push job alone, as queue_plan makes it.  $1 device, $2 enrollment */
static SavedPlan push_plan = {
	"INSERT INTO mdm.push_jobs AS j (device_id, enrollment_id)"
	" SELECT e.device_id, e.id FROM mdm.nano_enrollments e"
	"  WHERE e.device_id = $1 AND e.id = $2 AND e.enabled AND e.token_invalid_at IS NULL"
	" ON CONFLICT (device_id, enrollment_id) WHERE state = 'pending'"
	"  DO UPDATE SET not_before = j.not_before WHERE false",
	2, {TEXTOID, TEXTOID}
};

static SavedPlan general_plan = {
	"SELECT mdm_internal._enqueue($1, $2, $3, $4, $5)", 5, {TEXTARRAYOID, JSONBOID, INT4OID, BOOLOID, BOOLOID}
};

/* The RequestType of a plain inner command dictionary, or NULL. */
static char *
plain_request_type(Jsonb *cmd)
{
	JsonbValue	k;
	JsonbValue *v;

	if (!JB_ROOT_IS_OBJECT(cmd))
		return NULL;
	k.type = jbvString;
	k.val.string.val = "Command";
	k.val.string.len = strlen("Command");
	if (findJsonbValueFromContainer(&cmd->root, JB_FOBJECT, &k) != NULL)
		return NULL;
	k.val.string.val = "RequestType";
	k.val.string.len = strlen("RequestType");
	v = findJsonbValueFromContainer(&cmd->root, JB_FOBJECT, &k);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* The only enrollment ID of a one-element array, or NULL. */
static text *
single_id(ArrayType *ids)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(ids) != 1 || ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids)) != 1)
		return NULL;
	deconstruct_array(ids, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	return (n == 1 && !nulls[0]) ? DatumGetTextPP(elems[0]) : NULL;
}

/* A version 4 UUID, as gen_random_uuid() makes it, in the caller's memory. */
static pg_uuid_t *
random_uuid(void)
{
	pg_uuid_t  *u = SPI_palloc(sizeof(pg_uuid_t));

	if (!pg_strong_random(u->data, UUID_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random values")));
	u->data[6] = (u->data[6] & 0x0f) | 0x40;	/* version 4 */
	u->data[8] = (u->data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	return u;
}

/*
 * Queue to one target; returns false (having written nothing) when the
 * general path must decide.
 */
static bool
enqueue_one(text *id, Jsonb *command, const char *rtype, int32 priority, bool allow_unknown,
			pg_uuid_t **result)
{
	PlanArgs	a;
	Datum		device;
	bool		isnull;
	pg_uuid_t  *cmd;

	plan_args_init(&a);
	plan_arg(&a, 0, PointerGetDatum(id), false);
	plan_arg_text(&a, 1, rtype);
	if (run_plan(&target_plan, &a, false, 1) != 1)
		return false;			/* unknown ID */
	if (result_bool(2) ? !result_bool(3) : !allow_unknown)
		return false;			/* RequestType unknown or not for this channel */
	device = result_datum(1, &isnull);

	cmd = random_uuid();
	plan_args_init(&a);
	plan_arg(&a, 0, device, false);
	plan_arg(&a, 1, PointerGetDatum(id), false);
	plan_arg(&a, 2, UUIDPGetDatum(cmd), false);
	plan_arg(&a, 3, Int32GetDatum(priority), false);
	plan_arg_text(&a, 4, rtype);
	plan_arg(&a, 5, JsonbPGetDatum(command), false);
	if (run_plan(&queue_plan, &a, false, 0) > 0)
		Async_Notify("mdm_push", "");	/* one per transaction, however many */
	*result = cmd;
	return true;
}

/* What the direct path reads of the target (enqueue_direct()). */
typedef struct Target
{
	Datum		device_id;		/* copied */
	char	   *type;
	bool		pushable;		/* enabled, token not invalidated */
	char	   *model;			/* NULL: no device row or no model */
	bool		rt_found;
	bool		rt[8];			/* the RequestType's channel booleans, see rt_cols */
	char	   *rt_ue[2];		/* macos_user_enrollment, ios_user_enrollment */
} Target;

static const char *const rt_cols[] = {
	"macos_device_channel", "macos_user_channel", "ios_device_channel",
	"shared_ipad_device_channel", "shared_ipad_user_channel", "tvos_supported",
	"visionos_supported", "watchos_supported"
};
enum
{
	RT_MACOS_DEVICE, RT_MACOS_USER, RT_IOS_DEVICE, RT_SHARED_IPAD_DEVICE,
	RT_SHARED_IPAD_USER, RT_TVOS, RT_VISIONOS, RT_WATCHOS
};

static char *
text_column(TupleTableSlot *slot, Oid relid, const char *name)
{
	bool		isnull;
	Datum		d = key_lookup_column(slot, relid, name, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

static void
read_enrollment(TupleTableSlot *slot, Oid relid, void *arg)
{
	Target	   *t = arg;
	bool		isnull;

	t->device_id = datumCopy(key_lookup_column(slot, relid, "device_id", &isnull), false, -1);
	t->type = text_column(slot, relid, "type");
	key_lookup_column(slot, relid, "token_invalid_at", &isnull);
	t->pushable = key_lookup_bool(slot, relid, "enabled") && isnull;
}

static void
read_device(TupleTableSlot *slot, Oid relid, void *arg)
{
	((Target *) arg)->model = text_column(slot, relid, "model");
}

static void
read_request_type(TupleTableSlot *slot, Oid relid, void *arg)
{
	Target	   *t = arg;

	t->rt_found = true;
	for (int i = 0; i < (int) lengthof(rt_cols); i++)
		t->rt[i] = key_lookup_bool(slot, relid, rt_cols[i]);
	t->rt_ue[0] = text_column(slot, relid, "macos_user_enrollment");
	t->rt_ue[1] = text_column(slot, relid, "ios_user_enrollment");
}

/* mdm.device_platform(model) (schema/30_queue.sql): its prefixes, or NULL */
static const char *
platform(const char *model)
{
	static const struct
	{
		const char *prefix;
		const char *platform;
	}			prefixes[] = {
		{"Mac", "macOS"}, {"iMac", "macOS"}, {"VirtualMac", "macOS"},
		{"iPhone", "iOS"}, {"iPad", "iOS"}, {"iPod", "iOS"},
		{"AppleTV", "tvOS"}, {"RealityDevice", "visionOS"}, {"Watch", "watchOS"}
	};

	if (model == NULL)
		return NULL;
	for (int i = 0; i < (int) lengthof(prefixes); i++)
		if (strncmp(model, prefixes[i].prefix, strlen(prefixes[i].prefix)) == 0)
			return prefixes[i].platform;
	return NULL;
}

static bool
not_forbidden(const char *rule)
{
	return rule == NULL || strcmp(rule, "forbidden") != 0;
}

/* Does the target's channel take the RequestType?  target_plan's CASE. */
static bool
channel_takes(const Target *t)
{
	const char *p;
	bool		device;

	if (strcmp(t->type, "User") == 0)
		return t->rt[RT_MACOS_USER];
	if (strcmp(t->type, "Shared iPad") == 0)
		return t->rt[RT_SHARED_IPAD_USER];
	if (strcmp(t->type, "User Enrollment") == 0)
		return t->rt[RT_MACOS_USER] && not_forbidden(t->rt_ue[0]);
	p = platform(t->model);
	if (p == NULL)
		device = t->rt[RT_MACOS_DEVICE] || t->rt[RT_IOS_DEVICE] ||
			t->rt[RT_SHARED_IPAD_DEVICE] || t->rt[RT_TVOS] || t->rt[RT_VISIONOS] ||
			t->rt[RT_WATCHOS];
	else if (strcmp(p, "macOS") == 0)
		device = t->rt[RT_MACOS_DEVICE];
	else if (strcmp(p, "iOS") == 0)
		device = t->rt[RT_IOS_DEVICE] || t->rt[RT_SHARED_IPAD_DEVICE];
	else if (strcmp(p, "tvOS") == 0)
		device = t->rt[RT_TVOS];
	else if (strcmp(p, "visionOS") == 0)
		device = t->rt[RT_VISIONOS];
	else
		device = t->rt[RT_WATCHOS];
	return device && (strcmp(t->type, "User Enrollment (Device)") != 0 ||
					  not_forbidden(t->rt_ue[p != NULL && strcmp(p, "iOS") == 0 ? 1 : 0]));
}

/*
 * The plist of the queue item: mdm.jsonb_to_plist(jsonb_build_object(
 * 'CommandUUID', upper(uuid::text), 'Command', command)), as queue_plan
 * makes it, packed as the assignment cast to mdm.raw_message packs it.
 */
static Datum
item_plist(pg_uuid_t *uuid, Jsonb *command)
{
	JsonbParseState *state = NULL;
	JsonbValue	k;
	JsonbValue	v;
	char	   *u = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(uuid)));

	for (char *c = u; *c; c++)
		*c = pg_toupper((unsigned char) *c);
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	k.val.string.val = "CommandUUID";
	k.val.string.len = strlen("CommandUUID");
	pushJsonbValue(&state, WJB_KEY, &k);
	v.type = jbvString;
	v.val.string.val = u;
	v.val.string.len = strlen(u);
	pushJsonbValue(&state, WJB_VALUE, &v);
	k.val.string.val = "Command";
	k.val.string.len = strlen("Command");
	pushJsonbValue(&state, WJB_KEY, &k);
	v.type = jbvBinary;
	v.val.binary.data = &command->root;
	v.val.binary.len = VARSIZE(command) - VARHDRSZ;
	pushJsonbValue(&state, WJB_VALUE, &v);
	/* packed as the column's type (mdm.raw_message) packs it on assignment */
	return raw_message_pack(jsonb_to_plist_bytes(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL))));
}

/*
 * The push job's ID: its column's default, nextval('mdm.push_jobs_id_seq'),
 * taken whether the job is written or meets a pending one, as the
 * statement takes it.
 */
static Datum
push_job_id(void)
{
	Oid			seq = get_relname_relid("push_jobs_id_seq", get_namespace_oid("mdm", false));

	if (!OidIsValid(seq))
		elog(ERROR, "sequence \"mdm.push_jobs_id_seq\" does not exist");
	return DirectFunctionCall1(nextval_oid, ObjectIdGetDatum(seq));
}

/*
 * mdm_internal._queue_check_bindings(), the queue's statement trigger
 * (schema/60_profiles.sql); looked up again when the one kept is gone (the
 * extension made again).
 */
static Oid
check_bindings_fn(void)
{
	static Oid	fn = InvalidOid;
	char	   *name = OidIsValid(fn) ? get_func_name(fn) : NULL;

	if (name == NULL || strcmp(name, "_queue_check_bindings") != 0)
		fn = LookupFuncName(list_make2(makeString("mdm_internal"),
									   makeString("_queue_check_bindings")),
							0, NULL, true);
	return fn;
}

typedef enum
{
	DIRECT_DONE,				/* queued */
	DIRECT_GENERAL,				/* nothing written: mdm_internal._enqueue() decides */
	DIRECT_STATEMENT			/* nothing written: enqueue_one()'s statements do it */
} DirectResult;

/*
 * enqueue_one() on a single server without statements: the target read by
 * key (its enrollment locked FOR KEY SHARE as target_plan locks it, then
 * its device and the RequestType's rule), the queue item and the push job
 * inserted straight into the tables (row_insert_checked()), the push job
 * as queue_plan's ON CONFLICT makes it (a pending one of the channel is
 * locked, and nothing written).
 *
 * The queue's statement trigger check_bindings_insert is not fired for
 * the item: it checks the items whose command is an InstallProfile in
 * mdm.nano_commands, and this item keeps its own command (request_type and
 * plist set, which is what a poll hands out: connect_path.c reads
 * nano_commands only for an item without a plist), which the table's CHECK
 * keeps from being an InstallProfile.  Any other INSERT trigger, a rule, a
 * CHECK that fails and the like leave the insert to the statements
 * (row_insert.c).
 */
static DirectResult
enqueue_direct(text *id, Jsonb *command, const char *rtype, int32 priority, bool allow_unknown,
			   pg_uuid_t **result)
{
	static const char *const item_cols[] = {
		"device_id", "id", "command_uuid", "priority", "active", "created_at", "sent_count",
		"request_type", "plist"
	};
	static const char *const job_cols[] = {
		"device_id", "id", "enrollment_id", "state", "created_at", "not_before", "attempts"
	};
	char	   *idstr = text_to_cstring(id);
	char	   *colon = strchr(idstr, ':');
	Target		t;
	Snapshot	snapshot;
	Datum		keys[2];
	Datum		values[9];
	bool		nulls[9];
	RowInsertRules rules;
	pg_uuid_t  *cmd;

	memset(&t, 0, sizeof(t));
	if (colon)
		*colon = '\0';			/* split_part(id, ':', 1), as target_plan */
	keys[0] = CStringGetTextDatum(idstr);
	keys[1] = PointerGetDatum(id);
	snapshot = key_lookup_begin();
	if (!key_lookup_locked(snapshot, "nano_enrollments", "nano_enrollments_pkey", 2, keys,
						   LockTupleKeyShare, read_enrollment, &t))
	{
		key_lookup_end(snapshot);
		return DIRECT_GENERAL;	/* unknown ID */
	}
	keys[0] = t.device_id;
	key_lookup(snapshot, "nano_devices", "nano_devices_pkey", 1, keys, read_device, &t);
	keys[0] = CStringGetTextDatum(rtype);
	key_lookup(snapshot, "apple_request_types", "apple_request_types_pkey", 1, keys,
			   read_request_type, &t);
	if (t.rt_found ? !channel_takes(&t) : !allow_unknown)
	{
		key_lookup_end(snapshot);
		return DIRECT_GENERAL;	/* RequestType unknown or not for this channel */
	}

	cmd = random_uuid();
	values[0] = t.device_id;
	values[1] = PointerGetDatum(id);
	values[2] = UUIDPGetDatum(cmd);
	values[3] = Int32GetDatum(priority);
	values[4] = BoolGetDatum(true);
	values[5] = TimestampTzGetDatum(GetCurrentTimestamp());	/* clock_timestamp() */
	values[6] = Int32GetDatum(0);
	values[7] = CStringGetTextDatum(rtype);
	values[8] = item_plist(cmd, command);
	memset(nulls, 0, sizeof(nulls));
	memset(&rules, 0, sizeof(rules));
	rules.skip_trigger_fn = check_bindings_fn();
	if (row_insert_checked("nano_enrollment_queue", 9, item_cols, values, nulls, snapshot,
						   &rules) != ROW_INSERT_DONE)
	{
		key_lookup_end(snapshot);
		return DIRECT_STATEMENT;
	}
	if (t.pushable)
	{
		values[0] = t.device_id;
		values[1] = push_job_id();
		values[2] = PointerGetDatum(id);
		values[3] = CStringGetTextDatum("pending");
		values[4] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());	/* now() */
		values[5] = values[4];
		values[6] = Int32GetDatum(0);
		memset(&rules, 0, sizeof(rules));
		rules.arbiter = "push_jobs_one_pending";
		switch (row_insert_checked("push_jobs", 7, job_cols, values, nulls, snapshot, &rules))
		{
			case ROW_INSERT_DONE:
				Async_Notify("mdm_push", "");	/* one per transaction, however many */
				break;
			case ROW_INSERT_CONFLICT:
				break;
			case ROW_INSERT_STATEMENT:
				{
					/* the item is written: the job as queue_plan writes it */
					PlanArgs	a;

					plan_args_init(&a);
					plan_arg(&a, 0, t.device_id, false);
					plan_arg(&a, 1, PointerGetDatum(id), false);
					if (run_plan(&push_plan, &a, false, 0) > 0)
						Async_Notify("mdm_push", "");
				}
				break;
		}
	}
	key_lookup_end(snapshot);
	*result = cmd;
	return DIRECT_DONE;
}

/*
 * enqueue_one() on the target device's local shards when they are here
 * (distributed: shard_local.c).
 */
static bool
enqueue_one_local(text *id, Jsonb *command, const char *rtype, int32 priority,
				  bool allow_unknown, pg_uuid_t **result)
{
	char	   *device;
	char	   *colon;
	ShardLocalState saved;
	volatile bool done = false;

	if (!mdm_distributed())
	{
		switch (enqueue_direct(id, command, rtype, priority, allow_unknown, result))
		{
			case DIRECT_DONE:
				return true;
			case DIRECT_GENERAL:
				return false;
			case DIRECT_STATEMENT:
				return enqueue_one(id, command, rtype, priority, allow_unknown, result);
		}
	}
	device = text_to_cstring(id);
	colon = strchr(device, ':');
	if (colon)
		*colon = '\0';			/* split_part(id, ':', 1), as target_plan */
	saved = shard_local_enter(device);
	PG_TRY();
	{
		done = enqueue_one(id, command, rtype, priority, allow_unknown, result);
	}
	PG_FINALLY();
	{
		shard_local_exit(saved);
	}
	PG_END_TRY();
	return done;
}

/*
 * The context line of errors raised under mdm.enqueue(): the frame a
 * PL/pgSQL function would have had, so that an error names the call the
 * caller made (src/error_context.c keeps it and trims what ran inside).
 */
static void
enqueue_error_context(void *arg)
{
	errcontext("C function mdm.enqueue(text[],jsonb,integer,boolean,boolean)");
}

/*
 * mdm.enqueue(enrollment_ids text[], command jsonb, priority integer,
 *             allow_unknown_request_type boolean, push boolean) RETURNS uuid
 * (push => false, which writes no push job, takes the general path)
 */
PG_FUNCTION_INFO_V1(mdm_enqueue);
Datum
mdm_enqueue(PG_FUNCTION_ARGS)
{
	/* (detoasted once: the general path gets this copy, not the value as passed) */
	ArrayType  *ids = PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0);
	text	   *id = ids ? single_id(ids) : NULL;
	Jsonb	   *command = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	char	   *rtype = command ? plain_request_type(command) : NULL;
	pg_uuid_t  *result = NULL;
	PlanArgs	a;
	bool		isnull;
	ErrorContextCallback errcb;

	errcb.callback = enqueue_error_context;
	errcb.arg = NULL;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (id == NULL || rtype == NULL || PG_ARGISNULL(2) || PG_ARGISNULL(3) ||
		PG_ARGISNULL(4) || !PG_GETARG_BOOL(4) ||
		strcmp(rtype, "InstallProfile") == 0 ||
		!enqueue_one_local(id, command, rtype, PG_GETARG_INT32(2), PG_GETARG_BOOL(3), &result))
	{
		plan_args_init(&a);
		for (int i = 0; i < 5; i++)
			plan_arg(&a, i, PG_ARGISNULL(i) ? (Datum) 0 :
					 i == 0 ? PointerGetDatum(ids) : PG_GETARG_DATUM(i), PG_ARGISNULL(i));
		if (run_plan(&general_plan, &a, false, 1) != 1)
			elog(ERROR, "mdm_internal._enqueue returned no row");
		result = (pg_uuid_t *) DatumGetPointer(SPI_datumTransfer(result_datum(1, &isnull), false, UUID_LEN));
		if (isnull)
			elog(ERROR, "mdm_internal._enqueue returned no CommandUUID");
	}
	SPI_finish();
	error_context_stack = errcb.previous;
	PG_RETURN_UUID_P(result);
}
