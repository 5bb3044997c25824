/*
 * fuzz_plist.h
 *		Declarations shared by the files of the plist reader's fuzz target.
 *
 * See fuzz_plist.c for what the target does and which invariants it checks.
 */
#ifndef MDM_FUZZ_PLIST_H
#define MDM_FUZZ_PLIST_H

#include <stddef.h>
#include <stdint.h>

#include "plist_read.h"

/*
 * An invariant of the reader layer.  A violation aborts, so that libFuzzer
 * reports it as a crash and saves the input.
 */
#define FUZZ_CHECK(cond, ...) \
	do { \
		if (!(cond)) \
			fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
	} while (0)

extern void fuzz_fail(const char *file, int line, const char *cond,
					  const char *fmt,...)
			__attribute__((format(printf, 4, 5), noreturn));

/* What a walk over a libplist tree measured. */
typedef struct TreeStats
{
	int			depth;			/* most containers on one path from the root */
	int64_t		nodes;			/* libplist nodes, dictionary keys included */
	int64_t		bytes;			/* bytes of all strings, keys and data */
	int64_t		non_xml_text;	/* strings and keys with a character XML 1.0
								 * cannot represent */
} TreeStats;

/* fuzz_walk.c */
extern void fuzz_walk_tree(plist_t tree, const PlistLimits *limits,
						   TreeStats *stats);

/* fuzz_message.c */
extern void fuzz_check_messages(plist_t tree);

/* fuzz_text.c */
extern void fuzz_check_date_text(const char *s, size_t len);
extern void fuzz_check_date_value(int32_t sec, int32_t usec, const char *text);
extern void fuzz_check_base64(const char *bytes, size_t len);
extern void fuzz_check_base64_text(const char *s, size_t len);

#endif							/* MDM_FUZZ_PLIST_H */
