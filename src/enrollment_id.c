/*
 * enrollment_id.c
 *		mdm.message_enrollment_id(): the enrollment ID of a device message, for
 *		a front end's log line.
 *
 * A front end asks for it in the same statement as the call it makes,
 *   SELECT status, content_type, body, mdm.message_enrollment_id($1, false)
 *   FROM mdm.checkin($1, $2, $3)
 * so that it can log who sent a request without reading the plist itself
 * (docs/front-end.md).  The ID is worked out as mdm.checkin() and
 * mdm.connect() work it out: the device channel's UDID or EnrollmentID, and
 * ":" and the user part on a user channel.  It is only a label: a message
 * that cannot be read or decoded gives NULL, never an error, so that asking
 * for it never changes the outcome of the call beside it.
 *
 * The call beside it has just read the same message: mdm.checkin() and
 * mdm.connect() remember the last message they decoded and its ID
 * (enrollment_id_remember()), and the ID of the very same bytes, read the
 * same way, is given without reading the plist again (about 10 % of a
 * TokenUpdate's server time, docs/performance.md).  The ID is a function of
 * the bytes and the kind alone, so the remembered one is never stale.
 */
#include "mdm_paths.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "mdm_message.h"

/* Messages up to this size are remembered (a check-in is about 1 kB). */
#define REMEMBER_MAX_BYTES 16384

/* The last message mdm.checkin() or mdm.connect() decoded, and its ID. */
static struct
{
	bool		valid;
	bool		report;
	int			max_depth;		/* the limits it was read with */
	int			max_nodes;
	int			max_bytes;
	Size		len;
	char		bytes[REMEMBER_MAX_BYTES];
	char	   *enrollment_id;	/* in TopMemoryContext */
} last;

void
enrollment_id_remember(const bytea *body, bool report, const char *enrollment_id)
{
	Size		len = VARSIZE_ANY_EXHDR(body);

	last.valid = false;
	if (len > REMEMBER_MAX_BYTES)
		return;
	if (last.enrollment_id != NULL)
		pfree(last.enrollment_id);
	last.enrollment_id = MemoryContextStrdup(TopMemoryContext, enrollment_id);
	memcpy(last.bytes, VARDATA_ANY(body), len);
	last.len = len;
	last.report = report;
	last.max_depth = mdm_max_nesting_depth;
	last.max_nodes = mdm_max_plist_nodes;
	last.max_bytes = mdm_max_message_bytes;
	last.valid = true;
}

/* The enrollment ID of a decoded message, in server encoding. */
static text *
enrollment_id_text(const MdmMessage *msg)
{
	char	   *device;

	/* not UTF-8: no ID (plist_text_to_server() would raise) */
	if (!pg_verify_mbstr(PG_UTF8, msg->device_key, (int) strlen(msg->device_key), true) ||
		(msg->user_key != NULL &&
		 !pg_verify_mbstr(PG_UTF8, msg->user_key, (int) strlen(msg->user_key), true)))
		return NULL;
	device = plist_text_to_server(msg->device_key, strlen(msg->device_key));

	if (msg->user_key == NULL)
		return cstring_to_text(device);
	return cstring_to_text(psprintf("%s:%s", device,
									plist_text_to_server(msg->user_key, strlen(msg->user_key))));
}

/*
 * mdm.message_enrollment_id(message bytea, report boolean) RETURNS text:
 * of a check-in (report false) or a command report (true); NULL when the
 * message cannot be read.
 */
PG_FUNCTION_INFO_V1(mdm_message_enrollment_id);
Datum
mdm_message_enrollment_id(PG_FUNCTION_ARGS)
{
	bytea	   *body = PG_GETARG_BYTEA_PP(0);
	bool		report = PG_GETARG_BOOL(1);
	PlistLimits limits;
	PlistError	err;
	MdmMessage	msg;
	plist_t		tree;
	text	   *volatile result = NULL;

	if (VARSIZE_ANY_EXHDR(body) > (size_t) mdm_max_message_bytes)
		PG_RETURN_NULL();
	if (last.valid && last.report == report && last.len == VARSIZE_ANY_EXHDR(body) &&
		last.max_depth == mdm_max_nesting_depth && last.max_nodes == mdm_max_plist_nodes &&
		last.max_bytes == mdm_max_message_bytes &&
		memcmp(last.bytes, VARDATA_ANY(body), last.len) == 0)
		PG_RETURN_TEXT_P(cstring_to_text(last.enrollment_id));
	limits.max_depth = mdm_max_nesting_depth;
	limits.max_nodes = mdm_max_plist_nodes;
	limits.max_bytes = mdm_max_message_bytes;
	/* plist_read() and mdm_message_decode() never raise */
	if (!plist_read((const unsigned char *) VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body),
					&limits, &tree, &err))
		PG_RETURN_NULL();
	PG_TRY();
	{
		if (mdm_message_decode(tree, report ? MDM_REPORT : MDM_CHECKIN, &msg, &err))
			result = enrollment_id_text(&msg);
	}
	PG_FINALLY();
	{
		plist_free(tree);
	}
	PG_END_TRY();
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(result);
}
