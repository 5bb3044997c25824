/* http.h: the HTTP server (libmicrohttpd), its routes, requests and replies. */
#ifndef FE_HTTP_H
#define FE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <microhttpd.h>

#include "metrics.h"

/* What a handler answers; http.c writes it in one response. */
struct reply
{
	int			status;
	const char *content_type;	/* static string or content_type_buf; NULL: no header */
	char		content_type_buf[128];
	char	   *body;			/* malloc'ed (freed by http.c), or NULL */
	size_t		len;
	const char *extra_header;	/* "Name: value" (static), or NULL */
};

struct route;

/* One request, from its first byte to its log line. */
struct request
{
	const struct route *route;
	struct MHD_Connection *conn;
	const char *url;			/* path, without the query */
	const char *method;
	enum endpoint ep;
	double		start;
	char	   *body;			/* the body read so far (malloc'ed) */
	size_t		len;
	size_t		cap;
	bool		too_large;		/* past mdm.max_message_bytes: 413 */
	size_t		discarded;		/* bytes dropped since */
	int			status;
	char		log_note[160];	/* appended to the log line (e.g. enrollment IDs) */
};

typedef void (*handler_fn) (struct request *req, struct reply *out);

/* Replies for handlers: a copy of a constant text, or a status with no body. */
void		reply_text(struct reply *out, int status, const char *content_type, const char *text);
void		reply_empty(struct reply *out, int status);

/* A header value of the request, or NULL. */
const char *request_header(struct request *req, const char *name);
const char *request_query(struct request *req, const char *name);

/* The DER of the TLS client certificate of the request's connection, or NULL. */
const void *request_peer_cert(struct request *req, size_t *len);

int			http_start(void);
/* Stops accepting, waits for requests in flight (up to timeout), stops. */
void		http_stop(int timeout_seconds);

#endif
