/*
 * fuzz_text.c
 *		Checks of the reader layer's text helpers: plist_date_parse,
 *		plist_date_format and plist_base64_decode.
 *
 * The server writes dates and data back into XML plists (plist_write.c)
 * with the same helpers, so besides "no crash" they must round-trip: a date
 * the readers hand out formats to text that plist_date_parse accepts and
 * that formats back to itself, and base64 decoding inverts encoding.
 */
#include "fuzz_plist.h"

#include <stdlib.h>
#include <string.h>

static const char b64_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding; the result is malloc'ed and NUL-terminated. */
static char *
b64_encode(const unsigned char *p, size_t len, size_t *outlen)
{
	char	   *out = malloc((len + 2) / 3 * 4 + 1);
	size_t		n = 0;
	size_t		i;

	FUZZ_CHECK(out != NULL, "out of memory encoding %zu bytes", len);
	for (i = 0; i + 2 < len; i += 3)
	{
		uint32_t	v = ((uint32_t) p[i] << 16) | ((uint32_t) p[i + 1] << 8) | p[i + 2];

		out[n++] = b64_alphabet[v >> 18];
		out[n++] = b64_alphabet[(v >> 12) & 0x3F];
		out[n++] = b64_alphabet[(v >> 6) & 0x3F];
		out[n++] = b64_alphabet[v & 0x3F];
	}
	if (len - i == 1)
	{
		uint32_t	v = (uint32_t) p[i] << 16;

		out[n++] = b64_alphabet[v >> 18];
		out[n++] = b64_alphabet[(v >> 12) & 0x3F];
		out[n++] = '=';
		out[n++] = '=';
	}
	else if (len - i == 2)
	{
		uint32_t	v = ((uint32_t) p[i] << 16) | ((uint32_t) p[i + 1] << 8);

		out[n++] = b64_alphabet[v >> 18];
		out[n++] = b64_alphabet[(v >> 12) & 0x3F];
		out[n++] = b64_alphabet[(v >> 6) & 0x3F];
		out[n++] = '=';
	}
	out[n] = '\0';
	*outlen = n;
	return out;
}

static void
check_failure(const PlistError *err, const char *what)
{
	FUZZ_CHECK(err->kind != PLIST_OK, "%s failed with kind PLIST_OK", what);
	FUZZ_CHECK(err->message[0] != '\0', "%s failed without a message", what);
}

/* Encoding then decoding gives the bytes back. */
void
fuzz_check_base64(const char *bytes, size_t len)
{
	size_t		enclen;
	char	   *enc = b64_encode((const unsigned char *) bytes, len, &enclen);
	unsigned char *dec = NULL;
	size_t		declen = 0;
	PlistError	err;

	memset(&err, 0, sizeof(err));
	FUZZ_CHECK(plist_base64_decode(enc, enclen, &dec, &declen, &err),
			   "base64 of %zu bytes is refused: %s", len, err.detail);
	FUZZ_CHECK(dec != NULL && declen == len && (len == 0 || memcmp(dec, bytes, len) == 0),
			   "base64 of %zu bytes decodes to %zu other bytes", len, declen);
	free(dec);
	free(enc);
}

/* Decode arbitrary text; what is accepted must decode the same once re-encoded. */
void
fuzz_check_base64_text(const char *s, size_t len)
{
	unsigned char *dec = (unsigned char *) "not set";
	size_t		declen = SIZE_MAX;
	PlistError	err;

	memset(&err, 0, sizeof(err));
	if (!plist_base64_decode(s, len, &dec, &declen, &err))
	{
		check_failure(&err, "plist_base64_decode");
		FUZZ_CHECK(dec == NULL && declen == 0, "a failed decode returned data");
		return;
	}
	FUZZ_CHECK(dec != NULL, "a successful decode returned no buffer");
	FUZZ_CHECK(declen <= len / 4 * 3 + 2,
			   "%zu characters decode to %zu bytes", len, declen);
	fuzz_check_base64((const char *) dec, declen);
	free(dec);
}

/*
 * A date the server hands out as text (sec and usec as plist_date_get
 * returns them, text from plist_date_format) can be written back: it parses,
 * and formats to the same text.
 */
void
fuzz_check_date_value(int32_t sec, int32_t usec, const char *text)
{
	int32_t		sec2 = 0;
	int32_t		usec2 = 0;
	char		text2[PLIST_DATE_TEXT_MAX];
	PlistError	err;

	memset(&err, 0, sizeof(err));
	FUZZ_CHECK(plist_date_parse(text, strlen(text), &sec2, &usec2, &err),
			   "date (%d s, %d us) formats as \"%s\", which does not parse back: %s",
			   sec, usec, text, err.detail);
	plist_date_format(sec2, usec2, text2);
	FUZZ_CHECK(strcmp(text, text2) == 0,
			   "date \"%s\" parses to (%d s, %d us), which formats as \"%s\"",
			   text, sec2, usec2, text2);
}

/*
 * A date node made from what plist_date_parse returned, as the XML reader
 * makes it, reads back as the same date.
 */
static void
check_date_node(int32_t sec, int32_t usec, const char *text)
{
	plist_t		node = plist_new_date(sec, usec);
	int32_t		sec2 = 0;
	int32_t		usec2 = -1;
	char		text2[PLIST_DATE_TEXT_MAX];

	FUZZ_CHECK(node != NULL, "plist_new_date returned no node");
	plist_date_get(node, &sec2, &usec2);
	plist_free(node);
	plist_date_format(sec2, usec2, text2);
	FUZZ_CHECK(strcmp(text, text2) == 0,
			   "date \"%s\" made into a libplist node reads back as \"%s\"",
			   text, text2);
}

/* Parse arbitrary text as a date; what is accepted round-trips. */
void
fuzz_check_date_text(const char *s, size_t len)
{
	int32_t		sec = 0;
	int32_t		usec = 0;
	char		text[PLIST_DATE_TEXT_MAX];
	PlistError	err;

	memset(&err, 0, sizeof(err));
	if (!plist_date_parse(s, len, &sec, &usec, &err))
	{
		check_failure(&err, "plist_date_parse");
		FUZZ_CHECK(err.kind == PLIST_ERR_SYNTAX || err.kind == PLIST_ERR_DATE_RANGE,
				   "plist_date_parse failed with kind %d", (int) err.kind);
		return;
	}
	FUZZ_CHECK(usec > -1000000 && usec < 1000000 &&
			   (usec == 0 || (usec < 0) == (sec < 0)),
			   "date parses to (%d s, %d us)", sec, usec);
	plist_date_format(sec, usec, text);
	fuzz_check_date_value(sec, usec, text);
	check_date_node(sec, usec, text);
}
