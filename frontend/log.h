/*
 * log.h: one line per event on stderr, with a level.  Info and debug lines
 * are written in batches (every 100 ms) between log_start() and log_stop().
 */
#ifndef FE_LOG_H
#define FE_LOG_H

enum log_level
{
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};

/* Returns 0, or -1 for a name that is not a level. */
int			log_set_level(const char *name);
int			log_enabled(enum log_level level);
void		log_line(enum log_level level, const char *fmt,...)
			__attribute__((format(printf, 2, 3)));
void		log_start(void);
void		log_stop(void);

#define log_error(...) log_line(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_line(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_line(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_line(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
