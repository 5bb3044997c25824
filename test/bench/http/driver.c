/*
 * driver.c: the load generator of the benchmark's HTTP phase for
 * TokenUpdates (test/bench/run): one thread and one keep-alive connection
 * per client, each sending the TokenUpdates of its share of the Macs in a
 * random order, one at a time, with blocking sockets (a write and a read per
 * request: the load generator shares the CPUs with what it measures, so it
 * does as little as it can; wrk needed several system calls and Lua per
 * request).
 *
 *   driver PORT CONNECTIONS SECONDS REQUESTS
 *
 * REQUESTS is made by requests.sql: per Mac two raw requests (its device
 * and user channel), each as "LENGTH\n<request>\n"; connection t uses Macs
 * t, t + C, t + 2C, ...  It prints, as wrk.lua does,
 *   RESULT <requests> <microseconds> <p50 us> <p99 us> <errors> <bad>
 * errors: connection or read failures; bad: replies other than 200.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct request
{
	const char *data;
	size_t		len;
} request;

typedef struct client
{
	pthread_t	thread;
	int			id;
	long		done;
	long		errors;
	long		bad;
	uint32_t   *lat_us;			/* one per request */
	long		cap;
} client;

static request *requests;
static long n_requests;
static int	n_clients;
static int	port;
static double seconds;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
connect_to(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int			fd = socket(AF_INET, SOCK_STREAM, 0);
	int			one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *) &a, sizeof(a)) != 0)
	{
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/*
 * Reads one reply (headers, then Content-Length bytes); its status, or -1.
 * A reply is small: it fits the buffer.
 */
static int
read_reply(int fd, char *buf, size_t size)
{
	size_t		have = 0;
	char	   *end = NULL;
	long		body = 0;

	for (;;)
	{
		ssize_t		n;

		if (end)
		{
			size_t		head = (size_t) (end + 4 - buf);

			if (have >= head + (size_t) body)
				break;
		}
		if (have == size)
			return -1;
		n = read(fd, buf + have, size - have);
		if (n <= 0)
			return -1;
		have += (size_t) n;
		if (!end && (end = memmem(buf, have, "\r\n\r\n", 4)) != NULL)
		{
			char	   *cl = memmem(buf, (size_t) (end - buf), "\r\nContent-Length:", 17);

			body = cl ? strtol(cl + 17, NULL, 10) : 0;
		}
	}
	if (have < 12 || memcmp(buf, "HTTP/1.1 ", 9) != 0)
		return -1;
	return atoi(buf + 9);
}

static void *
client_main(void *arg)
{
	client	   *c = arg;
	long		per = n_requests / 2 / n_clients;
	unsigned int seed = (unsigned int) (time(NULL) ^ (c->id * 7919));
	char		buf[65536];
	double		end = now() + seconds;
	int			fd = connect_to();

	if (fd < 0 || per == 0)
	{
		c->errors++;
		return NULL;
	}
	while (now() < end)
	{
		long		mac = c->id + (long) n_clients * (rand_r(&seed) % per);
		request    *r = &requests[2 * mac + rand_r(&seed) % 2];
		double		t0 = now();
		size_t		sent = 0;
		int			status;

		while (sent < r->len)
		{
			ssize_t		n = write(fd, r->data + sent, r->len - sent);

			if (n <= 0)
				break;
			sent += (size_t) n;
		}
		status = sent == r->len ? read_reply(fd, buf, sizeof(buf)) : -1;
		if (status < 0)
		{
			c->errors++;
			break;
		}
		if (status != 200)
			c->bad++;
		if (c->done == c->cap)
		{
			long		cap = c->cap ? c->cap * 2 : 65536;
			uint32_t   *p = realloc(c->lat_us, cap * sizeof(uint32_t));

			if (!p)
				break;
			c->lat_us = p;
			c->cap = cap;
		}
		c->lat_us[c->done++] = (uint32_t) ((now() - t0) * 1e6);
	}
	close(fd);
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *) a,
				y = *(const uint32_t *) b;

	return x < y ? -1 : x > y;
}

/* The whole file, split into its requests. */
static int
load(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	char	   *data;
	long		size;
	long		cap = 0;

	if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		return -1;
	data = malloc(size + 1);
	if (!data || fread(data, 1, size, f) != (size_t) size)
		return -1;
	fclose(f);
	data[size] = '\0';
	for (char *p = data; p < data + size;)
	{
		char	   *nl;
		long		len = strtol(p, &nl, 10);

		if (*nl != '\n' || len <= 0 || nl + 1 + len > data + size)
			return -1;
		if (n_requests == cap)
		{
			cap = cap ? cap * 2 : 4096;
			requests = realloc(requests, cap * sizeof(request));
			if (!requests)
				return -1;
		}
		requests[n_requests++] = (request) {nl + 1, (size_t) len};
		p = nl + 1 + len + 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	client	   *clients;
	long		total = 0,
				errors = 0,
				bad = 0,
				k = 0;
	uint32_t   *all;
	double		t0;

	if (argc != 5)
	{
		fprintf(stderr, "usage: driver PORT CONNECTIONS SECONDS REQUESTS\n");
		return 2;
	}
	port = atoi(argv[1]);
	n_clients = atoi(argv[2]);
	seconds = atof(argv[3]);
	if (n_clients < 1 || load(argv[4]) != 0)
	{
		fprintf(stderr, "driver: cannot read the requests in %s\n", argv[4]);
		return 2;
	}
	clients = calloc(n_clients, sizeof(client));
	t0 = now();
	for (int i = 0; i < n_clients; i++)
	{
		clients[i].id = i;
		pthread_create(&clients[i].thread, NULL, client_main, &clients[i]);
	}
	for (int i = 0; i < n_clients; i++)
	{
		pthread_join(clients[i].thread, NULL);
		total += clients[i].done;
		errors += clients[i].errors;
		bad += clients[i].bad;
	}
	all = malloc((total ? total : 1) * sizeof(uint32_t));
	for (int i = 0; i < n_clients; i++)
	{
		memcpy(all + k, clients[i].lat_us, clients[i].done * sizeof(uint32_t));
		k += clients[i].done;
	}
	qsort(all, total, sizeof(uint32_t), cmp_u32);
	printf("RESULT %ld %.0f %u %u %ld %ld\n", total, (now() - t0) * 1e6,
		   total ? all[total / 2] : 0, total ? all[(long) (total * 0.99)] : 0, errors, bad);
	return 0;
}
