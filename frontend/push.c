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
 *   - the outcomes are reported in one statement per batch
 *     (mdm.push_results), when 500 are waiting, 20 ms after the first one,
 *     or when nothing else is to do.  A push that got no answer
 *     (transport error, time-out) is reported as 503 "transport: ...", so
 *     the database retries it after its backoff.
 *
 * Outcomes are kept while the database is unreachable and reported after
 * the reconnection.  The front end keeps no other state: a worker that
 * dies leaves its claims to mdm.push_claim_timeout.
 */
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
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

/* $1: {"j": [job ids], "s": [statuses], "r": [reasons], "a": [apns-ids]} */
static const char report_sql[] =
"SELECT r.state FROM mdm.push_results("
"ARRAY(SELECT v::bigint FROM json_array_elements_text($1::json->'j') WITH ORDINALITY e(v, n) ORDER BY n), "
"ARRAY(SELECT v::integer FROM json_array_elements_text($1::json->'s') WITH ORDINALITY e(v, n) ORDER BY n), "
"ARRAY(SELECT v FROM json_array_elements_text($1::json->'r') WITH ORDINALITY e(v, n) ORDER BY n), "
"ARRAY(SELECT v FROM json_array_elements_text($1::json->'a') WITH ORDINALITY e(v, n) ORDER BY n)) r";

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
	char	   *reason;			/* NULL: none */
	char	   *apns_id;
} outcome;

typedef struct worker
{
	int			id;
	pthread_t	thread;
	int			epfd;
	int			stopfd;
	bool		stopping;
	PGconn	   *conn;
	int			conn_fd;
	long		next_connect_ms;
	bool		connect_failed; /* logged once per outage */
	apns_pool  *pool;
	bool		want_claim;
	long		next_poll_ms;
	outcome    *results;
	int			n_results;
	int			cap_results;
	long		first_result_ms;
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

static char *
dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
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
	if (w->n_results == w->cap_results)
	{
		int			cap = w->cap_results ? w->cap_results * 2 : 1024;
		outcome    *p = realloc(w->results, cap * sizeof(outcome));

		if (!p)
		{
			log_error("push: out of memory: the outcome of job %lld is lost (its claim will time out)",
					  (long long) o->job_id);
			return;
		}
		w->results = p;
		w->cap_results = cap;
	}
	if (w->n_results == 0)
		w->first_result_ms = now_ms();
	r = &w->results[w->n_results++];
	r->job_id = o->job_id;
	r->status = o->status;
	r->reason = dup_or_null(o->reason);
	r->apns_id = dup_or_null(o->apns_id);
}

static void
drop_connection(worker *w, const char *why)
{
	if (!w->conn)
		return;
	log_warning("push worker %d: database connection lost (%s); reconnecting", w->id, why);
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->conn_fd, NULL);
	PQfinish(w->conn);
	w->conn = NULL;
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

/* One statement; NULL (and the connection dropped if it broke) on error. */
static PGresult *
run(worker *w, const char *name, int nparams, const char *const *values, ExecStatusType want)
{
	PGresult   *res;
	long		t0 = now_us();

	res = PQexecPrepared(w->conn, name, nparams, values, NULL, NULL, 0);
	metrics_db_call((uint64_t) (now_us() - t0));
	if (PQresultStatus(res) == want)
	{
		take_notifications(w);
		return res;
	}
	if (PQstatus(w->conn) != CONNECTION_OK)
	{
		PQclear(res);
		drop_connection(w, PQerrorMessage(w->conn));
		return NULL;
	}
	take_notifications(w);
	log_warning("push worker %d: %s failed: %s %s", w->id, name,
				PQresultErrorField(res, PG_DIAG_SQLSTATE) ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "",
				PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : PQerrorMessage(w->conn));
	metrics_db_error(DBERR_STATEMENT);
	PQclear(res);
	return NULL;
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
	if (ok)
	{
		res = PQprepare(w->conn, "claim", claim_sql, 1, NULL);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	if (ok)
	{
		res = PQprepare(w->conn, "report", report_sql, 1, NULL);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	if (ok)
	{
		res = PQprepare(w->conn, "backlog", backlog_sql, 0, NULL);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	if (ok && PQsetnonblocking(w->conn, 0) == 0)
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

static void
free_results(outcome *r, int n)
{
	for (int i = 0; i < n; i++)
	{
		free(r[i].reason);
		free(r[i].apns_id);
	}
}

/* Reports results[from..from+n) in one statement: 1 done, 0 refused, -1 no connection. */
static int
report_some(worker *w, int from, int n)
{
	json_t	   *j = json_array(),
			   *st = json_array(),
			   *rs = json_array(),
			   *as = json_array(),
			   *all;
	char	   *text;
	PGresult   *res;
	const char *params[1];

	for (int i = from; i < from + n; i++)
	{
		outcome    *r = &w->results[i];
		json_t	   *reason = r->reason ? json_string(r->reason) : NULL;
		json_t	   *apns_id = r->apns_id ? json_string(r->apns_id) : NULL;

		/* a reason or apns-id that is not UTF-8 is left out (NULL) */
		json_array_append_new(j, json_integer((json_int_t) r->job_id));
		json_array_append_new(st, json_integer(r->status));
		json_array_append_new(rs, reason ? reason : json_null());
		json_array_append_new(as, apns_id ? apns_id : json_null());
	}
	all = json_pack("{s:o, s:o, s:o, s:o}", "j", j, "s", st, "r", rs, "a", as);
	text = all ? json_dumps(all, JSON_COMPACT) : NULL;
	json_decref(all);
	if (!text)
		return 0;
	params[0] = text;
	res = run(w, "report", 1, params, PGRES_TUPLES_OK);
	free(text);
	if (!res)
		return w->conn ? 0 : -1;
	for (int i = 0; i < PQntuples(res); i++)
		count_state(PQgetvalue(res, i, 0));
	PQclear(res);
	return 1;
}

/*
 * Reports every outcome waiting.  A batch the database refuses is reported
 * one by one, so that one bad report (a job deleted meanwhile, say) does not
 * lose the others; what it still refuses is logged and dropped.
 */
static void
flush_results(worker *w)
{
	int			done = 0;
	int			r;

	if (w->n_results == 0 || !w->conn)
		return;
	r = report_some(w, 0, w->n_results);
	if (r > 0)
		done = w->n_results;
	else if (r == 0)
	{
		for (; done < w->n_results && w->conn; done++)
		{
			if (report_some(w, done, 1) == 0)
			{
				log_warning("push worker %d: the outcome of job %lld (%d) was not recorded",
							w->id, (long long) w->results[done].job_id, w->results[done].status);
				stats.report_errors++;
			}
			else if (!w->conn)
				break;
		}
	}
	free_results(w->results, done);
	memmove(w->results, w->results + done, (w->n_results - done) * sizeof(outcome));
	w->n_results -= done;
	w->first_result_ms = now_ms();
}

/* Keeps the in-flight gauge up to date with this worker's pool. */
static void
count_in_flight(worker *w)
{
	int			now = w->pool ? apns_pool_in_flight(w->pool) : 0;

	stats.in_flight += now - w->last_in_flight;
	w->last_in_flight = now;
}

/* Claims and sends one batch; false when nothing more is waiting. */
static bool
claim_batch(worker *w, int max_jobs)
{
	char		n[16];
	const char *params[1] = {n};
	PGresult   *res;
	int			rows;

	snprintf(n, sizeof(n), "%d", max_jobs);
	res = run(w, "claim", 1, params, PGRES_TUPLES_OK);
	if (!res)
		return false;
	rows = PQntuples(res);
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
	PQclear(res);
	count_in_flight(w);
	return rows == max_jobs;
}

static void
read_backlog(worker *w)
{
	PGresult   *res = run(w, "backlog", 0, NULL, PGRES_TUPLES_OK);

	if (!res)
		return;
	stats.backlog_age_ms = (int64_t) (atof(PQgetvalue(res, 0, 0)) * 1000.0);
	PQclear(res);
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
			(w->n_results == 0 || !w->conn || now >= stop_deadline_ms))
			break;
		if (w->stopping && now >= stop_deadline_ms)
			break;
		if (!w->conn && now >= w->next_connect_ms)
			try_connect(w);
		if (w->conn && !w->stopping)
		{
			if (now >= w->next_poll_ms)
			{
				w->want_claim = true;
				w->next_poll_ms = now + POLL_MS;
				if (w->id == 0)
					read_backlog(w);
			}
			while (w->conn && w->want_claim && apns_pool_in_flight(w->pool) < apns_opts.max_streams)
			{
				int			room = apns_opts.max_streams - apns_pool_in_flight(w->pool);

				/* a notification taken during the claim sets want_claim again */
				w->want_claim = false;
				if (claim_batch(w, room < CLAIM_BATCH ? room : CLAIM_BATCH))
					w->want_claim = true;
			}
		}

		/* how long to wait: the earliest of the timers */
		timeout = w->stopping ? 100 : (w->next_poll_ms > now ? w->next_poll_ms - now : 0);
		if (!w->conn)
			timeout = w->next_connect_ms > now ? w->next_connect_ms - now : 0;
		t = apns_pool_next_timeout(w->pool);
		if (t >= 0 && t < timeout)
			timeout = t;
		if (w->n_results > 0 && w->conn)
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
			{
				if (w->conn && !PQconsumeInput(w->conn))
					drop_connection(w, PQerrorMessage(w->conn));
				else if (w->conn)
					take_notifications(w);
			}
			else
				apns_pool_event(w->pool, events[i].data.ptr, events[i].events);
		}
		apns_pool_timeout(w->pool);
		apns_pool_tidy(w->pool);
		count_in_flight(w);

		if (w->n_results > 0 && w->conn &&
			(n <= 0 || w->n_results >= CLAIM_BATCH ||
			 now_ms() - w->first_result_ms >= REPORT_DELAY_MS))
			flush_results(w);
	}
	/* what is still in flight ends as transport errors, reported if we can */
	apns_pool_destroy(w->pool);
	w->pool = NULL;
	count_in_flight(w);
	flush_results(w);
	if (w->n_results > 0)
		log_warning("push worker %d: %d outcomes not reported (their claims will time out)",
					w->id, w->n_results);
	free_results(w->results, w->n_results);
	free(w->results);
	if (w->conn)
	{
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
