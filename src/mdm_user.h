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

/* settings, see mdm_user.c and docs/operations.md */
extern int	mdm_max_message_bytes;
extern int	mdm_max_nesting_depth;
extern int	mdm_max_plist_nodes;

/* plist_jsonb.c: plist bytes (XML or binary) to jsonb; raises on bad input */
extern Jsonb *plist_bytes_to_jsonb(const char *data, size_t len);
extern void check_message_size(size_t len);

/* plist_write.c: jsonb to an XML plist */
extern bytea *jsonb_to_plist_bytes(Jsonb *jb);

#endif							/* MDM_USER_H */
