/*
 * plist_xml.c
 *		Strict, iterative reader for XML property lists; builds a libplist tree.
 *
 * libplist 2.2's own XML reader is lenient in ways that lose or invent data:
 * integers go through strtoull(..., 0) (so "010" is octal and "12abc" is
 * 12), reals through atof, unparsable dates become 1970, duplicate keys
 * silently replace each other and anything after the root element is
 * ignored; freeing or printing a deeply nested result recurses without a
 * limit.  This reader accepts the subset of XML 1.0 that plists use and
 * refuses everything else with a precise error:
 *
 *   - the input must be UTF-8 (an optional BOM is skipped) made of XML 1.0
 *     characters: no NUL, no other C0 control but tab, LF and CR, no
 *     U+FFFE or U+FFFF, neither raw nor as character references;
 *   - an optional XML declaration (encoding UTF-8), processing
 *     instructions, comments and a DOCTYPE without an internal subset (so
 *     no entity declarations: entity bombs are refused before expansion);
 *   - an optional <plist> wrapper around exactly one value;
 *   - dict, array, key, string, integer, real, true, false, date, data;
 *   - the five predefined entities and numeric character references;
 *   - nesting up to max_depth and at most max_nodes nodes in all;
 *   - at most max_bytes of strings, keys and data in all (XML cannot share
 *     values, so this holds for any input no longer than max_bytes: the
 *     binary pre-scan applies the same bound, where it matters);
 *   - reals that neither overflow nor underflow a double;
 *   - dictionaries whose keys do not pile up in one bucket of libplist's
 *     hash table (see note_key_bucket).
 *
 * The reader keeps an explicit stack of open containers and never recurses.
 * Every container is attached to its parent when it opens, so on any error
 * freeing the root frees everything built so far.
 */
#include "plist_read.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Frame
{
	plist_t		node;			/* the open dict or array */
	int			is_dict;
	char	   *pending_key;	/* malloc'ed; key read, value not yet */
	int64_t		nkeys;			/* keys read so far */
	uint32_t   *buckets;		/* malloc'ed; keys per libplist hash bucket */
} Frame;

/*
 * libplist 2.2 gives a dictionary a hash table once it has more than 250
 * entries (plist_dict_set_item: more than 500 children), with 4096 buckets
 * and unbounded chains; see note_key_bucket.
 */
#define LIBPLIST_HASH_AFTER 250
#define LIBPLIST_HASH_BUCKETS 4096
#define BUCKET_SLACK 64

typedef struct XmlReader
{
	const char *p;				/* cursor */
	const char *start;
	const char *end;
	const PlistLimits *limits;
	PlistError *err;
	int64_t		nodes;
	int64_t		bytes;			/* string, key and data bytes so far */
	Frame	   *stack;
	int			sp;
	plist_t		root;
	char	   *text;			/* scratch buffer for element text */
	size_t		text_len;
	size_t		text_cap;
} XmlReader;

/* The element names a plist may use. */
typedef enum ElemKind
{
	EL_UNKNOWN = 0,
	EL_PLIST,
	EL_DICT,
	EL_ARRAY,
	EL_KEY,
	EL_STRING,
	EL_INTEGER,
	EL_REAL,
	EL_TRUE,
	EL_FALSE,
	EL_DATE,
	EL_DATA
} ElemKind;

static const struct
{
	const char *name;
	ElemKind	kind;
}			elem_names[] = {
	{"plist", EL_PLIST}, {"dict", EL_DICT}, {"array", EL_ARRAY},
	{"key", EL_KEY}, {"string", EL_STRING}, {"integer", EL_INTEGER},
	{"real", EL_REAL}, {"true", EL_TRUE}, {"false", EL_FALSE},
	{"date", EL_DATE}, {"data", EL_DATA}
};

typedef struct Tag
{
	const char *name;
	size_t		name_len;
	ElemKind	kind;
	int			is_empty;		/* <x/> */
} Tag;

static long
offset_of(XmlReader *r)
{
	return (long) (r->p - r->start);
}

static int
fail_xml(XmlReader *r, const char *message, const char *what)
{
	return plist_fail(r->err, PLIST_ERR_XML, message,
					  "%s at byte %ld.", what, offset_of(r));
}

static int
at(XmlReader *r, const char *s)
{
	size_t		n = strlen(s);

	return (size_t) (r->end - r->p) >= n && memcmp(r->p, s, n) == 0;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void
skip_space(XmlReader *r)
{
	while (r->p < r->end && is_space(*r->p))
		r->p++;
}

/* Move past the next occurrence of "term"; 0 if there is none. */
static int
skip_past(XmlReader *r, const char *term)
{
	size_t		n = strlen(term);

	while ((size_t) (r->end - r->p) >= n)
	{
		if (memcmp(r->p, term, n) == 0)
		{
			r->p += n;
			return 1;
		}
		r->p++;
	}
	r->p = r->end;
	return 0;
}

static int
is_name_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':';
}

static int
is_name_char(char c)
{
	return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static int
read_name(XmlReader *r, const char **name, size_t *len)
{
	const char *s = r->p;

	if (r->p >= r->end || !is_name_start(*r->p))
		return fail_xml(r, "invalid XML plist", "Expected a name");
	while (r->p < r->end && is_name_char(*r->p))
		r->p++;
	*name = s;
	*len = (size_t) (r->p - s);
	return 1;
}

/* Read one attribute value in quotes; the value and its length are returned. */
static int
read_quoted(XmlReader *r, const char **val, size_t *len)
{
	char		q;
	const char *s;

	if (r->p >= r->end || (*r->p != '"' && *r->p != '\''))
		return fail_xml(r, "invalid XML plist", "Expected a quoted value");
	q = *r->p++;
	s = r->p;
	while (r->p < r->end && *r->p != q)
	{
		if (*r->p == '<')
			return fail_xml(r, "invalid XML plist", "Found \"<\" inside a quoted value");
		r->p++;
	}
	if (r->p >= r->end)
		return fail_xml(r, "invalid XML plist", "A quoted value is not closed");
	*val = s;
	*len = (size_t) (r->p - s);
	r->p++;
	return 1;
}

static int
ascii_caseeq(const char *a, size_t alen, const char *b)
{
	size_t		i;

	if (alen != strlen(b))
		return 0;
	for (i = 0; i < alen; i++)
	{
		char		c = a[i];

		if (c >= 'A' && c <= 'Z')
			c = (char) (c - 'A' + 'a');
		if (c != b[i])
			return 0;
	}
	return 1;
}

/* The XML declaration: refuse encodings other than UTF-8. */
static int
read_xml_declaration(XmlReader *r)
{
	r->p += 5;
	for (;;)
	{
		const char *name;
		size_t		name_len;
		const char *val;
		size_t		val_len;

		skip_space(r);
		if (at(r, "?>"))
		{
			r->p += 2;
			return 1;
		}
		if (!read_name(r, &name, &name_len))
			return 0;
		skip_space(r);
		if (r->p >= r->end || *r->p != '=')
			return fail_xml(r, "invalid XML plist", "Expected \"=\" in the XML declaration");
		r->p++;
		skip_space(r);
		if (!read_quoted(r, &val, &val_len))
			return 0;
		if (name_len == 8 && memcmp(name, "encoding", 8) == 0 &&
			!ascii_caseeq(val, val_len, "utf-8") && !ascii_caseeq(val, val_len, "utf8"))
			return plist_fail(r->err, PLIST_ERR_UNSUPPORTED,
							  "unsupported XML plist encoding",
							  "The XML declaration names encoding \"%.*s\"; only UTF-8 is read.",
							  (int) (val_len > 40 ? 40 : val_len), val);
	}
}

/* "<!DOCTYPE ...>" without an internal subset. */
static int
read_doctype(XmlReader *r)
{
	r->p += 9;
	while (r->p < r->end && *r->p != '>')
	{
		if (*r->p == '"' || *r->p == '\'')
		{
			char		q = *r->p++;

			while (r->p < r->end && *r->p != q)
				r->p++;
			if (r->p >= r->end)
				break;
		}
		else if (*r->p == '[')
			return plist_fail(r->err, PLIST_ERR_UNSUPPORTED,
							  "XML document type declarations with an internal subset are not supported",
							  "The DOCTYPE at byte %ld declares its own markup, such as entities, which plists never use.",
							  offset_of(r));
		r->p++;
	}
	if (r->p >= r->end)
		return fail_xml(r, "invalid XML plist", "The DOCTYPE is not closed");
	r->p++;
	return 1;
}

/*
 * Skip whitespace, comments and processing instructions (and, in the
 * prolog, the XML declaration and a DOCTYPE).
 */
static int
skip_misc(XmlReader *r, int in_prolog)
{
	for (;;)
	{
		skip_space(r);
		if (at(r, "<!--"))
		{
			r->p += 4;
			if (!skip_past(r, "-->"))
				return fail_xml(r, "invalid XML plist", "A comment is not closed");
		}
		else if (in_prolog && at(r, "<?xml") && r->p + 5 < r->end && is_space(r->p[5]))
		{
			if (!read_xml_declaration(r))
				return 0;
		}
		else if (at(r, "<?"))
		{
			r->p += 2;
			if (!skip_past(r, "?>"))
				return fail_xml(r, "invalid XML plist", "A processing instruction is not closed");
		}
		else if (in_prolog && at(r, "<!DOCTYPE"))
		{
			if (!read_doctype(r))
				return 0;
		}
		else
			return 1;
	}
}

static ElemKind
elem_kind(const char *name, size_t len)
{
	size_t		i;

	for (i = 0; i < sizeof(elem_names) / sizeof(elem_names[0]); i++)
		if (strlen(elem_names[i].name) == len && memcmp(elem_names[i].name, name, len) == 0)
			return elem_names[i].kind;
	return EL_UNKNOWN;
}

/* "<name attr='v' ...>" or "<name .../>"; the cursor is at "<". */
static int
read_start_tag(XmlReader *r, Tag *tag)
{
	if (r->p >= r->end || *r->p != '<')
		return fail_xml(r, "invalid XML plist", "Expected an element");
	r->p++;
	if (!read_name(r, &tag->name, &tag->name_len))
		return 0;
	tag->kind = elem_kind(tag->name, tag->name_len);
	tag->is_empty = 0;
	for (;;)
	{
		const char *aname;
		size_t		alen;
		const char *val;
		size_t		vlen;
		const char *before = r->p;

		skip_space(r);
		if (at(r, "/>"))
		{
			r->p += 2;
			tag->is_empty = 1;
			break;
		}
		if (at(r, ">"))
		{
			r->p++;
			break;
		}
		if (r->p == before)
			return fail_xml(r, "invalid XML plist", "Expected whitespace, \">\" or \"/>\" in a tag");
		if (!read_name(r, &aname, &alen))
			return 0;
		skip_space(r);
		if (r->p >= r->end || *r->p != '=')
			return fail_xml(r, "invalid XML plist", "Expected \"=\" after an attribute name");
		r->p++;
		skip_space(r);
		if (!read_quoted(r, &val, &vlen))
			return 0;
	}
	if (tag->kind == EL_UNKNOWN)
	{
		r->p = tag->name - 1;
		return plist_fail(r->err, PLIST_ERR_XML, "invalid XML plist",
						  "Unrecognized element \"%.*s\" at byte %ld.",
						  (int) (tag->name_len > 40 ? 40 : tag->name_len),
						  tag->name, offset_of(r));
	}
	return 1;
}

/* "</name>" for the given element name; the cursor is at "</". */
static int
read_end_tag(XmlReader *r, const char *expected)
{
	const char *name;
	size_t		len;

	r->p += 2;
	if (!read_name(r, &name, &len))
		return 0;
	if (len != strlen(expected) || memcmp(name, expected, len) != 0)
	{
		r->p = name - 2;
		return plist_fail(r->err, PLIST_ERR_XML, "invalid XML plist",
						  "Found \"</%.*s>\" where \"</%s>\" was expected, at byte %ld.",
						  (int) (len > 40 ? 40 : len), name, expected, offset_of(r));
	}
	skip_space(r);
	if (r->p >= r->end || *r->p != '>')
		return fail_xml(r, "invalid XML plist", "An end tag is not closed");
	r->p++;
	return 1;
}

static int
text_append(XmlReader *r, const char *s, size_t n)
{
	if (r->text_len + n + 1 > r->text_cap)
	{
		size_t		cap = r->text_cap ? r->text_cap : 256;
		char	   *nt;

		while (cap < r->text_len + n + 1)
			cap *= 2;
		nt = realloc(r->text, cap);
		if (nt == NULL)
			return plist_fail(r->err, PLIST_ERR_NOMEM, "out of memory",
							  "Failed on request of size %zu.", cap);
		r->text = nt;
		r->text_cap = cap;
	}
	memcpy(r->text + r->text_len, s, n);
	r->text_len += n;
	r->text[r->text_len] = '\0';
	return 1;
}

static int
append_code_point(XmlReader *r, uint32_t cp)
{
	char		b[4];
	size_t		n;

	if (cp < 0x80)
	{
		b[0] = (char) cp;
		n = 1;
	}
	else if (cp < 0x800)
	{
		b[0] = (char) (0xC0 | (cp >> 6));
		b[1] = (char) (0x80 | (cp & 0x3F));
		n = 2;
	}
	else if (cp < 0x10000)
	{
		b[0] = (char) (0xE0 | (cp >> 12));
		b[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		b[2] = (char) (0x80 | (cp & 0x3F));
		n = 3;
	}
	else
	{
		b[0] = (char) (0xF0 | (cp >> 18));
		b[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
		b[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
		b[3] = (char) (0x80 | (cp & 0x3F));
		n = 4;
	}
	return text_append(r, b, n);
}

/*
 * XML 1.0's Char production, for a Unicode scalar value other than U+0000:
 * no C0 control but tab, LF and CR; not U+FFFE or U+FFFF.
 */
static int
xml_char_allowed(uint32_t cp)
{
	if (cp < 0x20)
		return cp == '\t' || cp == '\n' || cp == '\r';
	return cp != 0xFFFE && cp != 0xFFFF;
}

/* See plist_read.h. */
int
plist_xml_chars_valid(const unsigned char *buf, size_t len, size_t *bad_offset,
					  uint32_t *bad_cp)
{
	size_t		i;

	for (i = 0; i < len; i++)
	{
		if (buf[i] < 0x20 && !xml_char_allowed(buf[i]))
		{
			*bad_offset = i;
			*bad_cp = buf[i];
			return 0;
		}
		/* EF BF BE and EF BF BF: U+FFFE, U+FFFF */
		if (buf[i] == 0xEF && i + 2 < len && buf[i + 1] == 0xBF &&
			(buf[i + 2] == 0xBE || buf[i + 2] == 0xBF))
		{
			*bad_offset = i;
			*bad_cp = 0xFFFC | (buf[i + 2] & 0x03);
			return 0;
		}
	}
	return 1;
}

/* An entity reference; the cursor is at "&". */
static int
read_entity(XmlReader *r)
{
	const char *s = r->p + 1;
	const char *semi = s;
	size_t		len;

	while (semi < r->end && semi - s <= 10 && *semi != ';')
		semi++;
	if (semi >= r->end || *semi != ';')
		return fail_xml(r, "invalid XML plist", "An entity reference is not terminated by \";\"");
	len = (size_t) (semi - s);

	if (len >= 2 && s[0] == '#')
	{
		uint32_t	cp = 0;
		size_t		i = 1;
		int			hex = (s[1] == 'x');

		if (hex)
			i++;
		if (i >= len)
			return fail_xml(r, "invalid XML plist", "A character reference has no digits");
		for (; i < len; i++)
		{
			char		c = s[i];
			int			d;

			if (c >= '0' && c <= '9')
				d = c - '0';
			else if (hex && c >= 'a' && c <= 'f')
				d = c - 'a' + 10;
			else if (hex && c >= 'A' && c <= 'F')
				d = c - 'A' + 10;
			else
				return fail_xml(r, "invalid XML plist", "A character reference has an invalid digit");
			cp = cp * (hex ? 16 : 10) + (uint32_t) d;
			if (cp > 0x10FFFF)
				break;
		}
		if (cp == 0)
			return plist_fail(r->err, PLIST_ERR_ENCODING,
							  "plist string contains a NUL character",
							  "The character reference at byte %ld is U+0000.", offset_of(r));
		if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return plist_fail(r->err, PLIST_ERR_ENCODING,
							  "invalid character reference in XML plist",
							  "The character reference at byte %ld is not a Unicode scalar value.",
							  offset_of(r));
		if (!xml_char_allowed(cp))
			return plist_fail(r->err, PLIST_ERR_ENCODING,
							  "invalid character reference in XML plist",
							  "The character reference at byte %ld is U+%04X, which XML 1.0 does not allow.",
							  offset_of(r), (unsigned) cp);
		if (!append_code_point(r, cp))
			return 0;
	}
	else
	{
		static const struct
		{
			const char *name;
			char		c;
		}			predefined[] = {
			{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}
		};
		size_t		i;

		for (i = 0; i < 5; i++)
			if (strlen(predefined[i].name) == len && memcmp(predefined[i].name, s, len) == 0)
				break;
		if (i == 5)
			return plist_fail(r->err, PLIST_ERR_XML, "invalid XML plist",
							  "Undefined entity \"&%.*s;\" at byte %ld.",
							  (int) len, s, offset_of(r));
		if (!text_append(r, &predefined[i].c, 1))
			return 0;
	}
	r->p = semi + 1;
	return 1;
}

/*
 * Read the character content of an element up to its end tag, which is
 * consumed.  Comments are skipped; CDATA sections are taken literally.
 * The text ends up NUL-terminated in r->text.
 */
static int
read_text(XmlReader *r, const char *elem)
{
	r->text_len = 0;
	if (!text_append(r, "", 0))
		return 0;
	for (;;)
	{
		const char *s = r->p;

		while (r->p < r->end && *r->p != '<' && *r->p != '&')
			r->p++;
		if (!text_append(r, s, (size_t) (r->p - s)))
			return 0;
		if (r->p >= r->end)
			return plist_fail(r->err, PLIST_ERR_XML, "invalid XML plist",
							  "The input ends inside a <%s> element.", elem);
		if (*r->p == '&')
		{
			if (!read_entity(r))
				return 0;
		}
		else if (at(r, "<![CDATA["))
		{
			const char *cs;

			r->p += 9;
			cs = r->p;
			if (!skip_past(r, "]]>"))
				return fail_xml(r, "invalid XML plist", "A CDATA section is not closed");
			if (!text_append(r, cs, (size_t) (r->p - 3 - cs)))
				return 0;
		}
		else if (at(r, "<!--"))
		{
			r->p += 4;
			if (!skip_past(r, "-->"))
				return fail_xml(r, "invalid XML plist", "A comment is not closed");
		}
		else if (at(r, "</"))
			return read_end_tag(r, elem);
		else
			return plist_fail(r->err, PLIST_ERR_XML, "invalid XML plist",
							  "Found markup inside a <%s> element at byte %ld.",
							  elem, offset_of(r));
	}
}

/* Trim surrounding whitespace of r->text in place; returns the start. */
static char *
trimmed_text(XmlReader *r, size_t *len)
{
	char	   *s = r->text;
	char	   *e = r->text + r->text_len;

	while (s < e && is_space(*s))
		s++;
	while (e > s && is_space(e[-1]))
		e--;
	*e = '\0';
	*len = (size_t) (e - s);
	return s;
}

static int
fail_syntax(XmlReader *r, const char *type, const char *s, size_t len)
{
	return plist_fail(r->err, PLIST_ERR_SYNTAX, "invalid plist value",
					  "\"%.*s\" is not a valid %s (near byte %ld).",
					  (int) (len > 40 ? 40 : len), s, type, offset_of(r));
}

static int
parse_integer(XmlReader *r, const char *s, size_t len, int64_t *out)
{
	size_t		i = 0;
	int			neg = 0;
	int			hex = 0;
	uint64_t	v = 0;
	uint64_t	limit;

	if (i < len && (s[i] == '+' || s[i] == '-'))
		neg = (s[i++] == '-');
	if (len - i > 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X'))
	{
		hex = 1;
		i += 2;
	}
	if (i >= len)
		return fail_syntax(r, "integer", s, len);
	limit = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
	for (; i < len; i++)
	{
		char		c = s[i];
		unsigned	d;

		if (c >= '0' && c <= '9')
			d = (unsigned) (c - '0');
		else if (hex && c >= 'a' && c <= 'f')
			d = (unsigned) (c - 'a' + 10);
		else if (hex && c >= 'A' && c <= 'F')
			d = (unsigned) (c - 'A' + 10);
		else
			return fail_syntax(r, "integer", s, len);
		if (v > (limit - d) / (hex ? 16 : 10))
			return plist_fail(r->err, PLIST_ERR_INT_RANGE, "plist integer out of range",
							  "\"%.*s\" does not fit in a signed 64-bit integer.",
							  (int) (len > 40 ? 40 : len), s);
		v = v * (hex ? 16 : 10) + d;
	}
	*out = neg ? (int64_t) (0 - v) : (int64_t) v;
	return 1;
}

static int
parse_real(XmlReader *r, const char *s, size_t len, double *out)
{
	size_t		i = 0;
	size_t		digits = 0;
	char	   *endp;

	if (i < len && (s[i] == '+' || s[i] == '-'))
		i++;
	if (len - i >= 3 && (ascii_caseeq(s + i, len - i, "nan") ||
						 ascii_caseeq(s + i, len - i, "inf") ||
						 ascii_caseeq(s + i, len - i, "infinity")))
		return plist_fail(r->err, PLIST_ERR_REAL_RANGE, "plist real value out of range",
						  "\"%.*s\" is not a finite number, which JSON cannot hold.",
						  (int) len, s);
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (i < len && s[i] == '.')
	{
		i++;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++, digits++;
	}
	if (digits == 0)
		return fail_syntax(r, "real", s, len);
	if (i < len && (s[i] == 'e' || s[i] == 'E'))
	{
		size_t		exp_digits = 0;

		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++, exp_digits++;
		if (exp_digits == 0)
			return fail_syntax(r, "real", s, len);
	}
	if (i != len)
		return fail_syntax(r, "real", s, len);
	errno = 0;
	*out = strtod(s, &endp);
	/* as float8in: an underflow to zero is an error; subnormals are kept */
	if (errno == ERANGE && *out == 0.0)
		return plist_fail(r->err, PLIST_ERR_REAL_RANGE, "plist real value out of range",
						  "\"%.*s\" is too small for a double precision number.",
						  (int) (len > 40 ? 40 : len), s);
	if (!isfinite(*out))
		return plist_fail(r->err, PLIST_ERR_REAL_RANGE, "plist real value out of range",
						  "\"%.*s\" is too large for a double precision number.",
						  (int) (len > 40 ? 40 : len), s);
	return 1;
}

/* Count string, key or data bytes against limits->max_bytes. */
static int
count_bytes(XmlReader *r, size_t n)
{
	r->bytes += (int64_t) n;
	return plist_check_bytes(r->limits, r->bytes, r->err);
}

static int
count_node(XmlReader *r)
{
	if (++r->nodes > r->limits->max_nodes)
		return plist_fail(r->err, PLIST_ERR_NODES, "plist has too many nodes",
						  "It has more than %lld nodes (mdm.max_plist_nodes).",
						  (long long) r->limits->max_nodes);
	return 1;
}

/* Build the leaf value of a scalar element whose start tag was read. */
static int
read_scalar(XmlReader *r, const Tag *tag, plist_t *out)
{
	char		name[16];
	size_t		len;
	char	   *s;

	memcpy(name, tag->name, tag->name_len);
	name[tag->name_len] = '\0';

	if (tag->is_empty)
	{
		r->text_len = 0;
		r->text[0] = '\0';
	}
	else if (!read_text(r, name))
		return 0;

	/* whitespace is significant in strings only */
	if (tag->kind == EL_STRING)
		s = r->text, len = r->text_len;
	else
		s = trimmed_text(r, &len);

	switch (tag->kind)
	{
		case EL_STRING:
			if (!count_bytes(r, len))
				return 0;
			*out = plist_new_string(s);
			break;
		case EL_TRUE:
		case EL_FALSE:
			if (len != 0)
				return fail_syntax(r, "boolean (it must be empty)", s, len);
			*out = plist_new_bool(tag->kind == EL_TRUE);
			break;
		case EL_INTEGER:
			{
				int64_t		v = 0;

				if (!parse_integer(r, s, len, &v))
					return 0;
				*out = plist_new_uint((uint64_t) v);
				break;
			}
		case EL_REAL:
			{
				double		d = 0;

				if (!parse_real(r, s, len, &d))
					return 0;
				*out = plist_new_real(d);
				break;
			}
		case EL_DATE:
			{
				int32_t		sec,
							usec;

				if (!plist_date_parse(s, len, &sec, &usec, r->err))
					return 0;
				*out = plist_new_date(sec, usec);
				break;
			}
		case EL_DATA:
			{
				unsigned char *bytes;
				size_t		nbytes;

				if (!plist_base64_decode(s, len, &bytes, &nbytes, r->err))
					return 0;
				if (!count_bytes(r, nbytes))
				{
					free(bytes);
					return 0;
				}
				*out = plist_new_data((const char *) bytes, nbytes);
				free(bytes);
				break;
			}
		default:
			return plist_fail(r->err, PLIST_ERR_XML, "invalid XML plist",
							  "Element <%s> cannot appear here (byte %ld).",
							  name, offset_of(r));
	}
	if (*out == NULL)
		return plist_fail(r->err, PLIST_ERR_NOMEM, "out of memory",
						  "libplist could not allocate a <%s> node.", name);
	return 1;
}

/*
 * Put a new node in its place: as the root, as the value of the pending
 * key of the dict on top of the stack, or at the end of the array there.
 * Ownership passes to the tree.
 */
static int
attach(XmlReader *r, plist_t node)
{
	Frame	   *top;

	if (r->sp == 0)
	{
		r->root = node;
		return 1;
	}
	top = &r->stack[r->sp - 1];
	if (top->is_dict)
	{
		plist_dict_set_item(top->node, top->pending_key, node);
		free(top->pending_key);
		top->pending_key = NULL;
	}
	else
		plist_array_append_item(top->node, node);
	return 1;
}

/*
 * The bucket of libplist 2.2's dictionary hash table that a key falls into:
 * dict_key_hash() in its plist.c (djb2 over the key's chars, which are
 * signed where char is) and hash_table_lookup() in its hashtable.c (the low
 * 12 bits).  Keep the expression as libplist writes it.
 */
static uint32_t
libplist_key_bucket(const char *key)
{
	unsigned int hash = 5381;
	const char *str;

	for (str = key; *str; str++)
		hash = ((hash << 5) + hash) + *str;
	return hash & (LIBPLIST_HASH_BUCKETS - 1);
}

/* Start counting keys per bucket, with the keys the dictionary holds. */
static int
start_buckets(XmlReader *r, Frame *top)
{
	plist_dict_iter iter = NULL;
	char	   *key = NULL;

	top->buckets = calloc(LIBPLIST_HASH_BUCKETS, sizeof(uint32_t));
	plist_dict_new_iter(top->node, &iter);
	if (top->buckets == NULL || iter == NULL)
	{
		free(iter);
		return plist_fail(r->err, PLIST_ERR_NOMEM, "out of memory",
						  "Failed to allocate the key buckets of a dictionary.");
	}
	for (;;)
	{
		plist_dict_next_item(top->node, iter, &key, NULL);
		if (key == NULL)
			break;
		top->buckets[libplist_key_bucket(key)]++;
		free(key);
	}
	free(iter);
	return 1;
}

/*
 * Count a new key of a dictionary in the bucket libplist will put it in.
 *
 * Each insertion into a hashed libplist dictionary walks the chain of its
 * key's bucket twice (plist_dict_set_item: plist_dict_get_item, then
 * hash_table_insert), and our duplicate check walks it once more.  Keys
 * chosen to share one bucket (easy: the hash is djb2 and only 12 bits are
 * used) make reading a dictionary quadratic: 16384 of them in 750 KB of
 * XML took 3 s instead of 30 ms.  So a dictionary may hold at most
 * BUCKET_SLACK keys in one bucket, plus eight times the mean load -- a
 * bound random keys never come near, and under which insertions cost
 * little more than libplist's hash table costs anyway.  libplist's binary
 * reader does not hash keys, so binary plists need no such check.
 */
static int
note_key_bucket(XmlReader *r, Frame *top, const char *key)
{
	int64_t		most;

	top->nkeys++;
	if (top->buckets == NULL)
	{
		if (top->nkeys <= LIBPLIST_HASH_AFTER)
			return 1;
		if (!start_buckets(r, top))
			return 0;
	}
	most = BUCKET_SLACK + top->nkeys * 8 / LIBPLIST_HASH_BUCKETS;
	if (++top->buckets[libplist_key_bucket(key)] > most)
		return plist_fail(r->err, PLIST_ERR_NODES,
						  "plist dictionary has too many colliding keys",
						  "More than %lld of its first %lld keys fall into one bucket of libplist's hash table (byte %ld); reading them would take quadratic time.",
						  (long long) most, (long long) top->nkeys, offset_of(r));
	return 1;
}

/* In a dict that expects a key: read "<key>...</key>". */
static int
read_dict_key(XmlReader *r, Frame *top)
{
	Tag			tag;

	if (!read_start_tag(r, &tag))
		return 0;
	if (tag.kind != EL_KEY)
	{
		r->p = tag.name - 1;
		return plist_fail(r->err, PLIST_ERR_XML, "invalid XML plist",
						  "Expected <key> in a dictionary but found <%.*s> at byte %ld.",
						  (int) tag.name_len, tag.name, offset_of(r));
	}
	if (tag.is_empty)
	{
		r->text_len = 0;
		r->text[0] = '\0';
	}
	else if (!read_text(r, "key"))
		return 0;
	if (plist_dict_get_item(top->node, r->text) != NULL)
		return plist_fail(r->err, PLIST_ERR_DUPLICATE_KEY,
						  "duplicate key in plist dictionary",
						  "The key \"%.*s\" appears twice in one dictionary (byte %ld).",
						  (int) (r->text_len > 60 ? 60 : r->text_len), r->text,
						  offset_of(r));
	if (!note_key_bucket(r, top, r->text) || !count_bytes(r, r->text_len))
		return 0;
	top->pending_key = strdup(r->text);
	if (top->pending_key == NULL)
		return plist_fail(r->err, PLIST_ERR_NOMEM, "out of memory",
						  "Failed to copy a dictionary key.");
	return count_node(r);
}

/* Read exactly one value (with everything nested in it) into r->root. */
static int
read_value_tree(XmlReader *r)
{
	for (;;)
	{
		Tag			tag;
		plist_t		node = NULL;

		if (!skip_misc(r, 0))
			return 0;

		if (r->sp > 0)
		{
			Frame	   *top = &r->stack[r->sp - 1];

			if (at(r, "</"))
			{
				if (top->pending_key != NULL)
					return plist_fail(r->err, PLIST_ERR_XML, "invalid XML plist",
									  "The dictionary key \"%.60s\" has no value (byte %ld).",
									  top->pending_key, offset_of(r));
				if (!read_end_tag(r, top->is_dict ? "dict" : "array"))
					return 0;
				free(top->buckets);
				top->buckets = NULL;
				r->sp--;
				if (r->sp == 0)
					return 1;
				continue;
			}
			if (top->is_dict && top->pending_key == NULL)
			{
				if (!read_dict_key(r, top))
					return 0;
				continue;
			}
		}

		if (r->p >= r->end)
			return plist_fail(r->err, PLIST_ERR_XML, "invalid XML plist",
							  r->sp > 0 ? "The input ends inside a container."
							  : "The input contains no value.");
		if (r->sp == 0 && at(r, "</"))
			return fail_xml(r, "invalid XML plist", "Expected a value but found an end tag");
		if (!read_start_tag(r, &tag))
			return 0;
		if (!count_node(r))
			return 0;

		if (tag.kind == EL_DICT || tag.kind == EL_ARRAY)
		{
			if (r->sp + 1 > r->limits->max_depth)
				return plist_fail(r->err, PLIST_ERR_DEPTH, "plist nesting too deep",
								  "Containers are nested more than %d levels deep (mdm.max_nesting_depth).",
								  r->limits->max_depth);
			node = tag.kind == EL_DICT ? plist_new_dict() : plist_new_array();
			if (node == NULL)
				return plist_fail(r->err, PLIST_ERR_NOMEM, "out of memory",
								  "libplist could not allocate a container.");
			attach(r, node);
			if (tag.is_empty)
			{
				if (r->sp == 0)
					return 1;
				continue;
			}
			r->stack[r->sp].node = node;
			r->stack[r->sp].is_dict = (tag.kind == EL_DICT);
			r->stack[r->sp].pending_key = NULL;
			r->stack[r->sp].nkeys = 0;
			r->stack[r->sp].buckets = NULL;
			r->sp++;
			continue;
		}
		if (tag.kind == EL_KEY || tag.kind == EL_PLIST)
		{
			r->p = tag.name - 1;
			return plist_fail(r->err, PLIST_ERR_XML, "invalid XML plist",
							  "Element <%.*s> cannot appear here (byte %ld).",
							  (int) tag.name_len, tag.name, offset_of(r));
		}
		if (!read_scalar(r, &tag, &node))
			return 0;
		attach(r, node);
		if (r->sp == 0)
			return 1;
	}
}

static int
read_document(XmlReader *r)
{
	int			wrapped = 0;

	if (!skip_misc(r, 1))
		return 0;
	if (at(r, "<plist") && r->p + 6 < r->end &&
		(is_space(r->p[6]) || r->p[6] == '>' || r->p[6] == '/'))
	{
		Tag			tag;

		if (!read_start_tag(r, &tag))
			return 0;
		if (tag.is_empty)
			return fail_xml(r, "invalid XML plist", "The <plist> element is empty");
		wrapped = 1;
	}
	if (!read_value_tree(r))
		return 0;
	if (!skip_misc(r, 0))
		return 0;
	if (wrapped)
	{
		if (!at(r, "</"))
			return fail_xml(r, "invalid XML plist", "Expected \"</plist>\" after the root value");
		if (!read_end_tag(r, "plist") || !skip_misc(r, 0))
			return 0;
	}
	if (r->p != r->end)
		return fail_xml(r, "invalid XML plist", "Unexpected content after the root value");
	return 1;
}

int
plist_read_xml(const unsigned char *buf, size_t len, const PlistLimits *limits,
			   plist_t *out, PlistError *err)
{
	XmlReader	r;
	size_t		bad;
	uint32_t	bad_cp;
	size_t		skip = 0;
	int			ok;
	int			i;

	*out = NULL;
	if (len >= 3 && buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF)
		skip = 3;
	if (!plist_utf8_valid(buf + skip, len - skip, &bad))
		return plist_fail(err, PLIST_ERR_ENCODING,
						  buf[skip + bad] == 0 ? "XML plist contains a NUL byte"
						  : "invalid byte sequence for encoding \"UTF8\"",
						  "The XML plist has byte 0x%02x at offset %zu, which is not valid UTF-8 there.",
						  buf[skip + bad], skip + bad);

	if (!plist_xml_chars_valid(buf + skip, len - skip, &bad, &bad_cp))
		return plist_fail(err, PLIST_ERR_ENCODING,
						  "XML plist contains a character that XML does not allow",
						  "The XML plist has U+%04X at byte %zu; XML 1.0 allows no control character but tab, line feed and carriage return, and neither U+FFFE nor U+FFFF.",
						  (unsigned) bad_cp, skip + bad);

	memset(&r, 0, sizeof(r));
	r.start = (const char *) buf;
	r.p = (const char *) buf + skip;
	r.end = (const char *) buf + len;
	r.limits = limits;
	r.err = err;
	r.stack = calloc((size_t) limits->max_depth + 1, sizeof(Frame));
	if (r.stack == NULL)
		return plist_fail(err, PLIST_ERR_NOMEM, "out of memory",
						  "Failed to allocate the reader state.");

	ok = text_append(&r, "", 0) && read_document(&r);

	for (i = 0; i < limits->max_depth + 1; i++)
	{
		free(r.stack[i].pending_key);
		free(r.stack[i].buckets);
	}
	free(r.stack);
	free(r.text);
	if (!ok)
	{
		plist_free(r.root);
		return 0;
	}
	*out = r.root;
	return 1;
}
