/*
 * mdm_paths.h
 *		The per-message paths in C: what endpoint.c hands to the check-in
 *		dispatcher (checkin_path.c) and the report handler (connect_path.c),
 *		and the reply they give back.
 */
#ifndef MDM_PATHS_H
#define MDM_PATHS_H

#include "mdm_user.h"

#include "executor/tuptable.h"

/* One decoded device request. */
typedef struct MdmRequest
{
	char	   *device_id;		/* device channel ID: every statement filters by it */
	char	   *enrollment_id;	/* device_id, or device_id:user part */
	char	   *user_id;		/* user channels, else NULL */
	const char *type;			/* enrollment type name */
	char	   *message_type;	/* MessageType, or Status of a report */
	char	   *command_uuid;	/* reports: CommandUUID as sent, or NULL */
	Jsonb	   *msg;			/* the message as jsonb */
	bytea	   *raw;			/* the message as received */
	RequestIdentity id;			/* device identity; id.der NULL if none */
	text	   *signature;		/* Mdm-Signature, or NULL */
} MdmRequest;

/* An mdm.reply: HTTP status, Content-Type (NULL for none), body. */
typedef struct MdmReply
{
	int32		status;
	text	   *content_type;
	bytea	   *body;
} MdmReply;

/* checkin_path.c */
extern void checkin_dispatch(MdmRequest *r, MdmReply *reply);

/* enrollment_id.c: the last message decoded and its ID, for mdm.message_enrollment_id() */
extern void enrollment_id_remember(const bytea *body, bool report, const char *enrollment_id);

/* connect_path.c */
extern void report_dispatch(MdmRequest *r, MdmReply *reply);

/* event_path.c: the webhook event of a message (mdm.events on) */
extern void record_event(MdmRequest *r, bool report);

/* common to both: inside an SPI connection */
extern void reply_empty(MdmReply *reply, int32 status);
extern void reply_from_result(MdmReply *reply);
extern void check_identity_sql(MdmRequest *r, bool authenticate);
extern bool bound_identity_ok(MdmRequest *r);
extern JsonbValue *msg_value(Jsonb *msg, const char *key);
extern bool msg_has_key(Jsonb *msg, const char *key);
extern void coalesce_bool(TupleTableSlot *old, Oid relid, Jsonb *msg, const char *key,
						  const char *column, Datum *value, bool *isnull);

#endif							/* MDM_PATHS_H */
