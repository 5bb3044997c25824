/*
 * fuzz_walk.c
 *		Walk a libplist tree the way the server's plist_jsonb.c does, and
 *		check what the reader layer promises about it.
 *
 * Like push_dict() and push_array() in plist_jsonb.c, a container is read
 * through a libplist iterator (for a dictionary, with a key copy per entry
 * that is freed at once), the iterator is freed, and only then are the
 * children visited.  Recursion is bounded: a container deeper than
 * max_depth is reported before it is entered.
 *
 * Checked here: every node has a type the server maps (no keys as values,
 * no UIDs), containers hold as many entries as they report, strings and
 * keys are valid UTF-8 without NUL (and counted when they hold a character
 * XML 1.0 cannot represent), reals are finite, dates lie in the
 * range the date helpers can write back, data survives base64, and neither
 * depth nor node count exceeds the limits.
 */
#include "fuzz_plist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Walk
{
	const PlistLimits *limits;
	TreeStats  *stats;
} Walk;

static void walk_node(Walk *w, plist_t node, int depth);

static void
count_node(Walk *w)
{
	w->stats->nodes++;
	FUZZ_CHECK(w->stats->nodes <= w->limits->max_nodes,
			   "tree has more than max_nodes = %lld nodes",
			   (long long) w->limits->max_nodes);
}

/* Whether valid UTF-8 text holds a character XML 1.0 cannot represent. */
static int
has_non_xml_char(const unsigned char *s, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
		if ((s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') ||
			(s[i] == 0xEF && i + 2 < len && s[i + 1] == 0xBF &&
			 (s[i + 2] == 0xBE || s[i + 2] == 0xBF)))
			return 1;
	return 0;
}

/* The expanded size the readers bound (PlistLimits.max_bytes). */
static void
count_bytes(Walk *w, uint64_t n)
{
	w->stats->bytes += (int64_t) n;
	FUZZ_CHECK(w->stats->bytes <= w->limits->max_bytes,
			   "tree holds more than max_bytes = %lld bytes of strings, keys and data",
			   (long long) w->limits->max_bytes);
}

static void
check_text(Walk *w, const char *s, size_t len, const char *what)
{
	size_t		bad = 0;

	FUZZ_CHECK(s != NULL, "%s without text", what);
	FUZZ_CHECK(strlen(s) == len, "%s of length %zu has a NUL at %zu",
			   what, len, strlen(s));
	FUZZ_CHECK(plist_utf8_valid((const unsigned char *) s, len, &bad),
			   "%s is not valid UTF-8 at byte %zu", what, bad);
	if (has_non_xml_char((const unsigned char *) s, len))
		w->stats->non_xml_text++;
	count_bytes(w, len);
}

/* Enter a container: it is one level deeper than its parent. */
static void
enter_container(Walk *w, int depth)
{
	FUZZ_CHECK(depth <= w->limits->max_depth,
			   "containers nested %d deep, max_depth = %d",
			   depth, w->limits->max_depth);
	if (depth > w->stats->depth)
		w->stats->depth = depth;
}

static void
walk_dict(Walk *w, plist_t node, int depth)
{
	uint32_t	n = plist_dict_get_size(node);
	plist_t    *vals = malloc(sizeof(plist_t) * ((size_t) n + 1));
	plist_dict_iter iter = NULL;
	char	   *key = NULL;
	plist_t		extra = NULL;
	uint32_t	i;

	FUZZ_CHECK(vals != NULL, "out of memory for %u values", n);
	plist_dict_new_iter(node, &iter);
	FUZZ_CHECK(iter != NULL, "plist_dict_new_iter returned no iterator");
	for (i = 0; i < n; i++)
	{
		plist_dict_next_item(node, iter, &key, &vals[i]);
		FUZZ_CHECK(key != NULL && vals[i] != NULL,
				   "dictionary reports %u entries but entry %u is missing", n, i);
		check_text(w, key, strlen(key), "dictionary key");
		free(key);
		key = NULL;
		count_node(w);			/* the key node */
	}
	plist_dict_next_item(node, iter, &key, &extra);
	FUZZ_CHECK(key == NULL && extra == NULL,
			   "dictionary has more entries than the %u it reports", n);
	free(iter);

	for (i = 0; i < n; i++)
	{
		FUZZ_CHECK(plist_get_parent(vals[i]) == node, "value %u has another parent", i);
		walk_node(w, vals[i], depth);
	}
	free(vals);
}

static void
walk_array(Walk *w, plist_t node, int depth)
{
	uint32_t	n = plist_array_get_size(node);
	plist_t    *items = malloc(sizeof(plist_t) * ((size_t) n + 1));
	plist_array_iter iter = NULL;
	plist_t		extra = NULL;
	uint32_t	i;

	FUZZ_CHECK(items != NULL, "out of memory for %u items", n);
	plist_array_new_iter(node, &iter);
	FUZZ_CHECK(iter != NULL, "plist_array_new_iter returned no iterator");
	for (i = 0; i < n; i++)
	{
		plist_array_next_item(node, iter, &items[i]);
		FUZZ_CHECK(items[i] != NULL,
				   "array reports %u items but item %u is missing", n, i);
	}
	plist_array_next_item(node, iter, &extra);
	FUZZ_CHECK(extra == NULL, "array has more items than the %u it reports", n);
	free(iter);

	for (i = 0; i < n; i++)
	{
		FUZZ_CHECK(plist_get_parent(items[i]) == node, "item %u has another parent", i);
		walk_node(w, items[i], depth);
	}
	free(items);
}

static void
walk_date(plist_t node)
{
	int32_t		sec = 0;
	int32_t		usec = -1;
	char		text[PLIST_DATE_TEXT_MAX];

	plist_date_get(node, &sec, &usec);
	FUZZ_CHECK(usec >= 0 && usec < 1000000, "date has %d microseconds", usec);
	plist_date_format(sec, usec, text);
	fuzz_check_date_value(sec, usec, text);
}

static void
walk_data(Walk *w, plist_t node)
{
	uint64_t	len = UINT64_MAX;
	const char *p = plist_get_data_ptr(node, &len);

	FUZZ_CHECK(len != UINT64_MAX, "data node without a length");
	FUZZ_CHECK(p != NULL || len == 0, "data node of %llu bytes without bytes",
			   (unsigned long long) len);
	fuzz_check_base64(p, (size_t) len);
	count_bytes(w, len);
}

/* Visit one node that sits "depth" containers below the top. */
static void
walk_node(Walk *w, plist_t node, int depth)
{
	count_node(w);
	switch (plist_get_node_type(node))
	{
		case PLIST_DICT:
			enter_container(w, depth + 1);
			walk_dict(w, node, depth + 1);
			return;
		case PLIST_ARRAY:
			enter_container(w, depth + 1);
			walk_array(w, node, depth + 1);
			return;
		case PLIST_STRING:
			{
				uint64_t	len = 0;
				const char *s = plist_get_string_ptr(node, &len);

				check_text(w, s, (size_t) len, "string");
				return;
			}
		case PLIST_BOOLEAN:
			{
				uint8_t		b = 2;

				plist_get_bool_val(node, &b);
				FUZZ_CHECK(b == 0 || b == 1, "boolean with value %u", b);
				return;
			}
		case PLIST_UINT:
			{
				uint64_t	u = 0;

				plist_get_uint_val(node, &u);
				return;
			}
		case PLIST_REAL:
			{
				double		d = NAN;

				plist_get_real_val(node, &d);
				FUZZ_CHECK(isfinite(d), "real %g is not finite", d);
				return;
			}
		case PLIST_DATE:
			walk_date(node);
			return;
		case PLIST_DATA:
			walk_data(w, node);
			return;
		default:
			break;
	}
	FUZZ_CHECK(0, "node of type %d, which the server does not map",
			   (int) plist_get_node_type(node));
}

void
fuzz_walk_tree(plist_t tree, const PlistLimits *limits, TreeStats *stats)
{
	Walk		w;

	stats->depth = 0;
	stats->nodes = 0;
	stats->bytes = 0;
	stats->non_xml_text = 0;
	w.limits = limits;
	w.stats = stats;
	FUZZ_CHECK(tree != NULL, "no tree to walk");
	FUZZ_CHECK(plist_get_parent(tree) == NULL, "the root has a parent");
	walk_node(&w, tree, 0);
}
