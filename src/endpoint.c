/*
 * endpoint.c
 *		The calls a front end makes for each device request:
 *		mdm.checkin() for the CheckInURL and mdm.connect() for the ServerURL.
 *
 * Both do the same steps and differ only in the path that handles them:
 *   1. read the device identity (identity.c; a DER certificate is only
 *      hashed here);
 *   2. read the plist (plist_jsonb.c: size, depth and node limits);
 *   3. decode the message (mdm_message.c: identity, message type, key types)
 *      and work out the enrollment IDs;
 *   4. convert the tree to jsonb and free it;
 *   5. run the path in C, checkin_dispatch() (checkin_path.c) or
 *      report_dispatch() (connect_path.c), whose statements are planned once
 *      per backend (spi_plans.c), and return its mdm.reply.
 * Any error before or inside the path rolls the whole call back, so bad
 * input stores nothing.  The helpers both paths share are at the end.
 */
#include "mdm_paths.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "mdm_message.h"
#include "shard_local.h"
#include "spi_plans.h"

/* The request's IDs and types from a decoded message, in server encoding. */
static void
fill_request(MdmRequest *r, const MdmMessage *msg)
{
	r->device_id = plist_text_to_server(msg->device_key, strlen(msg->device_key));
	r->user_id = NULL;
	if (msg->user_key != NULL)
		r->user_id = psprintf("%s:%s", r->device_id,
							  plist_text_to_server(msg->user_key, strlen(msg->user_key)));
	r->enrollment_id = r->user_id ? r->user_id : r->device_id;
	r->type = mdm_enrollment_type_name(msg->enrollment_type);
	r->message_type = plist_text_to_server(msg->message_type, strlen(msg->message_type));
	r->command_uuid = msg->command_uuid ?
		plist_text_to_server(msg->command_uuid, strlen(msg->command_uuid)) : NULL;
}

/* The mdm.reply composite of a reply. */
static Datum
reply_datum(FunctionCallInfo fcinfo, const MdmReply *reply)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "mdm.reply is not a composite type");
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = Int32GetDatum(reply->status);
	values[1] = PointerGetDatum(reply->content_type);
	nulls[1] = reply->content_type == NULL;
	values[2] = PointerGetDatum(reply->body);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

static Datum
handle_message(FunctionCallInfo fcinfo, MdmMessageKind kind)
{
	bytea	   *body;
	PlistHolder *h;
	MdmMessage	msg;
	PlistError	err;
	MdmRequest	r;
	MdmReply	reply;
	ShardLocalState saved;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("message must not be null")));
	body = PG_GETARG_BYTEA_PP(0);
	check_message_size(VARSIZE_ANY_EXHDR(body));

	memset(&r, 0, sizeof(r));
	r.raw = body;
	r.signature = PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2);
	/* who sent it, before anything of it is parsed */
	read_identity(body, PG_ARGISNULL(1) ? NULL : PG_GETARG_BYTEA_PP(1), r.signature, &r.id);

	h = plist_parse(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body));
	if (!mdm_message_decode(h->tree, kind, &msg, &err))
		report_plist_error(&err);
	fill_request(&r, &msg);
	enrollment_id_remember(body, kind == MDM_REPORT, r.enrollment_id);
	r.msg = plist_tree_to_jsonb(h);
	plist_release(h);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* distributed, on the device's local shards when they are here */
	saved = shard_local_enter(r.device_id);
	PG_TRY();
	{
		if (kind == MDM_CHECKIN)
			checkin_dispatch(&r, &reply);
		else
			report_dispatch(&r, &reply);
	}
	PG_FINALLY();
	{
		shard_local_exit(saved);
	}
	PG_END_TRY();
	SPI_finish();
	PG_RETURN_DATUM(reply_datum(fcinfo, &reply));
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

/* An empty reply with this status. */
void
reply_empty(MdmReply *reply, int32 status)
{
	reply->status = status;
	reply->content_type = NULL;
	reply->body = (bytea *) SPI_palloc(VARHDRSZ);
	SET_VARSIZE(reply->body, VARHDRSZ);
}

/*
 * The reply of the last statement: one row (status, content_type, body),
 * copied out of SPI memory.
 */
void
reply_from_result(MdmReply *reply)
{
	bool		isnull;
	Datum		d;

	d = result_datum(1, &isnull);
	if (isnull)
		elog(ERROR, "handler returned no status");
	reply->status = DatumGetInt32(d);
	d = result_datum(2, &isnull);
	reply->content_type = isnull ? NULL : (text *) DatumGetPointer(SPI_datumTransfer(d, false, -1));
	d = result_datum(3, &isnull);
	if (isnull)
		reply_empty(reply, reply->status);
	else
		reply->body = (bytea *) DatumGetPointer(SPI_datumTransfer(d, false, -1));
}

/*
 * The identity is not the one bound to the device (or none was bound, or
 * it has expired): parse the certificate, then have mdm_internal._check_identity()
 * refuse it, or bind it on first use (schema/70_security.sql).
 */
void
check_identity_sql(MdmRequest *r, bool authenticate)
{
	static SavedPlan plan = {
		"SELECT mdm_internal._check_identity($1, $2, $3, $4, $5)", 5,
		{TEXTOID, BOOLOID, BYTEAOID, BYTEAOID, TIMESTAMPTZOID}
	};
	PlanArgs	a;

	identity_complete(&r->id);
	plan_args_init(&a);
	plan_arg_text(&a, 0, r->device_id);
	plan_arg(&a, 1, BoolGetDatum(authenticate), false);
	plan_arg(&a, 2, PointerGetDatum(r->id.der), r->id.der == NULL);
	plan_arg(&a, 3, PointerGetDatum(r->id.sha256), r->id.der == NULL);
	plan_arg(&a, 4, TimestampTzGetDatum(r->id.not_after), r->id.der == NULL);
	run_plan(&plan, &a, false, 1);
}

/* The value of a key at the top level of the message (a dictionary), or NULL. */
JsonbValue *
msg_value(Jsonb *msg, const char *key)
{
	JsonbValue	k;

	if (!JB_ROOT_IS_OBJECT(msg))
		return NULL;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(&msg->root, JB_FOBJECT, &k);
}

/* Does the message have this key at its top level? */
bool
msg_has_key(Jsonb *msg, const char *key)
{
	return msg_value(msg, key) != NULL;
}
