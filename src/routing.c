/*
 * routing.c
 *		The device a check-in or a command report comes from, found before the
 *		call is made: mdm.message_device_id() and mdm.report_device_id().
 *
 * A front end passes the result as the first argument of
 * mdm.checkin_routed() / mdm.connect_routed().  On a single server that is
 * all it does; on Citus those functions are distributed by that argument,
 * and as these two are IMMUTABLE the planner computes the device ID from the
 * message while planning, so Citus sends the whole call to the worker that
 * holds the device (docs/citus.md).  They read the message exactly as
 * mdm.checkin() and mdm.connect() do, so bad input fails here with the
 * same error it would get there.
 */
#include "mdm_user.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "mdm_message.h"

static Datum
device_of(FunctionCallInfo fcinfo, MdmMessageKind kind)
{
	bytea	   *body = PG_GETARG_BYTEA_PP(0);
	PlistHolder *h;
	MdmMessage	msg;
	PlistError	err;
	text	   *device_id;

	check_message_size(VARSIZE_ANY_EXHDR(body));
	h = plist_parse(VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body));
	if (!mdm_message_decode(h->tree, kind, &msg, &err))
		report_plist_error(&err);
	device_id = cstring_to_text(plist_text_to_server(msg.device_key, strlen(msg.device_key)));
	plist_release(h);
	PG_RETURN_TEXT_P(device_id);
}

/* mdm.message_device_id(message bytea) RETURNS text: of a check-in */
PG_FUNCTION_INFO_V1(mdm_message_device_id);
Datum
mdm_message_device_id(PG_FUNCTION_ARGS)
{
	return device_of(fcinfo, MDM_CHECKIN);
}

/* mdm.report_device_id(message bytea) RETURNS text: of a command report */
PG_FUNCTION_INFO_V1(mdm_report_device_id);
Datum
mdm_report_device_id(PG_FUNCTION_ARGS)
{
	return device_of(fcinfo, MDM_REPORT);
}
