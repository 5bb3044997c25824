/*
 * endpoint.c
 *		The calls a front end makes for each device request:
 *		mdm.checkin() for the CheckInURL and mdm.connect() for the ServerURL.
 *
 * Both do the same four steps and differ only in the SQL handler they call:
 *   1. read the plist (plist_jsonb.c: size, depth and node limits);
 *   2. decode the message (mdm_message.c: identity, message type, key types)
 *      and work out the enrollment IDs;
 *   3. convert the tree to jsonb and free it;
 *   4. run the handler, mdm._handle_checkin() or mdm._handle_report(),
 *      through a plan prepared once per backend, and return its mdm.reply.
 * Any error before or inside the handler rolls the whole call back, so bad
 * input stores nothing.
 */
#include "mdm_user.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "mdm_message.h"

#define HANDLER_NARGS 12

/* The handler's arguments, in the order of its signature. */
typedef struct HandlerArgs
{
	Datum		values[HANDLER_NARGS];
	char		nulls[HANDLER_NARGS];
} HandlerArgs;

static const char *const handler_sql[] = {
	[MDM_CHECKIN] = "SELECT mdm._handle_checkin($1, $2, $3, $4, $5, $7, $8, $9, $10, $11, $12)",
	[MDM_REPORT] = "SELECT mdm._handle_report($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
};

static SPIPlanPtr handler_plans[2];

static void
set_arg(HandlerArgs *a, int i, Datum value, bool isnull)
{
	a->values[i] = value;
	a->nulls[i] = isnull ? 'n' : ' ';
}

static void
set_text_arg(HandlerArgs *a, int i, const char *s)
{
	set_arg(a, i, s ? CStringGetTextDatum(s) : (Datum) 0, s == NULL);
}

/*
 * Fill the handler arguments from a decoded message:
 * $1 device_id, $2 enrollment_id, $3 user_id (user channels), $4 enrollment
 * type, $5 message type (MessageType or Status), $6 CommandUUID, $7 message
 * jsonb, $8 raw bytes, $9 identity certificate (DER), $10 its SHA-256,
 * $11 its expiry, $12 Mdm-Signature.
 */
static void
fill_args(HandlerArgs *a, const MdmMessage *msg)
{
	char	   *device_id = plist_text_to_server(msg->device_key, strlen(msg->device_key));
	char	   *user_id = NULL;

	if (msg->user_key != NULL)
		user_id = psprintf("%s:%s", device_id,
						   plist_text_to_server(msg->user_key, strlen(msg->user_key)));
	set_text_arg(a, 0, device_id);
	set_text_arg(a, 1, user_id ? user_id : device_id);
	set_text_arg(a, 2, user_id);
	set_text_arg(a, 3, mdm_enrollment_type_name(msg->enrollment_type));
	set_text_arg(a, 4, plist_text_to_server(msg->message_type, strlen(msg->message_type)));
	set_text_arg(a, 5, msg->command_uuid ?
				 plist_text_to_server(msg->command_uuid, strlen(msg->command_uuid)) : NULL);
}

static SPIPlanPtr
handler_plan(MdmMessageKind kind)
{
	static const Oid argtypes[HANDLER_NARGS] = {
		TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		JSONBOID, BYTEAOID, BYTEAOID, BYTEAOID, TIMESTAMPTZOID, TEXTOID
	};

	if (handler_plans[kind] == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(handler_sql[kind], HANDLER_NARGS,
									   (Oid *) argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", handler_sql[kind],
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		handler_plans[kind] = plan;
	}
	return handler_plans[kind];
}

/* Run the handler and return its reply, copied out of SPI memory. */
static Datum
run_handler(MdmMessageKind kind, HandlerArgs *a)
{
	int			rc;
	bool		isnull;
	Datum		reply;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_plan(handler_plan(kind), a->values, a->nulls, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "handler query failed: %s", SPI_result_code_string(rc));
	reply = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		elog(ERROR, "handler returned no reply");
	reply = SPI_datumTransfer(reply, false, -1);
	SPI_finish();
	return reply;
}

static Datum
handle_message(FunctionCallInfo fcinfo, MdmMessageKind kind)
{
	bytea	   *body;
	PlistHolder *h;
	MdmMessage	msg;
	PlistError	err;
	HandlerArgs args;
	RequestIdentity id;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("message must not be null")));
	body = PG_GETARG_BYTEA_PP(0);
	check_message_size(VARSIZE_ANY_EXHDR(body));

	h = plist_parse(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body));
	if (!mdm_message_decode(h->tree, kind, &msg, &err))
		report_plist_error(&err);
	fill_args(&args, &msg);

	/* who sent it: a certificate bound to this device is not parsed again */
	read_identity(body, PG_ARGISNULL(1) ? NULL : PG_GETARG_BYTEA_PP(1),
				  PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2),
				  TextDatumGetCString(args.values[0]), &id);
	set_arg(&args, 6, JsonbPGetDatum(plist_tree_to_jsonb(h)), false);
	plist_release(h);

	set_arg(&args, 7, PointerGetDatum(body), false);
	set_arg(&args, 8, PointerGetDatum(id.der), id.der == NULL);
	set_arg(&args, 9, PointerGetDatum(id.sha256), id.der == NULL);
	set_arg(&args, 10, TimestampTzGetDatum(id.not_after), id.der == NULL);
	set_arg(&args, 11, PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2), PG_ARGISNULL(2));

	PG_RETURN_DATUM(run_handler(kind, &args));
}

/*
 * mdm.checkin(message bytea, identity_cert bytea, mdm_signature text)
 *		RETURNS mdm.reply
 */
PG_FUNCTION_INFO_V1(mdm_checkin);
Datum
mdm_checkin(PG_FUNCTION_ARGS)
{
	return handle_message(fcinfo, MDM_CHECKIN);
}

/*
 * mdm.connect(message bytea, identity_cert bytea, mdm_signature text)
 *		RETURNS mdm.reply
 */
PG_FUNCTION_INFO_V1(mdm_connect);
Datum
mdm_connect(PG_FUNCTION_ARGS)
{
	return handle_message(fcinfo, MDM_REPORT);
}
