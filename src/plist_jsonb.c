/*
 * plist_jsonb.c
 *		plist bytes (XML or binary) to jsonb: the parse layer every message
 *		handler uses, and the SQL function mdm.plist_to_jsonb(bytea).
 *
 * Reading is done by the server-independent layer (plist_read.h), which
 * returns a libplist tree allocated with malloc.  The tree, and any libplist
 * iterator or key copy in use while it is converted, is owned by a holder
 * registered as a reset callback on a short-lived memory context: whether
 * the conversion ends normally or by ereport, deleting or resetting that
 * context frees everything libplist allocated.
 *
 * The mapping (docs/plist-json.md):
 *   dict -> object, array -> array, string -> string, integer -> number,
 *   real -> number with a fractional part ("2.0"), true/false -> boolean,
 *   data -> {"$data": "<base64>"}, date -> {"$date": "YYYY-MM-DDTHH:MM:SSZ"},
 *   and a dict whose only key is "$data", "$date" or "$dict" is wrapped as
 *   {"$dict": {...}} so that it cannot be mistaken for a tagged value.
 */
#include "mdm_user.h"

#include "common/base64.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

static JsonbValue *push_node(JsonbParseState **state, PlistHolder *h,
							 plist_t node, JsonbIteratorToken token);

static void
plist_holder_release(void *arg)
{
	PlistHolder *h = (PlistHolder *) arg;

	free(h->key);
	free(h->iter);
	if (h->tree)
		plist_free(h->tree);
	h->key = NULL;
	h->iter = NULL;
	h->tree = NULL;
}

void
check_message_size(size_t len)
{
	if (len > (size_t) mdm_max_message_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("plist message too large"),
				 errdetail("It has %zu bytes; mdm.max_message_bytes is %d.",
						   len, mdm_max_message_bytes)));
}

/* Raise the PostgreSQL error that corresponds to a reader error. */
void
report_plist_error(const PlistError *err)
{
	int			code;

	switch (err->kind)
	{
		case PLIST_ERR_NOT_PLIST:
		case PLIST_ERR_BINARY:
			code = ERRCODE_INVALID_BINARY_REPRESENTATION;
			break;
		case PLIST_ERR_XML:
			code = ERRCODE_INVALID_XML_DOCUMENT;
			break;
		case PLIST_ERR_SYNTAX:
			code = ERRCODE_INVALID_TEXT_REPRESENTATION;
			break;
		case PLIST_ERR_ENCODING:
			code = ERRCODE_CHARACTER_NOT_IN_REPERTOIRE;
			break;
		case PLIST_ERR_DEPTH:
		case PLIST_ERR_NODES:
		case PLIST_ERR_BYTES:
			code = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
			break;
		case PLIST_ERR_INT_RANGE:
		case PLIST_ERR_REAL_RANGE:
			code = ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
			break;
		case PLIST_ERR_DATE_RANGE:
			code = ERRCODE_DATETIME_VALUE_OUT_OF_RANGE;
			break;
		case PLIST_ERR_DUPLICATE_KEY:
			code = ERRCODE_DUPLICATE_JSON_OBJECT_KEY_VALUE;
			break;
		case PLIST_ERR_UNSUPPORTED:
			code = ERRCODE_FEATURE_NOT_SUPPORTED;
			break;
		case PLIST_ERR_NOMEM:
			code = ERRCODE_OUT_OF_MEMORY;
			break;
		case PLIST_ERR_MESSAGE:
			code = ERRCODE_INVALID_PARAMETER_VALUE;
			break;
		default:
			code = ERRCODE_INTERNAL_ERROR;
			break;
	}

	/*
	 * err->message is one of the fixed texts of the reader (plist_fail's
	 * third argument, a gettext trigger in nls.mk), translated here as core
	 * translates messages prepared elsewhere (GUC_check_errmsg); the detail
	 * carries the reader's numbers.
	 */
	ereport(ERROR,
			(errcode(code),
			 errmsg_internal("%s", _(err->message)),
			 err->detail[0] ? errdetail_internal("%s", err->detail) : 0));
}

/*
 * Copy a UTF-8 string from libplist into server memory, validated and
 * converted to the database encoding.
 */
char *
plist_text_to_server(const char *s, size_t len)
{
	if (!pg_verify_mbstr(PG_UTF8, s, (int) len, true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("invalid byte sequence for encoding \"UTF8\" in plist string")));
	if (GetDatabaseEncoding() == PG_UTF8)
		return pnstrdup(s, len);
	return pstrdup(pg_any_to_server(s, (int) len, PG_UTF8));
}

/*
 * The conversion keeps the reader's bound on string, key and data bytes
 * (mdm.max_message_bytes): the readers enforced it, and the tree it
 * converts is never larger; counting again keeps the two in step.
 */
static void
count_bytes(PlistHolder *h, uint64_t n)
{
	PlistError	err;

	h->bytes += (int64) n;
	if (h->bytes > (int64) mdm_max_message_bytes)
	{
		PlistLimits limits = {0, 0, mdm_max_message_bytes};

		plist_check_bytes(&limits, h->bytes, &err);
		report_plist_error(&err);
	}
}

static JsonbValue *
push_string(JsonbParseState **state, JsonbIteratorToken token, char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = s;
	v.val.string.len = (int) strlen(s);
	return pushJsonbValue(state, token, &v);
}

static JsonbValue *
push_numeric(JsonbParseState **state, JsonbIteratorToken token, Numeric n)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = n;
	return pushJsonbValue(state, token, &v);
}

/* A real as a numeric that always shows a fractional part. */
static Numeric
real_to_numeric(double d)
{
	char		buf[DOUBLE_SHORTEST_DECIMAL_LEN + 3];
	Numeric		n;
	char	   *text;

	double_to_shortest_decimal_buf(d, buf);
	if (strpbrk(buf, ".eE") == NULL)
		strcat(buf, ".0");
	n = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(buf),
											ObjectIdGetDatum(InvalidOid),
											Int32GetDatum(-1)));
	text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
	if (strchr(text, '.') == NULL)
		n = DatumGetNumeric(DirectFunctionCall3(numeric_in,
												CStringGetDatum(psprintf("%s.0", text)),
												ObjectIdGetDatum(InvalidOid),
												Int32GetDatum(-1)));
	return n;
}

/* {"<tag>": "<text>"}, as a value or as the root */
static JsonbValue *
push_tagged(JsonbParseState **state, const char *tag, char *text)
{
	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	push_string(state, WJB_KEY, pstrdup(tag));
	push_string(state, WJB_VALUE, text);
	return pushJsonbValue(state, WJB_END_OBJECT, NULL);
}

static int
cmp_cstring(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static bool
is_tag_name(const char *key)
{
	return strcmp(key, "$data") == 0 || strcmp(key, "$date") == 0 ||
		strcmp(key, "$dict") == 0;
}

static JsonbValue *
push_dict(JsonbParseState **state, PlistHolder *h, plist_t node)
{
	JsonbValue *res;
	uint32		n = plist_dict_get_size(node);
	char	  **keys = palloc(sizeof(char *) * (n + 1));
	plist_t    *vals = palloc(sizeof(plist_t) * (n + 1));
	char	  **sorted;
	bool		escaped;
	uint32		i;

	/* collect keys and values; only one iterator and key copy live at once */
	plist_dict_new_iter(node, &h->iter);
	if (h->iter == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	for (i = 0; i < n; i++)
	{
		plist_dict_next_item(node, h->iter, &h->key, &vals[i]);
		if (h->key == NULL || vals[i] == NULL)
			elog(ERROR, "libplist dictionary has fewer entries than it reports");
		count_bytes(h, strlen(h->key));
		keys[i] = plist_text_to_server(h->key, strlen(h->key));
		free(h->key);
		h->key = NULL;
	}
	free(h->iter);
	h->iter = NULL;

	sorted = palloc(sizeof(char *) * (n + 1));
	memcpy(sorted, keys, sizeof(char *) * n);
	qsort(sorted, n, sizeof(char *), cmp_cstring);
	for (i = 1; i < n; i++)
		if (strcmp(sorted[i - 1], sorted[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_JSON_OBJECT_KEY_VALUE),
					 errmsg("duplicate key in plist dictionary"),
					 errdetail("The key \"%s\" appears twice in one dictionary.",
							   sorted[i])));

	escaped = (n == 1 && is_tag_name(keys[0]));
	if (escaped)
	{
		pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
		push_string(state, WJB_KEY, pstrdup("$dict"));
	}
	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	for (i = 0; i < n; i++)
	{
		push_string(state, WJB_KEY, keys[i]);
		push_node(state, h, vals[i], WJB_VALUE);
	}
	res = pushJsonbValue(state, WJB_END_OBJECT, NULL);
	if (escaped)
		res = pushJsonbValue(state, WJB_END_OBJECT, NULL);
	return res;
}

static JsonbValue *
push_array(JsonbParseState **state, PlistHolder *h, plist_t node)
{
	uint32		n = plist_array_get_size(node);
	plist_t    *items = palloc(sizeof(plist_t) * (n + 1));
	uint32		i;

	plist_array_new_iter(node, &h->iter);
	if (h->iter == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	for (i = 0; i < n; i++)
		plist_array_next_item(node, h->iter, &items[i]);
	free(h->iter);
	h->iter = NULL;

	pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
	for (i = 0; i < n; i++)
	{
		if (items[i] == NULL)
			elog(ERROR, "libplist array has fewer items than it reports");
		push_node(state, h, items[i], WJB_ELEM);
	}
	return pushJsonbValue(state, WJB_END_ARRAY, NULL);
}

/*
 * Push one plist node as the value (token WJB_VALUE or WJB_ELEM) of the
 * container being built, or as the root when it is a container.  Returns
 * what pushJsonbValue returned last: the finished value at the root.
 * Depth is bounded by mdm.max_nesting_depth, which the reader enforced;
 * check_stack_depth() guards anyway.
 */
static JsonbValue *
push_node(JsonbParseState **state, PlistHolder *h, plist_t node,
		  JsonbIteratorToken token)
{
	JsonbValue	v;

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();

	switch (plist_get_node_type(node))
	{
		case PLIST_DICT:
			return push_dict(state, h, node);
		case PLIST_ARRAY:
			return push_array(state, h, node);
		case PLIST_STRING:
			{
				uint64_t	len = 0;
				const char *s = plist_get_string_ptr(node, &len);

				count_bytes(h, len);
				return push_string(state, token, plist_text_to_server(s, (size_t) len));
			}
		case PLIST_BOOLEAN:
			{
				uint8_t		b = 0;

				plist_get_bool_val(node, &b);
				v.type = jbvBool;
				v.val.boolean = (b != 0);
				return pushJsonbValue(state, token, &v);
			}
		case PLIST_UINT:
			{
				uint64_t	u = 0;

				/* the reader admits only values that fit in int64 */
				plist_get_uint_val(node, &u);
				return push_numeric(state, token, int64_to_numeric((int64) u));
			}
		case PLIST_REAL:
			{
				double		d = 0;

				plist_get_real_val(node, &d);
				return push_numeric(state, token, real_to_numeric(d));
			}
		case PLIST_DATE:
			{
				int32_t		sec = 0;
				int32_t		usec = 0;
				char		buf[PLIST_DATE_TEXT_MAX];

				plist_date_get(node, &sec, &usec);
				plist_date_format(sec, usec, buf);
				return push_tagged(state, "$date", pstrdup(buf));
			}
		case PLIST_DATA:
			{
				uint64_t	len = 0;
				const char *p = plist_get_data_ptr(node, &len);
				int			enclen;
				char	   *enc;
				int			n;

				count_bytes(h, len);
				enclen = pg_b64_enc_len((int) len);
				enc = palloc(enclen + 1);
				n = pg_b64_encode(p, (int) len, enc, enclen);
				if (n < 0)
					elog(ERROR, "could not encode plist data as base64");
				enc[n] = '\0';
				return push_tagged(state, "$data", enc);
			}
		default:
			break;
	}
	elog(ERROR, "unexpected libplist node type %d",
		 (int) plist_get_node_type(node));
	return NULL;
}

/* The whole tree; a scalar root becomes a raw scalar jsonb. */
Jsonb *
plist_tree_to_jsonb(PlistHolder *h)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;
	plist_type	t = plist_get_node_type(h->tree);

	h->bytes = 0;

	if (t == PLIST_DICT || t == PLIST_ARRAY || t == PLIST_DATE || t == PLIST_DATA)
		res = push_node(&state, h, h->tree, WJB_VALUE);
	else
	{
		JsonbValue	arr;

		arr.type = jbvArray;
		arr.val.array.rawScalar = true;
		arr.val.array.nElems = 1;
		pushJsonbValue(&state, WJB_BEGIN_ARRAY, &arr);
		push_node(&state, h, h->tree, WJB_ELEM);
		res = pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	}
	return JsonbValueToJsonb(res);
}

/*
 * Read plist bytes into a libplist tree owned by a new memory context (a
 * child of the current one); raises on bad input.  The tree is freed when
 * that context goes, by plist_release() or by error cleanup.
 */
PlistHolder *
plist_parse(const char *data, size_t len)
{
	MemoryContext cxt;
	PlistHolder *h;
	PlistLimits limits;
	PlistError	err;

	check_message_size(len);

	h = holder_create("mdm plist tree", sizeof(PlistHolder), plist_holder_release, &cxt);
	h->cxt = cxt;

	limits.max_depth = mdm_max_nesting_depth;
	limits.max_nodes = mdm_max_plist_nodes;
	limits.max_bytes = mdm_max_message_bytes;
	if (!plist_read((const unsigned char *) data, len, &limits, &h->tree, &err))
		report_plist_error(&err);
	return h;
}

void
plist_release(PlistHolder *h)
{
	MemoryContextDelete(h->cxt);
}

Jsonb *
plist_bytes_to_jsonb(const char *data, size_t len)
{
	PlistHolder *h = plist_parse(data, len);
	Jsonb	   *result = plist_tree_to_jsonb(h);

	plist_release(h);
	return result;
}

/*
 * mdm.plist_to_jsonb(plist bytea) RETURNS jsonb
 */
PG_FUNCTION_INFO_V1(mdm_plist_to_jsonb);
Datum
mdm_plist_to_jsonb(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);

	/* no body (the empty 200 reply of mdm.connect, say): no value */
	if (VARSIZE_ANY_EXHDR(b) == 0)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(plist_bytes_to_jsonb(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b)));
}

/*
 * mdm_internal._plist_to_jsonb_strict(plist bytea) RETURNS jsonb
 *
 * Like mdm.plist_to_jsonb, but empty input is an error: for input that
 * must be a plist (a command or a profile given as bytes).
 */
PG_FUNCTION_INFO_V1(mdm_plist_to_jsonb_strict);
Datum
mdm_plist_to_jsonb_strict(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);

	PG_RETURN_JSONB_P(plist_bytes_to_jsonb(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b)));
}
