/*
 * apns.c: sends push jobs to APNs with libcurl (multi interface, HTTP/2
 * over TLS), driven by the caller's epoll set.
 *
 * Each push certificate (topic, certificate and key, compared by content)
 * gets its own curl multi handle limited to one connection with up to
 * --max-streams concurrent streams.  A multi handle keeps its own
 * connection cache, so a connection opened with one client certificate is
 * never reused for another's pushes, whatever libcurl's own matching would
 * do.  When a topic's certificate or key changes (a renewal), the next push
 * opens a new connection with the new one; the old connection is closed
 * once its last push is done.  The certificate and key go to libcurl from
 * memory (CURLOPT_SSLCERT_BLOB, CURLOPT_SSLKEY_BLOB), never to a file.
 *
 * Per push as little as possible is done: a finished transfer keeps its
 * easy handle with every option that does not change (certificate, CA,
 * callbacks, time-outs) for the certificate's next push, which sets only
 * its URL and body, and its header list when the headers differ from the
 * last push of that handle (they rarely do: same topic, priority, ...).
 *
 * libcurl 7.88 writes every HTTP/2 frame with an SSL_write of its own, a
 * system call each (the HEADERS and DATA of every push, and more): when
 * libcurl's TLS library is the OpenSSL this program is linked with, a
 * buffer is put between TLS and the socket once the handshake is done
 * (through the SSL_CTX callback and its info callback), and apns_pool_tidy()
 * sends what it holds after each round of events, so that the frames of
 * every push started or answered in one round go out in one or a few
 * system calls.  What the socket does not take waits for EPOLLOUT.
 */
#include "apns.h"
#include "utf8.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>

typedef struct apns_cert apns_cert;

/* One socket libcurl asked us to watch. */
typedef struct sock_tag
{
	apns_cert  *cert;
	curl_socket_t fd;
	uint32_t	events;			/* what epoll watches for it */
	uint32_t	curl_events;	/* what libcurl asked for */
	int			closed;
	struct sock_tag *prev;		/* in the certificate's open sockets */
	struct sock_tag *next;		/* there, or in the pool's closed ones */
} sock_tag;

typedef struct xfer xfer;

/* A TLS connection of a certificate whose writes are buffered. */
typedef struct tls_buf
{
	apns_cert  *cert;
	BIO		   *buf;			/* BIO_f_buffer, the SSL's write BIO */
	struct tls_buf *next;
} tls_buf;

/* One certificate: its multi handle and connection. */
struct apns_cert
{
	apns_pool  *pool;
	char	   *topic;
	char	   *cert_pem;
	char	   *key_pem;
	CURLM	   *multi;
	long		deadline_ms;	/* monotonic; -1: no timer */
	int			in_flight;
	xfer	   *xfers;			/* those in flight */
	xfer	   *idle;			/* finished ones, their easy handles kept */
	sock_tag   *socks;			/* sockets open */
	tls_buf    *tls;			/* its connections' write buffers */
	bool		unflushed;		/* a buffer waits for the socket: EPOLLOUT */
	int			retired;		/* replaced by a renewed certificate */
	apns_cert  *next;
};

/* One push in flight, or a finished one's handle kept for the next. */
struct xfer
{
	apns_cert  *cert;
	xfer	   *prev;
	xfer	   *next;			/* in flight, or in the certificate's idle list */
	CURL	   *easy;
	struct curl_slist *headers;
	char	   *header_key;		/* what headers were made of */
	char		body[256];		/* {"mdm":"<PushMagic>"} */
	char	   *long_body;		/* malloc'ed when it does not fit */
	int64_t		job_id;
	char		resp[1024];
	size_t		resp_len;
	char		apns_id[64];
	char		errbuf[CURL_ERROR_SIZE];
};

struct apns_pool
{
	char	   *url;
	char	   *ca_file;
	int			max_streams;
	long		timeout_ms;
	long		connect_timeout_ms;
	int			epfd;
	apns_done_fn done;
	void	   *arg;
	apns_cert  *certs;
	sock_tag   *closed_tags;
	int			in_flight;
};

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- the write buffer between TLS and the socket ---- */

static int	ctx_index = -1;		/* SSL_CTX ex_data: its apns_cert */
static int	ssl_index = -1;		/* SSL ex_data: its tls_buf */
static bool buffer_writes;		/* libcurl's TLS is our OpenSSL */

/* An SSL with a buffer is freed (its connection closed): forget the buffer. */
static void
tls_buf_gone(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	tls_buf    *t = ptr;
	tls_buf   **p;

	if (!t)
		return;
	for (p = &t->cert->tls; *p; p = &(*p)->next)
		if (*p == t)
		{
			*p = t->next;
			break;
		}
	free(t);
}

/*
 * The handshake is done: from here on the SSL writes into a buffer, which
 * apns_pool_tidy() empties into libcurl's own BIO (the socket).  Once per
 * connection (TLS 1.3 signals a "handshake" again for a session ticket).
 */
static void
tls_info_cb(const SSL *cssl, int where, int ret)
{
	SSL		   *ssl = (SSL *) cssl;
	apns_cert  *cert;
	tls_buf    *t;
	BIO		   *next;
	BIO		   *buf;

	if (!(where & SSL_CB_HANDSHAKE_DONE) || SSL_get_ex_data(ssl, ssl_index) != NULL)
		return;
	cert = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);
	next = SSL_get_wbio(ssl);
	if (!cert || !next || !(t = calloc(1, sizeof(tls_buf))))
		return;
	buf = BIO_new(BIO_f_buffer());
	if (!buf || BIO_set_write_buffer_size(buf, 64 * 1024) != 1 ||
		!BIO_up_ref(next) || !SSL_set_ex_data(ssl, ssl_index, t))
	{
		/* (BIO_up_ref cannot fail once BIO_new worked: no reference to drop) */
		BIO_free(buf);
		free(t);
		return;
	}
	/* the SSL's reference to libcurl's BIO as its write BIO passes to the chain */
	BIO_push(buf, next);
	SSL_set0_wbio(ssl, buf);
	t->cert = cert;
	t->buf = buf;
	t->next = cert->tls;
	cert->tls = t;
}

/* libcurl made the SSL_CTX of a new connection of cert. */
static CURLcode
ssl_ctx_cb(CURL *easy, void *ssl_ctx, void *userp)
{
	if (SSL_CTX_set_ex_data(ssl_ctx, ctx_index, userp))
		SSL_CTX_set_info_callback(ssl_ctx, tls_info_cb);
	return CURLE_OK;
}

static void sock_watch(sock_tag *tag);

/* Sends what a certificate's connections buffered; what is left waits for EPOLLOUT. */
static void
cert_flush(apns_cert *cert)
{
	bool		left = false;

	for (tls_buf *t = cert->tls; t; t = t->next)
	{
		if (BIO_wpending(t->buf) == 0)
			continue;
		/* a hard error is libcurl's to find, reading the same socket */
		if (BIO_flush(t->buf) <= 0 && BIO_should_retry(t->buf))
			left = true;
	}
	if (left != cert->unflushed)
	{
		cert->unflushed = left;
		for (sock_tag *tag = cert->socks; tag; tag = tag->next)
			sock_watch(tag);
	}
}

bool
apns_global_init(void)
{
	const curl_version_info_data *v;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return false;
	v = curl_version_info(CURLVERSION_NOW);
	/* the same OpenSSL (major version) as ours: its SSL_CTX is ours to set up */
	buffer_writes = v->ssl_version && strncmp(v->ssl_version, "OpenSSL/", 8) == 0 &&
		atoi(v->ssl_version + 8) == (int) (OPENSSL_VERSION_NUMBER >> 28);
	if (buffer_writes)
	{
		ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
		ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_buf_gone);
		buffer_writes = ctx_index >= 0 && ssl_index >= 0;
	}
	/* HTTP/2 is required; blobs came in 7.71 */
	return (v->features & CURL_VERSION_HTTP2) && v->version_num >= 0x074700;
}

apns_pool *
apns_pool_create(const apns_options *opts, int epfd, apns_done_fn done, void *arg)
{
	apns_pool  *pool = calloc(1, sizeof(apns_pool));

	if (!pool)
		return NULL;
	pool->url = strdup(opts->url);
	pool->ca_file = opts->ca_file ? strdup(opts->ca_file) : NULL;
	if (!pool->url || (opts->ca_file && !pool->ca_file))
	{
		free(pool->url);
		free(pool->ca_file);
		free(pool);
		return NULL;
	}
	/* no trailing slash: paths are appended */
	while (pool->url[0] && pool->url[strlen(pool->url) - 1] == '/')
		pool->url[strlen(pool->url) - 1] = '\0';
	pool->max_streams = opts->max_streams;
	pool->timeout_ms = opts->timeout_ms;
	pool->connect_timeout_ms = opts->connect_timeout_ms;
	pool->epfd = epfd;
	pool->done = done;
	pool->arg = arg;
	return pool;
}

/* ---- libcurl's socket and timer callbacks ---- */

/* What epoll watches for a socket: libcurl's wish, and EPOLLOUT for a buffer to send. */
static void
sock_watch(sock_tag *tag)
{
	struct epoll_event ev = {.data.ptr = tag};

	ev.events = tag->curl_events | (tag->cert->unflushed ? EPOLLOUT : 0);
	/* a system call only for a change (libcurl repeats itself) */
	if (ev.events == tag->events)
		return;
	tag->events = ev.events;
	if (epoll_ctl(tag->cert->pool->epfd, EPOLL_CTL_MOD, tag->fd, &ev) != 0)
		epoll_ctl(tag->cert->pool->epfd, EPOLL_CTL_ADD, tag->fd, &ev);
}

static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	apns_cert  *cert = userp;
	sock_tag   *tag = socketp;
	uint32_t	want = 0;

	if (what == CURL_POLL_REMOVE)
	{
		if (tag && !tag->closed)
		{
			epoll_ctl(cert->pool->epfd, EPOLL_CTL_DEL, fd, NULL);
			curl_multi_assign(cert->multi, fd, NULL);
			/* freed after this round of events, which may still name it */
			tag->closed = 1;
			if (tag->prev)
				tag->prev->next = tag->next;
			else
				cert->socks = tag->next;
			if (tag->next)
				tag->next->prev = tag->prev;
			tag->prev = NULL;
			tag->next = cert->pool->closed_tags;
			cert->pool->closed_tags = tag;
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		want |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		want |= EPOLLOUT;
	if (!tag)
	{
		struct epoll_event ev = {0};

		tag = calloc(1, sizeof(sock_tag));
		if (!tag)
			return -1;
		tag->cert = cert;
		tag->fd = fd;
		tag->next = cert->socks;
		if (cert->socks)
			cert->socks->prev = tag;
		cert->socks = tag;
		curl_multi_assign(cert->multi, fd, tag);
		tag->curl_events = want;
		ev.data.ptr = tag;
		ev.events = tag->events = want | (cert->unflushed ? EPOLLOUT : 0);
		if (epoll_ctl(cert->pool->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
			return epoll_ctl(cert->pool->epfd, EPOLL_CTL_MOD, fd, &ev) == 0 ? 0 : -1;
		return 0;
	}
	tag->curl_events = want;
	sock_watch(tag);
	return 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	apns_cert  *cert = userp;

	cert->deadline_ms = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	return 0;
}

/* ---- one push ---- */

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	xfer	   *x = userp;
	size_t		n = size * nmemb;
	size_t		room = sizeof(x->resp) - 1 - x->resp_len;

	memcpy(x->resp + x->resp_len, data, n < room ? n : room);
	x->resp_len += n < room ? n : room;
	return n;
}

static size_t
header_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	xfer	   *x = userp;
	size_t		n = size * nmemb;
	static const char name[] = "apns-id:";

	if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0)
	{
		const char *v = data + sizeof(name) - 1;
		size_t		len = n - (sizeof(name) - 1);

		while (len > 0 && (*v == ' ' || *v == '\t'))
			v++, len--;
		while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
			len--;
		if (len >= sizeof(x->apns_id))
			len = sizeof(x->apns_id) - 1;
		memcpy(x->apns_id, v, len);
		x->apns_id[len] = '\0';
	}
	return n;
}

/* The reason of an APNs error body, {"reason": "..."}; "" if none. */
static void
parse_reason(const xfer *x, char *out, size_t size)
{
	json_t	   *root;
	json_t	   *reason;

	out[0] = '\0';
	if (x->resp_len == 0)
		return;					/* a 200 has no body */
	root = json_loadb(x->resp, x->resp_len, 0, NULL);
	reason = root ? json_object_get(root, "reason") : NULL;
	if (json_is_string(reason))
		snprintf(out, size, "%s", json_string_value(reason));
	json_decref(root);
}

static void
xfer_free(xfer *x)
{
	if (x->easy)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	free(x->header_key);
	free(x->long_body);
	free(x);
}

/* A finished transfer: its handle waits for the certificate's next push. */
static void
xfer_keep(xfer *x)
{
	apns_cert  *cert = x->cert;

	free(x->long_body);
	x->long_body = NULL;
	x->prev = NULL;
	x->next = cert->idle;
	cert->idle = x;
}

static void
xfer_unlink(xfer *x)
{
	apns_cert  *cert = x->cert;

	if (x->prev)
		x->prev->next = x->next;
	else
		cert->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	cert->in_flight--;
	cert->pool->in_flight--;
}

static void
finish(apns_pool *pool, int64_t job_id, int status, int transport, const char *reason,
	   const char *apns_id, long elapsed_us)
{
	apns_outcome o = {.job_id = job_id, .status = status, .transport_error = transport,
	.elapsed_us = elapsed_us};

	snprintf(o.reason, sizeof(o.reason), "%s", reason ? reason : "");
	snprintf(o.apns_id, sizeof(o.apns_id), "%s", apns_id ? apns_id : "");
	pool->done(pool->arg, &o);
}

/* Hand every finished transfer of one certificate to the caller. */
static void
collect(apns_cert *cert)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(cert->multi, &left)) != NULL)
	{
		xfer	   *x = NULL;
		long		code = 0;
		char		reason[256];

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &x);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
		if (msg->data.result == CURLE_OK && code >= 100 && code <= 599)
		{
			curl_off_t	total_us = 0;

			curl_easy_getinfo(msg->easy_handle, CURLINFO_TOTAL_TIME_T, &total_us);
			parse_reason(x, reason, sizeof(reason));
			finish(cert->pool, x->job_id, (int) code, 0, reason, x->apns_id, (long) total_us);
		}
		else
		{
			snprintf(reason, sizeof(reason), "transport: %.200s",
					 x->errbuf[0] ? x->errbuf : curl_easy_strerror(msg->data.result));
			finish(cert->pool, x->job_id, 503, 1, reason, NULL, 0);
		}
		curl_multi_remove_handle(cert->multi, x->easy);
		xfer_unlink(x);
		xfer_keep(x);
	}
}

static apns_cert *
cert_new(apns_pool *pool, const apns_push *push)
{
	apns_cert  *cert = calloc(1, sizeof(apns_cert));

	if (!cert)
		return NULL;
	cert->pool = pool;
	cert->deadline_ms = -1;
	cert->topic = strdup(push->topic);
	cert->cert_pem = strdup(push->cert_pem);
	cert->key_pem = strdup(push->key_pem);
	cert->multi = curl_multi_init();
	if (!cert->topic || !cert->cert_pem || !cert->key_pem || !cert->multi)
	{
		if (cert->multi)
			curl_multi_cleanup(cert->multi);
		free(cert->topic);
		free(cert->cert_pem);
		free(cert->key_pem);
		free(cert);
		return NULL;
	}
	curl_multi_setopt(cert->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(cert->multi, CURLMOPT_SOCKETDATA, cert);
	curl_multi_setopt(cert->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(cert->multi, CURLMOPT_TIMERDATA, cert);
	curl_multi_setopt(cert->multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
	curl_multi_setopt(cert->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
	curl_multi_setopt(cert->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 1L);
	curl_multi_setopt(cert->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long) pool->max_streams);
	cert->next = pool->certs;
	pool->certs = cert;
	return cert;
}

/* The certificate entry for a push: the topic's, or a new one if renewed. */
static apns_cert *
cert_for(apns_pool *pool, const apns_push *push)
{
	apns_cert  *cert;

	for (cert = pool->certs; cert; cert = cert->next)
	{
		if (cert->retired || strcmp(cert->topic, push->topic) != 0)
			continue;
		if (strcmp(cert->cert_pem, push->cert_pem) == 0 && strcmp(cert->key_pem, push->key_pem) == 0)
			return cert;
		cert->retired = 1;		/* renewed: new pushes get a new connection */
	}
	return cert_new(pool, push);
}

/* A value that goes into a header line must not end it. */
static bool
header_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char) *s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static struct curl_slist *
add_header(struct curl_slist *list, const char *name, const char *value, bool *ok)
{
	char		line[512];
	struct curl_slist *l;

	if (!*ok)
		return list;
	if (snprintf(line, sizeof(line), "%s: %s", name, value) >= (int) sizeof(line))
	{
		*ok = false;
		return list;
	}
	l = curl_slist_append(list, line);
	if (!l)
	{
		*ok = false;
		return list;
	}
	return l;
}

/* A new transfer of a certificate, with every option that never changes. */
static xfer *
xfer_new(apns_cert *cert)
{
	apns_pool  *pool = cert->pool;
	xfer	   *x = calloc(1, sizeof(xfer));
	struct curl_blob cert_blob = {cert->cert_pem, strlen(cert->cert_pem), CURL_BLOB_NOCOPY};
	struct curl_blob key_blob = {cert->key_pem, strlen(cert->key_pem), CURL_BLOB_NOCOPY};

	if (!x)
		return NULL;
	x->cert = cert;
	x->easy = curl_easy_init();
	if (!x->easy)
	{
		free(x);
		return NULL;
	}
	curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(x->easy, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(x->easy, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_SSLCERT_BLOB, &cert_blob);
	curl_easy_setopt(x->easy, CURLOPT_SSLCERTTYPE, "PEM");
	curl_easy_setopt(x->easy, CURLOPT_SSLKEY_BLOB, &key_blob);
	curl_easy_setopt(x->easy, CURLOPT_SSLKEYTYPE, "PEM");
	if (pool->ca_file)
		curl_easy_setopt(x->easy, CURLOPT_CAINFO, pool->ca_file);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, pool->timeout_ms);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, pool->connect_timeout_ms);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if (buffer_writes)
	{
		curl_easy_setopt(x->easy, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
		curl_easy_setopt(x->easy, CURLOPT_SSL_CTX_DATA, cert);
	}
	return x;
}

/*
 * The push's headers on the transfer: its header list is made again only
 * when they differ from those of its last push.  False when they cannot be
 * made.
 */
static bool
set_headers(xfer *x, const apns_push *push)
{
	char		key[1024];
	bool		ok = true;
	struct curl_slist *h;

	if (snprintf(key, sizeof(key), "%s\n%s\n%s\n%s", push->push_type, push->topic,
				 push->expiration, push->priority) >= (int) sizeof(key))
		return false;
	if (x->header_key && strcmp(x->header_key, key) == 0)
		return true;
	h = add_header(NULL, "apns-push-type", push->push_type, &ok);
	h = add_header(h, "apns-topic", push->topic, &ok);
	h = add_header(h, "apns-expiration", push->expiration, &ok);
	h = add_header(h, "apns-priority", push->priority, &ok);
	h = add_header(h, "content-type", "application/json", &ok);
	h = add_header(h, "accept", "", &ok);	/* drops curl's Accept */
	if (!ok)
	{
		curl_slist_free_all(h);
		return false;
	}
	free(x->header_key);
	x->header_key = strdup(key);
	curl_slist_free_all(x->headers);
	x->headers = h;
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, h);
	return x->header_key != NULL;
}

/*
 * The body, {"mdm":"<PushMagic>"}, the PushMagic escaped as JSON (as
 * Jansson writes it); false if it is not UTF-8.  Written directly: it is
 * made for every push.
 */
static bool
set_body(xfer *x, const apns_push *push)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *m = (const unsigned char *) push->push_magic;
	size_t		need = 10;		/* {"mdm":""} */
	char	   *out;
	size_t		n = 0;

	if (!utf8_valid(m, strlen((const char *) m)))
		return false;
	for (const unsigned char *p = m; *p; p++)
		need += *p < 0x20 ? 6 : (*p == '"' || *p == '\\') ? 2 : 1;
	if (need < sizeof(x->body))
		out = x->body;
	else if (!(out = x->long_body = malloc(need + 1)))
		return false;
	memcpy(out, "{\"mdm\":\"", 8);
	n = 8;
	for (const unsigned char *p = m; *p; p++)
	{
		if (*p >= 0x20 && *p != '"' && *p != '\\')
			out[n++] = (char) *p;
		else
		{
			out[n++] = '\\';
			switch (*p)
			{
				case '"':
				case '\\':
					out[n++] = (char) *p;
					break;
				case '\b':
					out[n++] = 'b';
					break;
				case '\f':
					out[n++] = 'f';
					break;
				case '\n':
					out[n++] = 'n';
					break;
				case '\r':
					out[n++] = 'r';
					break;
				case '\t':
					out[n++] = 't';
					break;
				default:
					out[n++] = 'u';
					out[n++] = '0';
					out[n++] = '0';
					out[n++] = hex[*p >> 4];
					out[n++] = hex[*p & 15];
			}
		}
	}
	out[n++] = '"';
	out[n++] = '}';
	out[n] = '\0';
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long) n);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, out);
	return true;
}

void
apns_pool_send(apns_pool *pool, const apns_push *push)
{
	xfer	   *x;
	apns_cert  *cert;
	char		url[1024];

	/* what the database hands out is checked, not trusted blindly */
	if (push->token_hex[0] == '\0' ||
		strspn(push->token_hex, "0123456789abcdef") != strlen(push->token_hex) ||
		snprintf(url, sizeof(url), "%s/3/device/%s", pool->url, push->token_hex) >= (int) sizeof(url))
	{
		finish(pool, push->job_id, 400, 0, "frontend: device token is not lowercase hex", NULL, 0);
		return;
	}
	if (!header_safe(push->topic) || !header_safe(push->expiration) ||
		!header_safe(push->priority) || !header_safe(push->push_type))
	{
		finish(pool, push->job_id, 400, 0, "frontend: control character in an APNs header", NULL, 0);
		return;
	}
	cert = cert_for(pool, push);
	if (cert && cert->idle)
	{
		x = cert->idle;
		cert->idle = x->next;
		x->next = NULL;
	}
	else
		x = cert ? xfer_new(cert) : NULL;
	if (!x)
	{
		finish(pool, push->job_id, 503, 1, "transport: out of memory", NULL, 0);
		return;
	}
	x->job_id = push->job_id;
	x->resp_len = 0;
	x->apns_id[0] = '\0';
	x->errbuf[0] = '\0';
	if (!set_body(x, push))
	{
		xfer_keep(x);
		finish(pool, push->job_id, 400, 0, "frontend: PushMagic cannot be encoded as JSON", NULL, 0);
		return;
	}
	if (!set_headers(x, push))
	{
		xfer_keep(x);
		finish(pool, push->job_id, 400, 0, "frontend: an APNs header is too long", NULL, 0);
		return;
	}
	curl_easy_setopt(x->easy, CURLOPT_URL, url);
	if (curl_multi_add_handle(cert->multi, x->easy) != CURLM_OK)
	{
		xfer_keep(x);
		finish(pool, push->job_id, 503, 1, "transport: cannot start the request", NULL, 0);
		return;
	}
	x->next = cert->xfers;
	if (cert->xfers)
		cert->xfers->prev = x;
	cert->xfers = x;
	cert->in_flight++;
	pool->in_flight++;
}

void
apns_pool_event(apns_pool *pool, void *ptr, uint32_t events)
{
	sock_tag   *tag = ptr;
	apns_cert  *cert = tag->cert;
	int			flags = 0;
	int			running;

	if (tag->closed)
		return;
	if ((events & EPOLLOUT) && cert->unflushed)
		cert_flush(cert);
	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if ((events & EPOLLOUT) && (tag->curl_events & EPOLLOUT))
		flags |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	if (flags == 0)
		return;					/* only our buffer could be written */
	curl_multi_socket_action(cert->multi, tag->fd, flags, &running);
	collect(cert);
}

long
apns_pool_next_timeout(apns_pool *pool)
{
	long		now = now_ms();
	long		best = -1;

	for (apns_cert *cert = pool->certs; cert; cert = cert->next)
	{
		long		left;

		if (cert->deadline_ms < 0)
			continue;
		left = cert->deadline_ms > now ? cert->deadline_ms - now : 0;
		if (best < 0 || left < best)
			best = left;
	}
	return best;
}

void
apns_pool_timeout(apns_pool *pool)
{
	long		now = now_ms();

	for (apns_cert *cert = pool->certs; cert; cert = cert->next)
	{
		int			running;

		if (cert->deadline_ms < 0 || cert->deadline_ms > now)
			continue;
		cert->deadline_ms = -1;
		curl_multi_socket_action(cert->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		collect(cert);
	}
}

static void
cert_free(apns_cert *cert)
{
	while (cert->idle)
	{
		xfer	   *next = cert->idle->next;

		xfer_free(cert->idle);
		cert->idle = next;
	}
	curl_multi_cleanup(cert->multi);	/* closes its connection */
	while (cert->socks)
	{
		sock_tag   *next = cert->socks->next;

		epoll_ctl(cert->pool->epfd, EPOLL_CTL_DEL, cert->socks->fd, NULL);
		free(cert->socks);
		cert->socks = next;
	}
	free(cert->topic);
	free(cert->cert_pem);
	free(cert->key_pem);
	free(cert);
}

void
apns_pool_tidy(apns_pool *pool)
{
	apns_cert **p = &pool->certs;

	for (apns_cert *cert = pool->certs; cert; cert = cert->next)
		if (cert->tls)
			cert_flush(cert);

	while (*p)
	{
		apns_cert  *cert = *p;

		if (cert->retired && cert->in_flight == 0)
		{
			*p = cert->next;
			cert_free(cert);
		}
		else
			p = &cert->next;
	}
	while (pool->closed_tags)
	{
		sock_tag   *next = pool->closed_tags->next;

		free(pool->closed_tags);
		pool->closed_tags = next;
	}
}

int
apns_pool_in_flight(apns_pool *pool)
{
	return pool->in_flight;
}

int
apns_pool_connections(apns_pool *pool)
{
	int			n = 0;

	for (apns_cert *cert = pool->certs; cert; cert = cert->next)
		n++;
	return n;
}

void
apns_pool_destroy(apns_pool *pool)
{
	if (!pool)
		return;
	while (pool->certs)
	{
		apns_cert  *cert = pool->certs;

		/* whatever is still in flight ends as a transport error */
		while (cert->xfers)
		{
			xfer	   *x = cert->xfers;

			curl_multi_remove_handle(cert->multi, x->easy);
			xfer_unlink(x);
			finish(pool, x->job_id, 503, 1, "transport: front end stopping", NULL, 0);
			xfer_free(x);
		}
		pool->certs = cert->next;
		cert_free(cert);
	}
	apns_pool_tidy(pool);
	free(pool->url);
	free(pool->ca_file);
	free(pool);
}
