/*
 * mdm_user.h
 *		Declarations shared by the server-side C files of mdm_user.
 *
 * Settings (GUCs) are defined in mdm_user.c; each concern's file exports
 * the few helpers other files call.
 */
#ifndef MDM_USER_H
#define MDM_USER_H

#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "plist_read.h"

/* settings, see mdm_user.c and docs/operations.md */
extern int	mdm_max_message_bytes;
extern int	mdm_max_nesting_depth;
extern int	mdm_max_plist_nodes;
extern int	mdm_max_identity_bytes;
extern int	mdm_user_authenticate;
extern char *mdm_declarative_management_handler;
extern char *mdm_get_token_handler;
extern int	mdm_history_retention;
extern int	mdm_push_expiration;
extern int	mdm_push_claim_timeout;
extern int	mdm_push_retry_base;
extern int	mdm_push_retry_max;
extern int	mdm_push_max_attempts;
extern int	mdm_push_fanout_threshold;
extern int	mdm_repush_interval;
extern bool mdm_require_identity;
extern int	mdm_default_payload_scope;
extern int	mdm_user_channel_wait_timeout;
extern int	mdm_pending_command_lifetime;
extern int	mdm_checkin_log;
extern bool mdm_events;
extern int	mdm_events_retention;
extern int	mdm_event_claim_timeout;
extern int	mdm_event_retry_base;
extern int	mdm_event_retry_max;

/* mdm.checkin_log values */
#define MDM_CHECKIN_LOG_ALL 0
#define MDM_CHECKIN_LOG_NONE 1

/* raw_message.c: a message as received, packed as mdm.raw_message keeps it */
extern Datum raw_message_pack(bytea *raw);
extern bytea *raw_message_unpack(Datum packed);

/* error_context.c: mdm.error_context trims the helper chain from errors */
#define MDM_ERROR_CONTEXT_API 0
#define MDM_ERROR_CONTEXT_FULL 1
extern int	mdm_error_context;
extern void mdm_install_error_context_hook(void);

/*
 * plist_jsonb.c: plist bytes (XML or binary) to a libplist tree and to
 * jsonb; everything raises on bad input.  A PlistHolder owns the tree and
 * any libplist iterator or key copy in use; it lives in its own memory
 * context, whose reset callback frees them on every path.
 */
typedef struct PlistHolder
{
	MemoryContext cxt;
	plist_t		tree;
	void	   *iter;			/* plist_dict_iter / plist_array_iter */
	char	   *key;			/* key copy from plist_dict_next_item */
	int64		bytes;			/* string, key and data bytes converted */
} PlistHolder;

extern PlistHolder *plist_parse(const char *data, size_t len);
extern Jsonb *plist_tree_to_jsonb(PlistHolder *h);
extern void plist_release(PlistHolder *h);
extern Jsonb *plist_bytes_to_jsonb(const char *data, size_t len);
extern void check_message_size(size_t len);
extern char *plist_text_to_server(const char *s, size_t len);
extern void report_plist_error(const PlistError *err) pg_attribute_noreturn();

/*
 * resources.c: a holder for foreign allocations in a new memory context
 * whose reset callback is release(holder); OpenSSL helpers.
 */
extern void *holder_create(const char *name, Size size, void (*release) (void *),
						   MemoryContext *cxt);
extern const char *openssl_error_text(void);
extern bytea *bytes_to_bytea(const void *data, size_t len);

/* identity.c: the device identity of a request (certificate or Mdm-Signature) */
typedef struct RequestIdentity
{
	bytea	   *der;			/* the certificate in DER; NULL if none given */
	bytea	   *sha256;			/* its SHA-256 */
	TimestampTz not_after;		/* unknown while unparsed */
	bool		unparsed;		/* DER bytes as given, not parsed yet */
} RequestIdentity;

extern void read_identity(bytea *body, bytea *cert, text *signature, RequestIdentity *out);
extern void identity_complete(RequestIdentity *id);

/* plist_write.c: jsonb to an XML plist */
extern bytea *jsonb_to_plist_bytes(Jsonb *jb);

#endif							/* MDM_USER_H */
