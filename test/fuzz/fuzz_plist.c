/*
 * fuzz_plist.c
 *		libFuzzer target for the server-independent plist reader
 *		(src/plist_read.c, src/plist_bscan.c, src/plist_xml.c) and the
 *		message decoder (src/mdm_message.c).
 *
 * Every message a device sends reaches this layer before anything else, so
 * it must refuse hostile bytes cleanly: no crash, no hang, no leak, and
 * never a tree the server cannot convert.  The target is built outside the
 * server (make fuzz; see docs/fuzzing.md) with AddressSanitizer,
 * UndefinedBehaviorSanitizer and LeakSanitizer, and links libplist itself.
 *
 * For each input it runs:
 *
 *   - plist_read() with the server's default limits (max_depth 64,
 *     max_nodes 100000, max_bytes 1 MB), then walks the tree the way plist_jsonb.c does
 *     (fuzz_walk.c), decodes it with mdm_message_decode() as a check-in
 *     and as a command report (fuzz_message.c), and frees it; the trees
 *     plist_read_xml() returns below are walked and decoded the same way;
 *   - plist_bscan() alone, and plist_read_xml() alone (on any input, not
 *     only on what looks like XML), walking what the latter returns;
 *   - when the read succeeded, the same read again with limits set exactly
 *     to the depth, node count and expanded size of the tree, and one
 *     below each;
 *   - plist_read_xml() on short inputs wrapped as the content of each
 *     scalar element and of a dictionary key;
 *   - plist_date_parse() and plist_base64_decode() on the whole input and
 *     on a slice of it chosen by its first two bytes (fuzz_text.c).
 *
 * Invariants (a violation aborts with a message, which libFuzzer reports
 * as a crash):
 *
 *   - success: a non-NULL tree and err.kind == PLIST_OK; failure: a NULL
 *     tree, a kind other than PLIST_OK and a non-empty message;
 *   - every string and key in a tree is valid UTF-8 without NUL (and, in
 *     a tree read from XML, only of characters XML 1.0 allows), reals are
 *     finite, no node is of a type the server does not map, containers
 *     hold as many entries as they report;
 *   - decoding a message fails with PLIST_ERR_MESSAGE and a message, or
 *     returns IDs that come from the tree and follow the identity rules
 *     (fuzz_message.c);
 *   - the tree is at most max_depth containers deep, has at most
 *     max_nodes nodes and at most max_bytes bytes of strings, keys and
 *     data (every shared reference of a binary plist counted as the copy
 *     libplist makes), and those limits are exact: the read succeeds with
 *     limits equal to the tree's depth, node count and size and fails with
 *     PLIST_ERR_DEPTH, PLIST_ERR_NODES or PLIST_ERR_BYTES one below;
 *   - plist_read() agrees with plist_bscan() on binary input (whatever the
 *     pre-scan accepts, libplist reads) and with plist_read_xml() on XML;
 *   - dates and data in a tree, and whatever plist_date_parse() and
 *     plist_base64_decode() accept, round-trip through the helpers the
 *     server writes them back with.
 */
#include "fuzz_plist.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The defaults of mdm.max_nesting_depth, mdm.max_plist_nodes and
 * mdm.max_message_bytes (which also bounds the expanded size).
 */
static const PlistLimits server_limits = {64, 100000, 1024 * 1024};

/* Which reader a check runs. */
typedef enum Reader
{
	READ_ANY,					/* plist_read */
	READ_XML					/* plist_read_xml */
} Reader;

void
fuzz_fail(const char *file, int line, const char *cond, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "\n==fuzz_plist== invariant violated at %s:%d: %s\n==fuzz_plist== ",
			file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

static const char *
reader_name(Reader reader)
{
	return reader == READ_XML ? "plist_read_xml" : "plist_read";
}

/*
 * Run one reader and check what it returned.  On success the tree is
 * returned in *tree (the caller frees it); on failure *err holds the error.
 */
static int
run_reader(Reader reader, const uint8_t *buf, size_t len,
		   const PlistLimits *limits, plist_t *tree, PlistError *err)
{
	static char not_set;
	int			ok;

	*tree = (plist_t) &not_set;
	memset(err, 0, sizeof(*err));
	if (reader == READ_XML)
		ok = plist_read_xml(buf, len, limits, tree, err);
	else
		ok = plist_read(buf, len, limits, tree, err);

	FUZZ_CHECK(ok == 0 || ok == 1, "%s returned %d", reader_name(reader), ok);
	if (ok)
	{
		FUZZ_CHECK(*tree != NULL && *tree != (plist_t) &not_set,
				   "%s succeeded without a tree", reader_name(reader));
		FUZZ_CHECK(err->kind == PLIST_OK,
				   "%s succeeded with error kind %d (%s)",
				   reader_name(reader), (int) err->kind, err->message);
	}
	else
	{
		FUZZ_CHECK(*tree == NULL, "%s failed but left a tree", reader_name(reader));
		FUZZ_CHECK(err->kind != PLIST_OK,
				   "%s failed with error kind PLIST_OK", reader_name(reader));
		FUZZ_CHECK(err->message[0] != '\0',
				   "%s failed (kind %d) without a message",
				   reader_name(reader), (int) err->kind);
	}
	return ok;
}

/* Read with the given limits, and expect the given outcome. */
static void
expect_outcome(Reader reader, const uint8_t *buf, size_t len, int max_depth,
			   int64_t max_nodes, int64_t max_bytes, PlistErrorKind expected)
{
	PlistLimits limits;
	PlistError	err;
	plist_t		tree;
	int			ok;

	limits.max_depth = max_depth;
	limits.max_nodes = max_nodes;
	limits.max_bytes = max_bytes;
	ok = run_reader(reader, buf, len, &limits, &tree, &err);
	plist_free(tree);
	FUZZ_CHECK(ok == (expected == PLIST_OK) && err.kind == expected,
			   "%s with max_depth %d, max_nodes %lld, max_bytes %lld: kind %d, expected %d (%s: %s)",
			   reader_name(reader), max_depth, (long long) max_nodes, (long long) max_bytes,
			   (int) err.kind, (int) expected, err.message, err.detail);
}

/*
 * The limits are exact: a tree of depth D, N nodes and B bytes of strings,
 * keys and data is read with limits (D, N, B) and refused with
 * (D - 1, N, B), (D, N - 1, B) and (D, N, B - 1).
 */
static void
check_tight_limits(Reader reader, const uint8_t *buf, size_t len,
				   const TreeStats *stats)
{
	expect_outcome(reader, buf, len, stats->depth, stats->nodes, stats->bytes,
				   PLIST_OK);
	if (stats->depth > 0)
		expect_outcome(reader, buf, len, stats->depth - 1, stats->nodes,
					   stats->bytes, PLIST_ERR_DEPTH);
	expect_outcome(reader, buf, len, stats->depth, stats->nodes - 1,
				   stats->bytes, PLIST_ERR_NODES);
	if (stats->bytes > 0)
		expect_outcome(reader, buf, len, stats->depth, stats->nodes,
					   stats->bytes - 1, PLIST_ERR_BYTES);
}

/*
 * Read with the server's limits, walk, decode as both kinds of message and
 * free; returns the outcome.
 */
static int
read_walk_free(Reader reader, const uint8_t *buf, size_t len, PlistError *err)
{
	plist_t		tree;
	TreeStats	stats;

	if (!run_reader(reader, buf, len, &server_limits, &tree, err))
		return 0;
	fuzz_walk_tree(tree, &server_limits, &stats);
	if (reader == READ_XML || plist_detect_format(buf, len) == PLIST_FORMAT_XML)
		FUZZ_CHECK(stats.non_xml_text == 0,
				   "%s returned %lld strings or keys with characters XML 1.0 does not allow",
				   reader_name(reader), (long long) stats.non_xml_text);
	fuzz_check_messages(tree);
	plist_free(tree);
	check_tight_limits(reader, buf, len, &stats);
	return 1;
}

/* The binary pre-scan alone, and its agreement with plist_read. */
static void
check_bscan(const uint8_t *buf, size_t len, int read_ok, const PlistError *read_err)
{
	PlistError	err;
	int			ok;

	memset(&err, 0, sizeof(err));
	ok = plist_bscan(buf, len, &server_limits, &err);
	FUZZ_CHECK(ok == 0 || ok == 1, "plist_bscan returned %d", ok);
	if (!ok)
	{
		FUZZ_CHECK(err.kind != PLIST_OK && err.message[0] != '\0',
				   "plist_bscan failed without an error (kind %d)", (int) err.kind);
		if (plist_detect_format(buf, len) == PLIST_FORMAT_BINARY)
			FUZZ_CHECK(!read_ok && read_err->kind == err.kind,
					   "plist_bscan refused (kind %d) what plist_read returned with kind %d",
					   (int) err.kind, (int) read_err->kind);
		return;
	}
	FUZZ_CHECK(err.kind == PLIST_OK, "plist_bscan succeeded with kind %d", (int) err.kind);
	FUZZ_CHECK(read_ok,
			   "plist_bscan accepted what plist_read refused: %s (%s)",
			   read_err->message, read_err->detail);
}

/* plist_read_xml alone, on any input, and its agreement with plist_read. */
static void
check_read_xml(const uint8_t *buf, size_t len, int read_ok, const PlistError *read_err)
{
	PlistError	err;
	int			ok = read_walk_free(READ_XML, buf, len, &err);

	if (plist_detect_format(buf, len) == PLIST_FORMAT_XML)
		FUZZ_CHECK(ok == read_ok && err.kind == read_err->kind,
				   "plist_read_xml gave kind %d where plist_read gave %d",
				   (int) err.kind, (int) read_err->kind);
}

/*
 * The scalar parsers straight from the input: a short input is also read as
 * the content of each scalar element and of a dictionary key.  Mutating
 * whole documents rarely reaches into their values.
 */
static void
check_scalar_elements(const uint8_t *buf, size_t len)
{
	static const char *const wrappers[][2] = {
		{"<string>", "</string>"},
		{"<integer>", "</integer>"},
		{"<real>", "</real>"},
		{"<date>", "</date>"},
		{"<data>", "</data>"},
		{"<dict><key>", "</key><true/></dict>"}
	};
	size_t		i;

	if (len > 256)
		return;
	for (i = 0; i < sizeof(wrappers) / sizeof(wrappers[0]); i++)
	{
		size_t		open_len = strlen(wrappers[i][0]);
		size_t		close_len = strlen(wrappers[i][1]);
		size_t		doc_len = open_len + len + close_len;
		uint8_t    *doc = malloc(doc_len);
		PlistError	err;

		FUZZ_CHECK(doc != NULL, "out of memory for %zu bytes", doc_len);
		memcpy(doc, wrappers[i][0], open_len);
		if (len > 0)
			memcpy(doc + open_len, buf, len);
		memcpy(doc + open_len + len, wrappers[i][1], close_len);
		read_walk_free(READ_XML, doc, doc_len, &err);
		free(doc);
	}
}

/* The date and base64 helpers on the input and on a slice of it. */
static void
check_text_helpers(const uint8_t *buf, size_t len)
{
	size_t		start;
	size_t		end;

	fuzz_check_date_text((const char *) buf, len);
	fuzz_check_base64_text((const char *) buf, len);
	if (len < 2)
		return;
	start = buf[0] % len;
	end = start + buf[1];
	if (end > len)
		end = len;
	fuzz_check_date_text((const char *) buf + start, end - start);
	fuzz_check_base64_text((const char *) buf + start, end - start);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	PlistError	read_err;
	int			read_ok;

	read_ok = read_walk_free(READ_ANY, data, size, &read_err);
	check_bscan(data, size, read_ok, &read_err);
	check_read_xml(data, size, read_ok, &read_err);
	check_scalar_elements(data, size);
	check_text_helpers(data, size);
	return 0;
}
