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
 * the database encoding to UTF-8.  Output uses tabs like Apple's tools.
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
#include "utils/numeric.h"

#include "plist_read.h"

static const char plist_header[] =
"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
"<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
"\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
"<plist version=\"1.0\">\n";

static void write_value(StringInfo out, JsonbValue *v, int depth);
static void write_container(StringInfo out, JsonbContainer *jc, int depth,
							bool plain_dict);

static void
indent(StringInfo out, int depth)
{
	int			i;

	for (i = 0; i < depth; i++)
		appendStringInfoChar(out, '\t');
}

/* Escaped character data, converted to UTF-8. */
static void
append_escaped(StringInfo out, const char *s, int len)
{
	const char *u = pg_server_to_any(s, len, PG_UTF8);
	int			ulen = (u == s) ? len : (int) strlen(u);
	int			i;

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
				  int depth)
{
	indent(out, depth);
	appendStringInfo(out, "<%s>", elem);
	append_escaped(out, s, len);
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

static void
write_data(StringInfo out, JsonbValue *v, int depth)
{
	char	   *b64 = tagged_text(v, "$data");
	int			len = (int) strlen(b64);
	int			declen = pg_b64_dec_len(len);
	char	   *raw = palloc(declen + 1);
	int			n = pg_b64_decode(b64, len, raw, declen);
	int			enclen;
	char	   *enc;

	if (n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid \"$data\" value in jsonb for a plist"),
				 errdetail("The value of \"$data\" must be base64.")));
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
	char	   *text = tagged_text(v, "$date");
	int32_t		sec,
				usec;
	PlistError	err;
	char		buf[PLIST_DATE_TEXT_MAX];

	if (!plist_date_parse(text, strlen(text), &sec, &usec, &err))
		ereport(ERROR,
				(errcode(err.kind == PLIST_ERR_DATE_RANGE ?
						 ERRCODE_DATETIME_VALUE_OUT_OF_RANGE :
						 ERRCODE_INVALID_DATETIME_FORMAT),
				 errmsg("invalid \"$date\" value in jsonb for a plist"),
				 errdetail_internal("%s", err.detail)));
	plist_date_format(sec, usec, buf);
	indent(out, depth);
	appendStringInfo(out, "<date>%s</date>\n", buf);
}

/*
 * If jc is a tagged object ({"$data"|"$date"|"$dict": value}), write it and
 * return true.
 */
static bool
write_tagged(StringInfo out, JsonbContainer *jc, int depth)
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
		if (v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid \"$dict\" value in jsonb for a plist"),
					 errdetail("The value of \"$dict\" must be an object.")));
		write_container(out, v.val.binary.data, depth, true);
	}
	else
		return false;
	return true;
}

/*
 * An object or array.  plain_dict: write an object as a dict even if it
 * looks like a tagged value (the content of "$dict").
 */
static void
write_container(StringInfo out, JsonbContainer *jc, int depth, bool plain_dict)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		is_object = JsonContainerIsObject(jc);

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();

	if (JsonContainerIsScalar(jc))
	{
		JsonbExtractScalar(jc, &v);
		write_value(out, &v, depth);
		return;
	}
	if (!plain_dict && write_tagged(out, jc, depth))
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
			write_string_elem(out, "key", v.val.string.val, v.val.string.len,
							  depth + 1);
		else if (tok == WJB_VALUE || tok == WJB_ELEM)
			write_value(out, &v, depth + 1);
	}
	indent(out, depth);
	appendStringInfoString(out, is_object ? "</dict>\n" : "</array>\n");
}

static void
write_value(StringInfo out, JsonbValue *v, int depth)
{
	switch (v->type)
	{
		case jbvBinary:
			write_container(out, v->val.binary.data, depth, false);
			break;
		case jbvString:
			write_string_elem(out, "string", v->val.string.val,
							  v->val.string.len, depth);
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
	write_container(&out, &jb->root, 0, false);
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
