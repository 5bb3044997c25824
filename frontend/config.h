/* config.h: the command line and its MDM_FRONTEND_<NAME> environment variables. */
#ifndef FE_CONFIG_H
#define FE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct config
{
	const char *listen;			/* HOST:PORT */
	const char *dsn;			/* libpq conninfo, role with mdm_frontend */
	const char *admin_dsn;		/* role with mdm_admin; defaults to dsn */
	const char *api_key;		/* no admin API without it */
	const char *cert_header;	/* header with the client certificate */
	const char *tls_cert;		/* PEM files: TLS served by us */
	const char *tls_key;
	const char *enroll_profile; /* served at GET /mdm/enroll */
	const char *log_level;
	int			workers;		/* threads, each with its database connections */
	int			max_connections;
	int			connection_buffer;	/* bytes per connection for request line and headers */
	int			idle_timeout;	/* seconds */
	int			shutdown_timeout;	/* seconds SIGTERM waits for requests */

	/* the push sender's settings (frontend/push.c) */
	const char *apns_url;
	const char *apns_ca;
	int			apns_timeout;	/* seconds */
	int			push_workers;
	int			max_streams;
	bool		no_push;
};

extern struct config config;

/*
 * Parses argv, then fills what was not given from MDM_FRONTEND_<NAME>, then
 * the defaults.  Prints help/version and exits for --help/--version; prints
 * one line and exits 2 for a bad option.
 */
void		config_parse(int argc, char **argv);

/* A whole file, malloc'ed and NUL-terminated (not counted in len); NULL with errno. */
char	   *config_read_file(const char *path, size_t *len);

#endif
