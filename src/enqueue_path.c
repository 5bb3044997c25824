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
 * row written is the target device's: under Citus, one worker.
 *
 * Only the plain case takes this path: one enrollment ID, the inner
 * command dictionary with a RequestType other than InstallProfile (whose
 * profile is checked at enqueue), non-NULL options, and a target that
 * exists and whose channel takes the command.  Everything else, errors
 * included, goes to mdm_internal._enqueue(), so the errors and their order are
 * the same.  The writes are the rows mdm_internal._enqueue() writes for one target.
 */
#include "mdm_user.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

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

/*
 * enqueue_one() on the target device's local shards when they are here
 * (distributed: shard_local.c).
 */
static bool
enqueue_one_local(text *id, Jsonb *command, const char *rtype, int32 priority,
				  bool allow_unknown, pg_uuid_t **result)
{
	char	   *device = text_to_cstring(id);
	char	   *colon = strchr(device, ':');
	ShardLocalState saved;
	volatile bool done = false;

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
