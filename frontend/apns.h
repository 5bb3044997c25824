/*
 * apns.h: the APNs client of mdm-frontend's push sender.
 *
 * libcurl's multi interface, HTTP/2 over TLS, driven by the caller's epoll
 * set (curl_multi_socket_action).  One curl multi handle per push
 * certificate, each limited to one connection, so that a connection made
 * with one certificate can never carry another certificate's pushes, and a
 * renewed certificate gets a connection of its own.
 */
#ifndef MDM_FRONTEND_APNS_H
#define MDM_FRONTEND_APNS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct apns_pool apns_pool;

typedef struct apns_options
{
	const char *url;			/* base URL, e.g. https://api.push.apple.com */
	const char *ca_file;		/* CA bundle for the gateway, or NULL */
	int			max_streams;	/* concurrent streams per connection */
	long		timeout_ms;		/* whole request */
	long		connect_timeout_ms;
} apns_options;

/* One claimed job, as mdm.claim_pushes() returned it. */
typedef struct apns_push
{
	int64_t		job_id;
	const char *token_hex;
	const char *push_magic;
	const char *topic;
	const char *cert_pem;
	const char *key_pem;
	const char *expiration;		/* apns-expiration, decimal */
	const char *priority;		/* apns-priority, decimal */
	const char *push_type;		/* apns-push-type */
} apns_push;

/*
 * What became of a push: the HTTP status APNs answered with its reason and
 * apns-id, or, when no answer came (transport error, time-out), status 503
 * and a reason "transport: ..." (docs/frontend.md).
 */
typedef struct apns_outcome
{
	int64_t		job_id;
	int			status;
	bool		transport_error;
	char		reason[256];	/* "" when none */
	char		apns_id[64];	/* "" when none */
	long		elapsed_us;		/* from the start of the request */
} apns_outcome;

typedef void (*apns_done_fn) (void *arg, const apns_outcome *outcome);

/* Once per process, before any thread starts: curl_global_init. */
bool		apns_global_init(void);

/*
 * A pool adds its sockets to epfd with data.ptr pointing at objects it
 * owns; the caller passes every event whose data.ptr is not one of its own
 * to apns_pool_event.  NULL on failure.
 */
apns_pool  *apns_pool_create(const apns_options *opts, int epfd, apns_done_fn done, void *arg);

/* Start one push; its outcome comes through done (perhaps at once). */
void		apns_pool_send(apns_pool *pool, const apns_push *push);

void		apns_pool_event(apns_pool *pool, void *tag, uint32_t events);

/* Milliseconds until apns_pool_timeout must be called; -1: no timer. */
long		apns_pool_next_timeout(apns_pool *pool);
void		apns_pool_timeout(apns_pool *pool);

/*
 * After each round of events: sends what TLS buffered in that round, and
 * frees what closed meanwhile (sockets, and the connections of replaced
 * certificates once nothing is in flight on them).
 */
void		apns_pool_tidy(apns_pool *pool);

/* Pushes started and not yet done. */
int			apns_pool_in_flight(apns_pool *pool);

/* Connections (one per certificate) currently kept. */
int			apns_pool_connections(apns_pool *pool);

/* Ends every push in flight (as transport errors) and frees the pool. */
void		apns_pool_destroy(apns_pool *pool);

#endif
