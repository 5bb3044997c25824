/*
 * admin.c: NanoMDM's admin API.  Each endpoint is one call of an
 * mdm.api_* function (schema/85_nanomdm_api.sql) that takes the request's
 * pieces and returns the HTTP status and NanoMDM's JSON object; this file
 * passes the pieces and writes the answer.  Basic auth is checked by
 * http.c before a handler runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "db.h"
#include "log.h"

static int	stmt_enqueue;
static int	stmt_push;
static int	stmt_pushcert;
static int	stmt_pushcert_get;

void
admin_init(void)
{
	static const Oid enqueue_types[3] = {25, 17, 16};	/* text, bytea, bool */
	static const Oid text_type[1] = {25};
	static const Oid bytea_type[1] = {17};

	stmt_enqueue = db_register(DB_ADMIN,
							   "SELECT status, jsonb_pretty(result) || E'\\n' "
							   "FROM mdm.api_enqueue(string_to_array($1, ','), $2, $3)",
							   3, enqueue_types);
	stmt_push = db_register(DB_ADMIN,
							"SELECT status, jsonb_pretty(result) || E'\\n' "
							"FROM mdm.api_push(string_to_array($1, ','))",
							1, text_type);
	stmt_pushcert = db_register(DB_ADMIN,
								"SELECT status, jsonb_pretty(result) || E'\\n' FROM mdm.api_pushcert($1)",
								1, bytea_type);
	stmt_pushcert_get = db_register(DB_ADMIN,
									"SELECT status, jsonb_pretty(result) || E'\\n' FROM mdm.api_pushcert_get($1)",
									1, text_type);
}

/* Runs an api_* statement and writes its (status, body) row. */
static void
admin_call(struct request *req, struct reply *out, int stmt, int nparams,
		   const char *const *values, const int *lengths, const int *formats)
{
	struct db_call call = {.nparams = nparams, .values = values, .lengths = lengths,
	.formats = formats, .result_format = 0};
	char		text[128];

	switch (db_exec(stmt, &call))
	{
		case DB_OK:
			if (PQntuples(call.res) != 1 || PQgetisnull(call.res, 0, 0) || PQgetisnull(call.res, 0, 1))
			{
				log_error("%s %s: an admin function returned no row", req->method, req->url);
				reply_text(out, 500, "application/json", "{\"error\": \"internal error\"}\n");
			}
			else
				reply_text(out, atoi(PQgetvalue(call.res, 0, 0)), "application/json",
						   PQgetvalue(call.res, 0, 1));
			PQclear(call.res);
			break;
		case DB_ERROR:
			/* the api_* functions answer their own errors: this is a privilege or a bug */
			log_error("%s %s: %s (SQLSTATE %s)", req->method, req->url, call.message, call.sqlstate);
			snprintf(text, sizeof(text), "{\"error\": \"database error %s\"}\n", call.sqlstate);
			reply_text(out, db_http_status(call.sqlstate, true), "application/json", text);
			break;
		case DB_UNAVAILABLE:
			reply_text(out, 503, "application/json", "{\"error\": \"database unavailable\"}\n");
			break;
	}
}

/* PUT /v1/enqueue/ID,ID,...[?nopush=1] with a command plist */
void
admin_enqueue(struct request *req, struct reply *out)
{
	const char *nopush = request_query(req, "nopush");
	const char *values[3] = {req->url + strlen("/v1/enqueue/"), req->body ? req->body : "",
	(nopush && nopush[0]) ? "t" : "f"};
	int			lengths[3] = {0, (int) req->len, 0};
	static const int formats[3] = {0, 1, 0};

	admin_call(req, out, stmt_enqueue, 3, values, lengths, formats);
}

/* GET /v1/push/ID,ID,... */
void
admin_push(struct request *req, struct reply *out)
{
	const char *values[1] = {req->url + strlen("/v1/push/")};

	admin_call(req, out, stmt_push, 1, values, NULL, NULL);
}

/* PUT /v1/pushcert (certificate and key, PEM), GET /v1/pushcert?topic= */
void
admin_pushcert(struct request *req, struct reply *out)
{
	if (strcmp(req->method, "GET") == 0)
	{
		const char *values[1] = {request_query(req, "topic")};

		admin_call(req, out, stmt_pushcert_get, 1, values, NULL, NULL);
	}
	else
	{
		const char *values[1] = {req->body ? req->body : ""};
		int			lengths[1] = {(int) req->len};
		static const int formats[1] = {1};

		admin_call(req, out, stmt_pushcert, 1, values, lengths, formats);
	}
}
