/*
 * main.c: options, start-up checks, signals, start and stop.
 *
 * Signals: SIGTERM or SIGINT stop accepting, let the requests in flight
 * finish (up to --shutdown-timeout) and exit 0; a second one exits at once.
 * systemd is told READY=1 and STOPPING=1 (Type=notify).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "admin.h"
#include "config.h"
#include "db.h"
#include "device.h"
#include "http.h"
#include "log.h"
#include "push.h"
#include "webhook.h"
#include "version.h"

static int
check_config(void)
{
	if (config.dsn == NULL)
	{
		fprintf(stderr, "mdm-frontend: --dsn is required (see --help)\n");
		return -1;
	}
	if (log_set_level(config.log_level) != 0)
	{
		fprintf(stderr, "mdm-frontend: --log-level \"%s\" is not error, warning, info or debug\n",
				config.log_level);
		return -1;
	}
	if (config.workers < 1 || config.workers > 1024)
	{
		fprintf(stderr, "mdm-frontend: --workers must be between 1 and 1024\n");
		return -1;
	}
	if (config.connection_buffer < 4096)
	{
		fprintf(stderr, "mdm-frontend: --connection-buffer must be at least 4096 bytes\n");
		return -1;
	}
	if (config.idle_timeout < 1)
	{
		fprintf(stderr, "mdm-frontend: --idle-timeout must be at least 1 second\n");
		return -1;
	}
	if (config.api_key != NULL && config.api_key[0] == '\0')
	{
		fprintf(stderr, "mdm-frontend: --api-key must not be empty\n");
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	sigset_t	sigs;
	int			sig;

	config_parse(argc, argv);
	if (check_config() != 0)
		return 1;

	/* every thread inherits the mask: signals are taken by sigwait below */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	db_init(config.dsn, config.admin_dsn);
	if (device_init() != 0)
		return 1;
	if (config.api_key)
		admin_init();
	if (db_check(config.api_key != NULL) != 0)
		return 1;
	if (push_start() != 0)
		return 1;
	if (webhook_start() != 0)
		return 1;
	if (http_start() != 0)
		return 1;
	log_info("version %s listening on %s%s with %d workers%s%s", MDM_FRONTEND_VERSION,
			 config.listen, config.tls_cert ? " (TLS)" : "", config.workers,
			 config.api_key ? ", admin API on" : "",
			 config.cert_header ? ", client certificates from the header" : "");
	sd_notify(0, "READY=1");
	log_start();

	for (;;)
	{
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP)
		{
			log_info("SIGHUP ignored: restart to change settings");
			continue;
		}
		break;
	}
	log_info("%s: no new connections; finishing the requests in flight (a second one exits now)",
			 sig == SIGTERM ? "SIGTERM" : "SIGINT");
	sd_notify(0, "STOPPING=1");
	/* a second SIGTERM/SIGINT ends the process at once */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	sigdelset(&sigs, SIGHUP);
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	http_stop(config.shutdown_timeout);
	push_stop(config.shutdown_timeout);
	webhook_stop(config.shutdown_timeout);
	log_info("stopped");
	log_stop();
	return 0;
}
