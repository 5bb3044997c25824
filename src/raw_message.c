/*
 * raw_message.c
 *		mdm.raw_message: a message as received, kept packed.
 *
 * The check-in log (mdm.checkin_messages.body) keeps every check-in as it
 * arrived.  A check-in is a small plist (most are under 1 kB) made mostly
 * of the same XML prologue, keys and tags as every other; compressed on its
 * own (LZ4, as TOAST would) it keeps about two thirds of its bytes, since
 * nothing repeats inside one message.  Here it is deflated (zlib) against a
 * preset dictionary of those common parts, which leaves mostly the values
 * that are the device's own: about a quarter of the LZ4 size.
 *
 * The type reads as the bytes as received: its text and binary forms are
 * bytea's (output and send unpack, input and receive pack), and it casts
 * implicitly to bytea (mdm.raw_message_bytes), so that convert_from(body,
 * 'UTF8'), length(body), encode(body, 'hex') and a dump and restore see the
 * message itself.
 *
 * Packed form (the varlena's data): one byte saying how, then
 *	 RAW_AS_IS		the bytes as received (when deflating does not save);
 *	 RAW_DEFLATE_1	the length as received (7 bits a byte, low first), then
 *					a raw deflate stream made with dictionary 1.
 * Dictionary 1 never changes once released: a new one gets a new byte.
 */
#include "mdm_user.h"

#include <zlib.h>

#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#define RAW_AS_IS		0
#define RAW_DEFLATE_1	1

/* window and memory level of the deflate state each backend keeps */
#define RAW_WINDOW_BITS 12
#define RAW_MEM_LEVEL	6

/*
 * Dictionary 1: the parts every check-in shares.  Deflate finds matches
 * nearer the end for fewer bits, so the most common come last: the XML
 * prologue and the frame of a dictionary.
 */
static const char raw_dictionary_1[] =
	"\t<key>Acknowledged</key>\n\t<string>"
	"\t<key>AwaitingConfiguration</key>\n\t<string>"
	"\t<key>BootstrapToken</key>\n\t<string>"
	"\t<key>BuildVersion</key>\n\t<string>"
	"\t<key>ChallengeResponse</key>\n\t<string>"
	"\t<key>CommandUUID</key>\n\t<string>"
	"\t<key>DeviceName</key>\n\t<string>"
	"\t<key>DigestResponse</key>\n\t<string>"
	"\t<key>EnrollmentID</key>\n\t<string>"
	"\t<key>EnrollmentUserID</key>\n\t<string>"
	"\t<key>ErrorChain</key>\n\t<string>"
	"\t<key>IMEI</key>\n\t<string>"
	"\t<key>MEID</key>\n\t<string>"
	"\t<key>MessageType</key>\n\t<string>"
	"\t<key>Model</key>\n\t<string>"
	"\t<key>ModelName</key>\n\t<string>"
	"\t<key>NotOnConsole</key>\n\t<string>"
	"\t<key>OSVersion</key>\n\t<string>"
	"\t<key>ProductName</key>\n\t<string>"
	"\t<key>PushMagic</key>\n\t<string>"
	"\t<key>SerialNumber</key>\n\t<string>"
	"\t<key>Status</key>\n\t<string>"
	"\t<key>Token</key>\n\t<string>"
	"\t<key>Topic</key>\n\t<string>"
	"\t<key>UDID</key>\n\t<string>"
	"\t<key>UnlockToken</key>\n\t<string>"
	"\t<key>UserID</key>\n\t<string>"
	"\t<key>UserLongName</key>\n\t<string>"
	"\t<key>UserShortName</key>\n\t<string>"
	"\t<key>Authenticate</key>\n\t<string>"
	"\t<key>TokenUpdate</key>\n\t<string>"
	"\t<key>UserAuthenticate</key>\n\t<string>"
	"\t<key>CheckOut</key>\n\t<string>"
	"\t<key>SetBootstrapToken</key>\n\t<string>"
	"\t<key>GetBootstrapToken</key>\n\t<string>"
	"\t<key>DeclarativeManagement</key>\n\t<string>"
	"\t<key>GetToken</key>\n\t<string>"
	"\t<key>Idle</key>\n\t<string>"
	"\t<key>NotNow</key>\n\t<string>"
	"\t<key>Error</key>\n\t<string>"
	"\t<key>Endpoint</key>\n\t<string>"
	"\t<key>Data</key>\n\t<string>"
	"\t<key>TokenServiceType</key>\n\t<string>"
	"\t<key>com.apple.mgmt.External.</key>\n\t<string>"
	"\t<key>MacBookPro</key>\n\t<string>"
	"\t<key>iPhone</key>\n\t<string>"
	"\t<key>iPad</key>\n\t<string>"
	"\t<key>Mac</key>\n\t<string>"
	"</string>\n\t<data>\n\t</data>\n\t<true/>\n\t<false/>\n\t<integer>"
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
	"\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
	"<plist version=\"1.0\">\n<dict>\n"
	"\t<key>MessageType</key>\n\t<string>TokenUpdate</string>\n"
	"\t<key>UDID</key>\n\t<string></string>\n</dict>\n</plist>\n";

/* zlib's allocations in the memory context given as its opaque pointer */
static voidpf
raw_zalloc(voidpf opaque, uInt items, uInt size)
{
	return MemoryContextAllocExtended((MemoryContext) opaque, (Size) items * size,
									  MCXT_ALLOC_NO_OOM);
}

static void
raw_zfree(voidpf opaque, voidpf address)
{
	pfree(address);
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

/*
 * The deflate state, made once per backend (about 50 kB) and reset for
 * each message: setting it up is most of the cost of a small message.
 */
static z_stream *
raw_deflater(void)
{
	static z_stream *strm = NULL;

	if (strm == NULL)
	{
		z_stream   *s = MemoryContextAllocZero(TopMemoryContext, sizeof(z_stream));

		s->zalloc = raw_zalloc;
		s->zfree = raw_zfree;
		s->opaque = (voidpf) TopMemoryContext;
		if (deflateInit2(s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -RAW_WINDOW_BITS,
						 RAW_MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
		{
			pfree(s);
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("Could not set up compression of a message.")));
		}
		strm = s;
	}
	else if (deflateReset(strm) != Z_OK)
		elog(ERROR, "could not reset the compression of a message");
	if (deflateSetDictionary(strm, (const Bytef *) raw_dictionary_1,
							 sizeof(raw_dictionary_1) - 1) != Z_OK)
		elog(ERROR, "could not set the compression dictionary");
	return strm;
}

/* The packed form of len bytes as received. */
static bytea *
raw_pack(const char *data, size_t len)
{
	bytea	   *result;
	char	   *p;

	if (len > MaxAllocSize - VARHDRSZ - 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("message of %zu bytes is too large to keep", len)));
	if (len >= 32 && len <= PG_INT32_MAX / 2)
	{
		z_stream   *strm = raw_deflater();
		uLong		bound = deflateBound(strm, (uLong) len);
		Size		room = VARHDRSZ + 1 + 5 + bound;
		int			rc;

		result = (bytea *) palloc(room);
		p = VARDATA(result);
		*p++ = RAW_DEFLATE_1;
		for (size_t n = len;; n >>= 7)
		{
			*p++ = (char) ((n & 0x7F) | (n >= 0x80 ? 0x80 : 0));
			if (n < 0x80)
				break;
		}
		strm->next_in = (Bytef *) data;
		strm->avail_in = (uInt) len;
		strm->next_out = (Bytef *) p;
		strm->avail_out = (uInt) (room - (p - (char *) result));
		rc = deflate(strm, Z_FINISH);
		if (rc != Z_STREAM_END)
			elog(ERROR, "could not compress a message: %s",
				 strm->msg ? strm->msg : "deflate did not finish");
		p += strm->total_out;
		/* kept only when it saves something */
		if ((size_t) (p - VARDATA(result)) < len + 1)
		{
			SET_VARSIZE(result, p - (char *) result);
			return result;
		}
		pfree(result);
	}
	result = (bytea *) palloc(VARHDRSZ + 1 + len);
	SET_VARSIZE(result, VARHDRSZ + 1 + len);
	p = VARDATA(result);
	*p = RAW_AS_IS;
	memcpy(p + 1, data, len);
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

	if (n < 1)
		raw_corrupt();
	if (p[0] == RAW_AS_IS)
	{
		result = (bytea *) palloc(VARHDRSZ + n - 1);
		SET_VARSIZE(result, VARHDRSZ + n - 1);
		memcpy(VARDATA(result), p + 1, n - 1);
	}
	else if (p[0] == RAW_DEFLATE_1)
	{
		size_t		len = 0;
		size_t		i = 1;
		z_stream	strm;
		int			rc;

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
		result = (bytea *) palloc(VARHDRSZ + len);
		SET_VARSIZE(result, VARHDRSZ + len);
		memset(&strm, 0, sizeof(strm));
		strm.zalloc = raw_zalloc;
		strm.zfree = raw_zfree;
		strm.opaque = (voidpf) CurrentMemoryContext;
		if (inflateInit2(&strm, -RAW_WINDOW_BITS) != Z_OK)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("Could not set up decompression of a message.")));
		if (inflateSetDictionary(&strm, (const Bytef *) raw_dictionary_1,
								 sizeof(raw_dictionary_1) - 1) != Z_OK)
		{
			inflateEnd(&strm);
			elog(ERROR, "could not set the compression dictionary");
		}
		strm.next_in = (Bytef *) (p + i);
		strm.avail_in = (uInt) (n - i);
		strm.next_out = (Bytef *) VARDATA(result);
		strm.avail_out = (uInt) len;
		rc = inflate(&strm, Z_FINISH);
		/* the whole stream, to exactly the length recorded */
		if (rc != Z_STREAM_END || strm.avail_in != 0 || strm.avail_out != 0)
		{
			inflateEnd(&strm);
			raw_corrupt();
		}
		inflateEnd(&strm);
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
