/* metrics.h: counters and histograms, served in Prometheus' text format. */
#ifndef FE_METRICS_H
#define FE_METRICS_H

#include <stdint.h>
#include <stdio.h>

/* Request endpoints, the "endpoint" label. */
enum endpoint
{
	EP_MDM,
	EP_CHECKIN,
	EP_ENROLL,
	EP_ENQUEUE,
	EP_PUSH,
	EP_PUSHCERT,
	EP_VERSION,
	EP_HEALTHZ,
	EP_METRICS,
	EP_OTHER,
	EP_COUNT
};

/* Database error kinds, the "kind" label of mdm_frontend_db_errors_total. */
enum db_error_kind
{
	DBERR_CONNECT,				/* could not connect */
	DBERR_CONNECTION_LOST,		/* class 08, 57P01-57P03 */
	DBERR_RETRY,				/* 40001, 40P01: retried */
	DBERR_STATEMENT,			/* any other error raised by a call */
	DBERR_COUNT
};

/*
 * A fixed-bucket histogram of seconds, updated without locks.  Other
 * modules (the push sender) may declare their own and write them with
 * metrics_write_histogram().
 */
#define METRICS_BUCKETS 14
struct histogram
{
	_Atomic uint64_t bucket[METRICS_BUCKETS + 1];	/* last one: +Inf */
	_Atomic uint64_t sum_us;
	_Atomic uint64_t count;
};

void		histogram_observe(struct histogram *h, uint64_t microseconds);
void		metrics_write_histogram(FILE *out, const char *name, const char *labels,
									struct histogram *h);

const char *metrics_endpoint_name(enum endpoint ep);
void		metrics_request(enum endpoint ep, int status, uint64_t microseconds);
void		metrics_db_call(uint64_t microseconds);
void		metrics_db_error(enum db_error_kind kind);
void		metrics_connection(int delta);

/*
 * Other modules add their metrics with a writer called for every scrape
 * (after the front end's own), e.g. metrics_add_writer(push_write_metrics).
 * Call before the server starts.
 */
typedef void (*metrics_writer) (FILE *out);
void		metrics_add_writer(metrics_writer writer);

/* The whole page; malloc'ed, the caller frees it. */
char	   *metrics_render(size_t *len);

#endif
