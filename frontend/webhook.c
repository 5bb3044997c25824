/*
 * webhook.c: the webhook worker (docs/webhooks.md; the events and their
 * delivery rules are the extension's, schema/81_events.sql).
 *
 * One thread with one database connection that LISTENs on mdm_events:
 *
 *   - a notification, or the timer (at most a second, sooner when
 *     mdm.event_backlog() says a retry is due), makes it claim:
 *     mdm.claim_events() hands out the oldest due event of each enrollment,
 *     leased to this worker;
 *   - the claimed events are POSTed at once, in parallel over up to 16
 *     connections (they belong to different enrollments), as JSON, with
 *     X-Hmac-Signature (base64 HMAC-SHA256 of the body) when
 *     --webhook-hmac-key is given;
 *   - the outcomes are reported in one statement (mdm.event_result): a 2xx
 *     marks an event delivered, anything else (a transport error is
 *     reported with no status) makes the database retry it after its
 *     backoff, and the enrollment's later events wait for it.
 *
 * The worker keeps no state of its own: one that dies leaves its leases to
 * mdm.event_claim_timeout.
 */
#include <curl/curl.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "webhook.h"

#define CLAIM_BATCH 100
#define MAX_CONNECTIONS 16		/* to the receiver; more transfers wait for one */
#define POLL_MS 1000
#define RECONNECT_MS 1000

static const char claim_sql[] =
"SELECT device_id, id, attempt, event::text FROM mdm.claim_events($1) ORDER BY id";

static const char report_sql[] =
"SELECT mdm.event_result(t.d, t.i, t.a, t.s, t.e) "
"FROM json_to_recordset($1::json) AS t(d text, i bigint, a integer, s integer, e text)";

static const char backlog_sql[] =
"SELECT undelivered, coalesce(oldest_age, 0), coalesce(next_due_in, -1) FROM mdm.event_backlog()";

static struct
{
	_Atomic uint64_t delivered;
	_Atomic uint64_t failed_http;
	_Atomic uint64_t failed_transport;
	_Atomic uint64_t claimed;
	_Atomic int64_t backlog;
	_Atomic int64_t oldest_ms;
	_Atomic int	connected;
	struct histogram latency;
} stats;

/* one claimed event on its way */
typedef struct delivery
{
	char	   *device_id;
	char	   *id;
	char	   *attempt;
	char	   *body;
	CURL	   *easy;
	struct curl_slist *headers;
	int			status;			/* HTTP status; 0: transport error */
	char		error[CURL_ERROR_SIZE];
	long		started_us;
} delivery;

static struct
{
	pthread_t	thread;
	int			stopfd;
	volatile bool stopping;
	PGconn	   *conn;
	bool		connect_failed;
	CURLM	   *multi;
	bool		want_claim;
	long		next_due_ms;
} wk;

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
webhook_write_metrics(FILE *out)
{
	fprintf(out,
			"# HELP mdm_frontend_webhook_deliveries_total Webhook POSTs by outcome (delivered: a 2xx).\n"
			"# TYPE mdm_frontend_webhook_deliveries_total counter\n"
			"mdm_frontend_webhook_deliveries_total{outcome=\"delivered\"} %llu\n"
			"mdm_frontend_webhook_deliveries_total{outcome=\"http_error\"} %llu\n"
			"mdm_frontend_webhook_deliveries_total{outcome=\"transport_error\"} %llu\n"
			"# HELP mdm_frontend_webhook_claimed_total Webhook events claimed.\n"
			"# TYPE mdm_frontend_webhook_claimed_total counter\n"
			"mdm_frontend_webhook_claimed_total %llu\n"
			"# HELP mdm_frontend_webhook_backlog Undelivered webhook events (read every second).\n"
			"# TYPE mdm_frontend_webhook_backlog gauge\n"
			"mdm_frontend_webhook_backlog %lld\n"
			"# HELP mdm_frontend_webhook_oldest_undelivered_seconds Age of the oldest undelivered event.\n"
			"# TYPE mdm_frontend_webhook_oldest_undelivered_seconds gauge\n"
			"mdm_frontend_webhook_oldest_undelivered_seconds %.3f\n"
			"# HELP mdm_frontend_webhook_connected The webhook worker is connected to the database.\n"
			"# TYPE mdm_frontend_webhook_connected gauge\n"
			"mdm_frontend_webhook_connected %d\n",
			(unsigned long long) stats.delivered, (unsigned long long) stats.failed_http,
			(unsigned long long) stats.failed_transport, (unsigned long long) stats.claimed,
			(long long) stats.backlog, stats.oldest_ms / 1000.0, (int) stats.connected);
	fputs("# HELP mdm_frontend_webhook_seconds Time from POSTing an event to the receiver's answer.\n"
		  "# TYPE mdm_frontend_webhook_seconds histogram\n", out);
	metrics_write_histogram(out, "mdm_frontend_webhook_seconds", "", &stats.latency);
}

/* ---- the signature ---- */

/* base64 of len bytes into out (4 * ((len + 2) / 3) + 1 bytes) */
static void
base64_encode(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t		i;
	char	   *o = out;

	for (i = 0; i + 2 < len; i += 3)
	{
		*o++ = digits[in[i] >> 2];
		*o++ = digits[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*o++ = digits[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*o++ = digits[in[i + 2] & 63];
	}
	if (i < len)
	{
		*o++ = digits[in[i] >> 2];
		if (i + 1 < len)
		{
			*o++ = digits[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
			*o++ = digits[(in[i + 1] & 15) << 2];
		}
		else
		{
			*o++ = digits[(in[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
}

/* "X-Hmac-Signature: <base64 HMAC-SHA256 of body>"; false on a crypto error */
static bool
signature_header(const char *body, char *header, size_t size)
{
	unsigned char mac[32];
	char		b64[48];

	if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, config.webhook_hmac_key,
						 strlen(config.webhook_hmac_key), body, strlen(body), mac) != 0)
		return false;
	base64_encode(mac, sizeof(mac), b64);
	snprintf(header, size, "X-Hmac-Signature: %s", b64);
	return true;
}

/* ---- the database ---- */

static void
drop_connection(const char *why)
{
	if (!wk.conn)
		return;
	log_warning("webhook: database connection lost (%s); reconnecting", why);
	PQfinish(wk.conn);
	wk.conn = NULL;
	stats.connected = 0;
	metrics_db_error(DBERR_CONNECTION_LOST);
}

static void
take_notifications(void)
{
	PGnotify   *n;

	while (wk.conn && (n = PQnotifies(wk.conn)) != NULL)
	{
		wk.want_claim = true;
		PQfreemem(n);
	}
}

static PGresult *
run(const char *name, int nparams, const char *const *values)
{
	PGresult   *res;
	long		t0 = now_us();

	res = PQexecPrepared(wk.conn, name, nparams, values, NULL, NULL, 0);
	metrics_db_call((uint64_t) (now_us() - t0));
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		take_notifications();
		return res;
	}
	if (PQstatus(wk.conn) != CONNECTION_OK)
	{
		PQclear(res);
		drop_connection(PQerrorMessage(wk.conn));
		return NULL;
	}
	log_warning("webhook: %s failed: %s %s", name,
				PQresultErrorField(res, PG_DIAG_SQLSTATE) ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "",
				PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : PQerrorMessage(wk.conn));
	metrics_db_error(DBERR_STATEMENT);
	PQclear(res);
	return NULL;
}

static bool
prepare(const char *name, const char *sql, int nparams)
{
	PGresult   *res = PQprepare(wk.conn, name, sql, nparams, NULL);
	bool		ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	PQclear(res);
	return ok;
}

static void
try_connect(void)
{
	static const char *const keys[] = {"application_name", "connect_timeout", "dbname", NULL};
	const char *values[] = {"mdm-frontend webhook", "5", config.dsn, NULL};
	PGresult   *res;
	bool		ok;

	wk.conn = PQconnectdbParams(keys, values, 1);
	ok = PQstatus(wk.conn) == CONNECTION_OK;
	if (ok)
	{
		res = PQexec(wk.conn, "LISTEN mdm_events");
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	ok = ok && prepare("claim", claim_sql, 1) && prepare("report", report_sql, 1) &&
		prepare("backlog", backlog_sql, 0);
	if (!ok)
	{
		if (!wk.connect_failed)
			log_warning("webhook: cannot connect or prepare: %.*s (retrying every second)",
						(int) strcspn(PQerrorMessage(wk.conn), "\n"), PQerrorMessage(wk.conn));
		wk.connect_failed = true;
		metrics_db_error(DBERR_CONNECT);
		PQfinish(wk.conn);
		wk.conn = NULL;
		return;
	}
	if (wk.connect_failed)
		log_info("webhook: connected to the database again");
	wk.connect_failed = false;
	stats.connected = 1;
	wk.want_claim = true;		/* whatever was recorded while we were away */
}

static void
read_backlog(void)
{
	PGresult   *res = run("backlog", 0, NULL);
	double		due;

	if (!res)
		return;
	stats.backlog = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	stats.oldest_ms = (int64_t) (atof(PQgetvalue(res, 0, 1)) * 1000.0);
	due = atof(PQgetvalue(res, 0, 2));
	wk.next_due_ms = due < 0 ? -1 : now_ms() + (long) (due * 1000.0) + 1;
	PQclear(res);
}

/* ---- delivering ---- */

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	return size * nmemb;
}

static void
free_delivery(delivery *d)
{
	if (d->easy)
	{
		curl_multi_remove_handle(wk.multi, d->easy);
		curl_easy_cleanup(d->easy);
	}
	curl_slist_free_all(d->headers);
	free(d->device_id);
	free(d->id);
	free(d->attempt);
	free(d->body);
}

static bool
start_delivery(delivery *d)
{
	char		sig[96];

	d->easy = curl_easy_init();
	d->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!d->easy || !d->headers)
		return false;
	if (config.webhook_hmac_key)
	{
		struct curl_slist *h;

		if (!signature_header(d->body, sig, sizeof(sig)) ||
			!(h = curl_slist_append(d->headers, sig)))
			return false;
		d->headers = h;
	}
	curl_easy_setopt(d->easy, CURLOPT_URL, config.webhook_url);
	curl_easy_setopt(d->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(d->easy, CURLOPT_HTTPHEADER, d->headers);
	curl_easy_setopt(d->easy, CURLOPT_POSTFIELDS, d->body);
	curl_easy_setopt(d->easy, CURLOPT_POSTFIELDSIZE, (long) strlen(d->body));
	curl_easy_setopt(d->easy, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(d->easy, CURLOPT_TIMEOUT_MS, config.webhook_timeout * 1000L);
	curl_easy_setopt(d->easy, CURLOPT_CONNECTTIMEOUT_MS,
					 config.webhook_timeout < 10 ? config.webhook_timeout * 1000L : 10000L);
	curl_easy_setopt(d->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(d->easy, CURLOPT_ERRORBUFFER, d->error);
	curl_easy_setopt(d->easy, CURLOPT_PRIVATE, d);
	d->error[0] = '\0';
	d->started_us = now_us();
	return curl_multi_add_handle(wk.multi, d->easy) == CURLM_OK;
}

/* Runs the transfers until all have ended (each is bounded by --webhook-timeout). */
static void
run_transfers(void)
{
	int			running = 1;
	CURLMsg    *msg;
	int			left;

	while (running > 0)
	{
		if (curl_multi_perform(wk.multi, &running) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(wk.multi, &left)) != NULL)
		{
			delivery   *d;
			long		code = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &d);
			if (msg->data.result == CURLE_OK)
				curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
			else if (!d->error[0])
				snprintf(d->error, sizeof(d->error), "%s", curl_easy_strerror(msg->data.result));
			d->status = (int) code;
			histogram_observe(&stats.latency, (uint64_t) (now_us() - d->started_us));
		}
		if (running > 0)
			curl_multi_poll(wk.multi, NULL, 0, 100, NULL);
	}
}

/* One statement for all outcomes; false if it could not be reported. */
static bool
report(delivery *ds, int n)
{
	json_t	   *arr = json_array();
	char	   *text;
	PGresult   *res;
	const char *params[1];

	for (int i = 0; i < n; i++)
	{
		delivery   *d = &ds[i];
		bool		ok = d->status >= 200 && d->status <= 299;
		json_t	   *o;

		if (ok)
			stats.delivered++;
		else if (d->status)
			stats.failed_http++;
		else
			stats.failed_transport++;
		if (!ok && d->status)
			log_info("webhook: event %s: HTTP status %d", d->id, d->status);
		else if (!ok)
			log_info("webhook: event %s: transport: %s", d->id, d->error);
		o = json_pack("{s:s, s:s, s:s, s:o, s:s?}", "d", d->device_id, "i", d->id, "a", d->attempt,
					  "s", d->status ? json_integer(d->status) : json_null(),
					  "e", d->status ? NULL : d->error);
		if (!o)
			o = json_pack("{s:s, s:s, s:s, s:n}", "d", d->device_id, "i", d->id, "a", d->attempt, "s");
		json_array_append_new(arr, o);
	}
	text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	if (!text)
		return false;
	params[0] = text;
	res = run("report", 1, params);
	free(text);
	if (!res)
		return false;
	PQclear(res);
	return true;
}

/* Claims, delivers and reports one batch; true when the batch was full. */
static bool
deliver_batch(void)
{
	char		n[16];
	const char *params[1] = {n};
	PGresult   *res;
	delivery   *ds;
	int			rows;

	snprintf(n, sizeof(n), "%d", CLAIM_BATCH);
	res = run("claim", 1, params);
	if (!res)
		return false;
	rows = PQntuples(res);
	if (rows == 0)
	{
		PQclear(res);
		return false;
	}
	stats.claimed += rows;
	ds = calloc(rows, sizeof(delivery));
	if (!ds)
	{
		PQclear(res);
		log_error("webhook: out of memory: %d claimed events wait for their lease to run out", rows);
		return false;
	}
	for (int i = 0; i < rows; i++)
	{
		delivery   *d = &ds[i];

		d->device_id = strdup(PQgetvalue(res, i, 0));
		d->id = strdup(PQgetvalue(res, i, 1));
		d->attempt = strdup(PQgetvalue(res, i, 2));
		d->body = strdup(PQgetvalue(res, i, 3));
		if (!d->device_id || !d->id || !d->attempt || !d->body || !start_delivery(d))
			snprintf(d->error, sizeof(d->error), "could not start the request");
	}
	PQclear(res);
	run_transfers();
	if (!wk.conn || !report(ds, rows))
		log_warning("webhook: %d outcomes not reported (the events are delivered again after their lease)",
					rows);
	for (int i = 0; i < rows; i++)
		free_delivery(&ds[i]);
	free(ds);
	return rows == CLAIM_BATCH;
}

static void *
worker_main(void *arg)
{
	long		next_connect_ms = 0;
	long		next_poll_ms = 0;

	while (!wk.stopping)
	{
		struct pollfd fds[2];
		long		now = now_ms();
		long		timeout;
		int			nfds = 1;

		if (!wk.conn && now >= next_connect_ms)
		{
			next_connect_ms = now + RECONNECT_MS;
			try_connect();
		}
		if (wk.conn)
		{
			if (now >= next_poll_ms || (wk.next_due_ms >= 0 && now >= wk.next_due_ms))
			{
				read_backlog();
				next_poll_ms = now + POLL_MS;
				wk.want_claim = true;
			}
			while (wk.conn && wk.want_claim && !wk.stopping)
			{
				/* a notification taken during the claim sets want_claim again */
				wk.want_claim = false;
				if (deliver_batch())
					wk.want_claim = true;
			}
		}

		now = now_ms();
		timeout = wk.conn ? next_poll_ms - now : next_connect_ms - now;
		if (wk.conn && wk.next_due_ms >= 0 && wk.next_due_ms - now < timeout)
			timeout = wk.next_due_ms - now;
		if (timeout < 0)
			timeout = 0;
		fds[0] = (struct pollfd) {.fd = wk.stopfd, .events = POLLIN};
		if (wk.conn)
		{
			fds[1] = (struct pollfd) {.fd = PQsocket(wk.conn), .events = POLLIN};
			nfds = 2;
		}
		if (poll(fds, nfds, (int) timeout) < 0 && errno != EINTR)
		{
			log_error("webhook: poll: %s", strerror(errno));
			break;
		}
		if (nfds == 2 && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)))
		{
			if (!PQconsumeInput(wk.conn))
				drop_connection(PQerrorMessage(wk.conn));
			else
				take_notifications();
		}
	}
	if (wk.conn)
		PQfinish(wk.conn);
	stats.connected = 0;
	return NULL;
}

/* ---- start and stop ---- */

int
webhook_start(void)
{
	if (!config.webhook_url)
	{
		if (config.webhook_hmac_key)
		{
			fprintf(stderr, "mdm-frontend: --webhook-hmac-key needs --webhook-url\n");
			return -1;
		}
		return 0;
	}
	if (strncmp(config.webhook_url, "http://", 7) != 0 && strncmp(config.webhook_url, "https://", 8) != 0)
	{
		fprintf(stderr, "mdm-frontend: --webhook-url must start with http:// or https://\n");
		return -1;
	}
	if (config.webhook_timeout < 1 || config.webhook_timeout > 600)
	{
		fprintf(stderr, "mdm-frontend: --webhook-timeout must be between 1 and 600 seconds\n");
		return -1;
	}
	if (config.webhook_hmac_key && !config.webhook_hmac_key[0])
	{
		fprintf(stderr, "mdm-frontend: --webhook-hmac-key must not be empty\n");
		return -1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
	{
		fprintf(stderr, "mdm-frontend: cannot initialise libcurl\n");
		return -1;
	}
	metrics_add_writer(webhook_write_metrics);
	wk.next_due_ms = -1;
	wk.stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	wk.multi = curl_multi_init();
	if (wk.multi)
		curl_multi_setopt(wk.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) MAX_CONNECTIONS);
	if (wk.stopfd < 0 || !wk.multi || pthread_create(&wk.thread, NULL, worker_main, NULL) != 0)
	{
		fprintf(stderr, "mdm-frontend: cannot start the webhook worker: %s\n", strerror(errno));
		return -1;
	}
	log_info("webhook: delivering events to %s%s", config.webhook_url,
			 config.webhook_hmac_key ? " with X-Hmac-Signature" : "");
	return 0;
}

void
webhook_stop(int timeout_s)
{
	uint64_t	one = 1;

	if (!wk.multi)
		return;
	/* a batch in flight ends within --webhook-timeout and is reported */
	wk.stopping = true;
	if (write(wk.stopfd, &one, sizeof(one)) < 0)
		log_warning("webhook: signalling the worker to stop: %s", strerror(errno));
	pthread_join(wk.thread, NULL);
	curl_multi_cleanup(wk.multi);
	wk.multi = NULL;
}
