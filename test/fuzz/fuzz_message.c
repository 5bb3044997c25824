/*
 * fuzz_message.c
 *		Decode every tree the reader returns as an MDM message, as a
 *		check-in and as a command report, and check what
 *		mdm_message_decode() promises (src/mdm_message.h).
 *
 * The server decodes a message right after reading it (mdm.checkin and
 * mdm.connect), so whatever tree the reader hands out, hostile ones
 * included, reaches the decoder.  Checked here: the decoder returns 0 or 1;
 * a failure is a PLIST_ERR_MESSAGE with a message and a detail; a success
 * has a message type, a device channel ID that is the UDID or EnrollmentID
 * string of the tree (non-empty, without ':'), a user part exactly when the
 * enrollment type is a user channel, and, for a report, a known status and
 * a CommandUUID unless the status is Idle.  The decoder allocates nothing:
 * every string it returns points into the tree, which the caller frees
 * (ASan reports any read of a dangling or foreign pointer, LeakSanitizer
 * any allocation left behind).
 */
#include "fuzz_plist.h"

#include <string.h>

#include "mdm_message.h"

/* The string value of key in dict, or NULL. */
static const char *
dict_string(plist_t dict, const char *key)
{
	plist_t		node = plist_dict_get_item(dict, key);

	if (node == NULL || plist_get_node_type(node) != PLIST_STRING)
		return NULL;
	return plist_get_string_ptr(node, NULL);
}

static void
check_id(const char *id, const char *what)
{
	FUZZ_CHECK(id != NULL, "decoded message has no %s", what);
	FUZZ_CHECK(id[0] != '\0', "decoded message has an empty %s", what);
	FUZZ_CHECK(strchr(id, ':') == NULL, "decoded %s \"%s\" contains ':'", what, id);
}

static void
decode_one(plist_t tree, MdmMessageKind kind)
{
	static const char *const statuses[] = {
		"Acknowledged", "Error", "CommandFormatError", "Idle", "NotNow"
	};
	const char *kind_name = kind == MDM_CHECKIN ? "check-in" : "command report";
	MdmMessage	msg;
	PlistError	err;
	int			ok;
	int			user_channel;
	size_t		i;

	memset(&err, 0, sizeof(err));
	ok = mdm_message_decode(tree, kind, &msg, &err);
	FUZZ_CHECK(ok == 0 || ok == 1, "mdm_message_decode returned %d", ok);
	if (!ok)
	{
		FUZZ_CHECK(err.kind == PLIST_ERR_MESSAGE,
				   "%s refused with error kind %d (%s)", kind_name, (int) err.kind,
				   err.message);
		FUZZ_CHECK(err.message[0] != '\0' && err.detail[0] != '\0',
				   "%s refused without message or detail", kind_name);
		return;
	}
	FUZZ_CHECK(err.kind == PLIST_OK, "%s decoded with error kind %d", kind_name,
			   (int) err.kind);
	FUZZ_CHECK(plist_get_node_type(tree) == PLIST_DICT,
			   "%s decoded from a root of type %d", kind_name,
			   (int) plist_get_node_type(tree));

	FUZZ_CHECK(msg.message_type != NULL, "%s decoded without a type", kind_name);
	FUZZ_CHECK(msg.message_type ==
			   dict_string(tree, kind == MDM_CHECKIN ? "MessageType" : "Status"),
			   "%s type does not point at its key's string", kind_name);

	FUZZ_CHECK(msg.enrollment_type >= MDM_ENROLLMENT_DEVICE &&
			   msg.enrollment_type <= MDM_ENROLLMENT_SHARED_IPAD,
			   "%s decoded with enrollment type %d", kind_name, (int) msg.enrollment_type);
	FUZZ_CHECK(mdm_enrollment_type_name(msg.enrollment_type) != NULL,
			   "enrollment type %d has no name", (int) msg.enrollment_type);
	check_id(msg.device_key, "device channel ID");
	if (msg.enrollment_type == MDM_ENROLLMENT_UE_DEVICE ||
		msg.enrollment_type == MDM_ENROLLMENT_UE_USER)
		FUZZ_CHECK(msg.device_key == dict_string(tree, "EnrollmentID") &&
				   dict_string(tree, "UDID") == NULL,
				   "User Enrollment %s not identified by EnrollmentID alone", kind_name);
	else
		FUZZ_CHECK(msg.device_key == dict_string(tree, "UDID") &&
				   plist_dict_get_item(tree, "EnrollmentID") == NULL,
				   "%s not identified by UDID alone", kind_name);

	user_channel = msg.enrollment_type != MDM_ENROLLMENT_DEVICE &&
		msg.enrollment_type != MDM_ENROLLMENT_UE_DEVICE;
	FUZZ_CHECK(user_channel == (msg.user_key != NULL),
			   "%s of enrollment type %d %s a user part", kind_name,
			   (int) msg.enrollment_type, msg.user_key ? "has" : "lacks");
	if (msg.user_key != NULL)
		check_id(msg.user_key, "user part");
	if (msg.enrollment_type == MDM_ENROLLMENT_SHARED_IPAD)
		FUZZ_CHECK(msg.user_key == dict_string(tree, "UserShortName") &&
				   strcasecmp(dict_string(tree, "UserID"), MDM_SHARED_IPAD_USER_ID) == 0,
				   "Shared iPad %s not named by UserShortName", kind_name);

	if (kind == MDM_CHECKIN)
	{
		FUZZ_CHECK(msg.command_uuid == NULL, "check-in decoded with a CommandUUID");
		return;
	}
	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (strcmp(msg.message_type, statuses[i]) == 0)
			break;
	FUZZ_CHECK(i < sizeof(statuses) / sizeof(statuses[0]),
			   "report decoded with status \"%s\"", msg.message_type);
	FUZZ_CHECK(msg.command_uuid == dict_string(tree, "CommandUUID"),
			   "report CommandUUID does not point at its key's string");
	FUZZ_CHECK(msg.command_uuid != NULL || strcmp(msg.message_type, "Idle") == 0,
			   "report with status %s decoded without CommandUUID", msg.message_type);
}

void
fuzz_check_messages(plist_t tree)
{
	decode_one(tree, MDM_CHECKIN);
	decode_one(tree, MDM_REPORT);
}
