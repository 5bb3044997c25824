/*
 * plist_read.c
 *		Entry point of the server-independent plist reader: format detection,
 *		error reporting, and the small text helpers (UTF-8, dates, base64)
 *		that the binary pre-scan and the XML reader share.
 *
 * See plist_read.h for why this layer does not depend on PostgreSQL.
 */
#include "plist_read.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds from 1970-01-01 to libplist's epoch, 2001-01-01 00:00:00 UTC. */
#define MAC_EPOCH_UNIX 978307200LL
#define USECS_PER_SEC 1000000LL

int
plist_fail(PlistError *err, PlistErrorKind kind, const char *message,
		   const char *detail_fmt,...)
{
	va_list		ap;

	err->kind = kind;
	err->message = message;
	va_start(ap, detail_fmt);
	vsnprintf(err->detail, sizeof(err->detail), detail_fmt, ap);
	va_end(ap);
	return 0;
}

int
plist_check_bytes(const PlistLimits *limits, int64_t total, PlistError *err)
{
	if (total > limits->max_bytes)
		return plist_fail(err, PLIST_ERR_BYTES, "plist too large once expanded",
						  "Its strings, keys and data come to more than %lld bytes once every shared reference is copied (mdm.max_message_bytes).",
						  (long long) limits->max_bytes);
	return 1;
}

PlistFormat
plist_detect_format(const unsigned char *buf, size_t len)
{
	size_t		i = 0;

	if (len >= 6 && memcmp(buf, "bplist", 6) == 0)
		return PLIST_FORMAT_BINARY;
	if (len >= 3 && buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF)
		i = 3;
	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' ||
					   buf[i] == '\n'))
		i++;
	if (i < len && buf[i] == '<')
		return PLIST_FORMAT_XML;
	return PLIST_FORMAT_UNKNOWN;
}

int
plist_read(const unsigned char *buf, size_t len, const PlistLimits *limits,
		   plist_t *out, PlistError *err)
{
	*out = NULL;
	err->kind = PLIST_OK;
	err->message = "";
	err->detail[0] = '\0';

	switch (plist_detect_format(buf, len))
	{
		case PLIST_FORMAT_BINARY:
			if (!plist_bscan(buf, len, limits, err))
				return 0;
			plist_from_bin((const char *) buf, (uint32_t) len, out);
			if (*out == NULL)
				return plist_fail(err, PLIST_ERR_BINARY, "invalid binary plist",
								  "libplist could not read the binary plist.");
			return 1;
		case PLIST_FORMAT_XML:
			return plist_read_xml(buf, len, limits, out, err);
		case PLIST_FORMAT_UNKNOWN:
			break;
	}
	if (len == 0)
		return plist_fail(err, PLIST_ERR_NOT_PLIST, "input is not a property list",
						  "The input is empty.");
	if (len >= 2 && ((buf[0] == 0xFE && buf[1] == 0xFF) ||
					 (buf[0] == 0xFF && buf[1] == 0xFE)))
		return plist_fail(err, PLIST_ERR_UNSUPPORTED,
						  "XML plists in UTF-16 are not supported",
						  "Only UTF-8 XML plists and binary plists are read.");
	return plist_fail(err, PLIST_ERR_NOT_PLIST, "input is not a property list",
					  "It starts with neither \"bplist\" nor an XML tag.");
}

int
plist_utf8_valid(const unsigned char *buf, size_t len, size_t *bad_offset)
{
	size_t		i = 0;

	while (i < len)
	{
		unsigned char c = buf[i];
		size_t		n;
		uint32_t	cp;
		size_t		k;

		if (c == 0)
			goto bad;
		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
		{
			n = 1;
			cp = c & 0x1F;
		}
		else if (c >= 0xE0 && c <= 0xEF)
		{
			n = 2;
			cp = c & 0x0F;
		}
		else if (c >= 0xF0 && c <= 0xF4)
		{
			n = 3;
			cp = c & 0x07;
		}
		else
			goto bad;
		if (len - i <= n)
			goto bad;
		for (k = 1; k <= n; k++)
		{
			if ((buf[i + k] & 0xC0) != 0x80)
				goto bad;
			cp = (cp << 6) | (buf[i + k] & 0x3F);
		}
		/* overlong forms, surrogates, and values past U+10FFFF */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
			(cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			goto bad;
		i += n + 1;
	}
	return 1;

bad:
	if (bad_offset)
		*bad_offset = i;
	return 0;
}

/* Days from 1970-01-01 to a proleptic Gregorian date. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t		era;
	int64_t		yoe;
	int64_t		doy;
	int64_t		doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t		era;
	int64_t		doe;
	int64_t		yoe;
	int64_t		doy;
	int64_t		mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int) (doy - (153 * mp + 2) / 5 + 1);
	*m = (int) (mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int
read_digits(const char *s, size_t len, size_t *pos, int ndigits, int *value)
{
	int			v = 0;
	int			i;

	for (i = 0; i < ndigits; i++)
	{
		if (*pos >= len || s[*pos] < '0' || s[*pos] > '9')
			return 0;
		v = v * 10 + (s[*pos] - '0');
		(*pos)++;
	}
	*value = v;
	return 1;
}

static int
expect_char(const char *s, size_t len, size_t *pos, char c)
{
	if (*pos >= len || s[*pos] != c)
		return 0;
	(*pos)++;
	return 1;
}

/*
 * Parse "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (UTC, as plists write dates) into
 * the (sec, usec) pair libplist stores, relative to 2001-01-01.
 */
int
plist_date_parse(const char *s, size_t len, int32_t *sec, int32_t *usec,
				 PlistError *err)
{
	size_t		pos = 0;
	int			year,
				month,
				day,
				hour,
				minute,
				second;
	int64_t		frac = 0;
	int			frac_digits = 0;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int64_t		total_us;

	if (!read_digits(s, len, &pos, 4, &year) || !expect_char(s, len, &pos, '-') ||
		!read_digits(s, len, &pos, 2, &month) || !expect_char(s, len, &pos, '-') ||
		!read_digits(s, len, &pos, 2, &day) || !expect_char(s, len, &pos, 'T') ||
		!read_digits(s, len, &pos, 2, &hour) || !expect_char(s, len, &pos, ':') ||
		!read_digits(s, len, &pos, 2, &minute) || !expect_char(s, len, &pos, ':') ||
		!read_digits(s, len, &pos, 2, &second))
		goto syntax;
	if (pos < len && s[pos] == '.')
	{
		pos++;
		while (pos < len && s[pos] >= '0' && s[pos] <= '9')
		{
			if (frac_digits < 6)
			{
				frac = frac * 10 + (s[pos] - '0');
				frac_digits++;
			}
			else if (s[pos] != '0')
				goto syntax;	/* finer than a microsecond */
			pos++;
		}
		if (frac_digits == 0)
			goto syntax;
		while (frac_digits < 6)
		{
			frac *= 10;
			frac_digits++;
		}
	}
	if (!expect_char(s, len, &pos, 'Z') || pos != len)
		goto syntax;
	if (month < 1 || month > 12 || day < 1 || day > mdays[month - 1] ||
		hour > 23 || minute > 59 || second > 59 ||
		(month == 2 && day == 29 &&
		 !((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)))
		return plist_fail(err, PLIST_ERR_SYNTAX, "invalid date in plist",
						  "\"%.*s\" is not a valid calendar date and time.",
						  (int) (len > 40 ? 40 : len), s);

	total_us = ((days_from_civil(year, month, day) * 86400 +
				 hour * 3600 + minute * 60 + second) - MAC_EPOCH_UNIX) *
		USECS_PER_SEC + frac;

	/*
	 * libplist hands out (int32 sec truncated toward zero, |usec|), so a
	 * date inside the second before its epoch would lose its sign.
	 */
	if (total_us < (int64_t) INT32_MIN * USECS_PER_SEC ||
		total_us > (int64_t) INT32_MAX * USECS_PER_SEC ||
		(total_us < 0 && total_us > -USECS_PER_SEC))
		return plist_fail(err, PLIST_ERR_DATE_RANGE, "plist date out of range",
						  "Dates from 1932-12-13T20:45:52Z to 2069-01-19T03:14:07Z are supported, except the second before 2001-01-01T00:00:00Z; \"%.*s\" is not.",
						  (int) (len > 40 ? 40 : len), s);
	*sec = (int32_t) (total_us / USECS_PER_SEC);
	*usec = (int32_t) (total_us % USECS_PER_SEC);
	return 1;

syntax:
	return plist_fail(err, PLIST_ERR_SYNTAX, "invalid date in plist",
					  "\"%.*s\" is not of the form YYYY-MM-DDTHH:MM:SSZ.",
					  (int) (len > 40 ? 40 : len), s);
}

/*
 * Format a date read back from libplist (sec truncated toward zero, usec
 * as plist_date_get returns it, i.e. without sign) or from plist_date_parse
 * (usec with the sign of the date).
 */
void
plist_date_format(int32_t sec, int32_t usec, char buf[PLIST_DATE_TEXT_MAX])
{
	int64_t		total_us;
	int64_t		secs;
	int64_t		us;
	int64_t		days;
	int64_t		rem;
	int64_t		year;
	int			month,
				day;

	if (usec < 0)
		usec = -usec;
	total_us = (int64_t) sec * USECS_PER_SEC + (sec < 0 ? -usec : usec);
	secs = total_us / USECS_PER_SEC;
	us = total_us % USECS_PER_SEC;
	if (us < 0)
	{
		us += USECS_PER_SEC;
		secs--;
	}
	secs += MAC_EPOCH_UNIX;
	days = secs / 86400;
	rem = secs % 86400;
	if (rem < 0)
	{
		rem += 86400;
		days--;
	}
	civil_from_days(days, &year, &month, &day);
	if (us == 0)
		snprintf(buf, PLIST_DATE_TEXT_MAX, "%04lld-%02d-%02dT%02d:%02d:%02dZ",
				 (long long) year, month, day, (int) (rem / 3600),
				 (int) (rem / 60 % 60), (int) (rem % 60));
	else
	{
		int			len;

		len = snprintf(buf, PLIST_DATE_TEXT_MAX,
					   "%04lld-%02d-%02dT%02d:%02d:%02d.%06lld",
					   (long long) year, month, day, (int) (rem / 3600),
					   (int) (rem / 60 % 60), (int) (rem % 60), (long long) us);
		while (buf[len - 1] == '0')
			len--;
		buf[len] = 'Z';
		buf[len + 1] = '\0';
	}
}

/*
 * libplist keeps a date as the double sec + usec / 1e6 and
 * plist_get_date_val() truncates the fraction it hands back, so the double
 * of a microsecond that lies just below it comes back one microsecond
 * short: nearly half of the dates with microseconds lost one between the
 * XML text and jsonb.  When the node holds exactly the double that
 * plist_new_date() makes for the next microsecond (away from zero, as the
 * magnitude is truncated), that microsecond is the date.
 */
void
plist_date_get(plist_t node, int32_t *sec, int32_t *usec)
{
	plist_t		next;

	*sec = 0;
	*usec = 0;
	plist_get_date_val(node, sec, usec);
	if (*usec < 0 || *usec >= USECS_PER_SEC - 1)
		return;
	next = plist_new_date(*sec, *sec < 0 ? -(*usec + 1) : *usec + 1);
	if (next == NULL)
		return;
	if (plist_compare_node_value(node, next))
		(*usec)++;
	plist_free(next);
}

static int
base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
plist_base64_decode(const char *s, size_t len, unsigned char **out,
					size_t *outlen, PlistError *err)
{
	unsigned char *buf;
	size_t		n = 0;
	size_t		i;
	uint32_t	acc = 0;
	int			nacc = 0;
	int			npad = 0;

	*out = NULL;
	*outlen = 0;
	buf = malloc(len / 4 * 3 + 3);
	if (buf == NULL)
		return plist_fail(err, PLIST_ERR_NOMEM, "out of memory",
						  "Failed on request of size %zu.", len / 4 * 3 + 3);
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];
		int			v;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=')
		{
			npad++;
			continue;
		}
		v = base64_value(c);
		if (v < 0 || npad > 0)
		{
			free(buf);
			return plist_fail(err, PLIST_ERR_SYNTAX, "invalid base64 data in plist",
							  v < 0 ? "The data element contains the character 0x%02x."
							  : "The data element continues after its padding (0x%02x).",
							  c);
		}
		acc = (acc << 6) | (uint32_t) v;
		if (++nacc == 4)
		{
			buf[n++] = (unsigned char) (acc >> 16);
			buf[n++] = (unsigned char) (acc >> 8);
			buf[n++] = (unsigned char) acc;
			acc = 0;
			nacc = 0;
		}
	}
	/* Allow missing padding, but not a lone sextet or too much padding. */
	if (nacc == 1 || npad > 2 || (npad > 0 && nacc + npad != 4))
	{
		free(buf);
		return plist_fail(err, PLIST_ERR_SYNTAX, "invalid base64 data in plist",
						  "The data element ends with an incomplete group.");
	}
	if (nacc == 2)
		buf[n++] = (unsigned char) (acc >> 4);
	else if (nacc == 3)
	{
		buf[n++] = (unsigned char) (acc >> 10);
		buf[n++] = (unsigned char) (acc >> 2);
	}
	*out = buf;
	*outlen = n;
	return 1;
}
