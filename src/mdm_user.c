/*
 * mdm_user.c
 *		Module entry point of mdm_user: the library magic, the settings
 *		(GUCs) that bound untrusted input, and backend diagnostics.
 *
 * Every setting that protects the server from hostile input is PGC_SUSET:
 * the HTTP front end's role must not be able to raise its own limits.
 *
 * The module is meant to be preloaded (shared_preload_libraries): only
 * then are the settings defined, and checked, before any session reads
 * ALTER DATABASE / ALTER ROLE values or postgresql.conf, so that a
 * misspelt mdm.* name or an invalid value is refused when it is set
 * rather than silently kept.  mdm_internal._preloaded() tells the health check.
 */
#include "mdm_user.h"

#include <malloc.h>

#include "fmgr.h"
#include "funcapi.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "miscadmin.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

int			mdm_max_message_bytes = 1024 * 1024;
int			mdm_max_nesting_depth = 64;
int			mdm_max_plist_nodes = 100000;
int			mdm_max_identity_bytes = 64 * 1024;
int			mdm_user_authenticate = 0;
char	   *mdm_declarative_management_handler = NULL;
char	   *mdm_get_token_handler = NULL;
int			mdm_history_retention = 7 * 86400;
int			mdm_push_expiration = 86400;
int			mdm_push_claim_timeout = 300;
int			mdm_push_retry_base = 10;
int			mdm_push_retry_max = 3600;
int			mdm_push_max_attempts = 10;
int			mdm_push_fanout_threshold = 1000;
int			mdm_repush_interval = 3600;
int			mdm_pending_command_lifetime = 30 * 86400;

bool		mdm_require_identity = true;
bool		mdm_events = false;
int			mdm_events_retention = 86400;
int			mdm_event_claim_timeout = 60;
int			mdm_event_retry_base = 1;
int			mdm_event_retry_max = 300;
int			mdm_default_payload_scope = 0;
int			mdm_user_channel_wait_timeout = 0;

static const struct config_enum_entry payload_scope_options[] = {
	{"System", 0, false},
	{"User", 1, false},
	{NULL, 0, false}
};

int			mdm_checkin_log = 0;

static const struct config_enum_entry checkin_log_options[] = {
	{"all", 0, false},
	{"none", 1, false},
	{NULL, 0, false}
};

static const struct config_enum_entry user_authenticate_options[] = {
	{"accept", 0, false},
	{"decline", 1, false},
	{NULL, 0, false}
};

static const struct config_enum_entry error_context_options[] = {
	{"api", MDM_ERROR_CONTEXT_API, false},
	{"full", MDM_ERROR_CONTEXT_FULL, false},
	{NULL, 0, false}
};

/* Was the module loaded by shared_preload_libraries? */
static bool mdm_preloaded = false;

void		_PG_init(void);

/*
 * Check hook of the handler settings: a function name, perhaps
 * schema-qualified, in SQL identifier syntax ("schema.function",
 * "\"My Schema\".f").  Whether the function exists and takes the right
 * arguments is checked when a check-in calls it (mdm_internal._handler), as the
 * setting may be made before the function is created, or in another
 * database.
 */
static bool
check_handler_name(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;
	int			parts = 0;

	for (;;)
	{
		if (*p == '"')
		{
			const char *start = ++p;

			for (;; p++)
			{
				if (*p == '\0')
				{
					GUC_check_errdetail("A quoted identifier is not closed.");
					return false;
				}
				if (*p == '"')
				{
					if (p[1] != '"')
						break;
					p++;
				}
			}
			if (p == start)
			{
				GUC_check_errdetail("A quoted identifier is empty.");
				return false;
			}
			p++;
		}
		else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
				 IS_HIGHBIT_SET(*p))
		{
			while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				   (*p >= '0' && *p <= '9') || *p == '_' || *p == '$' || IS_HIGHBIT_SET(*p))
				p++;
		}
		else
		{
			GUC_check_errdetail("\"%s\" is not a function name.", *newval);
			GUC_check_errhint("Name the function that answers, schema-qualified, such as \"my_schema.my_handler\".");
			return false;
		}
		parts++;
		if (*p == '\0')
			break;
		if (*p != '.' || parts == 2)
		{
			GUC_check_errdetail("\"%s\" is not a function name.", *newval);
			GUC_check_errhint("Name the function that answers, schema-qualified, such as \"my_schema.my_handler\".");
			return false;
		}
		p++;
	}
	return true;
}

void
_PG_init(void)
{
	mdm_preloaded = process_shared_preload_libraries_in_progress;

	DefineCustomIntVariable("mdm.max_message_bytes",
							"Largest plist message or profile accepted, in bytes.",
							"Larger input is refused before it is parsed.",
							&mdm_max_message_bytes,
							1024 * 1024, 64, 256 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.max_nesting_depth",
							"Deepest nesting of dictionaries and arrays accepted in a plist.",
							NULL,
							&mdm_max_nesting_depth,
							64, 1, 1000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.max_plist_nodes",
							"Most nodes accepted in one plist, counted after expanding shared references.",
							NULL,
							&mdm_max_plist_nodes,
							100000, 1, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.max_identity_bytes",
							"Largest device identity certificate or Mdm-Signature accepted, in bytes.",
							"Larger ones are refused before OpenSSL reads them.",
							&mdm_max_identity_bytes,
							64 * 1024, 1024, 16 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("mdm.user_authenticate",
							 "How UserAuthenticate (a directory user logging in) is answered.",
							 "accept: a zero-length DigestChallenge, then 200, so the user becomes managed; decline: 410.",
							 &mdm_user_authenticate,
							 0, user_authenticate_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("mdm.declarative_management_handler",
							   "Function that answers DeclarativeManagement check-ins.",
							   "It takes (enrollment_id text, endpoint text, data bytea, message jsonb) and returns mdm.reply.",
							   &mdm_declarative_management_handler,
							   "mdm.declarative_management_default",
							   PGC_SUSET, 0,
							   check_handler_name, NULL, NULL);
	DefineCustomStringVariable("mdm.get_token_handler",
							   "Function that answers GetToken check-ins.",
							   "It takes (enrollment_id text, token_service_type text, parameters jsonb, message jsonb) and returns mdm.reply.",
							   &mdm_get_token_handler,
							   "mdm.get_token_default",
							   PGC_SUSET, 0,
							   check_handler_name, NULL, NULL);
	DefineCustomEnumVariable("mdm.checkin_log",
							 "Which check-in messages are kept as received in mdm.checkin_messages.",
							 "all: every one (the default); none: no log (TokenUpdate, Authenticate and UserAuthenticate bodies are still kept on their rows).",
							 &mdm_checkin_log,
							 0, checkin_log_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.history_retention",
							"How long check-in messages and finished command history are kept.",
							"mdm.run_maintenance() deletes what is older.",
							&mdm_history_retention,
							7 * 86400, 60, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.push_expiration",
							"apns-expiration of pushes: how long APNs keeps a push for an offline device.",
							NULL,
							&mdm_push_expiration,
							86400, 0, 30 * 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.push_claim_timeout",
							"How long a claimed push job may go unreported before it is claimable again.",
							NULL,
							&mdm_push_claim_timeout,
							300, 1, 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.push_retry_base",
							"First retry delay after APNs answered 429 or 5xx; it doubles with each attempt.",
							NULL,
							&mdm_push_retry_base,
							10, 1, 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.push_retry_max",
							"Longest retry delay for push jobs.",
							NULL,
							&mdm_push_retry_max,
							3600, 1, 7 * 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.push_fanout_threshold",
							"Pushes for an enqueue to more enrollments than this are kept as one fan-out row.",
							"mdm.claim_pushes() turns the fan-out into push jobs batch by batch.",
							&mdm_push_fanout_threshold,
							1000, 1, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.push_max_attempts",
							"Attempts after which a push job that keeps getting 429 or 5xx fails.",
							NULL,
							&mdm_push_max_attempts,
							10, 1, 1000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.repush_interval",
							"How long after an unanswered push mdm.run_maintenance() pushes again; it doubles per unanswered push, up to a day.",
							NULL,
							&mdm_repush_interval,
							3600, 60, 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("mdm.default_payload_scope",
							 "Channel of profiles that have no top-level PayloadScope.",
							 "System: the device channel; User: the user channel.",
							 &mdm_default_payload_scope,
							 0, payload_scope_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.user_channel_wait_timeout",
							"How long a user-scoped profile waits for its user channel before it shows as failed; 0 waits forever.",
							NULL,
							&mdm_user_channel_wait_timeout,
							0, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.pending_command_lifetime",
							"How long a command may wait for a device that does not poll before mdm.run_maintenance() drops it; 0 keeps it forever.",
							NULL,
							&mdm_pending_command_lifetime,
							30 * 86400, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("mdm.require_identity",
							 "Refuse check-ins and command reports that carry no device identity.",
							 "Off accepts messages without a client certificate or Mdm-Signature (test suites, front ends that authenticate devices themselves); an identity that is given is always verified and bound.",
							 &mdm_require_identity,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("mdm.events",
							 "Record every accepted check-in and command report as a webhook event.",
							 "The events (mdm.events) are delivered by the front end's webhook worker; off records none.",
							 &mdm_events,
							 false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.events_retention",
							"How long delivered webhook events are kept.",
							"mdm.run_maintenance() deletes delivered events that are older; undelivered ones are kept.",
							&mdm_events_retention,
							86400, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.event_claim_timeout",
							"How long a claimed webhook event may go unreported before it is claimable again.",
							NULL,
							&mdm_event_claim_timeout,
							60, 1, 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.event_retry_base",
							"First retry delay after a webhook delivery failed; it doubles with each attempt.",
							NULL,
							&mdm_event_retry_base,
							1, 1, 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("mdm.event_retry_max",
							"Longest retry delay for a webhook event.",
							NULL,
							&mdm_event_retry_max,
							300, 1, 7 * 86400,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("mdm.error_context",
							 "How much context errors raised inside mdm_user carry.",
							 "api: the mdm function called and the caller's own frames; full: every internal helper too (for debugging the extension).",
							 &mdm_error_context,
							 MDM_ERROR_CONTEXT_API, error_context_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("mdm");
	mdm_install_error_context_hook();
}

/*
 * mdm_internal._preloaded() RETURNS boolean
 *
 * Whether this backend loaded the module through shared_preload_libraries
 * (docs/operations.md says what is lost without it).
 */
PG_FUNCTION_INFO_V1(mdm_preloaded_fn);
Datum
mdm_preloaded_fn(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(mdm_preloaded);
}

/*
 * mdm_internal._setting(name text) RETURNS text
 *
 * The value of a setting, in its base unit (seconds, bytes) without a unit
 * suffix.  SQL code reads mdm.* settings through this function rather than
 * current_setting(): calling a function of this module loads it, and
 * loading it defines the settings, even in a backend (say, pg_cron's) that
 * has not used the extension yet.
 */
PG_FUNCTION_INFO_V1(mdm_setting);
Datum
mdm_setting(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_TEXT_P(cstring_to_text(GetConfigOption(name, false, true)));
}

/*
 * A field of /proc/self/status in bytes ("VmRSS", "VmHWM"); -1 if the
 * system has none.
 */
static int64
proc_status_bytes(const char *field)
{
	FILE	   *f = AllocateFile("/proc/self/status", "r");
	char		line[256];
	size_t		flen = strlen(field);
	int64		result = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
	{
		long long	kb;

		if (strncmp(line, field, flen) == 0 && line[flen] == ':' &&
			sscanf(line + flen + 1, "%lld", &kb) == 1)
		{
			result = (int64) kb * 1024;
			break;
		}
	}
	FreeFile(f);
	return result;
}

/* Reset VmHWM to the current resident set (Linux 4.0 and later). */
static void
reset_peak_rss(void)
{
	FILE	   *f = AllocateFile("/proc/self/clear_refs", "w");

	if (f == NULL || fputs("5", f) == EOF || FreeFile(f) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("could not reset the peak resident set size"),
				 errdetail("Writing to /proc/self/clear_refs failed: %m.")));
}

/*
 * mdm.backend_memory(reset_peak boolean DEFAULT false)
 *		RETURNS TABLE(malloc_bytes bigint, context_bytes bigint,
 *					  rss_bytes bigint, peak_rss_bytes bigint)
 *
 * Memory held by this backend: bytes allocated with malloc (libplist and
 * OpenSSL allocate there), bytes held by PostgreSQL memory contexts, and
 * the resident set now and at its peak (VmRSS and VmHWM; NULL where there
 * is no /proc).  With reset_peak the peak is first reset to the current
 * resident set.  The regression suite uses it to show that parsing does
 * not leak and that hostile input cannot make a backend balloon.
 */
PG_FUNCTION_INFO_V1(mdm_backend_memory);
Datum
mdm_backend_memory(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	struct mallinfo2 mi;
	int64		rss;
	int64		peak;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (PG_GETARG_BOOL(0))
		reset_peak_rss();
	mi = mallinfo2();
	rss = proc_status_bytes("VmRSS");
	peak = proc_status_bytes("VmHWM");
	values[0] = Int64GetDatum((int64) mi.uordblks + (int64) mi.hblkhd);
	values[1] = Int64GetDatum((int64) MemoryContextMemAllocated(TopMemoryContext, true));
	values[2] = Int64GetDatum(rss);
	nulls[2] = (rss < 0);
	values[3] = Int64GetDatum(peak);
	nulls[3] = (peak < 0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}
