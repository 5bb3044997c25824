/*
 * push_cert.c
 *		Checking an APNs MDM push certificate and its private key with OpenSSL:
 *		mdm_internal._inspect_push_cert(cert_pem, key_pem), used by mdm.upload_push_cert().
 *
 * The topic is the certificate subject's UID (OID 0.9.2342.19200300.100.1.1)
 * and must start with "com.apple.mgmt."; the key must match the
 * certificate.  OpenSSL objects are malloc'ed: they are held by a struct
 * registered as a reset callback on a short-lived memory context, so they
 * are freed whether the function returns or raises.
 */
#include "mdm_user.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define MDM_TOPIC_PREFIX "com.apple.mgmt."

typedef struct CertHolder
{
	BIO		   *cert_bio;
	BIO		   *key_bio;
	X509	   *cert;
	EVP_PKEY   *key;
	char	   *subject;		/* OPENSSL_malloc'ed */
	unsigned char *uid_utf8;	/* OPENSSL_malloc'ed */
} CertHolder;

static void
cert_holder_release(void *arg)
{
	CertHolder *h = (CertHolder *) arg;

	BIO_free(h->cert_bio);
	BIO_free(h->key_bio);
	X509_free(h->cert);
	EVP_PKEY_free(h->key);
	OPENSSL_free(h->subject);
	OPENSSL_free(h->uid_utf8);
	memset(h, 0, sizeof(*h));
}

/*
 * The subject's UID attribute, validated as UTF-8.  OpenSSL's copy of it is
 * held in h->uid_utf8, so that it is freed even if pnstrdup() raises.
 */
static char *
subject_uid(CertHolder *h)
{
	X509_NAME  *name = X509_get_subject_name(h->cert);
	int			idx = X509_NAME_get_index_by_NID(name, NID_userId, -1);
	ASN1_STRING *data;
	int			len;
	char	   *result;

	if (idx < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("push certificate has no topic"),
				 errdetail("Its subject has no UID attribute (0.9.2342.19200300.100.1.1).")));
	data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	len = ASN1_STRING_to_UTF8(&h->uid_utf8, data);
	if (len < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("push certificate has an unreadable topic"),
				 errdetail("%s", openssl_error_text())));
	result = pnstrdup((char *) h->uid_utf8, len);
	OPENSSL_free(h->uid_utf8);
	h->uid_utf8 = NULL;
	if (strlen(result) != (size_t) len || !pg_verify_mbstr(PG_UTF8, result, len, true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("push certificate topic is not valid UTF-8")));
	return result;
}

static TimestampTz
asn1_time_to_timestamptz(const ASN1_TIME *t)
{
	struct tm	tm;

	if (!ASN1_TIME_to_tm(t, &tm))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("push certificate has an invalid validity period")));
	return time_t_to_timestamptz((pg_time_t) timegm(&tm));
}

static BIO *
pem_bio(text *pem)
{
	BIO		   *bio = BIO_new_mem_buf(VARDATA_ANY(pem), VARSIZE_ANY_EXHDR(pem));

	if (bio == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	return bio;
}

/*
 * mdm_internal._inspect_push_cert(cert_pem text, key_pem text,
 *		OUT topic text, OUT subject text, OUT not_before timestamptz,
 *		OUT not_after timestamptz, OUT sha256 bytea)
 */
PG_FUNCTION_INFO_V1(mdm_inspect_push_cert);
Datum
mdm_inspect_push_cert(PG_FUNCTION_ARGS)
{
	MemoryContext cxt;
	CertHolder *h = holder_create("mdm push cert", sizeof(CertHolder), cert_holder_release, &cxt);
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	char	   *topic;
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	bytea	   *sha;
	HeapTuple	tuple;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	ERR_clear_error();
	h->cert_bio = pem_bio(PG_GETARG_TEXT_PP(0));
	h->cert = PEM_read_bio_X509(h->cert_bio, NULL, NULL, NULL);
	if (h->cert == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid push certificate"),
				 errdetail("It is not a PEM X.509 certificate: %s.", openssl_error_text())));
	h->key_bio = pem_bio(PG_GETARG_TEXT_PP(1));
	h->key = PEM_read_bio_PrivateKey(h->key_bio, NULL, NULL, (void *) "");
	if (h->key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid push certificate key"),
				 errdetail("It is not an unencrypted PEM private key: %s.", openssl_error_text())));
	if (X509_check_private_key(h->cert, h->key) != 1)
	{
		ERR_clear_error();
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("private key does not match the push certificate")));
	}

	topic = subject_uid(h);
	if (strncmp(topic, MDM_TOPIC_PREFIX, strlen(MDM_TOPIC_PREFIX)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("push certificate topic \"%s\" is not an MDM topic", topic),
				 errdetail("MDM push topics start with \"%s\".", MDM_TOPIC_PREFIX)));
	h->subject = X509_NAME_oneline(X509_get_subject_name(h->cert), NULL, 0);
	if (h->subject == NULL ||
		!X509_digest(h->cert, EVP_sha256(), digest, &digest_len))
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));

	values[0] = CStringGetTextDatum(topic);
	values[1] = CStringGetTextDatum(plist_text_to_server(h->subject, strlen(h->subject)));
	values[2] = TimestampTzGetDatum(asn1_time_to_timestamptz(X509_get0_notBefore(h->cert)));
	values[3] = TimestampTzGetDatum(asn1_time_to_timestamptz(X509_get0_notAfter(h->cert)));
	sha = bytes_to_bytea(digest, digest_len);
	values[4] = PointerGetDatum(sha);

	tuple = heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls);
	MemoryContextDelete(cxt);
	PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}
