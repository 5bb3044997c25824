/*
 * plist_bscan.c
 *		Iterative pre-scan of binary plists ("bplist00"), run before libplist
 *		is given the bytes.
 *
 * libplist 2.2 reads binary plists recursively without a depth limit (a
 * 900 KB file of 100,000 nested arrays crashes it) and copies an object each
 * time it is referenced, so 204 bytes of arrays that each reference the
 * next one twice expand to 2^23 nodes, and 69 KB holding one 64,000-byte
 * data object referenced 5,000 times from an array expand to 320 MB.  This
 * scan walks the object graph once, without recursion, and refuses the
 * input unless:
 *
 *   - the trailer, offset table and every object lie inside the buffer;
 *   - every object is of a type that MDM uses and libplist reads faithfully
 *     (no null/fill/UID/set objects, integers that fit in int64, finite
 *     reals, dates libplist can hand back, ASCII strings without NUL or
 *     high bytes, well-formed UTF-16, string dictionary keys);
 *   - there is no reference cycle;
 *   - the nesting depth, the node count and the expanded size (the bytes
 *     of every string, key and data value, in UTF-8, once each shared
 *     reference is a copy) stay within the limits.
 *
 * Each object's subtree height, expanded node count and expanded size are
 * computed once and memoised, so the scan is linear in the number of
 * references.
 */
#include "plist_read.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BPLIST_HEADER_LEN 8
#define BPLIST_TRAILER_LEN 32

/* What the scan knows about one object. */
typedef struct ObjInfo
{
	uint8_t		state;			/* SCAN_NEW, SCAN_ACTIVE, SCAN_DONE */
	uint8_t		is_string;		/* usable as a dictionary key */
	uint16_t	height;			/* containers nested inside, itself included */
	uint32_t	nodes;			/* libplist nodes after expansion */
	uint32_t	bytes;			/* string, key and data bytes after expansion */
} ObjInfo;

enum
{
	SCAN_NEW = 0,
	SCAN_ACTIVE,
	SCAN_DONE
};

/* Decoded header of a container object. */
typedef struct Container
{
	uint64_t	index;			/* object number */
	uint64_t	nrefs;			/* references that follow (dict: 2 * count) */
	size_t		refs_at;		/* offset of the first reference */
	int			is_dict;
	uint64_t	next;			/* next reference to visit */
} Container;

typedef struct BScan
{
	const unsigned char *buf;
	size_t		len;
	size_t		objects_end;	/* the offset table starts here */
	size_t		table_at;
	int			offset_size;
	int			ref_size;
	uint64_t	num_objects;
	ObjInfo    *info;
	Container  *stack;
	const PlistLimits *limits;
	PlistError *err;
} BScan;

static uint64_t
read_be(const unsigned char *p, int n)
{
	uint64_t	v = 0;
	int			i;

	for (i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

static int
fail_malformed(BScan *s, const char *detail_fmt, uint64_t a, uint64_t b)
{
	return plist_fail(s->err, PLIST_ERR_BINARY, "invalid binary plist",
					  detail_fmt, (unsigned long long) a, (unsigned long long) b);
}

/* Where object number idx starts. */
static int
object_offset(BScan *s, uint64_t idx, size_t *at)
{
	uint64_t	off = read_be(s->buf + s->table_at + idx * s->offset_size,
							  s->offset_size);

	if (off < BPLIST_HEADER_LEN || off >= s->objects_end)
		return fail_malformed(s, "Object %llu starts at offset %llu, outside the object area.",
							  idx, off);
	*at = (size_t) off;
	return 1;
}

/*
 * Read the element count of a variable-length object whose marker is at
 * "at"; *count receives it and *body the offset of its first byte.
 */
static int
object_count(BScan *s, uint64_t idx, size_t at, uint64_t *count, size_t *body)
{
	unsigned	info = s->buf[at] & 0x0F;
	size_t		p = at + 1;

	if (info != 0x0F)
	{
		*count = info;
		*body = p;
		return 1;
	}
	if (p >= s->objects_end || (s->buf[p] & 0xF0) != 0x10 || (s->buf[p] & 0x0F) > 3)
		return fail_malformed(s, "Object %llu has a malformed length (marker 0x%02llx).",
							  idx, p < s->objects_end ? s->buf[p] : 0);
	{
		int			nbytes = 1 << (s->buf[p] & 0x0F);

		if (s->objects_end - (p + 1) < (size_t) nbytes)
			return fail_malformed(s, "Object %llu's length runs past the object area (%llu bytes).",
								  idx, (uint64_t) nbytes);
		*count = read_be(s->buf + p + 1, nbytes);
		*body = p + 1 + nbytes;
	}
	return 1;
}

/* Check that [body, body + nbytes) lies in the object area. */
static int
fits(BScan *s, uint64_t idx, size_t body, uint64_t nbytes)
{
	if (body > s->objects_end || nbytes > (uint64_t) (s->objects_end - body))
		return fail_malformed(s, "Object %llu runs past the object area (%llu bytes).",
							  idx, nbytes);
	return 1;
}

static int
check_int(BScan *s, uint64_t idx, size_t at)
{
	unsigned	info = s->buf[at] & 0x0F;

	if (info > 4)
		return fail_malformed(s, "Integer object %llu has an invalid size code %llu.",
							  idx, info);
	if (!fits(s, idx, at + 1, 1u << info))
		return 0;
	if (info == 4)
	{
		/* 128-bit: libplist keeps the low 64 bits; accept only int64 values */
		uint64_t	hi = read_be(s->buf + at + 1, 8);
		uint64_t	lo = read_be(s->buf + at + 9, 8);

		if (!((hi == 0 && lo <= (uint64_t) INT64_MAX) ||
			  (hi == UINT64_MAX && lo > (uint64_t) INT64_MAX)))
			return plist_fail(s->err, PLIST_ERR_INT_RANGE,
							  "plist integer out of range",
							  "Object %llu does not fit in a signed 64-bit integer.",
							  (unsigned long long) idx);
	}
	return 1;
}

static double
read_double(const unsigned char *p, int nbytes)
{
	uint64_t	bits = read_be(p, nbytes);

	if (nbytes == 4)
	{
		uint32_t	b32 = (uint32_t) bits;
		float		f;

		memcpy(&f, &b32, sizeof(f));
		return f;
	}
	else
	{
		double		d;

		memcpy(&d, &bits, sizeof(d));
		return d;
	}
}

static int
check_real_or_date(BScan *s, uint64_t idx, size_t at, int is_date)
{
	unsigned	info = s->buf[at] & 0x0F;
	double		v;

	if (is_date ? info != 3 : (info != 2 && info != 3))
		return fail_malformed(s, "Real or date object %llu has an invalid size code %llu.",
							  idx, info);
	if (!fits(s, idx, at + 1, 1u << info))
		return 0;
	v = read_double(s->buf + at + 1, 1 << info);
	if (!isfinite(v))
		return plist_fail(s->err, is_date ? PLIST_ERR_DATE_RANGE : PLIST_ERR_REAL_RANGE,
						  is_date ? "plist date out of range" : "plist real value out of range",
						  "Object %llu is not a finite number.", (unsigned long long) idx);

	/*
	 * The range plist_date_parse accepts, whole seconds from INT32_MIN to
	 * INT32_MAX, so that every date read can be written back: libplist
	 * would also hold a fraction of a second after INT32_MAX.
	 */
	if (is_date && (v < (double) INT32_MIN || v > (double) INT32_MAX ||
					(v < 0 && v > -1.0)))
		return plist_fail(s->err, PLIST_ERR_DATE_RANGE, "plist date out of range",
						  "Dates from 1932-12-13T20:45:52Z to 2069-01-19T03:14:07Z are supported, except the second before 2001-01-01T00:00:00Z; object %llu is not.",
						  (unsigned long long) idx);
	return 1;
}

static int
check_ascii(BScan *s, uint64_t idx, size_t body, uint64_t count)
{
	uint64_t	i;

	for (i = 0; i < count; i++)
	{
		unsigned char c = s->buf[body + i];

		if (c == 0 || c >= 0x80)
			return plist_fail(s->err, PLIST_ERR_ENCODING,
							  c == 0 ? "plist string contains a NUL character"
							  : "invalid byte in ASCII plist string",
							  "String object %llu has byte 0x%02x at position %llu.",
							  (unsigned long long) idx, c, (unsigned long long) i);
	}
	return 1;
}

static int
check_utf16(BScan *s, uint64_t idx, size_t body, uint64_t count,
			uint64_t *utf8_len)
{
	uint64_t	i;
	uint64_t	n = 0;

	/* libplist 2.2 cannot convert an empty UTF-16 string */
	if (count == 0)
		return fail_malformed(s, "String object %llu is an empty UTF-16 string (marker 0x%02llx), which libplist cannot read.",
							  idx, 0x60);
	for (i = 0; i < count; i++)
	{
		unsigned	u = (unsigned) read_be(s->buf + body + 2 * i, 2);

		if (u == 0)
			return plist_fail(s->err, PLIST_ERR_ENCODING,
							  "plist string contains a NUL character",
							  "String object %llu has U+0000 at position %llu.",
							  (unsigned long long) idx, (unsigned long long) i);
		if (u >= 0xD800 && u <= 0xDBFF)
		{
			unsigned	low = i + 1 < count ?
				(unsigned) read_be(s->buf + body + 2 * (i + 1), 2) : 0;

			if (low < 0xDC00 || low > 0xDFFF)
				goto bad;
			i++;
			n += 4;
		}
		else if (u >= 0xDC00 && u <= 0xDFFF)
			goto bad;
		else
			n += u < 0x80 ? 1 : u < 0x800 ? 2 : 3;
	}
	*utf8_len = n;
	return 1;

bad:
	return plist_fail(s->err, PLIST_ERR_ENCODING, "invalid UTF-16 in plist string",
					  "String object %llu has an unpaired surrogate at position %llu.",
					  (unsigned long long) idx, (unsigned long long) i);
}

/*
 * Record the bytes a string or data object costs each time it is copied
 * (UTF-8 for strings); a single copy may already be too much.
 */
static int
leaf_bytes(BScan *s, ObjInfo *oi, uint64_t nbytes)
{
	if (!plist_check_bytes(s->limits, nbytes > (uint64_t) INT64_MAX ?
						   INT64_MAX : (int64_t) nbytes, s->err))
		return 0;
	oi->bytes = (uint32_t) nbytes;
	return 1;
}

/*
 * Validate a leaf object, or decode a container's header into *c.
 * Returns 1 on success; *is_container tells which it was.
 */
static int
check_object(BScan *s, uint64_t idx, int *is_container, Container *c)
{
	size_t		at = 0;
	unsigned	type;
	uint64_t	count;
	size_t		body;
	ObjInfo    *oi = &s->info[idx];
	uint64_t	utf8_len = 0;

	if (!object_offset(s, idx, &at))
		return 0;
	type = s->buf[at] >> 4;
	*is_container = 0;
	oi->is_string = 0;
	oi->bytes = 0;

	switch (type)
	{
		case 0x0:
			if (s->buf[at] == 0x08 || s->buf[at] == 0x09)
				return 1;
			return plist_fail(s->err, PLIST_ERR_UNSUPPORTED,
							  "unsupported object in binary plist",
							  "Object %llu is a null or fill object (marker 0x%02x).",
							  (unsigned long long) idx, s->buf[at]);
		case 0x1:
			return check_int(s, idx, at);
		case 0x2:
			return check_real_or_date(s, idx, at, 0);
		case 0x3:
			return check_real_or_date(s, idx, at, 1);
		case 0x4:
			if (!(object_count(s, idx, at, &count, &body) &&
				  fits(s, idx, body, count)))
				return 0;
			return leaf_bytes(s, oi, count);
		case 0x5:
			oi->is_string = 1;
			if (!(object_count(s, idx, at, &count, &body) &&
				  fits(s, idx, body, count) &&
				  check_ascii(s, idx, body, count)))
				return 0;
			return leaf_bytes(s, oi, count);
		case 0x6:
			oi->is_string = 1;
			if (!object_count(s, idx, at, &count, &body))
				return 0;
			if (count > (uint64_t) s->len)
				return fits(s, idx, body, UINT64_MAX);
			if (!(fits(s, idx, body, 2 * count) &&
				  check_utf16(s, idx, body, count, &utf8_len)))
				return 0;
			return leaf_bytes(s, oi, utf8_len);
		case 0x8:
			return plist_fail(s->err, PLIST_ERR_UNSUPPORTED,
							  "plist UID values are not supported",
							  "Object %llu is a keyed-archiver UID, which MDM messages never contain.",
							  (unsigned long long) idx);
		case 0xC:
			return plist_fail(s->err, PLIST_ERR_UNSUPPORTED,
							  "unsupported object in binary plist",
							  "Object %llu is a set, which property lists do not use.",
							  (unsigned long long) idx);
		case 0xA:
		case 0xD:
			if (!object_count(s, idx, at, &count, &body))
				return 0;
			c->is_dict = (type == 0xD);
			if (count > (uint64_t) s->len)
				return fits(s, idx, body, UINT64_MAX);
			c->nrefs = c->is_dict ? 2 * count : count;
			if (!fits(s, idx, body, c->nrefs * (uint64_t) s->ref_size))
				return 0;
			c->index = idx;
			c->refs_at = body;
			c->next = 0;
			*is_container = 1;
			return 1;
		default:
			return plist_fail(s->err, PLIST_ERR_BINARY, "invalid binary plist",
							  "Object %llu has the unrecognized marker 0x%02x.",
							  (unsigned long long) idx, s->buf[at]);
	}
}

static int
check_trailer(BScan *s)
{
	const unsigned char *t;
	uint64_t	root;
	uint64_t	table_at;

	if (s->len < BPLIST_HEADER_LEN + 1 + 1 + BPLIST_TRAILER_LEN)
		return fail_malformed(s, "The input has %llu bytes; a binary plist needs at least %llu.",
							  s->len, BPLIST_HEADER_LEN + 2 + BPLIST_TRAILER_LEN);
	/* plist_from_bin takes a uint32_t length: it would read another trailer */
	if (s->len > UINT32_MAX)
		return plist_fail(s->err, PLIST_ERR_UNSUPPORTED,
						  "binary plist too large",
						  "It has %zu bytes; libplist reads at most 4 GB.", s->len);
	if (memcmp(s->buf, "bplist00", BPLIST_HEADER_LEN) != 0)
		return plist_fail(s->err, PLIST_ERR_UNSUPPORTED,
						  "unsupported binary plist version",
						  "Only \"bplist00\" is read; the input starts with \"%.8s\".",
						  (const char *) s->buf);

	t = s->buf + s->len - BPLIST_TRAILER_LEN;
	s->offset_size = t[6];
	s->ref_size = t[7];
	s->num_objects = read_be(t + 8, 8);
	root = read_be(t + 16, 8);
	table_at = read_be(t + 24, 8);

	if (s->offset_size < 1 || s->offset_size > 8 || s->ref_size < 1 || s->ref_size > 8)
		return fail_malformed(s, "The trailer gives offset size %llu and reference size %llu; each must be 1 to 8.",
							  s->offset_size, s->ref_size);
	if (s->num_objects == 0 || s->num_objects > s->len)
		return fail_malformed(s, "The trailer declares %llu objects in %llu bytes.",
							  s->num_objects, s->len);
	if (root >= s->num_objects)
		return fail_malformed(s, "The root object %llu is not among the %llu objects.",
							  root, s->num_objects);
	if (table_at <= BPLIST_HEADER_LEN ||
		table_at > s->len - BPLIST_TRAILER_LEN ||
		s->num_objects * s->offset_size > s->len - BPLIST_TRAILER_LEN - table_at)
		return fail_malformed(s, "The offset table at %llu for %llu objects does not fit before the trailer.",
							  table_at, s->num_objects);
	s->table_at = (size_t) table_at;
	s->objects_end = (size_t) table_at;
	return 1;
}

/* Push container c on the scan stack after checking the depth limit. */
static int
push_container(BScan *s, int *sp, const Container *c)
{
	if (*sp >= s->limits->max_depth)
		return plist_fail(s->err, PLIST_ERR_DEPTH, "plist nesting too deep",
						  "Containers are nested more than %d levels deep (mdm.max_nesting_depth).",
						  s->limits->max_depth);
	s->info[c->index].state = SCAN_ACTIVE;
	s->stack[(*sp)++] = *c;
	return 1;
}

/* Check an expanded node count against the limit. */
static int
check_nodes(BScan *s, int64_t nodes)
{
	if (nodes > s->limits->max_nodes)
		return plist_fail(s->err, PLIST_ERR_NODES, "plist has too many nodes",
						  "It expands to more than %lld nodes (mdm.max_plist_nodes).",
						  (long long) s->limits->max_nodes);
	return 1;
}

/* Add a finished child's counts to the container on top of the stack. */
static int
add_child(BScan *s, ObjInfo *parent, const ObjInfo *child, int depth_of_parent)
{
	int64_t		nodes = (int64_t) parent->nodes + child->nodes;
	int64_t		bytes = (int64_t) parent->bytes + child->bytes;

	if (child->height + depth_of_parent > s->limits->max_depth)
		return plist_fail(s->err, PLIST_ERR_DEPTH, "plist nesting too deep",
						  "Containers are nested more than %d levels deep (mdm.max_nesting_depth).",
						  s->limits->max_depth);
	if (child->height + 1 > parent->height)
		parent->height = (uint16_t) (child->height + 1);
	if (!check_nodes(s, nodes) || !plist_check_bytes(s->limits, bytes, s->err))
		return 0;
	/* both fit: plist_bscan() caps the limits at UINT32_MAX */
	parent->nodes = (uint32_t) nodes;
	parent->bytes = (uint32_t) bytes;
	return 1;
}

static int
scan_graph(BScan *s, uint64_t root)
{
	int			sp = 0;
	int			is_container;
	Container	c;

	if (!check_object(s, root, &is_container, &c))
		return 0;
	/* the root is a node too, even when it is all there is */
	s->info[root].nodes = 1;
	if (!check_nodes(s, 1))
		return 0;
	if (!is_container)
	{
		s->info[root].state = SCAN_DONE;
		return 1;
	}
	s->info[root].height = 1;
	if (!push_container(s, &sp, &c))
		return 0;

	while (sp > 0)
	{
		Container  *top = &s->stack[sp - 1];
		ObjInfo    *ti = &s->info[top->index];
		uint64_t	child;
		ObjInfo    *ci;
		int			is_key;

		if (top->next == top->nrefs)
		{
			ti->state = SCAN_DONE;
			sp--;
			if (sp > 0 && !add_child(s, &s->info[s->stack[sp - 1].index], ti, sp))
				return 0;
			continue;
		}

		/* dictionaries list all keys first, then all values */
		is_key = top->is_dict && top->next < top->nrefs / 2;
		child = read_be(s->buf + top->refs_at + top->next * s->ref_size, s->ref_size);
		top->next++;
		if (child >= s->num_objects)
			return fail_malformed(s, "Object %llu refers to object %llu, which does not exist.",
								  top->index, child);
		ci = &s->info[child];

		if (ci->state == SCAN_ACTIVE)
			return fail_malformed(s, "Object %llu refers back to its ancestor %llu (a reference cycle).",
								  top->index, child);
		if (ci->state == SCAN_NEW)
		{
			if (!check_object(s, child, &is_container, &c))
				return 0;
			ci->nodes = 1;
			if (is_container)
			{
				if (is_key)
					return fail_malformed(s, "Dictionary %llu has the container %llu as a key.",
										  top->index, child);
				ci->height = 1;
				if (!push_container(s, &sp, &c))
					return 0;
				continue;
			}
			ci->state = SCAN_DONE;
		}
		if (is_key && !ci->is_string)
			return fail_malformed(s, "Dictionary %llu has the non-string object %llu as a key.",
								  top->index, child);
		if (!add_child(s, ti, ci, sp))
			return 0;
	}
	return 1;
}

int
plist_bscan(const unsigned char *buf, size_t len, const PlistLimits *limits,
			PlistError *err)
{
	BScan		s;
	PlistLimits capped = *limits;
	int			ok;

	/* per-object counts are 32-bit; the input is under 4 GB anyway */
	if (capped.max_nodes > (int64_t) UINT32_MAX)
		capped.max_nodes = (int64_t) UINT32_MAX;
	if (capped.max_bytes > (int64_t) UINT32_MAX)
		capped.max_bytes = (int64_t) UINT32_MAX;
	memset(&s, 0, sizeof(s));
	s.buf = buf;
	s.len = len;
	s.limits = &capped;
	s.err = err;

	if (!check_trailer(&s))
		return 0;
	s.info = calloc((size_t) s.num_objects, sizeof(ObjInfo));
	s.stack = malloc(sizeof(Container) * (size_t) (limits->max_depth + 1));
	if (s.info == NULL || s.stack == NULL)
	{
		free(s.info);
		free(s.stack);
		return plist_fail(err, PLIST_ERR_NOMEM, "out of memory",
						  "Failed to allocate the scan state for %llu objects.",
						  (unsigned long long) s.num_objects);
	}
	ok = scan_graph(&s, read_be(buf + len - BPLIST_TRAILER_LEN + 16, 8));
	free(s.info);
	free(s.stack);
	return ok;
}
