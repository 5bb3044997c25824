/*
 * http.c: the HTTP server.  --workers libmicrohttpd daemons, each with its
 * own thread and epoll loop over the connections given to it; a handler runs
 * in the thread of its connection and calls the database synchronously, so
 * idle keep-alive connections cost a few kB each and no thread.  The front
 * end owns the listening socket: one accept thread hands each new connection
 * to the worker with the fewest open connections (libmicrohttpd's own thread
 * pool lets whichever worker wakes first accept everything pending, which
 * put two busy connections on one worker while the others sat idle).  Each
 * reply is one in-memory response, which libmicrohttpd sends with its
 * headers in one write on a TCP_NODELAY socket.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE				/* accept4 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "db.h"
#include "device.h"
#include "http.h"
#include "log.h"

struct route
{
	const char *path;			/* exact, or a prefix when it ends in '/' */
	const char *methods;		/* e.g. "PUT" or "GET,POST" */
	enum endpoint ep;
	bool		admin;			/* only with --api-key, behind Basic auth */
	bool		body;			/* reads a body */
	handler_fn	handler;
};

static void serve_healthz(struct request *req, struct reply *out);
static void serve_metrics(struct request *req, struct reply *out);
static void serve_version(struct request *req, struct reply *out);

static const struct route routes[] = {
	{"/mdm", "PUT", EP_MDM, false, true, device_mdm},
	{"/checkin", "PUT", EP_CHECKIN, false, true, device_checkin},
	{"/mdm/enroll", "GET", EP_ENROLL, false, false, device_enroll},
	{"/v1/enqueue/", "PUT,POST", EP_ENQUEUE, true, true, admin_enqueue},
	{"/v1/push/", "GET,POST", EP_PUSH, true, false, admin_push},
	{"/v1/pushcert", "GET,PUT,POST", EP_PUSHCERT, true, true, admin_pushcert},
	{"/migration", "PUT,POST", EP_MIGRATION, true, true, admin_migration},
	{"/version", "GET", EP_VERSION, false, false, serve_version},
	{"/healthz", "GET", EP_HEALTHZ, false, false, serve_healthz},
	{"/metrics", "GET", EP_METRICS, false, false, serve_metrics},
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

/* A worker: one libmicrohttpd daemon and its thread. */
struct worker
{
	struct MHD_Daemon *daemon;
	int			open;			/* connections given to it and not yet closed */
};

static struct worker *workers;
static int	n_workers;
static int	listen_fd = -1;
static int	wake_fd = -1;		/* an eventfd: stop accepting */
static pthread_t accept_thread;
static bool accept_running;
static _Atomic bool stopping;

/* open connections, per worker and in all; the accept thread waits on freed */
static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conn_freed = PTHREAD_COND_INITIALIZER;
static int	open_total;

static _Atomic int in_flight;
static int	stmt_ping;

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void
reply_text(struct reply *out, int status, const char *content_type, const char *text)
{
	out->status = status;
	out->content_type = content_type;
	out->len = strlen(text);
	out->body = malloc(out->len ? out->len : 1);
	if (out->body == NULL)
	{
		out->status = 503;
		out->content_type = NULL;
		out->len = 0;
		return;
	}
	memcpy(out->body, text, out->len);
}

void
reply_empty(struct reply *out, int status)
{
	out->status = status;
	out->content_type = NULL;
	out->body = NULL;
	out->len = 0;
}

const char *
request_header(struct request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *
request_query(struct request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const void *
request_peer_cert(struct request *req, size_t *len)
{
	const union MHD_ConnectionInfo *ci;
	const gnutls_datum_t *certs;
	unsigned int n = 0;

	if (config.tls_cert == NULL)
		return NULL;
	ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci == NULL || ci->tls_session == NULL)
		return NULL;
	certs = gnutls_certificate_get_peers((gnutls_session_t) ci->tls_session, &n);
	if (certs == NULL || n == 0)
		return NULL;
	*len = certs[0].size;
	return certs[0].data;
}

/* GET /healthz: 200 while the database answers, else 503. */
static void
serve_healthz(struct request *req, struct reply *out)
{
	struct db_call call = {.nparams = 0};

	if (db_exec(stmt_ping, &call) == DB_OK)
	{
		PQclear(call.res);
		reply_text(out, 200, "text/plain", "ok\n");
	}
	else
		reply_text(out, 503, "text/plain", "database unavailable\n");
}

static void
serve_metrics(struct request *req, struct reply *out)
{
	size_t		len;
	char	   *page = metrics_render(&len);

	if (page == NULL)
	{
		reply_empty(out, 503);
		return;
	}
	out->status = 200;
	out->content_type = "text/plain; version=0.0.4";
	out->body = page;
	out->len = len;
}

/* GET /version, as NanoMDM's: {"version": "..."} */
static void
serve_version(struct request *req, struct reply *out)
{
	reply_text(out, 200, "application/json", "{\"version\":\"" MDM_FRONTEND_VERSION "\"}\n");
}

static bool
method_allowed(const struct route *r, const char *method)
{
	size_t		n = strlen(method);

	for (const char *p = r->methods; *p;)
	{
		size_t		m = strcspn(p, ",");

		if (m == n && strncmp(p, method, n) == 0)
			return true;
		p += m;
		if (*p == ',')
			p++;
	}
	return false;
}

static const struct route *
find_route(const char *url)
{
	for (size_t i = 0; i < N_ROUTES; i++)
	{
		const struct route *r = &routes[i];
		size_t		n = strlen(r->path);

		if (r->admin && config.api_key == NULL)
			continue;
		if (r->path[n - 1] == '/' ? strncmp(url, r->path, n) == 0 : strcmp(url, r->path) == 0)
			return r;
	}
	return NULL;
}

/* Sends a reply as one in-memory response (one write with its headers). */
static enum MHD_Result
send_reply(struct request *req, struct reply *rep)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (rep->body)
		resp = MHD_create_response_from_buffer_with_free_callback(rep->len, rep->body, free);
	else
		resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
	{
		free(rep->body);
		return MHD_NO;
	}
	if (rep->content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rep->content_type);
	if (rep->extra_header)
	{
		char		name[64];
		const char *colon = strchr(rep->extra_header, ':');
		size_t		n = colon ? (size_t) (colon - rep->extra_header) : 0;

		if (n > 0 && n < sizeof(name))
		{
			memcpy(name, rep->extra_header, n);
			name[n] = '\0';
			MHD_add_response_header(resp, name, colon + 1 + strspn(colon + 1, " "));
		}
	}
	req->status = rep->status;
	ret = MHD_queue_response(req->conn, (unsigned int) rep->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
send_status(struct request *req, int status, const char *extra_header)
{
	struct reply rep;

	reply_empty(&rep, status);
	rep.extra_header = extra_header;
	return send_reply(req, &rep);
}

/* Appends a chunk of the body; false once it is larger than allowed. */
static bool
append_body(struct request *req, const char *data, size_t size)
{
	size_t		limit = (size_t) db_max_message_bytes();

	if (req->len + size > limit)
		return false;
	if (req->len + size > req->cap)
	{
		size_t		cap = req->cap ? req->cap : 4096;
		char	   *p;

		while (cap < req->len + size)
			cap *= 2;
		if (cap > limit)
			cap = limit;
		p = realloc(req->body, cap);
		if (p == NULL)
			return false;
		req->body = p;
		req->cap = cap;
	}
	memcpy(req->body + req->len, data, size);
	req->len += size;
	return true;
}

static bool
authorized(struct request *req)
{
	char	   *pass = NULL;
	char	   *user = MHD_basic_auth_get_username_password(req->conn, &pass);
	bool		ok = false;

	if (user && pass && strcmp(user, "nanomdm") == 0)
	{
		size_t		a = strlen(pass),
					b = strlen(config.api_key);
		unsigned char diff = a != b;

		/* compared in constant time over the key's length */
		for (size_t i = 0; i < b; i++)
			diff |= (unsigned char) (i < a ? pass[i] : 0) ^ (unsigned char) config.api_key[i];
		ok = diff == 0;
	}
	if (user)
		MHD_free(user);
	if (pass)
		MHD_free(pass);
	return ok;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
		   const char *version, const char *upload_data, size_t *upload_data_size,
		   void **con_cls)
{
	struct request *req = *con_cls;
	const struct route *route;
	struct reply rep = {0};

	if (req == NULL)
	{
		/* headers are in; the body (if any) comes in the next calls */
		const char *cl;

		req = calloc(1, sizeof(*req));
		if (req == NULL)
			return MHD_NO;
		req->conn = conn;
		req->url = url;
		req->method = method;
		req->start = now_seconds();
		req->ep = EP_OTHER;
		*con_cls = req;
		atomic_fetch_add(&in_flight, 1);

		route = find_route(url);
		if (route == NULL)
			return send_status(req, 404, NULL);
		req->ep = route->ep;
		req->route = route;
		if (!method_allowed(route, method))
		{
			static __thread char allow[64];
			size_t		n = snprintf(allow, sizeof(allow), "Allow: ");

			/* "PUT,POST" -> "Allow: PUT, POST" */
			for (const char *p = route->methods; *p && n + 3 < sizeof(allow); p++)
			{
				allow[n++] = *p;
				if (*p == ',')
					allow[n++] = ' ';
			}
			allow[n] = '\0';
			return send_status(req, 405, allow);
		}
		if (route->admin && !authorized(req))
			return send_status(req, 401, "WWW-Authenticate: Basic realm=\"nanomdm\"");
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (route->body && cl && strtoull(cl, NULL, 10) > (unsigned long long) db_max_message_bytes())
			return send_status(req, 413, NULL);	/* the body is never read */
		return MHD_YES;
	}

	route = req->route;
	if (*upload_data_size > 0)
	{
		if (req->too_large)
		{
			/*
			 * Over the limit without a Content-Length that said so (a chunked
			 * body).  libmicrohttpd 0.9.75 takes no reply in the middle of a
			 * body, so the rest is read and dropped (never stored) and 413
			 * answered at its end; a body that goes on past twice the limit
			 * has the connection closed without a reply.
			 */
			req->discarded += *upload_data_size;
			*upload_data_size = 0;
			if (req->discarded > (size_t) db_max_message_bytes())
			{
				req->status = 413;
				return MHD_NO;
			}
			return MHD_YES;
		}
		if (route->body && !append_body(req, upload_data, *upload_data_size))
		{
			req->too_large = true;
			free(req->body);
			req->body = NULL;
			req->len = req->cap = 0;
			req->discarded = *upload_data_size;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->too_large)
		return send_status(req, 413, "Connection: close");
	route->handler(req, &rep);
	return send_reply(req, &rep);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *req = *con_cls;
	uint64_t	us;

	if (req == NULL)
		return;
	us = (uint64_t) ((now_seconds() - req->start) * 1e6);
	if (req->status == 0)
		log_info("%s %s aborted after %.2f ms (client gone or timed out)", req->method, req->url,
				 us / 1000.0);
	else
	{
		metrics_request(req->ep, req->status, us);
		log_info("%s %s %d %.2f ms%s%s", req->method, req->url, req->status, us / 1000.0,
				 req->log_note[0] ? " " : "", req->log_note);
	}
	free(req->body);
	free(req);
	*con_cls = NULL;
	atomic_fetch_sub(&in_flight, 1);
}

/*
 * New connections: TCP_NODELAY (a reply is one write; nothing to wait for),
 * and with TLS, a certificate request that names no CA, so that a client
 * sends its identity whatever issued it (the database verifies).
 */
static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct worker *w = cls;

	if (code == MHD_CONNECTION_NOTIFY_STARTED)
	{
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		int			one = 1;

		if (ci)
			setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (config.tls_cert)
		{
			ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
			if (ci && ci->tls_session)
				gnutls_certificate_send_x509_rdn_sequence((gnutls_session_t) ci->tls_session, 1);
		}
		metrics_connection(1);
	}
	else
	{
		metrics_connection(-1);
		pthread_mutex_lock(&conn_lock);
		w->open--;
		if (open_total-- == config.max_connections)
			pthread_cond_signal(&conn_freed);
		pthread_mutex_unlock(&conn_lock);
	}
}

/* HOST:PORT, [IPv6]:PORT -> a socket address; -1 with a message on error. */
static int
parse_listen(const char *listen, struct sockaddr_storage *addr, socklen_t *addrlen)
{
	char		host[256];
	const char *port;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res;
	int			rc;

	if (listen[0] == '[')
	{
		const char *end = strchr(listen, ']');

		if (end == NULL || end[1] != ':' || (size_t) (end - listen - 1) >= sizeof(host))
			goto bad;
		memcpy(host, listen + 1, end - listen - 1);
		host[end - listen - 1] = '\0';
		port = end + 2;
	}
	else
	{
		const char *colon = strrchr(listen, ':');

		if (colon == NULL || (size_t) (colon - listen) >= sizeof(host))
			goto bad;
		memcpy(host, listen, colon - listen);
		host[colon - listen] = '\0';
		port = colon + 1;
	}
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0)
	{
		fprintf(stderr, "mdm-frontend: --listen %s: %s\n", listen, gai_strerror(rc));
		return -1;
	}
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
bad:
	fprintf(stderr, "mdm-frontend: --listen \"%s\" is not HOST:PORT\n", listen);
	return -1;
}

/* As many open files as the hard limit allows: each connection is one. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		rl.rlim_cur < (rlim_t) config.max_connections + 64)
	{
		log_warning("open files limit %llu: --max-connections lowered from %d to %llu",
					(unsigned long long) rl.rlim_cur, config.max_connections,
					(unsigned long long) (rl.rlim_cur - 64));
		config.max_connections = (int) (rl.rlim_cur - 64);
	}
}

/*
 * The listening socket, as libmicrohttpd would make it (SO_REUSEADDR, IPv6
 * only for an IPv6 address); nonblocking, for the accept thread.
 */
static int
open_listen_socket(void)
{
	struct sockaddr_storage addr;
	socklen_t	addrlen;
	int			one = 1;
	int			fd;

	if (parse_listen(config.listen, &addr, &addrlen) != 0)
		return -1;
	fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		(addr.ss_family == AF_INET6 &&
		 setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
		bind(fd, (struct sockaddr *) &addr, addrlen) != 0 ||
		listen(fd, 1024) != 0)
	{
		fprintf(stderr, "mdm-frontend: cannot listen on %s: %s\n", config.listen, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * The worker with the fewest open connections; among equals the first from
 * *next, so that equal workers take turns.  Counts it as open (conn_lock
 * held).
 */
static int
pick_worker(int *next)
{
	int			best = *next;

	for (int k = 1; k < n_workers; k++)
	{
		int			i = (*next + k) % n_workers;

		if (workers[i].open < workers[best].open)
			best = i;
	}
	workers[best].open++;
	open_total++;
	*next = (best + 1) % n_workers;
	return best;
}

/*
 * The accept thread: takes every pending connection and gives each to the
 * worker with the fewest open connections.  At --max-connections it stops
 * accepting until one closes (new ones wait in the backlog).  A connection
 * is counted when it is given to a worker and uncounted when libmicrohttpd
 * reports it closed (or refuses it at once); one that libmicrohttpd drops
 * in between for want of memory stays counted.
 */
static void *
accept_main(void *arg)
{
	struct pollfd pfd[2] = {{.fd = listen_fd, .events = POLLIN}, {.fd = wake_fd, .events = POLLIN}};
	int			next = 0;
	double		last_warning = 0;

	while (!atomic_load(&stopping))
	{
		struct sockaddr_storage addr;
		socklen_t	addrlen = sizeof(addr);
		int			fd,
					w;

		pthread_mutex_lock(&conn_lock);
		while (open_total >= config.max_connections && !atomic_load(&stopping))
			pthread_cond_wait(&conn_freed, &conn_lock);
		pthread_mutex_unlock(&conn_lock);
		if (atomic_load(&stopping))
			break;

		fd = accept4(listen_fd, (struct sockaddr *) &addr, &addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
		{
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				(void) poll(pfd, 2, -1);
			else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			{
				/* out of files or memory: the connection waits; so do we, briefly */
				struct timespec ts = {0, 100 * 1000 * 1000};

				if (now_seconds() - last_warning > 10)
				{
					log_warning("cannot accept a connection: %s", strerror(errno));
					last_warning = now_seconds();
				}
				nanosleep(&ts, NULL);
			}
			/* else a connection reset before it was accepted, or a signal */
			continue;
		}
		pthread_mutex_lock(&conn_lock);
		w = pick_worker(&next);
		pthread_mutex_unlock(&conn_lock);
		if (MHD_add_connection(workers[w].daemon, fd, (struct sockaddr *) &addr, addrlen) != MHD_YES)
		{
			/* libmicrohttpd has closed it */
			pthread_mutex_lock(&conn_lock);
			workers[w].open--;
			open_total--;
			pthread_mutex_unlock(&conn_lock);
			log_warning("cannot take a connection: %s", strerror(errno));
		}
	}
	return NULL;
}

/* /metrics: each worker's open connections (how evenly they are spread) */
static void
write_worker_metrics(FILE *out)
{
	fputs("# HELP mdm_frontend_worker_connections Client connections open now, by worker thread.\n"
		  "# TYPE mdm_frontend_worker_connections gauge\n", out);
	pthread_mutex_lock(&conn_lock);
	for (int i = 0; i < n_workers; i++)
		fprintf(out, "mdm_frontend_worker_connections{worker=\"%d\"} %d\n", i, workers[i].open);
	pthread_mutex_unlock(&conn_lock);
}

static void
stop_workers(void)
{
	for (int i = 0; i < n_workers; i++)
		if (workers[i].daemon)
			MHD_stop_daemon(workers[i].daemon);
	pthread_mutex_lock(&conn_lock);
	free(workers);
	workers = NULL;
	n_workers = 0;
	pthread_mutex_unlock(&conn_lock);
}

int
http_start(void)
{
	unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
		MHD_USE_NO_LISTEN_SOCKET;
	char	   *cert = NULL,
			   *key = NULL;
	size_t		len;
	struct MHD_OptionItem tls_opts[5];
	int			n_tls = 0;

	stmt_ping = db_register(DB_DEVICE, "SELECT 1", 0, NULL);
	metrics_add_writer(write_worker_metrics);
	if ((config.tls_cert == NULL) != (config.tls_key == NULL))
	{
		fprintf(stderr, "mdm-frontend: --tls-cert and --tls-key go together\n");
		return -1;
	}
	if (config.tls_cert)
	{
		flags |= MHD_USE_TLS;
		if ((cert = config_read_file(config.tls_cert, &len)) == NULL ||
			(key = config_read_file(config.tls_key, &len)) == NULL)
		{
			fprintf(stderr, "mdm-frontend: cannot read the TLS files: %s\n", strerror(errno));
			return -1;
		}
		tls_opts[n_tls++] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_MEM_CERT, 0, cert};
		tls_opts[n_tls++] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_MEM_KEY, 0, key};
		/*
		 * A trust list makes libmicrohttpd request (not require) a client
		 * certificate; nothing is verified against it, and on_connection()
		 * keeps its names out of the request.  Our own certificate will do.
		 */
		tls_opts[n_tls++] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_MEM_TRUST, 0, cert};
		tls_opts[n_tls++] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_PRIORITIES, 0,
		(void *) "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"};
	}
	tls_opts[n_tls] = (struct MHD_OptionItem) {MHD_OPTION_END, 0, NULL};
	raise_fd_limit();

	listen_fd = open_listen_socket();
	if (listen_fd < 0)
		return -1;
	n_workers = config.workers;
	workers = calloc(n_workers, sizeof(*workers));
	if (workers == NULL)
	{
		fprintf(stderr, "mdm-frontend: out of memory\n");
		return -1;
	}
	for (int i = 0; i < n_workers; i++)
	{
		/*
		 * The accept thread keeps the total under --max-connections; each
		 * worker could take them all.
		 */
		workers[i].daemon =
			MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL,
							 MHD_OPTION_CONNECTION_LIMIT, (unsigned int) config.max_connections,
							 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) config.idle_timeout,
							 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) config.connection_buffer,
							 MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
							 MHD_OPTION_NOTIFY_CONNECTION, on_connection, &workers[i],
							 MHD_OPTION_ARRAY, tls_opts,
							 MHD_OPTION_END);
		/* libmicrohttpd copied nothing: the TLS strings stay for its lifetime */
		if (workers[i].daemon == NULL)
		{
			fprintf(stderr, "mdm-frontend: cannot start the HTTP server%s\n",
					config.tls_cert ? " (bad TLS files?)" : "");
			stop_workers();
			close(listen_fd);
			return -1;
		}
	}
	wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wake_fd < 0 || pthread_create(&accept_thread, NULL, accept_main, NULL) != 0)
	{
		fprintf(stderr, "mdm-frontend: cannot start the accept thread\n");
		stop_workers();
		close(listen_fd);
		return -1;
	}
	accept_running = true;
	return 0;
}

void
http_stop(int timeout_seconds)
{
	double		deadline = now_seconds() + timeout_seconds;
	uint64_t	one = 1;

	/* no new connections: the accept thread ends, the socket is closed */
	atomic_store(&stopping, true);
	pthread_mutex_lock(&conn_lock);
	pthread_cond_broadcast(&conn_freed);
	pthread_mutex_unlock(&conn_lock);
	if (accept_running)
	{
		if (write(wake_fd, &one, sizeof(one)) != sizeof(one))
			log_warning("cannot wake the accept thread: %s", strerror(errno));
		pthread_join(accept_thread, NULL);
		accept_running = false;
	}
	close(listen_fd);
	listen_fd = -1;
	while (atomic_load(&in_flight) > 0 && now_seconds() < deadline)
	{
		struct timespec ts = {0, 10 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	if (atomic_load(&in_flight) > 0)
		log_warning("%d requests still in flight after %d s; stopping anyway",
					atomic_load(&in_flight), timeout_seconds);
	stop_workers();
	close(wake_fd);
	wake_fd = -1;
}
