/*
 * apns_mock: a stand-in for Apple's push gateway, for the tests and the
 * benchmark of mdm-frontend's push sender.  HTTP/2 over TLS (libnghttp2,
 * OpenSSL) on 127.0.0.1 only, one thread, epoll.
 *
 * It requires a client certificate (any issuer) and answers 400
 * TopicDisallowed when apns-topic is not the certificate's subject UID.
 * Every request is appended to the record file as one JSON line (time,
 * connection, certificate UID and SHA-256, method, path, APNs headers,
 * body, answer).
 * What it answers is set per device token by the rules file, read again
 * whenever it changes (replace it with rename to change it atomically):
 *
 *     <token_hex | *> <answer>[,<answer>...]
 *
 * answers: 200 (with an apns-id), 410 (Unregistered, with a timestamp),
 * 400 (BadDeviceToken), 403 (BadCertificate), 429 (TooManyRequests),
 * 500 (InternalServerError), 503 (ServiceUnavailable), STATUS:Reason for
 * another reason, "stall" (never answer) and "drop" (close the
 * connection).  A token's answers are used in order, the last one
 * repeats; reading the file again starts them over.  No rule: 200.
 *
 * usage: apns_mock --port N --cert FILE --key FILE --record FILE
 *                  [--rules FILE] [--max-streams N]
 * It prints "listening 127.0.0.1:PORT" when ready (port 0: any free one),
 * and its request count and CPU time on SIGUSR1 and at exit
 * (SIGTERM/SIGINT).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "utf8.h"

#define MAX_BODY 4096
#define MAX_ANSWERS 16

typedef struct answer
{
	int			status;			/* 0: stall, -1: drop */
	char		reason[64];
} answer;

typedef struct rule
{
	char	   *token;			/* NULL: the default ("*") */
	answer		answers[MAX_ANSWERS];
	int			n_answers;
	int			used;
	struct rule *next;
} rule;

typedef struct conn
{
	int			fd;
	long		id;
	SSL		   *ssl;
	bool		handshaken;
	bool		closing;
	nghttp2_session *session;
	char		uid[256];
	char		cert_sha256[65];
	unsigned char *out;
	size_t		out_len;
	size_t		out_cap;
	bool		want_write;
} conn;

typedef struct stream
{
	char		method[16];
	char		path[512];
	char		topic[256];
	char		push_type[32];
	char		expiration[32];
	char		priority[16];
	char		content_type[64];
	char		body[MAX_BODY + 1];
	size_t		body_len;
	char		resp[256];
	size_t		resp_len;
	size_t		resp_off;
} stream;

static int	epfd;
static SSL_CTX *ctx;
static FILE *record;
static const char *rules_path;
static struct timespec rules_mtime;
static ino_t rules_ino;
static off_t rules_size;
static rule *rules;
static long n_requests;
static long n_conns;
static uint64_t apns_id_counter;
static int	max_streams = 1000;
static volatile sig_atomic_t got_stop;
static volatile sig_atomic_t got_stats;

static void
die(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	fputs("apns_mock: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void
print_stats(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	fprintf(stderr, "apns_mock: %ld requests on %ld connections, cpu user %.3f s sys %.3f s\n",
			n_requests, n_conns,
			ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
			ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
}

/* ---- rules ---- */

static void
free_rules(void)
{
	while (rules)
	{
		rule	   *next = rules->next;

		free(rules->token);
		free(rules);
		rules = next;
	}
}

static bool
parse_answer(const char *s, answer *a)
{
	const char *colon = strchr(s, ':');

	memset(a, 0, sizeof(*a));
	if (strcmp(s, "stall") == 0)
		return true;
	if (strcmp(s, "drop") == 0)
	{
		a->status = -1;
		return true;
	}
	a->status = atoi(s);
	if (a->status < 200 || a->status > 599)
		return false;
	if (colon)
		snprintf(a->reason, sizeof(a->reason), "%s", colon + 1);
	else
	{
		const char *r = "";

		switch (a->status)
		{
			case 400: r = "BadDeviceToken"; break;
			case 403: r = "BadCertificate"; break;
			case 405: r = "MethodNotAllowed"; break;
			case 410: r = "Unregistered"; break;
			case 413: r = "PayloadTooLarge"; break;
			case 429: r = "TooManyRequests"; break;
			case 500: r = "InternalServerError"; break;
			case 503: r = "ServiceUnavailable"; break;
		}
		snprintf(a->reason, sizeof(a->reason), "%s", r);
	}
	return true;
}

/* Read the rules file again if it changed since the last look. */
static void
load_rules(void)
{
	struct stat st;
	FILE	   *f;
	char		line[1024];

	if (!rules_path)
		return;
	if (stat(rules_path, &st) != 0)
	{
		if (rules)
			free_rules();
		rules_ino = 0;
		return;
	}
	if (st.st_ino == rules_ino && st.st_size == rules_size &&
		st.st_mtim.tv_sec == rules_mtime.tv_sec && st.st_mtim.tv_nsec == rules_mtime.tv_nsec)
		return;
	free_rules();
	rules_ino = st.st_ino;
	rules_size = st.st_size;
	rules_mtime = st.st_mtim;
	f = fopen(rules_path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
	{
		char	   *tok = strtok(line, " \t\r\n");
		char	   *list = strtok(NULL, " \t\r\n");
		char	   *item;
		char	   *save;
		rule	   *r;

		if (!tok || tok[0] == '#' || !list)
			continue;
		r = calloc(1, sizeof(rule));
		if (!r)
			die("out of memory");
		r->token = strcmp(tok, "*") == 0 ? NULL : strdup(tok);
		for (item = strtok_r(list, ",", &save); item && r->n_answers < MAX_ANSWERS;
			 item = strtok_r(NULL, ",", &save))
		{
			if (parse_answer(item, &r->answers[r->n_answers]))
				r->n_answers++;
			else
				fprintf(stderr, "apns_mock: ignoring answer \"%s\"\n", item);
		}
		if (r->n_answers == 0)
		{
			free(r->token);
			free(r);
			continue;
		}
		r->next = rules;
		rules = r;
	}
	fclose(f);
}

static answer
answer_for(const char *token)
{
	rule	   *r;
	rule	   *any = NULL;
	answer		ok = {200, ""};

	load_rules();
	for (r = rules; r; r = r->next)
	{
		if (r->token == NULL)
			any = r;
		else if (strcmp(r->token, token) == 0)
			break;
	}
	if (!r)
		r = any;
	if (!r)
		return ok;
	if (r->used < r->n_answers)
		return r->answers[r->used++];
	return r->answers[r->n_answers - 1];
}

/* ---- output ---- */

static void
conn_queue(conn *c, const uint8_t *data, size_t len)
{
	if (c->out_len + len > c->out_cap)
	{
		size_t		cap = c->out_cap ? c->out_cap : 65536;

		while (cap < c->out_len + len)
			cap *= 2;
		c->out = realloc(c->out, cap);
		if (!c->out)
			die("out of memory");
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
}

static void
conn_set_events(conn *c, bool want_write)
{
	struct epoll_event ev = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.ptr = c};

	if (want_write != c->want_write)
	{
		epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
		c->want_write = want_write;
	}
}

/* Serialize what nghttp2 has to send and write as much as TLS takes. */
static int
conn_flush(conn *c)
{
	for (;;)
	{
		const uint8_t *data;
		ssize_t		n = nghttp2_session_mem_send(c->session, &data);

		if (n < 0)
		{
			fprintf(stderr, "apns_mock: connection %ld: HTTP/2 error: %s\n", c->id, nghttp2_strerror((int) n));
			return -1;
		}
		if (n == 0)
			break;
		conn_queue(c, data, (size_t) n);
	}
	while (c->out_len > 0)
	{
		int			n;

		ERR_clear_error();		/* SSL_get_error reads the thread's queue */
		n = SSL_write(c->ssl, c->out, (int) (c->out_len > 1 << 20 ? 1 << 20 : c->out_len));

		if (n <= 0)
		{
			int			e = SSL_get_error(c->ssl, n);

			if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
			{
				conn_set_events(c, true);
				return 0;
			}
			return -1;
		}
		memmove(c->out, c->out + n, c->out_len - n);
		c->out_len -= n;
	}
	conn_set_events(c, false);
	if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))
		return -1;
	return 0;
}

static void
conn_close(conn *c)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->session)
		nghttp2_session_del(c->session);
	SSL_free(c->ssl);
	close(c->fd);
	free(c->out);
	free(c);
}

/* ---- HTTP/2 ---- */

static ssize_t
resp_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
		  uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
	stream	   *s = source->ptr;
	size_t		n = s->resp_len - s->resp_off;

	if (n > length)
		n = length;
	memcpy(buf, s->resp + s->resp_off, n);
	s->resp_off += n;
	if (s->resp_off == s->resp_len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t) n;
}

/* ---- the record file ---- */

/* A growable line of the record file. */
typedef struct line
{
	char	   *p;
	size_t		len;
	size_t		cap;
} line;

static void
line_add(line *l, const char *s, size_t n)
{
	if (l->len + n > l->cap)
	{
		size_t		cap = l->cap ? l->cap : 1024;

		while (cap < l->len + n)
			cap *= 2;
		l->p = realloc(l->p, cap);
		if (!l->p)
			die("out of memory");
		l->cap = cap;
	}
	memcpy(l->p + l->len, s, n);
	l->len += n;
}

/* ,"key":"value" with value escaped as JSON (UTF-8 checked by the caller) */
static void
line_str(line *l, const char *key, const char *v, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t		start = 0;

	line_add(l, ",\"", 2);
	line_add(l, key, strlen(key));
	line_add(l, "\":\"", 3);
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) v[i];
		char		esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		line_add(l, v + start, i - start);
		start = i + 1;
		if (c == '"' || c == '\\')
		{
			esc[1] = (char) c;
			line_add(l, esc, 2);
		}
		else
			line_add(l, esc, 6);
	}
	line_add(l, v + start, len - start);
	line_add(l, "\"", 1);
}

static void
line_cstr(line *l, const char *key, const char *v)
{
	size_t		len = strlen(v);

	/* what is not UTF-8 (from a client's certificate, say) is left out */
	if (!utf8_valid((const unsigned char *) v, len))
		len = 0;
	line_str(l, key, v, len);
}

/*
 * One JSON object per request, written directly (a JSON library's objects
 * cost the mock more than the rest of a request).
 */
static void
record_request(conn *c, stream *s, const char *answer_text)
{
	static line l;
	struct timespec ts;
	char		head[96];
	int			n;

	clock_gettime(CLOCK_REALTIME, &ts);
	l.len = 0;
	n = snprintf(head, sizeof(head), "{\"t\":%lld.%06ld,\"conn\":%ld", (long long) ts.tv_sec,
				 ts.tv_nsec / 1000, c->id);
	line_add(&l, head, (size_t) n);
	line_cstr(&l, "uid", c->uid);
	if (utf8_valid((const unsigned char *) s->body, s->body_len))
	{
		line_cstr(&l, "cert_sha256", c->cert_sha256);
		line_cstr(&l, "method", s->method);
		line_cstr(&l, "path", s->path);
		line_cstr(&l, "topic", s->topic);
		line_cstr(&l, "push_type", s->push_type);
		line_cstr(&l, "expiration", s->expiration);
		line_cstr(&l, "priority", s->priority);
		line_cstr(&l, "content_type", s->content_type);
		line_str(&l, "body", s->body, s->body_len);
		line_cstr(&l, "answer", answer_text);
		line_add(&l, "}\n", 2);
	}
	else
	{
		/* a body that is not UTF-8: recorded without the body */
		line_cstr(&l, "path", s->path);
		line_cstr(&l, "topic", s->topic);
		line_cstr(&l, "answer", answer_text);
		line_add(&l, ",\"body_not_utf8\":true}\n", 23);
	}
	fwrite(l.p, 1, l.len, record);
	n_requests++;
}

static int
respond(nghttp2_session *session, conn *c, int32_t stream_id, stream *s)
{
	answer		a;
	char		status[12];
	char		apns_id[37];
	char		answer_text[80];
	nghttp2_nv	hdrs[3];
	int			nh = 0;
	const char *token = "";
	nghttp2_data_provider prov = {.source.ptr = s, .read_callback = resp_read};

	if (strncmp(s->path, "/3/device/", 10) == 0)
		token = s->path + 10;

	if (strcmp(s->method, "POST") != 0)
		parse_answer("405", &a);
	else if (strcmp(s->topic, c->uid) != 0)
		parse_answer("400:TopicDisallowed", &a);
	else if (strcmp(s->push_type, "mdm") != 0)
		parse_answer("400:InvalidPushType", &a);
	else if (*token == '\0' || strspn(token, "0123456789abcdefABCDEF") != strlen(token))
		parse_answer("400:BadDeviceToken", &a);
	else
		a = answer_for(token);

	if (a.status == 0)
		snprintf(answer_text, sizeof(answer_text), "stall");
	else if (a.status < 0)
		snprintf(answer_text, sizeof(answer_text), "drop");
	else if (a.reason[0])
		snprintf(answer_text, sizeof(answer_text), "%d:%s", a.status, a.reason);
	else
		snprintf(answer_text, sizeof(answer_text), "%d", a.status);
	record_request(c, s, answer_text);

	if (a.status == 0)
		return 0;
	if (a.status < 0)
	{
		c->closing = true;
		return 0;
	}
	snprintf(status, sizeof(status), "%d", a.status);
	apns_id_counter++;
	snprintf(apns_id, sizeof(apns_id), "%08X-%04X-4%03X-8%03X-%012llX",
			 (unsigned) (apns_id_counter >> 32), (unsigned) ((apns_id_counter >> 16) & 0xffff),
			 (unsigned) (apns_id_counter & 0xfff), (unsigned) (c->id & 0xfff),
			 (unsigned long long) apns_id_counter);
#define NV(n, v) (nghttp2_nv){(uint8_t *) (n), (uint8_t *) (v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}
	hdrs[nh++] = NV(":status", status);
	hdrs[nh++] = NV("apns-id", apns_id);
	if (a.status == 200)
		return nghttp2_submit_response(session, stream_id, hdrs, nh, NULL);
	hdrs[nh++] = NV("content-type", "application/json");
	if (a.status == 410)
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		s->resp_len = snprintf(s->resp, sizeof(s->resp), "{\"reason\":\"%s\",\"timestamp\":%lld}",
							   a.reason, (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	}
	else
		s->resp_len = snprintf(s->resp, sizeof(s->resp), "{\"reason\":\"%s\"}", a.reason);
	return nghttp2_submit_response(session, stream_id, hdrs, nh, &prov);
}

static int
on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	stream	   *s;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	s = calloc(1, sizeof(stream));
	if (!s)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s);
	return 0;
}

static void
copy_value(char *dst, size_t size, const uint8_t *value, size_t len)
{
	if (len >= size)
		len = size - 1;
	memcpy(dst, value, len);
	dst[len] = '\0';
}

static int
on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
		  size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
	stream	   *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	static const struct
	{
		const char *name;
		size_t		off;
		size_t		size;
	}			fields[] = {
		{":method", offsetof(stream, method), sizeof(((stream *) 0)->method)},
		{":path", offsetof(stream, path), sizeof(((stream *) 0)->path)},
		{"apns-topic", offsetof(stream, topic), sizeof(((stream *) 0)->topic)},
		{"apns-push-type", offsetof(stream, push_type), sizeof(((stream *) 0)->push_type)},
		{"apns-expiration", offsetof(stream, expiration), sizeof(((stream *) 0)->expiration)},
		{"apns-priority", offsetof(stream, priority), sizeof(((stream *) 0)->priority)},
		{"content-type", offsetof(stream, content_type), sizeof(((stream *) 0)->content_type)},
	};

	if (!s)
		return 0;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strlen(fields[i].name) == namelen && memcmp(fields[i].name, name, namelen) == 0)
			copy_value((char *) s + fields[i].off, fields[i].size, value, valuelen);
	return 0;
}

static int
on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
			  size_t len, void *user_data)
{
	stream	   *s = nghttp2_session_get_stream_user_data(session, stream_id);

	if (!s)
		return 0;
	if (s->body_len + len > MAX_BODY)
		len = MAX_BODY - s->body_len;
	memcpy(s->body + s->body_len, data, len);
	s->body_len += len;
	s->body[s->body_len] = '\0';
	return 0;
}

static int
on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	conn	   *c = user_data;
	stream	   *s;

	if (frame->hd.type == NGHTTP2_GOAWAY)
		fprintf(stderr, "apns_mock: connection %ld: GOAWAY received (error %u)\n", c->id,
				frame->goaway.error_code);
	if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
		!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!s || c->closing)
		return 0;
	if (respond(session, c, frame->hd.stream_id, s) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int
on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	conn	   *c = user_data;

	if (frame->hd.type == NGHTTP2_GOAWAY)
		fprintf(stderr, "apns_mock: connection %ld: GOAWAY sent (error %u, last stream %d, %.*s)\n", c->id,
				frame->goaway.error_code, frame->goaway.last_stream_id,
				(int) frame->goaway.opaque_data_len, (const char *) frame->goaway.opaque_data);
	return 0;
}

static int
on_error(nghttp2_session *session, int lib_error_code, const char *msg, size_t len, void *user_data)
{
	conn	   *c = user_data;

	fprintf(stderr, "apns_mock: connection %ld: HTTP/2: %.*s\n", c->id, (int) len, msg);
	return 0;
}

static int
on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
	free(nghttp2_session_get_stream_user_data(session, stream_id));
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	return 0;
}

static int
start_session(conn *c)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t) max_streams}};
	X509	   *peer;

	peer = SSL_get_peer_certificate(c->ssl);
	if (peer)
	{
		X509_NAME  *name = X509_get_subject_name(peer);
		int			i = X509_NAME_get_index_by_NID(name, NID_userId, -1);

		if (i >= 0)
		{
			ASN1_STRING *v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));

			copy_value(c->uid, sizeof(c->uid), ASN1_STRING_get0_data(v), ASN1_STRING_length(v));
		}
		{
			unsigned char md[32];
			unsigned int len = 0;

			X509_digest(peer, EVP_sha256(), md, &len);
			for (unsigned int j = 0; j < len && j < 32; j++)
				snprintf(c->cert_sha256 + 2 * j, 3, "%02x", md[j]);
		}
		X509_free(peer);
	}
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_error_callback2(cb, on_error);
	/*
	 * libcurl resets every stream it is done with; nghttp2's defence against
	 * rapid resets (1000, then 33 a second) would end the connection
	 */
	nghttp2_option_new(&opt);
	nghttp2_option_set_stream_reset_rate_limit(opt, UINT64_MAX / 2, UINT64_MAX / 2);
	nghttp2_session_server_new2(&c->session, cb, c, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 1) != 0)
		return -1;
	return conn_flush(c);
}

/* Returns -1 when the connection is to be closed. */
static int
conn_readable(conn *c)
{
	unsigned char buf[65536];

	if (!c->handshaken)
	{
		int			r;

		ERR_clear_error();
		r = SSL_accept(c->ssl);
		if (r <= 0)
		{
			int			e = SSL_get_error(c->ssl, r);

			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return 0;
			fprintf(stderr, "apns_mock: connection %ld: TLS handshake failed: %s\n", c->id,
					ERR_reason_error_string(ERR_peek_last_error()) ? ERR_reason_error_string(ERR_peek_last_error()) : "closed");
			ERR_clear_error();
			return -1;
		}
		c->handshaken = true;
		if (start_session(c) != 0)
			return -1;
	}
	for (;;)
	{
		int			n;

		ERR_clear_error();
		n = SSL_read(c->ssl, buf, sizeof(buf));
		if (n <= 0)
		{
			int			e = SSL_get_error(c->ssl, n);

			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				break;
			if (e != SSL_ERROR_ZERO_RETURN && !(e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0))
				fprintf(stderr, "apns_mock: connection %ld: TLS read error %d: %s\n", c->id, e, ERR_reason_error_string(ERR_peek_error()) ? ERR_reason_error_string(ERR_peek_error()) : "-");
			return -1;
		}
		{
			ssize_t		rv = nghttp2_session_mem_recv(c->session, buf, (size_t) n);

			if (rv < 0)
			{
				fprintf(stderr, "apns_mock: connection %ld: HTTP/2 error: %s\n", c->id, nghttp2_strerror((int) rv));
				return -1;
			}
		}
		if (c->closing)
			return -1;
	}
	return conn_flush(c);
}

static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
			unsigned int inlen, void *arg)
{
	if (nghttp2_select_next_protocol((unsigned char **) out, outlen, in, inlen) != 1)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;
}

static int
accept_any_client(int preverify, X509_STORE_CTX *x)
{
	return 1;					/* any issuer: the topic check is what matters */
}

static void
on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_stats = 1;
	else
		got_stop = 1;
}

int
main(int argc, char **argv)
{
	int			port = 0;
	const char *cert = NULL,
			   *key = NULL,
			   *record_path = NULL;
	int			lfd;
	int			one = 1;
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t	alen = sizeof(addr);
	struct epoll_event ev;
	struct sigaction sa = {.sa_handler = on_signal};
	static const unsigned char listen_tag;

	for (int i = 1; i < argc; i++)
	{
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			die("%s needs a value", argv[i]);
		if (strcmp(argv[i], "--port") == 0)
			port = atoi(v);
		else if (strcmp(argv[i], "--cert") == 0)
			cert = v;
		else if (strcmp(argv[i], "--key") == 0)
			key = v;
		else if (strcmp(argv[i], "--record") == 0)
			record_path = v;
		else if (strcmp(argv[i], "--rules") == 0)
			rules_path = v;
		else if (strcmp(argv[i], "--max-streams") == 0)
			max_streams = atoi(v);
		else
			die("unknown option %s", argv[i]);
		i++;
	}
	if (!cert || !key || !record_path)
		die("usage: apns_mock --port N --cert FILE --key FILE --record FILE [--rules FILE] [--max-streams N]");

	record = fopen(record_path, "a");
	if (!record)
		die("cannot open %s: %s", record_path, strerror(errno));

	ctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		die("cannot load %s / %s", cert, key);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any_client);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	/* resumed sessions need a context when client certificates are asked for */
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *) "apns_mock", 9);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/*
	 * one read() for many TLS records, not two for each (its header, then
	 * the rest): conn_readable() reads until OpenSSL needs the socket
	 */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons(port);
	if (bind(lfd, (struct sockaddr *) &addr, sizeof(addr)) != 0 || listen(lfd, 1024) != 0)
		die("cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
	getsockname(lfd, (struct sockaddr *) &addr, &alen);

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	epfd = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.ptr = (void *) &listen_tag;
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
	load_rules();
	printf("listening 127.0.0.1:%d\n", ntohs(addr.sin_port));
	fflush(stdout);

	while (!got_stop)
	{
		struct epoll_event events[256];
		int			n = epoll_wait(epfd, events, 256, 1000);

		if (got_stats)
		{
			got_stats = 0;
			fflush(record);
			print_stats();
		}
		for (int i = 0; i < n; i++)
		{
			if (events[i].data.ptr == &listen_tag)
			{
				int			fd;

				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
				{
					conn	   *c = calloc(1, sizeof(conn));
					struct epoll_event cev = {.events = EPOLLIN};

					if (!c)
						die("out of memory");
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					c->fd = fd;
					c->id = ++n_conns;
					c->ssl = SSL_new(ctx);
					SSL_set_fd(c->ssl, fd);
					cev.data.ptr = c;
					epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev);
				}
				continue;
			}
			else
			{
				conn	   *c = events[i].data.ptr;
				int			r;

				if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
					r = conn_readable(c);
				else
					r = c->handshaken ? conn_flush(c) : conn_readable(c);
				if (r != 0)
					conn_close(c);
			}
		}
		fflush(record);
	}
	fflush(record);
	print_stats();
	return 0;
}
