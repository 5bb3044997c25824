/* metrics.c: the front end's counters, rendered for Prometheus at GET /metrics. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* Bucket bounds in microseconds: 0.25 ms .. 5 s. */
static const uint64_t bounds_us[METRICS_BUCKETS] = {
	250, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000, 250000,
	500000, 1000000, 2500000, 5000000
};

static const char *const endpoint_names[EP_COUNT] = {
	"mdm", "checkin", "enroll", "enqueue", "push", "pushcert", "version",
	"healthz", "metrics", "other"
};

static const char *const db_error_names[DBERR_COUNT] = {
	"connect", "connection_lost", "retry", "statement"
};

/* The statuses the front end answers; anything else counts under "other". */
static const int statuses[] = {200, 207, 400, 401, 403, 404, 405, 409, 410, 413, 500, 503};
#define N_STATUSES (sizeof(statuses) / sizeof(statuses[0]))

static _Atomic uint64_t requests[EP_COUNT][N_STATUSES + 1];
static struct histogram request_seconds[EP_COUNT];
static struct histogram db_seconds;
static _Atomic uint64_t db_errors[DBERR_COUNT];
static _Atomic int64_t open_connections;

#define MAX_WRITERS 8
static metrics_writer writers[MAX_WRITERS];
static int	n_writers;

void
histogram_observe(struct histogram *h, uint64_t us)
{
	int			i = 0;

	while (i < METRICS_BUCKETS && us > bounds_us[i])
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void
metrics_write_histogram(FILE *out, const char *name, const char *labels, struct histogram *h)
{
	uint64_t	cumulative = 0;
	const char *sep = labels[0] ? "," : "";

	for (int i = 0; i <= METRICS_BUCKETS; i++)
	{
		cumulative += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		if (i < METRICS_BUCKETS)
			fprintf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
					bounds_us[i] / 1e6, (unsigned long long) cumulative);
		else
			fprintf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
					(unsigned long long) cumulative);
	}
	fprintf(out, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
			atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
	fprintf(out, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
			(unsigned long long) atomic_load_explicit(&h->count, memory_order_relaxed));
}

const char *
metrics_endpoint_name(enum endpoint ep)
{
	return endpoint_names[ep];
}

void
metrics_request(enum endpoint ep, int status, uint64_t us)
{
	size_t		i = 0;

	while (i < N_STATUSES && statuses[i] != status)
		i++;
	atomic_fetch_add_explicit(&requests[ep][i], 1, memory_order_relaxed);
	histogram_observe(&request_seconds[ep], us);
}

void
metrics_db_call(uint64_t us)
{
	histogram_observe(&db_seconds, us);
}

void
metrics_db_error(enum db_error_kind kind)
{
	atomic_fetch_add_explicit(&db_errors[kind], 1, memory_order_relaxed);
}

void
metrics_connection(int delta)
{
	atomic_fetch_add_explicit(&open_connections, delta, memory_order_relaxed);
}

void
metrics_add_writer(metrics_writer writer)
{
	if (n_writers < MAX_WRITERS)
		writers[n_writers++] = writer;
}

char *
metrics_render(size_t *len)
{
	char	   *buf = NULL;
	FILE	   *out = open_memstream(&buf, len);

	if (out == NULL)
		return NULL;
	fputs("# HELP mdm_frontend_requests_total HTTP requests answered, by endpoint and status.\n"
		  "# TYPE mdm_frontend_requests_total counter\n", out);
	for (int ep = 0; ep < EP_COUNT; ep++)
		for (size_t i = 0; i <= N_STATUSES; i++)
		{
			uint64_t	n = atomic_load_explicit(&requests[ep][i], memory_order_relaxed);
			char		code[16];

			if (n == 0)
				continue;
			if (i < N_STATUSES)
				snprintf(code, sizeof(code), "%d", statuses[i]);
			else
				strcpy(code, "other");
			fprintf(out, "mdm_frontend_requests_total{endpoint=\"%s\",status=\"%s\"} %llu\n",
					endpoint_names[ep], code, (unsigned long long) n);
		}
	fputs("# HELP mdm_frontend_request_duration_seconds Time from the request's first byte to the reply, by endpoint.\n"
		  "# TYPE mdm_frontend_request_duration_seconds histogram\n", out);
	for (int ep = 0; ep < EP_COUNT; ep++)
	{
		char		labels[64];

		if (atomic_load_explicit(&request_seconds[ep].count, memory_order_relaxed) == 0)
			continue;
		snprintf(labels, sizeof(labels), "endpoint=\"%s\"", endpoint_names[ep]);
		metrics_write_histogram(out, "mdm_frontend_request_duration_seconds", labels,
								&request_seconds[ep]);
	}
	fputs("# HELP mdm_frontend_db_call_seconds Time waiting for the database per SQL call.\n"
		  "# TYPE mdm_frontend_db_call_seconds histogram\n", out);
	metrics_write_histogram(out, "mdm_frontend_db_call_seconds", "", &db_seconds);
	fputs("# HELP mdm_frontend_db_errors_total Database errors, by kind.\n"
		  "# TYPE mdm_frontend_db_errors_total counter\n", out);
	for (int k = 0; k < DBERR_COUNT; k++)
		fprintf(out, "mdm_frontend_db_errors_total{kind=\"%s\"} %llu\n", db_error_names[k],
				(unsigned long long) atomic_load_explicit(&db_errors[k], memory_order_relaxed));
	fputs("# HELP mdm_frontend_open_connections Client connections open now.\n"
		  "# TYPE mdm_frontend_open_connections gauge\n", out);
	fprintf(out, "mdm_frontend_open_connections %lld\n",
			(long long) atomic_load_explicit(&open_connections, memory_order_relaxed));
	for (int i = 0; i < n_writers; i++)
		writers[i] (out);
	if (fclose(out) != 0)
	{
		free(buf);
		return NULL;
	}
	return buf;
}
