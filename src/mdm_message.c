/*
 * mdm_message.c
 *		Decoding MDM messages from a libplist tree: enrollment identity,
 *		message type, and the types of the keys mdm_user stores.
 *
 * Identity rules (docs/checkin.md):
 *   - exactly one of UDID (devices) and EnrollmentID (User Enrollment);
 *   - UserID goes with UDID, EnrollmentUserID with EnrollmentID; a message
 *     carrying one of them is on the user channel;
 *   - the all-F UserID is a Shared iPad user, named by UserShortName;
 *   - every ID is a non-empty string without ':', since ':' joins the
 *     device and user parts of a user-channel enrollment ID.  Beyond that
 *     IDs are opaque: device families format UDIDs differently.
 *
 * The key rules below are mdm_user's own contract: the keys its handlers
 * read, with the plist type they must have.  Which channel a message type
 * may arrive on is checked in SQL against Apple's schema.
 */
#include "mdm_message.h"

#include <string.h>

typedef struct KeyRule
{
	const char *message_type;	/* NULL: every message of the kind */
	const char *key;
	plist_type	type;
	int			required;
	int			nonempty;		/* strings and data must not be empty */
} KeyRule;

static const KeyRule checkin_rules[] = {
	{"Authenticate", "Topic", PLIST_STRING, 0, 0},
	{"Authenticate", "SerialNumber", PLIST_STRING, 0, 0},
	{"Authenticate", "DeviceName", PLIST_STRING, 0, 0},
	{"Authenticate", "Model", PLIST_STRING, 0, 0},
	{"Authenticate", "ModelName", PLIST_STRING, 0, 0},
	{"Authenticate", "ProductName", PLIST_STRING, 0, 0},
	{"Authenticate", "OSVersion", PLIST_STRING, 0, 0},
	{"Authenticate", "BuildVersion", PLIST_STRING, 0, 0},
	{"Authenticate", "IMEI", PLIST_STRING, 0, 0},
	{"Authenticate", "MEID", PLIST_STRING, 0, 0},
	{"TokenUpdate", "Token", PLIST_DATA, 1, 1},
	{"TokenUpdate", "PushMagic", PLIST_STRING, 1, 1},
	{"TokenUpdate", "Topic", PLIST_STRING, 1, 1},
	{"TokenUpdate", "UnlockToken", PLIST_DATA, 0, 0},
	{"TokenUpdate", "AwaitingConfiguration", PLIST_BOOLEAN, 0, 0},
	{"TokenUpdate", "NotOnConsole", PLIST_BOOLEAN, 0, 0},
	{"UserAuthenticate", "DigestResponse", PLIST_STRING, 0, 0},
	{"UserAuthenticate", "NotOnConsole", PLIST_BOOLEAN, 0, 0},
	{"CheckOut", "Topic", PLIST_STRING, 0, 0},
	{"SetBootstrapToken", "BootstrapToken", PLIST_DATA, 0, 0},
	{"SetBootstrapToken", "AwaitingConfiguration", PLIST_BOOLEAN, 0, 0},
	{"GetBootstrapToken", "AwaitingConfiguration", PLIST_BOOLEAN, 0, 0},
	{"DeclarativeManagement", "Endpoint", PLIST_STRING, 1, 1},
	{"DeclarativeManagement", "Data", PLIST_DATA, 0, 0},
	{"GetToken", "TokenServiceType", PLIST_STRING, 1, 1},
	{"GetToken", "TokenParameters", PLIST_DICT, 0, 0},
	{NULL, "UserShortName", PLIST_STRING, 0, 0},
	{NULL, "UserLongName", PLIST_STRING, 0, 0},
};

static const KeyRule report_rules[] = {
	{NULL, "ErrorChain", PLIST_ARRAY, 0, 0},
	{NULL, "RequestType", PLIST_STRING, 0, 0},
	{NULL, "NotOnConsole", PLIST_BOOLEAN, 0, 0},
	{NULL, "UserShortName", PLIST_STRING, 0, 0},
	{NULL, "UserLongName", PLIST_STRING, 0, 0},
};

static const char *const report_statuses[] = {
	"Acknowledged", "Error", "CommandFormatError", "Idle", "NotNow"
};

static const char *const type_names[] = {
	"Device", "User", "User Enrollment (Device)", "User Enrollment", "Shared iPad"
};

const char *
mdm_enrollment_type_name(MdmEnrollmentType type)
{
	return type_names[type];
}

static const char *
plist_type_name(plist_type t)
{
	switch (t)
	{
		case PLIST_BOOLEAN:
			return "a boolean";
		case PLIST_UINT:
			return "an integer";
		case PLIST_REAL:
			return "a real";
		case PLIST_STRING:
			return "a string";
		case PLIST_ARRAY:
			return "an array";
		case PLIST_DICT:
			return "a dictionary";
		case PLIST_DATE:
			return "a date";
		case PLIST_DATA:
			return "data";
		default:
			return "an unsupported value";
	}
}

/* Check one key against its rule. */
static int
check_key(plist_t root, const KeyRule *rule, const char *what, PlistError *err)
{
	plist_t		node = plist_dict_get_item(root, rule->key);
	uint64_t	len = 0;

	if (node == NULL)
	{
		if (rule->required)
			return plist_fail(err, PLIST_ERR_MESSAGE, what, "The key \"%s\" is missing.",
							  rule->key);
		return 1;
	}
	if (plist_get_node_type(node) != rule->type)
		return plist_fail(err, PLIST_ERR_MESSAGE, what,
						  "The value of \"%s\" must be %s, not %s.", rule->key,
						  plist_type_name(rule->type),
						  plist_type_name(plist_get_node_type(node)));
	if (rule->nonempty)
	{
		if (rule->type == PLIST_STRING)
			plist_get_string_ptr(node, &len);
		else if (rule->type == PLIST_DATA)
			plist_get_data_ptr(node, &len);
		if (len == 0)
			return plist_fail(err, PLIST_ERR_MESSAGE, what, "The value of \"%s\" is empty.",
							  rule->key);
	}
	return 1;
}

static int
check_rules(plist_t root, const char *message_type, const KeyRule *rules,
			size_t nrules, const char *what, PlistError *err)
{
	size_t		i;

	for (i = 0; i < nrules; i++)
		if ((rules[i].message_type == NULL ||
			 strcmp(rules[i].message_type, message_type) == 0) &&
			!check_key(root, &rules[i], what, err))
			return 0;
	return 1;
}

/*
 * An identifier: absent (returns 1 with *out NULL), or a non-empty string
 * without ':'.
 */
static int
get_id(plist_t root, const char *key, const char **out, const char *what,
	   PlistError *err)
{
	plist_t		node = plist_dict_get_item(root, key);
	uint64_t	len = 0;
	const char *s;

	*out = NULL;
	if (node == NULL)
		return 1;
	if (plist_get_node_type(node) != PLIST_STRING)
		return plist_fail(err, PLIST_ERR_MESSAGE, what,
						  "The value of \"%s\" must be a string, not %s.", key,
						  plist_type_name(plist_get_node_type(node)));
	s = plist_get_string_ptr(node, &len);
	if (len == 0)
		return plist_fail(err, PLIST_ERR_MESSAGE, what, "The value of \"%s\" is empty.", key);
	if (strchr(s, ':') != NULL)
		return plist_fail(err, PLIST_ERR_MESSAGE, what,
						  "The value of \"%s\" contains \":\", which separates the device and user parts of an enrollment ID.",
						  key);
	*out = s;
	return 1;
}

static int
decode_identity(plist_t root, MdmMessage *msg, const char *what, PlistError *err)
{
	const char *udid;
	const char *enrollment_id;
	const char *user_id;
	const char *enrollment_user_id;
	const char *short_name;

	if (!get_id(root, "UDID", &udid, what, err) ||
		!get_id(root, "EnrollmentID", &enrollment_id, what, err) ||
		!get_id(root, "UserID", &user_id, what, err) ||
		!get_id(root, "EnrollmentUserID", &enrollment_user_id, what, err))
		return 0;

	if (udid != NULL && enrollment_id != NULL)
		return plist_fail(err, PLIST_ERR_MESSAGE, what, "It has both \"%s\" and \"%s\"; a device sends one of them.",
							"UDID", "EnrollmentID");
	if (udid == NULL && enrollment_id == NULL)
		return plist_fail(err, PLIST_ERR_MESSAGE, what, "It has neither \"%s\" nor \"%s\", so its device cannot be identified.",
							"UDID", "EnrollmentID");
	if (udid != NULL && enrollment_user_id != NULL)
		return plist_fail(err, PLIST_ERR_MESSAGE, what, "It has \"%s\" with \"%s\"; User Enrollment messages carry EnrollmentID.",
							"EnrollmentUserID", "UDID");
	if (enrollment_id != NULL && user_id != NULL)
		return plist_fail(err, PLIST_ERR_MESSAGE, what, "It has \"%s\" with \"%s\"; User Enrollment messages carry EnrollmentUserID.",
							"UserID", "EnrollmentID");

	if (enrollment_id != NULL)
	{
		msg->device_key = enrollment_id;
		msg->user_key = enrollment_user_id;
		msg->enrollment_type = enrollment_user_id ? MDM_ENROLLMENT_UE_USER
			: MDM_ENROLLMENT_UE_DEVICE;
		return 1;
	}

	msg->device_key = udid;
	msg->user_key = user_id;
	msg->enrollment_type = user_id ? MDM_ENROLLMENT_USER : MDM_ENROLLMENT_DEVICE;
	if (user_id != NULL && strcasecmp(user_id, MDM_SHARED_IPAD_USER_ID) == 0)
	{
		/* a Shared iPad user is named by its Managed Apple Account */
		if (!get_id(root, "UserShortName", &short_name, what, err))
			return 0;
		if (short_name == NULL)
			return plist_fail(err, PLIST_ERR_MESSAGE, what, "A Shared iPad user (UserID %s) must send \"%s\".",
								MDM_SHARED_IPAD_USER_ID, "UserShortName");
		msg->user_key = short_name;
		msg->enrollment_type = MDM_ENROLLMENT_SHARED_IPAD;
	}
	return 1;
}

/* MessageType of a check-in, or Status (and CommandUUID) of a report. */
static int
decode_type(plist_t root, MdmMessageKind kind, MdmMessage *msg, const char *what,
			PlistError *err)
{
	const char *key = (kind == MDM_CHECKIN) ? "MessageType" : "Status";
	plist_t		node = plist_dict_get_item(root, key);
	plist_t		uuid;
	size_t		i;

	if (node == NULL)
		return plist_fail(err, PLIST_ERR_MESSAGE, what, "The key \"%s\" is missing.", key);
	if (plist_get_node_type(node) != PLIST_STRING)
		return plist_fail(err, PLIST_ERR_MESSAGE, what,
						  "The value of \"%s\" must be a string, not %s.", key,
						  plist_type_name(plist_get_node_type(node)));
	msg->message_type = plist_get_string_ptr(node, NULL);
	msg->command_uuid = NULL;
	if (kind == MDM_CHECKIN)
		return 1;

	for (i = 0; i < sizeof(report_statuses) / sizeof(report_statuses[0]); i++)
		if (strcmp(msg->message_type, report_statuses[i]) == 0)
			break;
	if (i == sizeof(report_statuses) / sizeof(report_statuses[0]))
		return plist_fail(err, PLIST_ERR_MESSAGE, "unrecognized command report status",
							"\"%.60s\" is not one of %s.", msg->message_type,
							"Acknowledged, Error, CommandFormatError, Idle, NotNow");

	uuid = plist_dict_get_item(root, "CommandUUID");
	if (uuid != NULL && plist_get_node_type(uuid) != PLIST_STRING)
		return plist_fail(err, PLIST_ERR_MESSAGE, what,
						  "The value of \"CommandUUID\" must be a string, not %s.",
						  plist_type_name(plist_get_node_type(uuid)));
	if (uuid != NULL)
		msg->command_uuid = plist_get_string_ptr(uuid, NULL);
	if (msg->command_uuid == NULL && strcmp(msg->message_type, "Idle") != 0)
		return plist_fail(err, PLIST_ERR_MESSAGE, what, "A report with status %s must carry \"%s\".",
							msg->message_type, "CommandUUID");
	return 1;
}

int
mdm_message_decode(plist_t root, MdmMessageKind kind, MdmMessage *msg,
				   PlistError *err)
{
	const char *what = (kind == MDM_CHECKIN) ? plist_msg("invalid check-in message")
		: plist_msg("invalid command report");

	memset(msg, 0, sizeof(*msg));
	if (plist_get_node_type(root) != PLIST_DICT)
		return plist_fail(err, PLIST_ERR_MESSAGE, what,
						  "The message must be a dictionary, not %s.",
						  plist_type_name(plist_get_node_type(root)));
	if (!decode_type(root, kind, msg, what, err) ||
		!decode_identity(root, msg, what, err))
		return 0;
	if (kind == MDM_CHECKIN)
		return check_rules(root, msg->message_type, checkin_rules,
						   sizeof(checkin_rules) / sizeof(checkin_rules[0]), what, err);
	return check_rules(root, msg->message_type, report_rules,
					   sizeof(report_rules) / sizeof(report_rules[0]), what, err);
}
