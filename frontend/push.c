/*
 * push.c: the push sender (docs/frontend.md, "Pushes"; the contract is
 * docs/front-end.md, "Pushes").
 *
 * Each of --push-workers threads owns one database connection, which
 * LISTENs on mdm_push, and an APNs pool (apns.c), all in one epoll set:
 *
 *   - a notification, or the poll timer (every second: retries and
 *     timed-out claims are not announced), makes it claim: mdm.claim_pushes()
 *     in batches of up to 500 while fewer than --max-streams pushes are in
 *     flight;
 *   - each claimed job goes to APNs at once;
 *   - the outcomes are reported in one statement (mdm.push_results) with
 *     the next claim, when 500 are waiting, or 20 ms after the first one.
 *     A push that got no answer (transport error, time-out) is reported as
 *     503 "transport: ...", so the database retries it after its backoff.
 *
 * The database connection is nonblocking and in pipeline mode: a round
 * (the report, the claim, the backlog age, each with its own sync) is sent
 * in one go and its results are read by the epoll loop as they come, so
 * the database claims the next batch while this one is being sent.  One
 * round is in flight at a time.
 *
 * Outcomes are kept while the database is unreachable and reported after
 * the reconnection.  The front end keeps no other state: a worker that
 * dies leaves its claims to mdm.push_claim_timeout.
 */
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "apns.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "push.h"

#define CLAIM_BATCH 500
#define REPORT_MAX 2000			/* outcomes per report statement at most */
#define POLL_MS 1000
#define REPORT_DELAY_MS 20
#define RECONNECT_MS 1000

/*
 * The certificate and key only on the first row of each topic (the rows come
 * by topic): a batch carries them once, not 500 times.
 */
static const char claim_sql[] =
"SELECT job_id, token_hex, push_magic, topic, "
"CASE WHEN lag(topic) OVER w IS DISTINCT FROM topic THEN cert_pem END, "
"CASE WHEN lag(topic) OVER w IS DISTINCT FROM topic THEN key_pem END, "
"apns_expiration, apns_priority, apns_push_type "
"FROM mdm.claim_pushes($1) WINDOW w AS (ORDER BY topic, job_id) ORDER BY topic, job_id";

/* the four arrays of mdm.push_results, as text literals */
static const char report_sql[] =
"SELECT r.job_id, r.state FROM mdm.push_results($1::bigint[], $2::integer[], $3::text[], $4::text[]) r";

static const char backlog_sql[] = "SELECT mdm.push_backlog_age()";

/* ---- metrics ---- */

/* the statuses counted by name; others are "other" */
static const int counted_status[] = {200, 400, 403, 405, 410, 413, 429, 500, 503};
#define N_COUNTED (sizeof(counted_status) / sizeof(counted_status[0]))
#define STATUS_OTHER N_COUNTED
#define STATUS_TRANSPORT (N_COUNTED + 1)

static const char *const state_names[] = {"sent", "pending", "failed", "superseded", "other"};
#define N_STATES (sizeof(state_names) / sizeof(state_names[0]))

static struct
{
	_Atomic uint64_t by_status[N_COUNTED + 2];
	_Atomic uint64_t by_state[N_STATES];
	_Atomic uint64_t claimed;
	_Atomic uint64_t report_errors;
	_Atomic int64_t in_flight;
	_Atomic int64_t backlog_age_ms;
	_Atomic int	connected;
	struct histogram latency;	/* from sending to APNs' answer */
} stats;

static void
push_write_metrics(FILE *out)
{
	fputs("# HELP mdm_frontend_pushes_total APNs pushes by answer (transport: no answer).\n"
		  "# TYPE mdm_frontend_pushes_total counter\n", out);
	for (size_t i = 0; i < N_COUNTED; i++)
		fprintf(out, "mdm_frontend_pushes_total{status=\"%d\"} %llu\n", counted_status[i],
				(unsigned long long) stats.by_status[i]);
	fprintf(out, "mdm_frontend_pushes_total{status=\"other\"} %llu\n",
			(unsigned long long) stats.by_status[STATUS_OTHER]);
	fprintf(out, "mdm_frontend_pushes_total{status=\"transport\"} %llu\n",
			(unsigned long long) stats.by_status[STATUS_TRANSPORT]);
	fputs("# HELP mdm_frontend_push_reports_total Push outcomes reported, by the job state the database returned.\n"
		  "# TYPE mdm_frontend_push_reports_total counter\n", out);
	for (size_t i = 0; i < N_STATES; i++)
		fprintf(out, "mdm_frontend_push_reports_total{state=\"%s\"} %llu\n", state_names[i],
				(unsigned long long) stats.by_state[i]);
	fprintf(out, "# HELP mdm_frontend_push_claimed_total Push jobs claimed.\n"
			"# TYPE mdm_frontend_push_claimed_total counter\n"
			"mdm_frontend_push_claimed_total %llu\n"
			"# HELP mdm_frontend_push_report_errors_total Outcomes the database refused (logged).\n"
			"# TYPE mdm_frontend_push_report_errors_total counter\n"
			"mdm_frontend_push_report_errors_total %llu\n"
			"# HELP mdm_frontend_pushes_in_flight Pushes sent and not yet answered.\n"
			"# TYPE mdm_frontend_pushes_in_flight gauge\n"
			"mdm_frontend_pushes_in_flight %lld\n"
			"# HELP mdm_frontend_push_oldest_claimable_seconds Age of the oldest claimable push job (read every second).\n"
			"# TYPE mdm_frontend_push_oldest_claimable_seconds gauge\n"
			"mdm_frontend_push_oldest_claimable_seconds %.3f\n"
			"# HELP mdm_frontend_push_workers_connected Push workers connected to the database.\n"
			"# TYPE mdm_frontend_push_workers_connected gauge\n"
			"mdm_frontend_push_workers_connected %d\n",
			(unsigned long long) stats.claimed, (unsigned long long) stats.report_errors,
			(long long) stats.in_flight, stats.backlog_age_ms / 1000.0, (int) stats.connected);
	fputs("# HELP mdm_frontend_push_seconds Time from sending a push to APNs' answer.\n"
		  "# TYPE mdm_frontend_push_seconds histogram\n", out);
	metrics_write_histogram(out, "mdm_frontend_push_seconds", "", &stats.latency);
}

/* ---- workers ---- */

typedef struct outcome
{
	int64_t		job_id;
	int			status;
	char		reason[256];	/* "": none (reported as NULL) */
	char		apns_id[64];
} outcome;

/* One statement sent and not yet answered: the pipeline's queue. */
typedef enum op_kind
{
	OP_CLAIM,
	OP_REPORT,
	OP_BACKLOG
} op_kind;

typedef struct db_op
{
	op_kind		kind;
	outcome    *batch;			/* OP_REPORT: what it reports (owned) */
	int			n;				/* OP_REPORT: outcomes; OP_CLAIM: jobs asked for */
	bool		ok;				/* a result came */
	long		sent_us;		/* for mdm_frontend_db_call_seconds */
} db_op;

#define MAX_OPS 16

/* A growable array of outcomes. */
typedef struct outcomes
{
	outcome    *v;
	int			n;
	int			cap;
} outcomes;

typedef struct worker
{
	int			id;
	pthread_t	thread;
	int			epfd;
	int			stopfd;
	bool		stopping;
	PGconn	   *conn;			/* nonblocking, in pipeline mode */
	int			conn_fd;
	bool		want_write;		/* output left to flush: EPOLLOUT */
	long		next_connect_ms;
	bool		connect_failed; /* logged once per outage */
	apns_pool  *pool;
	bool		want_claim;
	bool		want_backlog;
	long		next_poll_ms;
	outcomes	results;		/* waiting to be reported */
	long		first_result_ms;
	outcomes	singles;		/* refused in a batch: reported one by one */
	db_op		ops[MAX_OPS];
	int			op_first;
	int			n_ops;
	int			last_in_flight; /* what stats.in_flight counts of ours */
} worker;

static worker *workers;
static int	n_workers;
static apns_options apns_opts;

/* epoll tags of a worker's own file descriptors */
static const char tag_db;
static const char tag_stop;

static long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000L + ts.tv_nsec / 1000L;
}

static long
now_ms(void)
{
	return now_us() / 1000;
}

static void
count_status(int status, bool transport)
{
	size_t		i;

	if (transport)
	{
		stats.by_status[STATUS_TRANSPORT]++;
		return;
	}
	for (i = 0; i < N_COUNTED; i++)
		if (counted_status[i] == status)
			break;
	stats.by_status[i]++;		/* i == N_COUNTED: other */
}

static void
count_state(const char *state)
{
	size_t		i;

	for (i = 0; i < N_STATES - 1; i++)
		if (strcmp(state, state_names[i]) == 0)
			break;
	stats.by_state[i]++;
}

static outcome *
outcomes_add(outcomes *a)
{
	if (a->n == a->cap)
	{
		int			cap = a->cap ? a->cap * 2 : 1024;
		outcome    *p = realloc(a->v, cap * sizeof(outcome));

		if (!p)
			return NULL;
		a->v = p;
		a->cap = cap;
	}
	return &a->v[a->n++];
}

/*
 * A reason or apns-id goes to the database as text: one that is not UTF-8
 * (from a broken gateway) is left out.  Jansson checks what is not ASCII.
 */
static void
copy_text(char *dst, size_t size, const char *src)
{
	const unsigned char *p;

	for (p = (const unsigned char *) src; *p && *p < 0x80; p++)
		;
	if (*p)
	{
		json_t	   *t = json_string(src);

		if (t == NULL)
		{
			dst[0] = '\0';
			return;
		}
		json_decref(t);
	}
	snprintf(dst, size, "%s", src);
}

/* apns.c calls this for every push that ended. */
static void
on_done(void *arg, const apns_outcome *o)
{
	worker	   *w = arg;
	outcome    *r;

	if (!o->transport_error)
		histogram_observe(&stats.latency, (uint64_t) o->elapsed_us);
	count_status(o->status, o->transport_error);
	if (o->status != 200 || log_enabled(LOG_LEVEL_DEBUG))
		log_line(o->transport_error ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG,
				 "push: job %lld: %d %s%s%s", (long long) o->job_id, o->status, o->reason,
				 o->apns_id[0] ? " apns-id " : "", o->apns_id);
	if (w->results.n == 0)
		w->first_result_ms = now_ms();
	r = outcomes_add(&w->results);
	if (!r)
	{
		log_error("push: out of memory: the outcome of job %lld is lost (its claim will time out)",
				  (long long) o->job_id);
		return;
	}
	r->job_id = o->job_id;
	r->status = o->status;
	copy_text(r->reason, sizeof(r->reason), o->reason);
	copy_text(r->apns_id, sizeof(r->apns_id), o->apns_id);
}

/* Outcomes sent in reports that got no answer go back to be reported again. */
static void
requeue(worker *w, outcome *batch, int n)
{
	for (int i = 0; i < n; i++)
	{
		outcome    *r = outcomes_add(&w->results);

		if (!r)
		{
			log_error("push: out of memory: the outcome of job %lld is lost (its claim will time out)",
					  (long long) batch[i].job_id);
			continue;
		}
		*r = batch[i];
	}
}

static void
drop_connection(worker *w, const char *why)
{
	if (!w->conn)
		return;
	log_warning("push worker %d: database connection lost (%.*s); reconnecting", w->id,
				(int) strcspn(why, "\n"), why);
	/* reports without an answer are made again; claims time out */
	for (int i = 0; i < w->n_ops; i++)
	{
		db_op	   *op = &w->ops[(w->op_first + i) % MAX_OPS];

		if (op->kind == OP_REPORT)
		{
			requeue(w, op->batch, op->n);
			free(op->batch);
		}
	}
	w->n_ops = 0;
	w->op_first = 0;
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->conn_fd, NULL);
	PQfinish(w->conn);
	w->conn = NULL;
	w->want_write = false;
	stats.connected--;
	w->next_connect_ms = now_ms() + RECONNECT_MS;
	metrics_db_error(DBERR_CONNECTION_LOST);
}

static void
take_notifications(worker *w)
{
	PGnotify   *n;

	while ((n = PQnotifies(w->conn)) != NULL)
	{
		w->want_claim = true;
		PQfreemem(n);
	}
}

static bool
prepare(PGconn *conn, const char *name, const char *sql, int nparams)
{
	PGresult   *res = PQprepare(conn, name, sql, nparams, NULL);
	bool		ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	PQclear(res);
	return ok;
}

static void
try_connect(worker *w)
{
	static const char *const keys[] = {"application_name", "connect_timeout", "dbname", NULL};
	const char *values[] = {"mdm-frontend push", "5", config.dsn, NULL};
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *) &tag_db};
	PGresult   *res;
	bool		ok;

	w->next_connect_ms = now_ms() + RECONNECT_MS;
	w->conn = PQconnectdbParams(keys, values, 1);
	ok = PQstatus(w->conn) == CONNECTION_OK;
	if (ok)
	{
		res = PQexec(w->conn, "LISTEN mdm_push");
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	ok = ok && prepare(w->conn, "claim", claim_sql, 1) && prepare(w->conn, "report", report_sql, 4) &&
		prepare(w->conn, "backlog", backlog_sql, 0);
	/* from here on every statement is sent without waiting: pipeline mode */
	ok = ok && PQsetnonblocking(w->conn, 1) == 0 && PQenterPipelineMode(w->conn) == 1;
	if (ok)
	{
		w->conn_fd = PQsocket(w->conn);
		ok = epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->conn_fd, &ev) == 0;
	}
	if (!ok)
	{
		if (!w->connect_failed)
			log_warning("push worker %d: cannot connect or prepare: %.*s (retrying every second)",
						w->id, (int) strcspn(PQerrorMessage(w->conn), "\n"), PQerrorMessage(w->conn));
		w->connect_failed = true;
		metrics_db_error(DBERR_CONNECT);
		PQfinish(w->conn);
		w->conn = NULL;
		return;
	}
	if (w->connect_failed)
		log_info("push worker %d: connected to the database again", w->id);
	w->connect_failed = false;
	stats.connected++;
	/* whatever was announced while we were away */
	w->want_claim = true;
}

/* Keeps the in-flight gauge up to date with this worker's pool. */
static void
count_in_flight(worker *w)
{
	int			now = w->pool ? apns_pool_in_flight(w->pool) : 0;

	stats.in_flight += now - w->last_in_flight;
	w->last_in_flight = now;
}

/* ---- the pipeline: statements sent, their results read as they come ---- */

/* Sends one statement with a sync of its own, so that a failure aborts no other. */
static bool
send_op(worker *w, op_kind kind, const char *name, int nparams, const char *const *values,
		outcome *batch, int n)
{
	db_op	   *op;

	if (!PQsendQueryPrepared(w->conn, name, nparams, values, NULL, NULL, 0) ||
		!PQpipelineSync(w->conn))
	{
		if (batch)
		{
			requeue(w, batch, n);
			free(batch);
		}
		drop_connection(w, PQerrorMessage(w->conn));
		return false;
	}
	op = &w->ops[(w->op_first + w->n_ops) % MAX_OPS];
	*op = (db_op) {.kind = kind, .batch = batch, .n = n, .sent_us = now_us()};
	w->n_ops++;
	return true;
}

/* Growable text for the report's array literals. */
typedef struct text_buf
{
	char	   *p;
	size_t		len;
	size_t		cap;
	bool		failed;
} text_buf;

static void
buf_add(text_buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 4096;
		char	   *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL)
		{
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* An element of a text[] literal: NULL for "", else quoted. */
static void
buf_add_element(text_buf *b, const char *s)
{
	if (s[0] == '\0')
	{
		buf_add(b, "NULL", 4);
		return;
	}
	buf_add(b, "\"", 1);
	for (const char *p = s; *p;)
	{
		size_t		n = strcspn(p, "\"\\");

		buf_add(b, p, n);
		p += n;
		if (*p)
		{
			buf_add(b, "\\", 1);
			buf_add(b, p++, 1);
		}
	}
	buf_add(b, "\"", 1);
}

/*
 * Sends the report of batch[0..n) (owned by the op from here on): the four
 * arrays of mdm.push_results as text literals.
 */
static void
send_report(worker *w, outcome *batch, int n)
{
	text_buf	b[4] = {{0}};
	const char *params[4];
	char		num[32];

	for (int k = 0; k < 4; k++)
		buf_add(&b[k], "{", 1);
	for (int i = 0; i < n; i++)
	{
		const char *sep = i ? "," : "";

		snprintf(num, sizeof(num), "%s%lld", sep, (long long) batch[i].job_id);
		buf_add(&b[0], num, strlen(num));
		snprintf(num, sizeof(num), "%s%d", sep, batch[i].status);
		buf_add(&b[1], num, strlen(num));
		buf_add(&b[2], sep, strlen(sep));
		buf_add_element(&b[2], batch[i].reason);
		buf_add(&b[3], sep, strlen(sep));
		buf_add_element(&b[3], batch[i].apns_id);
	}
	for (int k = 0; k < 4; k++)
	{
		buf_add(&b[k], "}", 1);
		params[k] = b[k].p;
	}
	if (b[0].failed || b[1].failed || b[2].failed || b[3].failed)
	{
		log_error("push: out of memory building a report; trying again");
		requeue(w, batch, n);
		free(batch);
	}
	else
		send_op(w, OP_REPORT, "report", 4, params, batch, n);
	for (int k = 0; k < 4; k++)
		free(b[k].p);
}

/* Takes the first n of a list of outcomes as a batch of their own. */
static outcome *
take_outcomes(outcomes *a, int n)
{
	outcome    *batch = malloc(n * sizeof(outcome));

	if (!batch)
		return NULL;
	memcpy(batch, a->v, n * sizeof(outcome));
	memmove(a->v, a->v + n, (a->n - n) * sizeof(outcome));
	a->n -= n;
	return batch;
}

/*
 * One round trip: the claim of the next batch, whatever is due of the report
 * of the outcomes waiting, and the backlog's age, sent together (the claim
 * first, so that a single push waits for no report) while the pushes in
 * flight go on.  Only one round is in flight at a time, so a claim
 * is sized by the room left when it is sent.
 */
static void
start_round(worker *w, long now)
{
	int			room = apns_opts.max_streams - apns_pool_in_flight(w->pool);
	bool		claim = w->want_claim && !w->stopping && room > 0;
	outcome    *batch;
	int			n;

	if (!w->conn || w->n_ops > 0)
		return;
	/* the claim first: its pushes start before the reports are done */
	if (claim)
	{
		char		num[16];
		const char *params[1] = {num};

		n = room < CLAIM_BATCH ? room : CLAIM_BATCH;
		snprintf(num, sizeof(num), "%d", n);
		/* a notification that comes meanwhile sets want_claim again */
		w->want_claim = false;
		send_op(w, OP_CLAIM, "claim", 1, params, NULL, n);
	}
	/* outcomes a batch report was refused for, one statement each */
	while (w->conn && w->singles.n > 0 && w->n_ops < MAX_OPS - 3 && (batch = take_outcomes(&w->singles, 1)))
		send_report(w, batch, 1);
	if (w->conn && w->results.n > 0 &&
		(claim || w->stopping || w->results.n >= CLAIM_BATCH ||
		 now - w->first_result_ms >= REPORT_DELAY_MS))
	{
		n = w->results.n < REPORT_MAX ? w->results.n : REPORT_MAX;
		if ((batch = take_outcomes(&w->results, n)) != NULL)
			send_report(w, batch, n);
		w->first_result_ms = now;
	}
	if (w->conn && w->want_backlog)
	{
		w->want_backlog = false;
		send_op(w, OP_BACKLOG, "backlog", 0, NULL, NULL, 0);
	}
	if (w->conn && w->n_ops > 0)
	{
		int			r = PQflush(w->conn);

		if (r < 0)
			drop_connection(w, PQerrorMessage(w->conn));
		else if ((r == 1) != w->want_write)
		{
			struct epoll_event ev = {.events = EPOLLIN | (r == 1 ? EPOLLOUT : 0),
			.data.ptr = (void *) &tag_db};

			w->want_write = r == 1;
			epoll_ctl(w->epfd, EPOLL_CTL_MOD, w->conn_fd, &ev);
		}
	}
}

/* The claimed jobs go to APNs at once. */
static void
start_pushes(worker *w, PGresult *res, int asked)
{
	int			rows = PQntuples(res);

	stats.claimed += rows;
	for (int i = 0, first = 0; i < rows; i++)
	{
		apns_push	p;

		if (!PQgetisnull(res, i, 4))
			first = i;			/* a new topic: its certificate and key */
		p = (apns_push) {
			.job_id = strtoll(PQgetvalue(res, i, 0), NULL, 10),
			.token_hex = PQgetvalue(res, i, 1),
			.push_magic = PQgetvalue(res, i, 2),
			.topic = PQgetvalue(res, i, 3),
			.cert_pem = PQgetvalue(res, first, 4),
			.key_pem = PQgetvalue(res, first, 5),
			.expiration = PQgetvalue(res, i, 6),
			.priority = PQgetvalue(res, i, 7),
			.push_type = PQgetvalue(res, i, 8),
		};

		apns_pool_send(w->pool, &p);
	}
	count_in_flight(w);
	if (rows == asked)
		w->want_claim = true;	/* more may be waiting */
}

static void
op_result(worker *w, db_op *op, PGresult *res)
{
	switch (op->kind)
	{
		case OP_CLAIM:
			start_pushes(w, res, op->n);
			break;
		case OP_REPORT:
			for (int i = 0; i < PQntuples(res); i++)
				count_state(PQgetvalue(res, i, 1));
			break;
		case OP_BACKLOG:
			stats.backlog_age_ms = (int64_t) (atof(PQgetvalue(res, 0, 0)) * 1000.0);
			break;
	}
}

static const char *const op_names[] = {"claim", "report", "backlog"};

/*
 * A statement is done (its sync came).  A batch report the database refused
 * is made again one outcome at a time, so that one bad outcome (a job
 * deleted meanwhile, say) does not lose the others; what it still refuses
 * alone is logged and dropped (its claim times out).
 */
static void
op_done(worker *w, db_op *op)
{
	if (op->kind == OP_REPORT && !op->ok)
	{
		if (op->n > 1)
		{
			for (int i = 0; i < op->n; i++)
			{
				outcome    *r = outcomes_add(&w->singles);

				if (r)
					*r = op->batch[i];
			}
		}
		else
		{
			log_warning("push worker %d: the outcome of job %lld (%d) was not recorded",
						w->id, (long long) op->batch[0].job_id, op->batch[0].status);
			stats.report_errors++;
		}
	}
	free(op->batch);
	op->batch = NULL;
}

/* Reads every result that has come, in the order the statements were sent. */
static void
read_results(worker *w)
{
	bool		was_null = false;

	while (w->conn && w->n_ops > 0 && !PQisBusy(w->conn))
	{
		db_op	   *op = &w->ops[w->op_first];
		PGresult   *res = PQgetResult(w->conn);
		ExecStatusType st;

		if (res == NULL)
		{
			/* the end of a statement's results; its sync comes next */
			if (was_null)
				break;
			was_null = true;
			continue;
		}
		was_null = false;
		st = PQresultStatus(res);
		if (st == PGRES_PIPELINE_SYNC)
		{
			metrics_db_call((uint64_t) (now_us() - op->sent_us));
			op_done(w, op);
			w->op_first = (w->op_first + 1) % MAX_OPS;
			w->n_ops--;
		}
		else if (st == PGRES_TUPLES_OK)
		{
			op->ok = true;
			op_result(w, op, res);
		}
		else if (st != PGRES_PIPELINE_ABORTED)
		{
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

			log_warning("push worker %d: %s failed: %s %s", w->id, op_names[op->kind],
						state ? state : "", msg ? msg : PQerrorMessage(w->conn));
			metrics_db_error(DBERR_STATEMENT);
		}
		PQclear(res);
	}
	if (w->conn && PQstatus(w->conn) != CONNECTION_OK)
		drop_connection(w, PQerrorMessage(w->conn));
	/* a notification behind a result is parsed only once the result is taken */
	if (w->conn)
		take_notifications(w);
}

/* The database socket is readable or writable. */
static void
db_event(worker *w, uint32_t events)
{
	if (!w->conn)
		return;
	if (events & EPOLLOUT)
	{
		int			r = PQflush(w->conn);

		if (r < 0)
		{
			drop_connection(w, PQerrorMessage(w->conn));
			return;
		}
		if (r == 0)
		{
			struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *) &tag_db};

			w->want_write = false;
			epoll_ctl(w->epfd, EPOLL_CTL_MOD, w->conn_fd, &ev);
		}
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
	{
		if (!PQconsumeInput(w->conn))
		{
			drop_connection(w, PQerrorMessage(w->conn));
			return;
		}
		take_notifications(w);
		read_results(w);
	}
}

/* At the end: reports what is left, waiting for the database up to the deadline. */
static void
final_reports(worker *w, long deadline_ms)
{
	while (w->conn && (w->results.n > 0 || w->singles.n > 0 || w->n_ops > 0) && now_ms() < deadline_ms)
	{
		struct pollfd pfd = {.fd = w->conn_fd, .events = POLLIN | (w->want_write ? POLLOUT : 0)};

		start_round(w, now_ms());
		if (!w->conn || w->n_ops == 0)
			break;
		if (poll(&pfd, 1, 100) > 0)
			db_event(w, (pfd.revents & POLLIN ? EPOLLIN : 0) | (pfd.revents & POLLOUT ? EPOLLOUT : 0) |
					 (pfd.revents & (POLLERR | POLLHUP) ? EPOLLERR : 0));
	}
}

static void *
worker_main(void *arg)
{
	worker	   *w = arg;
	long		stop_deadline_ms = 0;

	for (;;)
	{
		struct epoll_event events[64];
		long		now = now_ms();
		long		timeout;
		long		t;
		int			n;

		if (w->stopping && apns_pool_in_flight(w->pool) == 0 &&
			((w->results.n == 0 && w->singles.n == 0 && w->n_ops == 0) || !w->conn ||
			 now >= stop_deadline_ms))
			break;
		if (w->stopping && now >= stop_deadline_ms)
			break;
		if (!w->conn && now >= w->next_connect_ms)
			try_connect(w);
		if (w->conn && now >= w->next_poll_ms)
		{
			w->want_claim = true;
			w->want_backlog = w->id == 0;
			w->next_poll_ms = now + POLL_MS;
		}
		start_round(w, now);

		/* how long to wait: the earliest of the timers */
		timeout = w->stopping ? 100 : (w->next_poll_ms > now ? w->next_poll_ms - now : 0);
		if (!w->conn)
			timeout = w->next_connect_ms > now ? w->next_connect_ms - now : 0;
		t = apns_pool_next_timeout(w->pool);
		if (t >= 0 && t < timeout)
			timeout = t;
		if (w->results.n > 0 && w->conn && w->n_ops == 0)
		{
			t = w->first_result_ms + REPORT_DELAY_MS - now;
			timeout = t < 0 ? 0 : (t < timeout ? t : timeout);
		}

		n = epoll_wait(w->epfd, events, 64, (int) timeout);
		if (n < 0 && errno != EINTR)
		{
			log_error("push worker %d: epoll_wait: %s", w->id, strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++)
		{
			if (events[i].data.ptr == &tag_stop)
			{
				uint64_t	v;

				if (read(w->stopfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					log_warning("push worker %d: reading the stop signal: %s", w->id, strerror(errno));
				if (!w->stopping)
					stop_deadline_ms = now_ms() + (long) v;
				w->stopping = true;
			}
			else if (events[i].data.ptr == &tag_db)
				db_event(w, events[i].events);
			else
				apns_pool_event(w->pool, events[i].data.ptr, events[i].events);
		}
		apns_pool_timeout(w->pool);
		apns_pool_tidy(w->pool);
		count_in_flight(w);
	}
	/* what is still in flight ends as transport errors, reported if we can */
	apns_pool_destroy(w->pool);
	w->pool = NULL;
	count_in_flight(w);
	w->stopping = true;
	final_reports(w, now_ms() + 5000);
	if (w->results.n + w->singles.n > 0)
		log_warning("push worker %d: %d outcomes not reported (their claims will time out)",
					w->id, w->results.n + w->singles.n);
	free(w->results.v);
	free(w->singles.v);
	if (w->conn)
	{
		for (int i = 0; i < w->n_ops; i++)
			free(w->ops[(w->op_first + i) % MAX_OPS].batch);
		PQfinish(w->conn);
		stats.connected--;
	}
	return NULL;
}

/* ---- start and stop ---- */

int
push_start(void)
{
	if (config.no_push)
	{
		log_info("push: not sending pushes (--no-push)");
		return 0;
	}
	if (config.push_workers < 1 || config.push_workers > 64)
	{
		fprintf(stderr, "mdm-frontend: --push-workers must be between 1 and 64\n");
		return -1;
	}
	if (config.max_streams < 1 || config.max_streams > 10000)
	{
		fprintf(stderr, "mdm-frontend: --max-streams must be between 1 and 10000\n");
		return -1;
	}
	if (config.apns_timeout < 1 || config.apns_timeout > 3600)
	{
		fprintf(stderr, "mdm-frontend: --apns-timeout must be between 1 and 3600 seconds\n");
		return -1;
	}
	if (strncmp(config.apns_url, "https://", 8) != 0)
	{
		fprintf(stderr, "mdm-frontend: --apns-url must start with https://\n");
		return -1;
	}
	if (config.apns_ca && access(config.apns_ca, R_OK) != 0)
	{
		fprintf(stderr, "mdm-frontend: --apns-ca %s: %s\n", config.apns_ca, strerror(errno));
		return -1;
	}
	if (!apns_global_init())
	{
		fprintf(stderr, "mdm-frontend: libcurl without HTTP/2 or older than 7.71: cannot send pushes\n");
		return -1;
	}
	apns_opts = (apns_options) {
		.url = config.apns_url,
		.ca_file = config.apns_ca,
		.max_streams = config.max_streams,
		.timeout_ms = config.apns_timeout * 1000L,
		.connect_timeout_ms = config.apns_timeout * 1000L < 10000 ? config.apns_timeout * 1000L : 10000,
	};
	metrics_add_writer(push_write_metrics);
	n_workers = config.push_workers;
	workers = calloc(n_workers, sizeof(worker));
	if (!workers)
		return -1;
	for (int i = 0; i < n_workers; i++)
	{
		worker	   *w = &workers[i];
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *) &tag_stop};

		w->id = i;
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (w->epfd < 0 || w->stopfd < 0 ||
			epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->stopfd, &ev) != 0 ||
			!(w->pool = apns_pool_create(&apns_opts, w->epfd, on_done, w)) ||
			pthread_create(&w->thread, NULL, worker_main, w) != 0)
		{
			fprintf(stderr, "mdm-frontend: cannot start push worker %d: %s\n", i, strerror(errno));
			return -1;
		}
	}
	log_info("push: %d worker(s) sending to %s, %d streams each", n_workers, config.apns_url,
			 config.max_streams);
	return 0;
}

void
push_stop(int timeout_s)
{
	uint64_t	ms = (uint64_t) timeout_s * 1000;

	if (!workers)
		return;
	if (ms > (uint64_t) apns_opts.timeout_ms + 1000)
		ms = (uint64_t) apns_opts.timeout_ms + 1000;
	for (int i = 0; i < n_workers; i++)
		if (write(workers[i].stopfd, &ms, sizeof(ms)) < 0)
			log_warning("push: cannot signal worker %d: %s", i, strerror(errno));
	for (int i = 0; i < n_workers; i++)
	{
		pthread_join(workers[i].thread, NULL);
		close(workers[i].stopfd);
		close(workers[i].epfd);
	}
	free(workers);
	workers = NULL;
}
