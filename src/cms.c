/*
 * cms.c
 *		CMS / PKCS#7 signed data with OpenSSL: opening signed configuration
 *		profiles, mdm_internal._open_signed(data bytea, anchors_pem text).
 *
 * A signed .mobileconfig is DER CMS SignedData with the plist inside.  The
 * signature must match the content; the signer certificate is verified
 * against trust anchors only when some are configured (PEM text, possibly
 * several certificates), otherwise any signer is accepted and recorded.
 * Bytes that are not DER CMS are returned as they are, unsigned.
 *
 * OpenSSL objects are held by a struct registered as a reset callback on a
 * short-lived memory context: freed on return and on error alike.
 */
#include "mdm_user.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

typedef struct CmsHolder
{
	BIO		   *in;
	BIO		   *out;
	BIO		   *anchors_bio;
	CMS_ContentInfo *cms;
	X509_STORE *store;
	STACK_OF(X509) *signers;
	char	   *subject;		/* OPENSSL_malloc'ed */
} CmsHolder;

static void
cms_holder_release(void *arg)
{
	CmsHolder  *h = (CmsHolder *) arg;

	BIO_free(h->in);
	BIO_free(h->out);
	BIO_free(h->anchors_bio);
	CMS_ContentInfo_free(h->cms);
	X509_STORE_free(h->store);
	sk_X509_free(h->signers);	/* the certificates belong to h->cms */
	OPENSSL_free(h->subject);
	memset(h, 0, sizeof(*h));
}

/*
 * The earliest error on OpenSSL's queue, with the text OpenSSL attached to
 * it: for a signer whose chain does not verify, the reason, as in
 * "error:17000064:CMS routines::certificate verify error (Verify error:
 * unable to get local issuer certificate)".  Clears the queue.
 */
static const char *
cms_error_text(void)
{
	static char buf[512];
	const char *data = NULL;
	int			flags = 0;
	unsigned long e;

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);
#else
	e = ERR_get_error_line_data(NULL, NULL, &data, &flags);
#endif
	if (e == 0)
		strlcpy(buf, "no further information", sizeof(buf));
	else
	{
		char		code[256];

		ERR_error_string_n(e, code, sizeof(code));
		/* data belongs to the queue: copied before the queue is cleared */
		if (data != NULL && (flags & ERR_TXT_STRING) && data[0] != '\0')
			snprintf(buf, sizeof(buf), "%s (%s)", code, data);
		else
			strlcpy(buf, code, sizeof(buf));
	}
	ERR_clear_error();
	return buf;
}

/*
 * Load every PEM certificate of anchors_pem into a new store.
 *
 * Any purpose: OpenSSL would otherwise check the signer against the S/MIME
 * signing purpose, and refuse the TLS server certificates (extendedKeyUsage
 * serverAuth) that many consoles sign profiles with.  The chain to a stored
 * anchor is what is checked.
 */
static void
load_anchors(CmsHolder *h, text *anchors_pem)
{
	X509	   *cert;
	int			n = 0;

	h->store = X509_STORE_new();
	h->anchors_bio = BIO_new_mem_buf(VARDATA_ANY(anchors_pem), VARSIZE_ANY_EXHDR(anchors_pem));
	if (h->store == NULL || h->anchors_bio == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	while ((cert = PEM_read_bio_X509(h->anchors_bio, NULL, NULL, NULL)) != NULL)
	{
		int			ok = X509_STORE_add_cert(h->store, cert);

		X509_free(cert);		/* the store holds its own reference */
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("could not add a trust anchor: %s", openssl_error_text())));
		n++;
	}
	ERR_clear_error();			/* the end of the PEM text */
	/* an intermediate CA may be the anchor */
	X509_STORE_set_flags(h->store, X509_V_FLAG_PARTIAL_CHAIN);
	if (!X509_STORE_set_purpose(h->store, X509_PURPOSE_ANY))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not set the purpose of the profile signer check: %s",
						openssl_error_text())));
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trust anchors contain no PEM certificate")));
}

/*
 * mdm_internal._open_signed(data bytea, anchors_pem text,
 *		OUT content bytea, OUT signed boolean, OUT signer_subject text,
 *		OUT signer_sha256 bytea)
 */
PG_FUNCTION_INFO_V1(mdm_open_signed);
Datum
mdm_open_signed(PG_FUNCTION_ARGS)
{
	bytea	   *data;
	MemoryContext cxt;
	CmsHolder  *h;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	unsigned int flags = CMS_BINARY;
	BUF_MEM    *content;
	X509	   *signer;
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	HeapTuple	tuple;

	/* not STRICT: anchors_pem is NULL when there are none */
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("profile must not be NULL")));
	data = PG_GETARG_BYTEA_PP(0);
	h = holder_create("mdm cms", sizeof(CmsHolder), cms_holder_release, &cxt);

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	check_message_size(VARSIZE_ANY_EXHDR(data));

	ERR_clear_error();
	h->in = BIO_new_mem_buf(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data));
	if (h->in == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (VARSIZE_ANY_EXHDR(data) < 2 || ((unsigned char *) VARDATA_ANY(data))[0] != 0x30 ||
		(h->cms = d2i_CMS_bio(h->in, NULL)) == NULL)
	{
		/* not DER CMS: the bytes are the profile itself */
		ERR_clear_error();
		values[0] = PointerGetDatum(data);
		values[1] = BoolGetDatum(false);
		nulls[2] = nulls[3] = true;
		tuple = heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls);
		MemoryContextDelete(cxt);
		PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
	}
	if (OBJ_obj2nid(CMS_get0_type(h->cms)) != NID_pkcs7_signed)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("unsupported CMS content type"),
				 errdetail("Only signed profiles (CMS SignedData) are read; encrypted ones are not.")));

	if (PG_ARGISNULL(1))
		flags |= CMS_NO_SIGNER_CERT_VERIFY;
	else
		load_anchors(h, PG_GETARG_TEXT_PP(1));

	h->out = BIO_new(BIO_s_mem());
	if (h->out == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (CMS_verify(h->cms, NULL, h->store, NULL, h->out, flags) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid profile signature"),
				 errdetail("OpenSSL could not verify the signed profile: %s.",
						   cms_error_text())));

	h->signers = CMS_get0_signers(h->cms);
	if (h->signers == NULL || sk_X509_num(h->signers) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("signed profile has no signer certificate")));
	signer = sk_X509_value(h->signers, 0);
	h->subject = X509_NAME_oneline(X509_get_subject_name(signer), NULL, 0);
	if (h->subject == NULL || !X509_digest(signer, EVP_sha256(), digest, &digest_len))
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));

	BIO_get_mem_ptr(h->out, &content);
	values[0] = PointerGetDatum(bytes_to_bytea(content->data, content->length));
	values[1] = BoolGetDatum(true);
	values[2] = CStringGetTextDatum(plist_text_to_server(h->subject, strlen(h->subject)));
	values[3] = PointerGetDatum(bytes_to_bytea(digest, digest_len));
	tuple = heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls);
	MemoryContextDelete(cxt);
	PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}
