/*
 * log.c: logging, one line per event on stderr (journald adds the time).
 *
 * A line is formatted whole first, so that lines of concurrent threads never
 * interleave.  Once log_start() has run, info and debug lines (one per
 * request) are gathered in a buffer that a thread of its own writes out
 * every 100 ms or when 32 kB are waiting: one system call for many
 * requests rather than one each.  Errors and warnings are written at once,
 * after what is waiting, so the order of lines is kept.  log_stop() writes
 * what is left.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_BUFFER 32768
#define FLUSH_MS 100

static enum log_level current_level = LOG_LEVEL_INFO;
static const char *const level_names[] = {"error", "warning", "info", "debug"};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_t flusher;
static bool buffering;
static bool stopping;
static char buffer[LOG_BUFFER];
static size_t buffered;

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

/* write(2) of all of it; a log that cannot be written is given up. */
static void
write_all(const char *p, size_t n)
{
	while (n > 0)
	{
		ssize_t		w = write(STDERR_FILENO, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t) w;
	}
}

/* With the lock held. */
static void
flush_locked(void)
{
	write_all(buffer, buffered);
	buffered = 0;
}

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
	buf[n++] = '\n';
	pthread_mutex_lock(&lock);
	if (!buffering || level <= LOG_LEVEL_WARNING)
	{
		flush_locked();
		write_all(buf, n);
	}
	else
	{
		if (buffered + n > sizeof(buffer))
			flush_locked();
		memcpy(buffer + buffered, buf, n);
		buffered += n;
	}
	pthread_mutex_unlock(&lock);
}

static void *
flusher_main(void *arg)
{
	pthread_mutex_lock(&lock);
	while (!stopping)
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += FLUSH_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L)
		{
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&wake, &lock, &ts);
		flush_locked();
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

void
log_start(void)
{
	if (pthread_create(&flusher, NULL, flusher_main, NULL) == 0)
		buffering = true;
}

void
log_stop(void)
{
	if (!buffering)
		return;
	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(flusher, NULL);
	pthread_mutex_lock(&lock);
	buffering = false;
	flush_locked();
	pthread_mutex_unlock(&lock);
}
