/*
 * raw_message.c
 *		mdm.raw_message: a message as received, kept packed.
 *
 * The check-in log (mdm.checkin_messages.body) keeps every check-in as it
 * arrived.  A check-in is a small XML plist (most are under 1 kB), about
 * two thirds of it the same prologue, keys and tags as every other; LZ4 (as
 * TOAST compresses) keeps about two thirds of its bytes, since little
 * repeats inside one message.  Here those common parts are each replaced by
 * one or two bytes from a fixed table, which leaves mostly the values that
 * are the device's own: about a third of the LZ4 size, at a few
 * instructions a byte.  A message the table does little for (another
 * formatting, a binary plist) is compressed with pglz instead, when that
 * saves more.
 *
 * The type reads as the bytes as received: its text and binary forms are
 * bytea's (output and send unpack, input and receive pack), and it casts
 * implicitly to bytea (mdm.raw_message_bytes), so that convert_from(body,
 * 'UTF8'), length(body), encode(body, 'hex') and a dump and restore see the
 * message itself.
 *
 * Packed form (the varlena's data): the bytes as received when they begin
 * with none of the method bytes below (an XML plist begins with '<', a
 * binary one with 'b'), else one byte saying how, then
 *	 RAW_AS_IS		the bytes as received;
 *	 RAW_TOKENS_1	the length as received (7 bits a byte, low first), then
 *					the bytes with table 1's parts replaced: a byte of
 *					raw_direct[] stands for a part of the table's first
 *					RAW_N_DIRECT, RAW_EXTENDED and a byte for one of the others,
 *					RAW_LITERAL and a byte for that byte, any other byte for
 *					itself.  The direct codes are control characters XML does
 *					not allow, so a text plist needs no RAW_LITERAL;
 *	 RAW_PGLZ		the length as received, then pglz's compressed form.
 * Table 1 never changes once released (parts may only be appended to its
 * extended end); another table gets another method byte.
 */
#include "mdm_user.h"

#include "common/pg_lzcompress.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#define RAW_AS_IS		0
#define RAW_TOKENS_1	1
#define RAW_PGLZ		2

#define RAW_LITERAL		0x00
#define RAW_EXTENDED	0x01

/* the one-byte codes: control characters that XML 1.0 does not allow */
static const unsigned char raw_direct[] = {
	0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x0B, 0x0C, 0x0E, 0x0F,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A,
	0x1B, 0x1C, 0x1D, 0x1E, 0x1F
};
#define RAW_N_DIRECT ((int) sizeof(raw_direct))

#define KEY(k) "\t<key>" k "</key>\n"

/*
 * Table 1: the parts of check-in messages as Apple's devices write them
 * (and of commands as mdm.jsonb_to_plist writes them); the most frequent
 * first (one-byte codes).
 */
static const char *const raw_table_1[] = {
	/* one-byte codes (RAW_N_DIRECT of them) */
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
	"\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
	"<plist version=\"1.0\">\n<dict>\n",
	"</dict>\n</plist>\n",
	"</string>\n",
	"\t<string>",
	KEY("MessageType"),
	KEY("UDID"),
	KEY("Topic"),
	KEY("PushMagic"),
	KEY("Token"),
	"\t<data>\n\t",
	"\n\t</data>\n",
	"\t<true/>\n",
	"\t<false/>\n",
	"com.apple.mgmt.External.",
	"TokenUpdate",
	"Authenticate",
	KEY("UserID"),
	KEY("UserLongName"),
	KEY("UserShortName"),
	KEY("AwaitingConfiguration"),
	KEY("NotOnConsole"),
	KEY("Status"),
	KEY("CommandUUID"),
	KEY("EnrollmentID"),
	KEY("EnrollmentUserID"),
	"\t<integer>",
	"</integer>\n",
	/* two-byte codes: RAW_EXTENDED and the index after the direct ones */
	KEY("BuildVersion"),
	KEY("DeviceName"),
	KEY("Model"),
	KEY("ModelName"),
	KEY("OSVersion"),
	KEY("ProductName"),
	KEY("SerialNumber"),
	KEY("IMEI"),
	KEY("MEID"),
	KEY("UnlockToken"),
	KEY("BootstrapToken"),
	KEY("ChallengeResponse"),
	KEY("DigestResponse"),
	KEY("AuthToken"),
	KEY("Endpoint"),
	KEY("Data"),
	KEY("TokenServiceType"),
	KEY("TokenParameters"),
	KEY("RequestType"),
	KEY("ErrorChain"),
	KEY("UserConfiguration"),
	KEY("Challenge"),
	KEY("Command"),
	KEY("Queries"),
	KEY("Payload"),
	KEY("Identifier"),
	KEY("ManagedOnly"),
	"ProfileList",
	"InstallProfile",
	"RemoveProfile",
	"DeviceInformation",
	"SecurityInfo",
	"InstalledApplicationList",
	"CertificateList",
	"ProvisioningProfileList",
	"Restrictions",
	"UserAuthenticate",
	"CheckOut",
	"SetBootstrapToken",
	"GetBootstrapToken",
	"DeclarativeManagement",
	"GetToken",
	"MacBookPro",
	"MacBookAir",
	"MacBook Pro",
	"MacBook Air",
	"Macmini",
	"Mac mini",
	"iMac",
	"iPhone",
	"iPad",
	"\t<dict>\n",
	"\t</dict>\n",
	"\t<dict/>\n",
	"\t<array>\n",
	"\t</array>\n",
	"\t<array/>\n",
	"\t<date>",
	"</date>\n",
	"\t<real>",
	"</real>\n",
	"</key>\n",
	"\t<key>",
};
#define RAW_N_TABLE_1 ((int) lengthof(raw_table_1))

StaticAssertDecl(lengthof(raw_table_1) > lengthof(raw_direct) &&
				 lengthof(raw_table_1) - lengthof(raw_direct) <= 256,
				 "table 1 must fill the direct codes and fit the extended ones");

/*
 * The table as the coder reads it, made once per backend: each part's
 * length, and per first byte the parts that start with it, longest first
 * (a part that starts "\t<key>" under the byte after that instead, 256 +
 * that byte, since most of the parts start so).
 */
typedef struct RawTable
{
	int			len[RAW_N_TABLE_1];
	int16		direct_part[256];	/* code byte -> part, or -1 */
	int16		first[512];		/* bucket -> first part, or -1 */
	int16		next[RAW_N_TABLE_1];	/* next part in the same bucket */
} RawTable;

#define KEY_PREFIX "\t<key>"
#define KEY_PREFIX_LEN 6

static const RawTable *
raw_table(void)
{
	static RawTable *t = NULL;

	if (t == NULL)
	{
		RawTable   *n = MemoryContextAllocZero(TopMemoryContext, sizeof(RawTable));

		for (int b = 0; b < 256; b++)
			n->direct_part[b] = -1;
		for (int b = 0; b < 512; b++)
			n->first[b] = -1;
		for (int i = 0; i < RAW_N_DIRECT; i++)
			n->direct_part[raw_direct[i]] = i;
		for (int i = 0; i < RAW_N_TABLE_1; i++)
		{
			const unsigned char *p = (const unsigned char *) raw_table_1[i];
			int			bucket;
			int16	   *link;

			n->len[i] = strlen(raw_table_1[i]);
			bucket = p[0];
			if (n->len[i] > KEY_PREFIX_LEN && memcmp(p, KEY_PREFIX, KEY_PREFIX_LEN) == 0)
				bucket = 256 + p[KEY_PREFIX_LEN];
			/* kept longest first */
			link = &n->first[bucket];
			while (*link >= 0 && n->len[*link] >= n->len[i])
				link = &n->next[*link];
			n->next[i] = *link;
			*link = i;
		}
		t = n;
	}
	return t;
}

static void
raw_corrupt(void) pg_attribute_noreturn();

static void
raw_corrupt(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("stored message is corrupt")));
}

/* the length as received after the method byte; returns the bytes used */
static int
raw_put_length(char *p, size_t len)
{
	int			n = 0;

	for (;; len >>= 7)
	{
		p[n++] = (char) ((len & 0x7F) | (len >= 0x80 ? 0x80 : 0));
		if (len < 0x80)
			return n;
	}
}

static size_t
raw_get_length(const unsigned char *p, size_t n, size_t *used)
{
	size_t		len = 0;
	size_t		i = 0;

	for (int shift = 0;; shift += 7)
	{
		if (i >= n || shift > 28)
			raw_corrupt();
		len |= (size_t) (p[i] & 0x7F) << shift;
		if ((p[i++] & 0x80) == 0)
			break;
	}
	if (len > MaxAllocSize - VARHDRSZ)
		raw_corrupt();
	*used = i;
	return len;
}

/*
 * Table 1's coding of data into out (room for limit + 1 bytes); returns the
 * bytes written, or -1 as soon as that reaches limit.
 */
static int64
raw_tokens(const RawTable *t, const unsigned char *data, size_t len,
		   unsigned char *out, int64 limit)
{
	int64		o = 0;
	size_t		i = 0;

	while (i < len)
	{
		const unsigned char *p = data + i;
		size_t		left = len - i;
		int			bucket = p[0];
		int			part;

		if (left > KEY_PREFIX_LEN && p[0] == '\t' && memcmp(p, KEY_PREFIX, KEY_PREFIX_LEN) == 0)
		{
			bucket = 256 + p[KEY_PREFIX_LEN];
			if (t->first[bucket] < 0)
				bucket = p[0];
		}
		for (part = t->first[bucket]; part >= 0; part = t->next[part])
			if ((size_t) t->len[part] <= left && memcmp(p, raw_table_1[part], t->len[part]) == 0)
				break;
		if (part < 0 && bucket >= 256)
		{
			/* a key the table does not have: its "\t<key>" part */
			for (part = t->first['\t']; part >= 0; part = t->next[part])
				if ((size_t) t->len[part] <= left && memcmp(p, raw_table_1[part], t->len[part]) == 0)
					break;
		}
		if (part >= 0)
		{
			if (part < RAW_N_DIRECT)
				out[o++] = raw_direct[part];
			else
			{
				out[o++] = RAW_EXTENDED;
				out[o++] = (unsigned char) (part - RAW_N_DIRECT);
			}
			i += t->len[part];
		}
		else
		{
			if (p[0] <= RAW_EXTENDED || t->direct_part[p[0]] >= 0)
				out[o++] = RAW_LITERAL;
			out[o++] = p[0];
			i++;
		}
		if (o >= limit)
			return -1;
	}
	return o;
}

/* The packed form of len bytes as received. */
static bytea *
raw_pack(const char *data, size_t len)
{
	bytea	   *result;
	char	   *p;
	int64		best;

	if (len > MaxAllocSize - VARHDRSZ - 8)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("message of %zu bytes is too large to keep", len)));
	/* as received, unless a coding saves at least a byte */
	best = 1 + (int64) len;
	/* the coding stops once it would not save: at most 2 bytes past len */
	result = (bytea *) palloc(VARHDRSZ + 1 + 5 + len + 2);
	p = VARDATA(result);
	if (len >= 16)
	{
		int			h = raw_put_length(p + 1, len);
		int64		n = raw_tokens(raw_table(), (const unsigned char *) data, len,
								   (unsigned char *) p + 1 + h, best - 1 - h);

		if (n >= 0)
		{
			p[0] = RAW_TOKENS_1;
			best = 1 + h + n;
		}
		/* pglz when the table did little (another formatting, a binary plist) */
		if (best > (int64) len / 2 && len <= PG_INT32_MAX / 2)
		{
			char	   *z = palloc(PGLZ_MAX_OUTPUT(len));
			int32		zn = pglz_compress(data, (int32) len, z, PGLZ_strategy_always);

			if (zn >= 0 && 1 + h + (int64) zn < best)
			{
				p[0] = RAW_PGLZ;
				memcpy(p + 1 + h, z, zn);
				best = 1 + h + zn;
			}
			pfree(z);
		}
	}
	if (best == 1 + (int64) len)
	{
		if (len > 0 && (unsigned char) data[0] > RAW_PGLZ)
		{
			/* as they are: no method byte needed */
			memcpy(p, data, len);
			best = len;
		}
		else
		{
			p[0] = RAW_AS_IS;
			memcpy(p + 1, data, len);
		}
	}
	SET_VARSIZE(result, VARHDRSZ + best);
	return result;
}

/* The bytes as received of a packed value (any varlena form). */
static bytea *
raw_unpack(struct varlena *value)
{
	struct varlena *v = pg_detoast_datum_packed(value);
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(v);
	size_t		n = VARSIZE_ANY_EXHDR(v);
	bytea	   *result;

	if (n == 0 || p[0] > RAW_PGLZ)
	{
		/* the bytes as received, without a method byte (so a plist stored
		 * as bytea reads as itself) */
		result = (bytea *) palloc(VARHDRSZ + n);
		SET_VARSIZE(result, VARHDRSZ + n);
		memcpy(VARDATA(result), p, n);
	}
	else if (p[0] == RAW_AS_IS)
	{
		result = (bytea *) palloc(VARHDRSZ + n - 1);
		SET_VARSIZE(result, VARHDRSZ + n - 1);
		memcpy(VARDATA(result), p + 1, n - 1);
	}
	else if (p[0] == RAW_TOKENS_1)
	{
		const RawTable *t = raw_table();
		size_t		h;
		size_t		len = raw_get_length(p + 1, n - 1, &h);
		unsigned char *out;
		size_t		o = 0;

		result = (bytea *) palloc(VARHDRSZ + len);
		SET_VARSIZE(result, VARHDRSZ + len);
		out = (unsigned char *) VARDATA(result);
		for (size_t i = 1 + h; i < n; i++)
		{
			int			part = t->direct_part[p[i]];

			if (p[i] == RAW_EXTENDED)
			{
				if (++i >= n || p[i] >= RAW_N_TABLE_1 - RAW_N_DIRECT)
					raw_corrupt();
				part = RAW_N_DIRECT + p[i];
			}
			if (part >= 0)
			{
				if ((size_t) t->len[part] > len - o)
					raw_corrupt();
				memcpy(out + o, raw_table_1[part], t->len[part]);
				o += t->len[part];
				continue;
			}
			if (p[i] == RAW_LITERAL && ++i >= n)
				raw_corrupt();
			if (o >= len)
				raw_corrupt();
			out[o++] = p[i];
		}
		if (o != len)
			raw_corrupt();
	}
	else if (p[0] == RAW_PGLZ)
	{
		size_t		h;
		size_t		len = raw_get_length(p + 1, n - 1, &h);

		result = (bytea *) palloc(VARHDRSZ + len);
		SET_VARSIZE(result, VARHDRSZ + len);
		if (n - 1 - h > PG_INT32_MAX || len > PG_INT32_MAX ||
			pglz_decompress((const char *) p + 1 + h, (int32) (n - 1 - h),
							VARDATA(result), (int32) len, true) != (int32) len)
			raw_corrupt();
	}
	else
		raw_corrupt();
	if ((Pointer) v != (Pointer) value)
		pfree(v);
	return result;
}

/* For the check-in log's writer (checkin_path.c): raw packed. */
Datum
raw_message_pack(bytea *raw)
{
	bytea	   *r = (bytea *) pg_detoast_datum_packed((struct varlena *) raw);

	return PointerGetDatum(raw_pack(VARDATA_ANY(r), VARSIZE_ANY_EXHDR(r)));
}

/* For readers of a column in C (connect_path.c): the bytes, a fresh copy. */
bytea *
raw_message_unpack(Datum packed)
{
	return raw_unpack((struct varlena *) DatumGetPointer(packed));
}

/* mdm.raw_message_pack(bytea): the assignment cast bytea -> mdm.raw_message */
PG_FUNCTION_INFO_V1(mdm_raw_message_pack);
Datum
mdm_raw_message_pack(PG_FUNCTION_ARGS)
{
	bytea	   *raw = PG_GETARG_BYTEA_PP(0);

	PG_RETURN_BYTEA_P(raw_pack(VARDATA_ANY(raw), VARSIZE_ANY_EXHDR(raw)));
}

/* mdm.raw_message_bytes(mdm.raw_message): the implicit cast to bytea */
PG_FUNCTION_INFO_V1(mdm_raw_message_bytes);
Datum
mdm_raw_message_bytes(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(raw_unpack(PG_GETARG_RAW_VARLENA_P(0)));
}

/* input: bytea's text form */
PG_FUNCTION_INFO_V1(mdm_raw_message_in);
Datum
mdm_raw_message_in(PG_FUNCTION_ARGS)
{
	bytea	   *raw = DatumGetByteaPP(DirectFunctionCall1(byteain, PG_GETARG_DATUM(0)));

	PG_RETURN_BYTEA_P(raw_pack(VARDATA_ANY(raw), VARSIZE_ANY_EXHDR(raw)));
}

/* output: the bytes as received in bytea's text form */
PG_FUNCTION_INFO_V1(mdm_raw_message_out);
Datum
mdm_raw_message_out(PG_FUNCTION_ARGS)
{
	return DirectFunctionCall1(byteaout,
							   PointerGetDatum(raw_unpack(PG_GETARG_RAW_VARLENA_P(0))));
}

/* receive: bytea's binary form */
PG_FUNCTION_INFO_V1(mdm_raw_message_recv);
Datum
mdm_raw_message_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			len = buf->len - buf->cursor;
	bytea	   *result = raw_pack(pq_getmsgbytes(buf, len), len);

	PG_RETURN_BYTEA_P(result);
}

/* send: the bytes as received in bytea's binary form */
PG_FUNCTION_INFO_V1(mdm_raw_message_send);
Datum
mdm_raw_message_send(PG_FUNCTION_ARGS)
{
	return DirectFunctionCall1(byteasend,
							   PointerGetDatum(raw_unpack(PG_GETARG_RAW_VARLENA_P(0))));
}
