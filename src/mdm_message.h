/*
 * mdm_message.h
 *		Decoding MDM messages (check-ins and command reports) from a libplist
 *		tree, without PostgreSQL.
 *
 * The decoder finds who sent a message and checks the keys that mdm_user
 * stores: the enrollment identity (UDID / EnrollmentID, UserID /
 * EnrollmentUserID, UserShortName for Shared iPad), the message type, and
 * the type of every key the handlers read.  Like the plist reader it never
 * raises; it is linked into the fuzz target as well as the server.
 *
 * Strings in an MdmMessage point into the tree and live as long as it does.
 */
#ifndef MDM_MESSAGE_H
#define MDM_MESSAGE_H

#include "plist_read.h"

typedef enum MdmMessageKind
{
	MDM_CHECKIN,				/* to the CheckInURL: has MessageType */
	MDM_REPORT					/* to the ServerURL: has Status */
} MdmMessageKind;

/* The enrollment types, named as NanoMDM names them. */
typedef enum MdmEnrollmentType
{
	MDM_ENROLLMENT_DEVICE,		/* "Device": UDID */
	MDM_ENROLLMENT_USER,		/* "User": UDID:UserID */
	MDM_ENROLLMENT_UE_DEVICE,	/* "User Enrollment (Device)": EnrollmentID */
	MDM_ENROLLMENT_UE_USER,		/* "User Enrollment": EnrollmentID:EnrollmentUserID */
	MDM_ENROLLMENT_SHARED_IPAD	/* "Shared iPad": UDID:UserShortName */
} MdmEnrollmentType;

typedef struct MdmMessage
{
	const char *message_type;	/* MessageType, or Status for reports */
	const char *command_uuid;	/* reports: CommandUUID, or NULL */
	const char *device_key;		/* UDID or EnrollmentID: the device channel ID */
	const char *user_key;		/* UserID, EnrollmentUserID or UserShortName; NULL
								 * on the device channel */
	MdmEnrollmentType enrollment_type;
} MdmMessage;

/* The all-F UserID with which a Shared iPad user is identified. */
#define MDM_SHARED_IPAD_USER_ID "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"

extern const char *mdm_enrollment_type_name(MdmEnrollmentType type);

/*
 * Decode a message tree.  Returns 1 and fills *msg, or returns 0 with a
 * PLIST_ERR_MESSAGE error in *err.
 */
extern int	mdm_message_decode(plist_t root, MdmMessageKind kind, MdmMessage *msg,
							   PlistError *err);

#endif							/* MDM_MESSAGE_H */
