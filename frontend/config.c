/* config.c: options from the command line, the environment, and defaults. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "version.h"

struct config config;

enum option_kind
{
	OPT_STRING,
	OPT_INT,
	OPT_BOOL
};

struct option_def
{
	const char *name;			/* long option; env MDM_FRONTEND_<NAME> */
	enum option_kind kind;
	void	   *target;
	const char *def;			/* default, or NULL */
	const char *arg;			/* argument name in --help */
	const char *help;
};

/*
 * Every option, once.  docs/frontend.md lists them with the same defaults.
 * OPT_BOOL options take no argument; their environment variable is true
 * when set to 1, true, yes or on.
 */
static const struct option_def options[] = {
	{"listen", OPT_STRING, &config.listen, "127.0.0.1:9000", "HOST:PORT",
	"address to listen on (IPv4, [IPv6] or a host name)"},
	{"dsn", OPT_STRING, &config.dsn, NULL, "CONNINFO",
	"libpq connection string of a role with mdm_frontend (required)"},
	{"admin-dsn", OPT_STRING, &config.admin_dsn, NULL, "CONNINFO",
	"connection string for the admin API, a role with mdm_admin (default: --dsn)"},
	{"api-key", OPT_STRING, &config.api_key, NULL, "KEY",
	"password of user \"nanomdm\" for the admin API; no admin API without it"},
	{"cert-header", OPT_STRING, &config.cert_header, NULL, "NAME",
	"read the client certificate (URL-escaped PEM) from this header, set by a proxy"},
	{"tls-cert", OPT_STRING, &config.tls_cert, NULL, "FILE",
	"serve TLS with this PEM certificate (chain)"},
	{"tls-key", OPT_STRING, &config.tls_key, NULL, "FILE",
	"the PEM private key of --tls-cert"},
	{"enroll-profile", OPT_STRING, &config.enroll_profile, NULL, "FILE",
	"enrollment profile served at GET /mdm/enroll"},
	{"workers", OPT_INT, &config.workers, "4", "N",
	"worker threads, each with its own database connection"},
	{"max-connections", OPT_INT, &config.max_connections, "16000", "N",
	"open client connections at most (lowered to the open files limit)"},
	{"connection-buffer", OPT_INT, &config.connection_buffer, "16384", "BYTES",
	"memory per connection for the request line and headers (the largest headers)"},
	{"idle-timeout", OPT_INT, &config.idle_timeout, "120", "SECONDS",
	"close a client connection idle (or stalled) this long"},
	{"shutdown-timeout", OPT_INT, &config.shutdown_timeout, "30", "SECONDS",
	"how long SIGTERM waits for requests in flight"},
	{"log-level", OPT_STRING, &config.log_level, "info", "LEVEL",
	"error, warning, info (one line per request) or debug"},
	{"apns-url", OPT_STRING, &config.apns_url, "https://api.push.apple.com", "URL",
	"APNs gateway the pushes go to (https://)"},
	{"apns-ca", OPT_STRING, &config.apns_ca, NULL, "FILE",
	"PEM CA bundle for the gateway's certificate (a test or private gateway)"},
	{"apns-timeout", OPT_INT, &config.apns_timeout, "10", "SECONDS",
	"a push unanswered this long is reported as 503 \"transport: ...\""},
	{"push-workers", OPT_INT, &config.push_workers, "1", "N",
	"push sender threads, each with its own database and APNs connections"},
	{"max-streams", OPT_INT, &config.max_streams, "1000", "N",
	"pushes in flight per push worker: HTTP/2 streams on one APNs connection"},
	{"no-push", OPT_BOOL, &config.no_push, NULL, NULL,
	"send no pushes (another front end or host does)"},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static void
usage(FILE *out)
{
	fprintf(out,
			"mdm-frontend: the HTTP front end of mdm_user (Apple MDM in PostgreSQL)\n\n"
			"Usage: mdm-frontend --dsn CONNINFO [OPTION]...\n\n"
			"Each option can also be given as the environment variable\n"
			"MDM_FRONTEND_<NAME> (e.g. MDM_FRONTEND_API_KEY); the command line wins.\n\n");
	for (size_t i = 0; i < N_OPTIONS; i++)
	{
		char		left[64];

		snprintf(left, sizeof(left), "--%s%s%s", options[i].name,
				 options[i].kind == OPT_BOOL ? "" : " ",
				 options[i].kind == OPT_BOOL ? "" : options[i].arg);
		fprintf(out, "  %-28s %s", left, options[i].help);
		if (options[i].def)
			fprintf(out, " (default %s)", options[i].def);
		fputc('\n', out);
	}
	fprintf(out, "  %-28s %s\n  %-28s %s\n", "--help", "show this help and exit",
			"--version", "show the version and exit");
}

static void
env_name(const char *name, char *buf, size_t size)
{
	size_t		n = snprintf(buf, size, "MDM_FRONTEND_");

	for (const char *p = name; *p && n + 1 < size; p++)
		buf[n++] = (*p == '-') ? '_' : (char) (*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
	buf[n] = '\0';
}

static void
set_value(const struct option_def *o, const char *value, const char *source)
{
	switch (o->kind)
	{
		case OPT_STRING:
			*(const char **) o->target = value;
			break;
		case OPT_INT:
			{
				char	   *end;
				long		v;

				errno = 0;
				v = strtol(value, &end, 10);
				if (errno || end == value || *end || v < 0 || v > INT_MAX)
				{
					fprintf(stderr, "mdm-frontend: %s: \"%s\" is not a number\n", source, value);
					exit(2);
				}
				*(int *) o->target = (int) v;
				break;
			}
		case OPT_BOOL:
			*(bool *) o->target = strcmp(value, "1") == 0 || strcasecmp(value, "true") == 0 ||
				strcasecmp(value, "yes") == 0 || strcasecmp(value, "on") == 0;
			break;
	}
}

void
config_parse(int argc, char **argv)
{
	struct option long_opts[N_OPTIONS + 3];
	bool		given[N_OPTIONS] = {false};
	int			c,
				idx;

	for (size_t i = 0; i < N_OPTIONS; i++)
	{
		long_opts[i].name = options[i].name;
		long_opts[i].has_arg = options[i].kind == OPT_BOOL ? no_argument : required_argument;
		long_opts[i].flag = NULL;
		long_opts[i].val = 1000 + (int) i;
	}
	long_opts[N_OPTIONS] = (struct option) {"help", no_argument, NULL, 'h'};
	long_opts[N_OPTIONS + 1] = (struct option) {"version", no_argument, NULL, 'V'};
	long_opts[N_OPTIONS + 2] = (struct option) {NULL, 0, NULL, 0};

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", long_opts, &idx)) != -1)
	{
		if (c == 'h')
		{
			usage(stdout);
			exit(0);
		}
		if (c == 'V')
		{
			printf("mdm-frontend %s\n", MDM_FRONTEND_VERSION);
			exit(0);
		}
		if (c < 1000)
		{
			fprintf(stderr, "mdm-frontend: unknown or incomplete option \"%s\" (see --help)\n",
					argv[optind - 1]);
			exit(2);
		}
		{
			char		source[80];
			const struct option_def *o = &options[c - 1000];

			snprintf(source, sizeof(source), "--%s", o->name);
			set_value(o, o->kind == OPT_BOOL ? "1" : optarg, source);
			given[c - 1000] = true;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "mdm-frontend: unexpected argument \"%s\" (see --help)\n", argv[optind]);
		exit(2);
	}
	for (size_t i = 0; i < N_OPTIONS; i++)
	{
		char		name[80];
		const char *value;

		if (given[i])
			continue;
		env_name(options[i].name, name, sizeof(name));
		value = getenv(name);
		if (value == NULL)
			value = options[i].def;
		if (value != NULL)
			set_value(&options[i], value, name);
	}
}

/* A whole file (TLS files, the enrollment profile), NUL-terminated; malloc'ed. */
char *
config_read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf = NULL;
	size_t		cap = 0,
				n = 0;

	if (f == NULL)
		return NULL;
	for (;;)
	{
		size_t		got;

		if (n + 4096 + 1 > cap)
		{
			char	   *p = realloc(buf, cap = cap ? cap * 2 : 65536);

			if (p == NULL)
			{
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = p;
		}
		got = fread(buf + n, 1, cap - n - 1, f);

		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}


