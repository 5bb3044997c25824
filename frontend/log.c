/* log.c: logging, one line per event on stderr (journald adds the time). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static enum log_level current_level = LOG_LEVEL_INFO;
static const char *const level_names[] = {"error", "warning", "info", "debug"};

int
log_set_level(const char *name)
{
	for (int i = 0; i < 4; i++)
	{
		if (strcasecmp(name, level_names[i]) == 0)
		{
			current_level = (enum log_level) i;
			return 0;
		}
	}
	return -1;
}

int
log_enabled(enum log_level level)
{
	return level <= current_level;
}

/*
 * The line is formatted first and written with one fputs, so that lines of
 * concurrent workers never interleave (stdio locks the stream per call).
 */
void
log_line(enum log_level level, const char *fmt,...)
{
	char		buf[1024];
	int			n;
	va_list		ap;

	if (!log_enabled(level))
		return;
	n = snprintf(buf, sizeof(buf), "mdm-frontend %s: ", level_names[level]);
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	n = strlen(buf);
	buf[n] = '\n';
	buf[n + 1] = '\0';
	fputs(buf, stderr);
}
