/*
 * db.c: libpq connections, one per worker thread and pool, created when the
 * thread first needs one and again after a loss; statements are prepared on
 * each.  While the database cannot be reached, calls return DB_UNAVAILABLE
 * at once (503), and a thread tries to connect again at most twice a second.
 */
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "metrics.h"

#define MAX_STATEMENTS 32
#define MAX_TRIES 3				/* serialization failures and deadlocks */

struct statement
{
	enum db_pool pool;
	const char *sql;
	int			nparams;
	const Oid  *types;
};

struct thread_conns
{
	PGconn	   *conn[DB_POOLS];
	double		next_attempt[DB_POOLS];
	double		last_used[DB_POOLS];
};

/* An idle connection is checked for a server that went away after this long. */
#define IDLE_CHECK_SECONDS 1.0

static struct statement statements[MAX_STATEMENTS];
static int	n_statements;
static const char *dsns[DB_POOLS];
static _Atomic int max_message_bytes = 1024 * 1024;
static _Atomic int max_identity_bytes = 64 * 1024;
static __thread struct thread_conns conns;

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
db_register(enum db_pool pool, const char *sql, int nparams, const Oid *types)
{
	if (n_statements == MAX_STATEMENTS)
	{
		log_error("too many statements (MAX_STATEMENTS)");
		abort();
	}
	statements[n_statements] = (struct statement) {pool, sql, nparams, types};
	return n_statements++;
}

void
db_init(const char *dsn, const char *admin_dsn)
{
	dsns[DB_DEVICE] = dsn;
	dsns[DB_ADMIN] = admin_dsn ? admin_dsn : dsn;
}

/*
 * A connection with the front end's defaults (application_name,
 * connect_timeout); what the connection string says wins.
 */
static PGconn *
connect_pool(enum db_pool pool)
{
	static const char *const keys[] = {"application_name", "connect_timeout", "dbname", NULL};
	const char *values[] = {"mdm-frontend", "5", dsns[pool], NULL};

	return PQconnectdbParams(keys, values, 1);
}

/* The first line of libpq's message, without its newline. */
static void
first_line(const char *msg, char *buf, size_t size)
{
	size_t		n = strcspn(msg, "\n");

	if (n >= size)
		n = size - 1;
	memcpy(buf, msg, n);
	buf[n] = '\0';
}

/*
 * Reads mdm.max_message_bytes and mdm.max_identity_bytes; the library is
 * loaded first so they are defined.
 */
static void
read_limits(PGconn *conn)
{
	PGresult   *res = PQexec(conn,
							 "SELECT mdm.jsonb_to_plist('0') IS NOT NULL, "
							 "(SELECT setting::int FROM pg_settings WHERE name = 'mdm.max_message_bytes'), "
							 "(SELECT setting::int FROM pg_settings WHERE name = 'mdm.max_identity_bytes')");

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
	{
		if (!PQgetisnull(res, 0, 1))
			atomic_store(&max_message_bytes, atoi(PQgetvalue(res, 0, 1)));
		if (!PQgetisnull(res, 0, 2))
			atomic_store(&max_identity_bytes, atoi(PQgetvalue(res, 0, 2)));
	}
	PQclear(res);
}

/* Notices and warnings of the server go to the log, at debug level. */
static void
notice_to_log(void *arg, const char *message)
{
	char		line[256];

	first_line(message, line, sizeof(line));
	log_debug("database: %s", line);
}

static PGconn *
open_conn(enum db_pool pool)
{
	char		err[256];
	PGconn	   *conn = connect_pool(pool);

	if (PQstatus(conn) != CONNECTION_OK)
	{
		first_line(PQerrorMessage(conn), err, sizeof(err));
		log_warning("cannot connect to the database: %s", err);
		metrics_db_error(DBERR_CONNECT);
		PQfinish(conn);
		return NULL;
	}
	for (int i = 0; i < n_statements; i++)
	{
		char		name[16];
		PGresult   *res;

		if (statements[i].pool != pool)
			continue;
		snprintf(name, sizeof(name), "s%d", i);
		res = PQprepare(conn, name, statements[i].sql, statements[i].nparams, statements[i].types);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			first_line(PQresultErrorMessage(res), err, sizeof(err));
			log_warning("cannot prepare a statement: %s", err);
			metrics_db_error(DBERR_CONNECT);
			PQclear(res);
			PQfinish(conn);
			return NULL;
		}
		PQclear(res);
	}
	PQsetNoticeProcessor(conn, notice_to_log, NULL);
	if (pool == DB_DEVICE)
		read_limits(conn);
	log_debug("connected to the database (%s pool)", pool == DB_DEVICE ? "device" : "admin");
	return conn;
}

/*
 * This thread's connection of a pool, (re)connecting when needed.  A
 * connection idle for a while whose socket is readable has been closed by
 * the server (a restart) or has a notice waiting: consuming the input tells
 * which, so that a restarted server costs no failed request.  A busy
 * connection is not checked (a poll() per call costs more than the rare
 * 503 it would save).
 */
static PGconn *
get_conn(enum db_pool pool, double now)
{
	PGconn	   *conn = conns.conn[pool];

	if (conn != NULL)
	{
		struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};

		if (now - conns.last_used[pool] > IDLE_CHECK_SECONDS && poll(&pfd, 1, 0) > 0 &&
			(!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK))
		{
			log_warning("database connection lost; connecting again");
			metrics_db_error(DBERR_CONNECTION_LOST);
			PQfinish(conn);
			conn = conns.conn[pool] = NULL;
		}
		else
		{
			PGnotify   *n;

			while ((n = PQnotifies(conn)) != NULL)
				PQfreemem(n);
			return conn;
		}
	}
	if (now < conns.next_attempt[pool])
		return NULL;
	conn = conns.conn[pool] = open_conn(pool);
	if (conn == NULL)
		conns.next_attempt[pool] = now_seconds() + 0.5;
	return conn;
}

static void
drop_conn(enum db_pool pool)
{
	if (conns.conn[pool])
		PQfinish(conns.conn[pool]);
	conns.conn[pool] = NULL;
	conns.next_attempt[pool] = 0;
}

static bool
is_connection_error(const char *sqlstate)
{
	return strncmp(sqlstate, "08", 2) == 0 || strcmp(sqlstate, "57P01") == 0 ||
		strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0;
}

enum db_outcome
db_exec(int stmt, struct db_call *call)
{
	enum db_pool pool = statements[stmt].pool;
	char		name[16];

	snprintf(name, sizeof(name), "s%d", stmt);
	call->res = NULL;
	call->sqlstate[0] = '\0';
	call->message[0] = '\0';
	for (int attempt = 1; attempt <= MAX_TRIES; attempt++)
	{
		double		start = now_seconds();
		PGconn	   *conn = get_conn(pool, start);
		PGresult   *res;
		const char *state;

		if (conn == NULL)
			return DB_UNAVAILABLE;
		res = PQexecPrepared(conn, name, call->nparams, call->values, call->lengths,
							 call->formats, call->result_format);
		conns.last_used[pool] = now_seconds();
		metrics_db_call((uint64_t) ((conns.last_used[pool] - start) * 1e6));
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
		{
			call->res = res;
			return DB_OK;
		}
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		first_line(PQresultErrorMessage(res), call->message, sizeof(call->message));
		if (state == NULL || PQstatus(conn) != CONNECTION_OK || is_connection_error(state))
		{
			/* lost during the call: whether it committed is unknown; no retry */
			log_warning("database connection lost during a call: %s", call->message);
			metrics_db_error(DBERR_CONNECTION_LOST);
			PQclear(res);
			drop_conn(pool);
			return DB_UNAVAILABLE;
		}
		memcpy(call->sqlstate, state, 5);
		call->sqlstate[5] = '\0';
		PQclear(res);
		if (strcmp(call->sqlstate, "40001") == 0 || strcmp(call->sqlstate, "40P01") == 0)
		{
			metrics_db_error(DBERR_RETRY);
			continue;
		}
		metrics_db_error(DBERR_STATEMENT);
		return DB_ERROR;
	}
	return DB_UNAVAILABLE;
}

int
db_http_status(const char *s, bool admin)
{
	static const char *const bad_request[] = {
		"22P03", "2200M", "22P02", "22021", "22003", "22008", "22007", "22030",
		"22023", "22004", "0A000", "54000", NULL
	};

	for (int i = 0; bad_request[i]; i++)
		if (strcmp(s, bad_request[i]) == 0)
			return 400;
	if (strcmp(s, "42704") == 0)
		return admin ? 404 : 400;
	if (strcmp(s, "28000") == 0)
		return 403;				/* never 401 to a device */
	if (strcmp(s, "23505") == 0 || strcmp(s, "55000") == 0)
		return admin ? 409 : 500;
	if (strcmp(s, "23M01") == 0)
		return admin ? 403 : 500;
	if (strcmp(s, "53200") == 0 || strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 ||
		is_connection_error(s))
		return 503;
	return 500;
}

int
db_max_message_bytes(void)
{
	return atomic_load(&max_message_bytes);
}

int
db_max_identity_bytes(void)
{
	return atomic_load(&max_identity_bytes);
}

/* One query at start-up; returns the first value, or NULL with the error printed. */
static char *
check_query(PGconn *conn, const char *sql, const char *what)
{
	PGresult   *res = PQexec(conn, sql);
	char	   *value = NULL;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		char		err[256];

		first_line(PQresultErrorMessage(res), err, sizeof(err));
		fprintf(stderr, "mdm-frontend: %s: %s\n", what, err);
	}
	else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		value = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return value;
}

static int
check_pool(enum db_pool pool, const char *role, const char *functions)
{
	PGconn	   *conn = connect_pool(pool);
	char		sql[1024];
	char	   *v;
	const char *flag = pool == DB_DEVICE ? "--dsn" : "--admin-dsn";

	if (PQstatus(conn) != CONNECTION_OK)
	{
		char		err[256];

		first_line(PQerrorMessage(conn), err, sizeof(err));
		fprintf(stderr, "mdm-frontend: cannot connect to the database (%s): %s\n", flag, err);
		PQfinish(conn);
		return -1;
	}
	v = check_query(conn, "SELECT count(*) FROM pg_extension WHERE extname = 'mdm_user'",
					"cannot check for the extension");
	if (v == NULL || strcmp(v, "1") != 0)
	{
		if (v)
			fprintf(stderr, "mdm-frontend: the extension mdm_user is not installed in database \"%s\" (%s)\n",
					PQdb(conn), flag);
		free(v);
		PQfinish(conn);
		return -1;
	}
	free(v);
	snprintf(sql, sizeof(sql),
			 "SELECT CASE WHEN has_schema_privilege('mdm', 'USAGE') THEN "
			 "(SELECT bool_and(has_function_privilege(f::regprocedure, 'EXECUTE')) "
			 "FROM unnest('{%s}'::text[]) f) ELSE false END", functions);
	v = check_query(conn, sql, "cannot check the role's privileges");
	if (v == NULL || strcmp(v, "t") != 0)
	{
		if (v)
			fprintf(stderr, "mdm-frontend: role \"%s\" lacks the privileges of %s (%s): "
					"GRANT %s TO \"%s\"\n", PQuser(conn), role, flag, role, PQuser(conn));
		free(v);
		PQfinish(conn);
		return -1;
	}
	free(v);
	/* the limits hold from the first request on */
	if (pool == DB_DEVICE)
		read_limits(conn);
	PQfinish(conn);
	return 0;
}

int
db_check(bool want_admin)
{
	if (check_pool(DB_DEVICE, "mdm_frontend",
				   "\"mdm.checkin(bytea,bytea,text)\",\"mdm.connect(bytea,bytea,text)\","
				   "\"mdm.message_enrollment_id(bytea,boolean)\"") != 0)
		return -1;
	if (want_admin &&
		check_pool(DB_ADMIN, "mdm_admin",
				   "\"mdm.api_enqueue(text[],bytea,boolean)\",\"mdm.api_push(text[])\","
				   "\"mdm.api_pushcert(bytea)\",\"mdm.api_pushcert_get(text)\","
				   "\"mdm.api_migration(bytea)\"") != 0)
		return -1;
	return 0;
}
