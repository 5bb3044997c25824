/*
 * error_context.c
 *		Error context that names the API call, not the helper chain.
 *
 * An error raised deep inside mdm_user reaches psql with one CONTEXT line
 * per PL/pgSQL frame and per SQL statement on the way: the internal
 * helpers in schema mdm_internal and the statements that called them.  An operator typed
 * one call (mdm.enqueue, say); the helpers are noise to them.
 *
 * An emit_log_hook trims the context of a message before it is sent: the
 * frames of internal helpers (functions of schema mdm_internal, all named
 * "_...") and the statements run inside any mdm function go; the frame of the mdm
 * function the caller called, and every frame and statement of the
 * caller's own code, stay.  It costs nothing until a message is emitted.
 * mdm.error_context = full turns it off (for debugging the extension).
 *
 * The hook recognises frames by their English text ("PL/pgSQL function
 * mdm.x(...)", "PL/pgSQL function mdm_internal._x(...)", or "C function
 * mdm.x(...)", the line the paths in C add): with another lc_messages, or
 * with mdm on the search_path (names printed unqualified), the context is
 * left as it is.  PostgreSQL
 * calls the hook only for messages that go to the server log as well
 * (log_min_messages), and the log then gets the trimmed context too.
 */
#include "mdm_user.h"

#include "lib/stringinfo.h"
#include "utils/elog.h"

/* how a frame of the API and one of an internal helper start */
#define API_PREFIX "mdm."
#define INTERNAL_PREFIX "mdm_internal."

int			mdm_error_context = MDM_ERROR_CONTEXT_API;

static emit_log_hook_type prev_emit_log_hook = NULL;

typedef enum
{
	LINE_STATEMENT,				/* not a function frame: belongs to the next one */
	LINE_MDM_INTERNAL,			/* frame of an mdm_internal helper */
	LINE_MDM_API,				/* frame of another mdm function */
	LINE_OTHER					/* frame of someone else's function */
} ContextLine;

/* What one line of an error context is. */
static ContextLine
classify_line(const char *line, int len)
{
	static const char plpgsql[] = "PL/pgSQL function ";
	static const char cfunc[] = "C function ";	/* mdm's own, e.g. enqueue_path.c */
	static const char sqlfunc[] = "SQL function \"";
	const char *name;

	if ((len >= (int) sizeof(plpgsql) - 1 && strncmp(line, plpgsql, sizeof(plpgsql) - 1) == 0) ||
		(len >= (int) sizeof(cfunc) - 1 && strncmp(line, cfunc, sizeof(cfunc) - 1) == 0))
	{
		name = strchr(line, ' ') + 1;
		name = strchr(name, ' ') + 1;	/* past "PL/pgSQL function " or "C function " */
		if (strncmp(name, INTERNAL_PREFIX, sizeof(INTERNAL_PREFIX) - 1) == 0)
			return LINE_MDM_INTERNAL;
		if (strncmp(name, API_PREFIX, sizeof(API_PREFIX) - 1) == 0)
			return LINE_MDM_API;
		return LINE_OTHER;
	}
	if (len >= (int) sizeof(sqlfunc) - 1 && strncmp(line, sqlfunc, sizeof(sqlfunc) - 1) == 0)
	{
		/* SQL functions are named without their schema */
		name = line + sizeof(sqlfunc) - 1;
		return name[0] == '_' ? LINE_MDM_INTERNAL : LINE_OTHER;
	}
	return LINE_STATEMENT;
}

/* Does a line of the context mention an internal helper? */
static bool
mentions_internal(const char *line, int len)
{
	int			i;

	for (i = 0; i + (int) sizeof(INTERNAL_PREFIX) - 1 <= len; i++)
		if (memcmp(line + i, INTERNAL_PREFIX, sizeof(INTERNAL_PREFIX) - 1) == 0)
			return true;
	return false;
}

/*
 * The context without the helper chain (innermost line first, as
 * PostgreSQL builds it), or NULL when it names no mdm function.
 */
static char *
trimmed_context(const char *context)
{
	StringInfoData out;
	const char *p;
	const char *pending_start = NULL;	/* statements waiting for their frame */
	const char *pending_end = NULL;
	bool		mdm_seen = false;
	bool		last_was_api = false;
	int			api_line_at = 0;	/* where the last kept API line starts */

	if (strstr(context, "function " API_PREFIX) == NULL &&
		strstr(context, "function " INTERNAL_PREFIX) == NULL)
		return NULL;

	initStringInfo(&out);
	for (p = context; *p;)
	{
		const char *eol = strchr(p, '\n');
		int			len = eol ? (int) (eol - p) : (int) strlen(p);
		ContextLine kind = classify_line(p, len);

		if (kind == LINE_STATEMENT)
		{
			if (pending_start == NULL)
				pending_start = p;
			pending_end = p + len;
		}
		else
		{
			if (kind == LINE_OTHER && pending_start != NULL)
			{
				if (out.len > 0)
					appendStringInfoChar(&out, '\n');
				appendBinaryStringInfo(&out, pending_start, pending_end - pending_start);
			}
			pending_start = NULL;
			if (kind == LINE_MDM_API)
			{
				/* API calling API: keep the outer one, the call made */
				if (last_was_api)
				{
					out.len = api_line_at;
					out.data[out.len] = '\0';
				}
				api_line_at = out.len;
				if (out.len > 0)
					appendStringInfoChar(&out, '\n');
				appendBinaryStringInfo(&out, p, len);
				mdm_seen = true;
			}
			else if (kind == LINE_OTHER)
			{
				if (out.len > 0)
					appendStringInfoChar(&out, '\n');
				appendBinaryStringInfo(&out, p, len);
			}
			else
				mdm_seen = true;
			if (kind != LINE_MDM_INTERNAL)
				last_was_api = (kind == LINE_MDM_API);
		}
		p = eol ? eol + 1 : p + len;
	}
	/* statements of the outermost caller: kept unless they are internals */
	if (pending_start != NULL && !mentions_internal(pending_start, pending_end - pending_start))
	{
		if (out.len > 0)
			appendStringInfoChar(&out, '\n');
		appendBinaryStringInfo(&out, pending_start, pending_end - pending_start);
	}
	if (!mdm_seen)
	{
		pfree(out.data);
		return NULL;
	}
	return out.data;
}

static void
mdm_emit_log_hook(ErrorData *edata)
{
	if (mdm_error_context == MDM_ERROR_CONTEXT_API && edata->context != NULL)
	{
		char	   *trimmed = trimmed_context(edata->context);

		if (trimmed != NULL)
			edata->context = trimmed[0] ? trimmed : NULL;
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* Called from _PG_init(). */
void
mdm_install_error_context_hook(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = mdm_emit_log_hook;
}
