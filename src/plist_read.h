/*
 * plist_read.h
 *		Reading untrusted property lists into libplist trees, without PostgreSQL.
 *
 * This layer has no dependency on the server so that the fuzz target
 * (test/fuzz) can link it on its own.  It never raises: every function
 * reports failure through a PlistError whose message and detail already
 * follow PostgreSQL's message style; the server glue (plist_jsonb.c) maps
 * the error kind to a SQLSTATE.
 *
 * Binary plists are checked by an iterative pre-scan (plist_bscan.c) that
 * bounds nesting depth and the expanded node count before libplist 2.2 sees
 * the bytes: its binary reader recurses without limit and copies shared
 * references.  XML plists are read by our own strict, iterative reader
 * (plist_xml.c), which builds the libplist tree itself: libplist 2.2's XML
 * reader accepts malformed numbers, dates and trailing content silently.
 */
#ifndef MDM_PLIST_READ_H
#define MDM_PLIST_READ_H

#include <stddef.h>
#include <stdint.h>
#include <plist/plist.h>

/*
 * Bounds applied while reading; all come from settings in the server.
 * max_bytes bounds the expanded size: the bytes of every string, key and
 * data value in the tree libplist builds, each shared reference counted as
 * the copy libplist 2.2 makes of it (strings in UTF-8).
 */
typedef struct PlistLimits
{
	int			max_depth;		/* containers nested inside each other */
	int64_t		max_nodes;		/* nodes after expanding shared references */
	int64_t		max_bytes;		/* string, key and data bytes after expansion */
} PlistLimits;

typedef enum PlistErrorKind
{
	PLIST_OK = 0,
	PLIST_ERR_NOT_PLIST,		/* neither an XML nor a binary plist */
	PLIST_ERR_BINARY,			/* malformed binary plist */
	PLIST_ERR_XML,				/* malformed XML plist */
	PLIST_ERR_SYNTAX,			/* a scalar's text cannot be read */
	PLIST_ERR_ENCODING,			/* invalid UTF-8 / UTF-16, NUL characters */
	PLIST_ERR_DEPTH,			/* deeper than max_depth */
	PLIST_ERR_NODES,			/* more than max_nodes, or too many keys
								 * in one libplist hash bucket */
	PLIST_ERR_BYTES,			/* more than max_bytes once expanded */
	PLIST_ERR_INT_RANGE,		/* integer outside int64 */
	PLIST_ERR_REAL_RANGE,		/* real that is not finite */
	PLIST_ERR_DATE_RANGE,		/* date outside what libplist can hold */
	PLIST_ERR_DUPLICATE_KEY,	/* a dictionary key given twice */
	PLIST_ERR_UNSUPPORTED,		/* UID values, sets, other encodings */
	PLIST_ERR_NOMEM,			/* malloc failed */
	PLIST_ERR_MESSAGE			/* a plist, but not a valid MDM message */
} PlistErrorKind;

/*
 * message is always one of the fixed texts (string literals) passed to
 * plist_fail(), so that the server can translate it; detail is formatted.
 */
typedef struct PlistError
{
	PlistErrorKind kind;
	const char *message;
	char		detail[320];
} PlistError;

/* Which encoding a buffer holds, judged from its first bytes. */
typedef enum PlistFormat
{
	PLIST_FORMAT_UNKNOWN = 0,
	PLIST_FORMAT_BINARY,
	PLIST_FORMAT_XML
} PlistFormat;

extern PlistFormat plist_detect_format(const unsigned char *buf, size_t len);

/*
 * Read a plist of either format.  On success returns 1 and stores a tree in
 * *out that the caller frees with plist_free(); on failure returns 0, sets
 * *out to NULL and fills *err.
 */
extern int	plist_read(const unsigned char *buf, size_t len,
					   const PlistLimits *limits, plist_t *out, PlistError *err);

/* The binary pre-scan alone: 1 when libplist may be given the bytes. */
extern int	plist_bscan(const unsigned char *buf, size_t len,
						const PlistLimits *limits, PlistError *err);

/* The XML reader alone. */
extern int	plist_read_xml(const unsigned char *buf, size_t len,
						   const PlistLimits *limits, plist_t *out,
						   PlistError *err);

/*
 * Fill *err with a fixed primary message and a formatted detail; returns 0
 * so that callers can write "return plist_fail(...)".
 */
extern int	plist_fail(PlistError *err, PlistErrorKind kind, const char *message,
					   const char *detail_fmt,...)
			__attribute__((format(printf, 4, 5)));

/*
 * Marks a fixed message that reaches plist_fail() through a variable, so
 * that it is extracted for translation too (nls.mk).
 */
#define plist_msg(x) (x)

/*
 * The expanded-size check both readers share: 0 (with *err filled) when
 * "total" string, key and data bytes exceed limits->max_bytes.
 */
extern int	plist_check_bytes(const PlistLimits *limits, int64_t total,
							  PlistError *err);

/* UTF-8 validation: 1 if buf[0..len) is valid UTF-8 without NUL bytes. */
extern int	plist_utf8_valid(const unsigned char *buf, size_t len,
							 size_t *bad_offset);

/*
 * XML 1.0 characters (plist_xml.c), for valid UTF-8 without NUL: 1 if every
 * character is one; else 0, with the offset and code point of the first
 * that is not (C0 controls but tab, LF and CR; U+FFFE, U+FFFF).  The
 * reader checks its input with it, the writer (plist_write.c) its strings.
 */
extern int	plist_xml_chars_valid(const unsigned char *buf, size_t len,
								  size_t *bad_offset, uint32_t *bad_cp);

/*
 * Dates.  libplist 2.2 keeps a date as seconds since 2001-01-01 00:00:00 UTC
 * and hands it out as int32 seconds plus microseconds, so that is the range
 * (1932-12-13T20:45:52Z to 2069-01-19T03:14:07Z, whole seconds) this layer
 * accepts in both readers and in plist_date_parse.
 */
#define PLIST_DATE_TEXT_MAX 40
extern int	plist_date_parse(const char *s, size_t len, int32_t *sec,
							 int32_t *usec, PlistError *err);
extern void plist_date_format(int32_t sec, int32_t usec,
							  char buf[PLIST_DATE_TEXT_MAX]);

/*
 * plist_get_date_val(), but exact for every date plist_new_date() makes:
 * libplist truncates the microseconds it hands back.  Read dates with this.
 */
extern void plist_date_get(plist_t node, int32_t *sec, int32_t *usec);

/* Strict base64 (whitespace ignored); *out is malloc'ed. */
extern int	plist_base64_decode(const char *s, size_t len, unsigned char **out,
								size_t *outlen, PlistError *err);

#endif							/* MDM_PLIST_READ_H */
