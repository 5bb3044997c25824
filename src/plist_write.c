/*
 * plist_write.c
 *		jsonb to an XML property list: mdm.jsonb_to_plist(jsonb) and the
 *		writer that builds every command the server sends.
 *
 * The inverse of the mapping in plist_jsonb.c: numbers without a fractional
 * part become <integer> (they must fit in int64), numbers with one become
 * <real>; {"$data": base64}, {"$date": "...Z"} and {"$dict": {...}} are the
 * tagged forms.  JSON null has no plist counterpart and is refused.
 *
 * The writer recurses over jsonb containers; depth is bounded by
 * mdm.max_nesting_depth and check_stack_depth().  Strings are converted from
 * the database encoding to UTF-8; characters that XML 1.0 cannot represent
 * at all (C0 controls other than tab, LF and CR; U+FFFE, U+FFFF) are
 * refused, naming the path of the string.  Output uses tabs like Apple's
 * tools.
 *
 * mdm.plist_data(jsonb) and mdm.plist_date(jsonb) read the tagged values
 * with the same rules as the writer.
 */
#include "mdm_user.h"

#include <math.h>

#include "common/base64.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/numeric.h"

#include "plist_read.h"

static const char plist_header[] =
"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
"<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
"\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
"<plist version=\"1.0\">\n";

/*
 * Where the writer is: one link per container level, from the value being
 * written up to the root.  Only read when a string must be refused.
 */
typedef struct WritePath
{
	const struct WritePath *parent;
	const char *key;			/* the dict key (not NUL-terminated), or NULL */
	int			keylen;
	int			index;			/* the array index when key is NULL */
} WritePath;

static void write_value(StringInfo out, JsonbValue *v, int depth,
						const WritePath *path);
static void write_container(StringInfo out, JsonbContainer *jc, int depth,
							bool plain_dict, const WritePath *path);

static void
indent(StringInfo out, int depth)
{
	int			i;

	for (i = 0; i < depth; i++)
		appendStringInfoChar(out, '\t');
}

/* The path of a value as a jsonpath: $."key"[0]; long keys are clipped. */
static void
append_path(StringInfo buf, const WritePath *path)
{
	const WritePath **links;
	const WritePath *p;
	int			n = 0;

	appendStringInfoChar(buf, '$');
	for (p = path; p != NULL; p = p->parent)
		n++;
	links = palloc(sizeof(WritePath *) * (n + 1));
	n = 0;
	for (p = path; p != NULL; p = p->parent)
		links[n++] = p;
	while (n-- > 0)
	{
		if (links[n]->key != NULL)
		{
			int			len = pg_mbcliplen(links[n]->key, links[n]->keylen, 60);
			char	   *key = pnstrdup(links[n]->key, len);

			appendStringInfoChar(buf, '.');
			if (len < links[n]->keylen)
				key = psprintf("%s...", key);
			escape_json(buf, key);
		}
		else
			appendStringInfo(buf, "[%d]", links[n]->index);
	}
}

/*
 * A string holds a character XML 1.0 cannot represent, not even as a
 * character reference (plist_xml_chars_valid): code point cp at byte at of
 * its UTF-8 form u.
 */
static pg_attribute_noreturn() void
report_unrepresentable(const unsigned char *u, size_t at, uint32_t cp, bool is_key,
					   const WritePath *path)
{
	StringInfoData where;
	int			charpos = 1;
	size_t		i;

	for (i = 0; i < at; i++)
		if ((u[i] & 0xC0) != 0x80)
			charpos++;
	initStringInfo(&where);
	append_path(&where, path);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("string contains a character that XML cannot represent"),
			 is_key ?
			 errdetail("A key of the dictionary at %s has U+%04X at character %d; XML 1.0 has no form for it, not even a character reference.",
					   where.data, (unsigned) cp, charpos) :
			 errdetail("The string at %s has U+%04X at character %d; XML 1.0 has no form for it, not even a character reference.",
					   where.data, (unsigned) cp, charpos)));
	pg_unreachable();
}

/*
 * Escaped character data, converted to UTF-8.  path is where the string
 * is: the value at path, or (is_key) a key of the dict at path.
 */
static void
append_escaped(StringInfo out, const char *s, int len, bool is_key,
			   const WritePath *path)
{
	const char *u = pg_server_to_any(s, len, PG_UTF8);
	int			ulen = (u == s) ? len : (int) strlen(u);
	size_t		bad;
	uint32_t	bad_cp;
	int			i;

	if (!plist_xml_chars_valid((const unsigned char *) u, ulen, &bad, &bad_cp))
		report_unrepresentable((const unsigned char *) u, bad, bad_cp, is_key, path);
	for (i = 0; i < ulen; i++)
	{
		switch (u[i])
		{
			case '&':
				appendStringInfoString(out, "&amp;");
				break;
			case '<':
				appendStringInfoString(out, "&lt;");
				break;
			case '>':
				appendStringInfoString(out, "&gt;");
				break;
			case '\r':
				/* XML readers turn a raw CR into LF */
				appendStringInfoString(out, "&#13;");
				break;
			default:
				appendStringInfoChar(out, u[i]);
		}
	}
}

static void
write_string_elem(StringInfo out, const char *elem, const char *s, int len,
				  int depth, const WritePath *path)
{
	indent(out, depth);
	appendStringInfo(out, "<%s>", elem);
	append_escaped(out, s, len, strcmp(elem, "key") == 0, path);
	appendStringInfo(out, "</%s>\n", elem);
}

static void
write_number(StringInfo out, Numeric n, int depth)
{
	char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out,
														   NumericGetDatum(n)));

	if (numeric_is_nan(n))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("cannot convert NaN to a plist number")));
	indent(out, depth);
	if (strchr(text, '.') != NULL)
	{
		char		buf[DOUBLE_SHORTEST_DECIMAL_LEN + 3];
		double		d = strtod(text, NULL);

		if (isinf(d))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("number out of range for a plist real"),
					 errdetail("The value %.40s%s does not fit in double precision.",
							   text, strlen(text) > 40 ? "..." : "")));
		double_to_shortest_decimal_buf(d, buf);
		if (strpbrk(buf, ".eE") == NULL)
			strcat(buf, ".0");
		appendStringInfo(out, "<real>%s</real>\n", buf);
	}
	else
	{
		char	   *end;
		long long	v;

		errno = 0;
		v = strtoll(text, &end, 10);
		if (errno == ERANGE || *end != '\0')
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("number out of range for a plist integer"),
					 errdetail("The value %.40s%s does not fit in a signed 64-bit integer.",
							   text, strlen(text) > 40 ? "..." : "")));
		appendStringInfo(out, "<integer>%lld</integer>\n", v);
	}
}

/* The string value of a tagged object, or an error naming the tag. */
static char *
tagged_text(JsonbValue *v, const char *tag)
{
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid \"%s\" value in jsonb for a plist", tag),
				 errdetail("The value of \"%s\" must be a string.", tag)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* The bytes of a "$data" value, decoded as the writer decodes them. */
static char *
data_value_bytes(JsonbValue *v, int *nbytes)
{
	char	   *b64 = tagged_text(v, "$data");
	int			len = (int) strlen(b64);
	int			declen = pg_b64_dec_len(len);
	char	   *raw = palloc(declen + 1);
	int			n = pg_b64_decode(b64, len, raw, declen);

	if (n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid \"$data\" value in jsonb for a plist"),
				 errdetail("The value of \"$data\" must be base64.")));
	*nbytes = n;
	return raw;
}

/* The (sec, usec) since 2001-01-01 of a "$date" value, as the writer reads it. */
static void
date_value_parse(JsonbValue *v, int32_t *sec, int32_t *usec)
{
	char	   *text = tagged_text(v, "$date");
	PlistError	err;

	if (!plist_date_parse(text, strlen(text), sec, usec, &err))
		ereport(ERROR,
				(errcode(err.kind == PLIST_ERR_DATE_RANGE ?
						 ERRCODE_DATETIME_VALUE_OUT_OF_RANGE :
						 ERRCODE_INVALID_DATETIME_FORMAT),
				 errmsg("invalid \"$date\" value in jsonb for a plist"),
				 errdetail_internal("%s", err.detail)));
}

static void
write_data(StringInfo out, JsonbValue *v, int depth)
{
	int			n;
	char	   *raw = data_value_bytes(v, &n);
	int			enclen;
	char	   *enc;

	enclen = pg_b64_enc_len(n);
	enc = palloc(enclen + 1);
	enclen = pg_b64_encode(raw, n, enc, enclen);
	if (enclen < 0)
		elog(ERROR, "could not encode plist data as base64");
	indent(out, depth);
	appendStringInfoString(out, "<data>");
	appendBinaryStringInfo(out, enc, enclen);
	appendStringInfoString(out, "</data>\n");
}

static void
write_date(StringInfo out, JsonbValue *v, int depth)
{
	int32_t		sec,
				usec;
	char		buf[PLIST_DATE_TEXT_MAX];

	date_value_parse(v, &sec, &usec);
	plist_date_format(sec, usec, buf);
	indent(out, depth);
	appendStringInfo(out, "<date>%s</date>\n", buf);
}

/*
 * If jc is a tagged object ({"$data"|"$date"|"$dict": value}), write it and
 * return true.
 */
static bool
write_tagged(StringInfo out, JsonbContainer *jc, int depth, const WritePath *path)
{
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;

	if (!JsonContainerIsObject(jc) || JsonContainerSize(jc) != 1)
		return false;
	it = JsonbIteratorInit(jc);
	(void) JsonbIteratorNext(&it, &k, true);	/* WJB_BEGIN_OBJECT */
	(void) JsonbIteratorNext(&it, &k, true);	/* WJB_KEY */
	(void) JsonbIteratorNext(&it, &v, true);	/* WJB_VALUE */
	if (k.val.string.len != 5 || k.val.string.val[0] != '$')
		return false;
	if (memcmp(k.val.string.val, "$data", 5) == 0)
		write_data(out, &v, depth);
	else if (memcmp(k.val.string.val, "$date", 5) == 0)
		write_date(out, &v, depth);
	else if (memcmp(k.val.string.val, "$dict", 5) == 0)
	{
		WritePath	inner = {path, k.val.string.val, k.val.string.len, 0};

		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid \"$dict\" value in jsonb for a plist"),
					 errdetail("The value of \"$dict\" must be an object.")));
		write_container(out, v.val.binary.data, depth, true, &inner);
	}
	else
		return false;
	return true;
}

/*
 * An object or array at path.  plain_dict: write an object as a dict even
 * if it looks like a tagged value (the content of "$dict").
 */
static void
write_container(StringInfo out, JsonbContainer *jc, int depth, bool plain_dict,
				const WritePath *path)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		is_object = JsonContainerIsObject(jc);
	WritePath	entry = {path, NULL, 0, 0};

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();

	if (JsonContainerIsScalar(jc))
	{
		JsonbExtractScalar(jc, &v);
		write_value(out, &v, depth, path);
		return;
	}
	if (!plain_dict && write_tagged(out, jc, depth, path))
		return;
	if (depth >= mdm_max_nesting_depth)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("plist nesting too deep"),
				 errdetail("Containers are nested more than %d levels deep (mdm.max_nesting_depth).",
						   mdm_max_nesting_depth)));

	indent(out, depth);
	if (JsonContainerSize(jc) == 0)
	{
		appendStringInfoString(out, is_object ? "<dict/>\n" : "<array/>\n");
		return;
	}
	appendStringInfoString(out, is_object ? "<dict>\n" : "<array>\n");
	it = JsonbIteratorInit(jc);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			write_string_elem(out, "key", v.val.string.val, v.val.string.len,
							  depth + 1, path);
			entry.key = v.val.string.val;
			entry.keylen = v.val.string.len;
		}
		else if (tok == WJB_VALUE || tok == WJB_ELEM)
		{
			write_value(out, &v, depth + 1, &entry);
			entry.index++;
		}
	}
	indent(out, depth);
	appendStringInfoString(out, is_object ? "</dict>\n" : "</array>\n");
}

static void
write_value(StringInfo out, JsonbValue *v, int depth, const WritePath *path)
{
	switch (v->type)
	{
		case jbvBinary:
			write_container(out, v->val.binary.data, depth, false, path);
			break;
		case jbvString:
			write_string_elem(out, "string", v->val.string.val,
							  v->val.string.len, depth, path);
			break;
		case jbvNumeric:
			write_number(out, v->val.numeric, depth);
			break;
		case jbvBool:
			indent(out, depth);
			appendStringInfoString(out, v->val.boolean ? "<true/>\n" : "<false/>\n");
			break;
		case jbvNull:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("cannot convert JSON null to a plist value"),
					 errhint("Leave the key out instead.")));
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

bytea *
jsonb_to_plist_bytes(Jsonb *jb)
{
	StringInfoData out;
	bytea	   *result;

	initStringInfo(&out);
	appendBinaryStringInfo(&out, plist_header, sizeof(plist_header) - 1);
	write_container(&out, &jb->root, 0, false, NULL);
	appendStringInfoString(&out, "</plist>\n");

	result = (bytea *) palloc(VARHDRSZ + out.len);
	SET_VARSIZE(result, VARHDRSZ + out.len);
	memcpy(VARDATA(result), out.data, out.len);
	pfree(out.data);
	return result;
}

/*
 * mdm.jsonb_to_plist(value jsonb) RETURNS bytea
 */
PG_FUNCTION_INFO_V1(mdm_jsonb_to_plist);
Datum
mdm_jsonb_to_plist(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(jsonb_to_plist_bytes(PG_GETARG_JSONB_P(0)));
}

/*
 * The value of jb when it is the tagged value {tag: value}: a one-key
 * object, as the writer recognises tags.  False for anything else.
 */
static bool
tagged_value(Jsonb *jb, const char *tag, JsonbValue *v)
{
	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb) || JB_ROOT_COUNT(jb) != 1)
		return false;
	return getKeyJsonValueFromContainer(&jb->root, tag, strlen(tag), v) != NULL;
}

/*
 * mdm.plist_data(value jsonb) RETURNS bytea
 *
 * The bytes of {"$data": base64}; NULL for any other jsonb.  A "$data" that
 * is not a base64 string is refused as jsonb_to_plist refuses it.
 */
PG_FUNCTION_INFO_V1(mdm_plist_data);
Datum
mdm_plist_data(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(0);
	JsonbValue	v;
	char	   *raw;
	int			n;

	if (!tagged_value(jb, "$data", &v))
		PG_RETURN_NULL();
	raw = data_value_bytes(&v, &n);
	PG_RETURN_BYTEA_P(bytes_to_bytea(raw, n));
}

/* Seconds from PostgreSQL's epoch (2000-01-01) to libplist's (2001-01-01). */
#define PLIST_EPOCH_FROM_PG_EPOCH INT64CONST(31622400)

/*
 * mdm.plist_date(value jsonb) RETURNS timestamptz
 *
 * The time of {"$date": "YYYY-MM-DDTHH:MM:SS[.ffffff]Z"}, read in UTC by
 * plist_date_parse (the writer's parser: no other forms, no time zones, no
 * special values such as "now"), so the result depends on nothing but the
 * argument.  NULL for any jsonb that is not a tagged date.
 */
PG_FUNCTION_INFO_V1(mdm_plist_date);
Datum
mdm_plist_date(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(0);
	JsonbValue	v;
	int32_t		sec,
				usec;

	if (!tagged_value(jb, "$date", &v))
		PG_RETURN_NULL();
	date_value_parse(&v, &sec, &usec);
	/* usec has the sign of the date (plist_date_parse) */
	PG_RETURN_TIMESTAMPTZ(((int64) sec + PLIST_EPOCH_FROM_PG_EPOCH) * USECS_PER_SEC + usec);
}
