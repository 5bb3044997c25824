/*
 * identity.c
 *		The device identity of a request, with OpenSSL: the mTLS client
 *		certificate the front end passes (DER or PEM), or the Mdm-Signature
 *		header (a base64 CMS signature over the exact body, detached).
 *
 * read_identity() yields the certificate in DER, its SHA-256 and its
 * expiry (a DER certificate is parsed only when identity_complete() asks,
 * see unparsed_identity()); binding it to a device is done in SQL
 * (schema/70_security.sql).
 * A signature that does not match the body is refused here with SQLSTATE
 * 28000.  mdm_internal._verify_identity_chain() checks a certificate against the
 * device_identity trust anchors (chain and validity).
 *
 * OpenSSL objects live in a holder registered as a reset callback on a
 * short-lived memory context, so errors cannot leak them.
 */
#include "mdm_user.h"

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "common/base64.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

typedef struct IdentityHolder
{
	BIO		   *bio;
	BIO		   *content;
	CMS_ContentInfo *cms;
	X509	   *cert;
	STACK_OF(X509) *signers;
	X509_STORE *store;
	X509_STORE_CTX *ctx;
	unsigned char *der;			/* OPENSSL_malloc'ed */
} IdentityHolder;

static void
identity_holder_release(void *arg)
{
	IdentityHolder *h = (IdentityHolder *) arg;

	BIO_free(h->bio);
	BIO_free(h->content);
	CMS_ContentInfo_free(h->cms);
	X509_free(h->cert);
	sk_X509_free(h->signers);
	X509_STORE_CTX_free(h->ctx);
	X509_STORE_free(h->store);
	OPENSSL_free(h->der);
	memset(h, 0, sizeof(*h));
}

static IdentityHolder *
identity_holder_new(MemoryContext *cxt)
{
	ERR_clear_error();
	return holder_create("mdm identity", sizeof(IdentityHolder), identity_holder_release, cxt);
}

/* Identities are refused with SQLSTATE 28000 and a fixed message. */
#define refuse_cert(detail) \
	ereport(ERROR, \
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION), \
			 errmsg("invalid device identity certificate"), \
			 errdetail_internal("%s", (detail))))
#define refuse_signature(detail) \
	ereport(ERROR, \
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION), \
			 errmsg("invalid Mdm-Signature"), \
			 errdetail_internal("%s", (detail))))

/*
 * A certificate or Mdm-Signature larger than mdm.max_identity_bytes is
 * refused (54000) before OpenSSL reads it: they are read before the
 * sender is known.
 */
static void
check_identity_size(bool is_signature, size_t len)
{
	if (len > (size_t) mdm_max_identity_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("device identity too large"),
				 is_signature ?
				 errdetail("The Mdm-Signature has %zu bytes; mdm.max_identity_bytes is %d.",
						   len, mdm_max_identity_bytes) :
				 errdetail("The certificate has %zu bytes; mdm.max_identity_bytes is %d.",
						   len, mdm_max_identity_bytes)));
}

/* A certificate given as DER or PEM. */
static X509 *
parse_certificate(IdentityHolder *h, const char *data, size_t len)
{
	const unsigned char *p = (const unsigned char *) data;
	X509	   *cert;

	if (len > 0 && p[0] == 0x30)
		cert = d2i_X509(NULL, &p, (long) len);
	else
	{
		h->bio = BIO_new_mem_buf(data, (int) len);
		if (h->bio == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		cert = PEM_read_bio_X509(h->bio, NULL, NULL, NULL);
	}
	if (cert == NULL)
		refuse_cert(psprintf(_("It is neither a DER nor a PEM X.509 certificate: %s."),
							 openssl_error_text()));
	return cert;
}

/*
 * The signer of a base64 CMS signature that must match body exactly.  The
 * signer's chain is not verified here: binding decides about trust.
 */
static X509 *
verify_signature(IdentityHolder *h, const char *sig_b64, int sig_len, const char *body,
				 size_t body_len)
{
	int			maxlen = pg_b64_dec_len(sig_len);
	char	   *der = palloc(maxlen + 1);
	int			derlen = pg_b64_decode(sig_b64, sig_len, der, maxlen);
	const unsigned char *p = (const unsigned char *) der;

	if (derlen <= 0)
		refuse_signature(_("The header is not base64."));
	h->cms = d2i_CMS_ContentInfo(NULL, &p, derlen);
	if (h->cms == NULL || OBJ_obj2nid(CMS_get0_type(h->cms)) != NID_pkcs7_signed)
		refuse_signature(_("The header is not a CMS signature."));
	h->content = BIO_new_mem_buf(body, (int) body_len);
	if (h->content == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (CMS_verify(h->cms, NULL, NULL, h->content, NULL,
				   CMS_BINARY | CMS_DETACHED | CMS_NO_SIGNER_CERT_VERIFY) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("Mdm-Signature does not match the message"),
				 errdetail("OpenSSL: %s.", openssl_error_text())));
	h->signers = CMS_get0_signers(h->cms);
	if (h->signers == NULL || sk_X509_num(h->signers) != 1)
		refuse_signature(_("It must have exactly one signer."));
	return X509_dup(sk_X509_value(h->signers, 0));
}

static TimestampTz
cert_not_after(X509 *cert)
{
	struct tm	tm;

	if (!ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm))
		refuse_cert(_("Its validity period cannot be read."));
	return time_t_to_timestamptz((pg_time_t) timegm(&tm));
}

/*
 * A DER certificate is not parsed here: its SHA-256 is all the dispatchers
 * need to see whether it is the certificate bound to the device (they look
 * the binding up by device, in the lookup they make anyway).  A binding
 * stores the SHA-256 of the DER that was parsed, checked and bound
 * (mdm.device_identities), so bytes whose SHA-256 matches it are that very
 * DER, and parsing them again would yield the same values.  This matters
 * because OpenSSL 3.0 spends about 0.2 ms decoding a certificate (its
 * public key goes through the provider decoders), as much as the rest of a
 * check-in (docs/performance.md).  When they do not match, the dispatcher
 * calls identity_complete(), which parses the certificate as before.
 */
static void
unparsed_identity(const char *data, size_t len, RequestIdentity *out)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;

	if (!EVP_Digest(data, len, digest, &digest_len, EVP_sha256(), NULL))
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	out->der = bytes_to_bytea(data, len);
	out->sha256 = bytes_to_bytea(digest, digest_len);
	out->not_after = 0;
	out->unparsed = true;
}

/* The certificate's DER as parsed and re-encoded, its SHA-256 and expiry. */
static void
identity_from_cert(IdentityHolder *h, RequestIdentity *out)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	int			der_len;

	der_len = i2d_X509(h->cert, &h->der);
	if (der_len <= 0 || !X509_digest(h->cert, EVP_sha256(), digest, &digest_len))
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	out->der = bytes_to_bytea(h->der, der_len);
	out->sha256 = bytes_to_bytea(digest, digest_len);
	out->not_after = cert_not_after(h->cert);
	out->unparsed = false;
}

/*
 * Parse a certificate that read_identity() left unparsed; refuses bytes
 * that are not a certificate (28000).  Does nothing to a parsed one.
 */
void
identity_complete(RequestIdentity *id)
{
	MemoryContext cxt;
	IdentityHolder *h;

	if (!id->unparsed)
		return;
	h = identity_holder_new(&cxt);
	h->cert = parse_certificate(h, VARDATA_ANY(id->der), VARSIZE_ANY_EXHDR(id->der));
	identity_from_cert(h, id);
	MemoryContextDelete(cxt);
}

/*
 * Read the identity of a request.  cert and signature may be NULL; when
 * both are NULL, out->der is NULL.  When both are given, the signer must be
 * the certificate.
 */
void
read_identity(bytea *body, bytea *cert, text *signature, RequestIdentity *out)
{
	MemoryContext cxt;
	IdentityHolder *h;
	X509	   *from_cert = NULL;

	memset(out, 0, sizeof(*out));
	if (cert == NULL && signature == NULL)
		return;
	if (cert != NULL)
		check_identity_size(false, VARSIZE_ANY_EXHDR(cert));
	if (signature != NULL)
		check_identity_size(true, VARSIZE_ANY_EXHDR(signature));
	if (signature == NULL && VARSIZE_ANY_EXHDR(cert) > 0 &&
		(unsigned char) VARDATA_ANY(cert)[0] == 0x30)
	{
		/* DER: parsed only if it is not the device's bound certificate */
		unparsed_identity(VARDATA_ANY(cert), VARSIZE_ANY_EXHDR(cert), out);
		return;
	}

	h = identity_holder_new(&cxt);
	if (cert != NULL)
		from_cert = h->cert = parse_certificate(h, VARDATA_ANY(cert), VARSIZE_ANY_EXHDR(cert));
	if (signature != NULL)
	{
		X509	   *signer = verify_signature(h, VARDATA_ANY(signature),
											  VARSIZE_ANY_EXHDR(signature),
											  VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body));

		if (from_cert != NULL && X509_cmp(from_cert, signer) != 0)
		{
			X509_free(signer);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("Mdm-Signature and client certificate disagree"),
					 errdetail("The message is signed by a certificate other than the one the front end passed.")));
		}
		X509_free(h->cert);
		h->cert = signer;
	}

	identity_from_cert(h, out);
	MemoryContextDelete(cxt);
}

/*
 * mdm_internal._verify_identity_chain(cert_der bytea, anchors_pem text) RETURNS boolean
 *
 * Does the certificate chain to one of the anchors and is it valid now?
 */
PG_FUNCTION_INFO_V1(mdm_verify_identity_chain);
Datum
mdm_verify_identity_chain(PG_FUNCTION_ARGS)
{
	bytea	   *der = PG_GETARG_BYTEA_PP(0);
	text	   *anchors = PG_GETARG_TEXT_PP(1);
	MemoryContext cxt;
	IdentityHolder *h = identity_holder_new(&cxt);
	X509	   *anchor;
	bool		ok;

	check_identity_size(false, VARSIZE_ANY_EXHDR(der));
	h->cert = parse_certificate(h, VARDATA_ANY(der), VARSIZE_ANY_EXHDR(der));
	h->store = X509_STORE_new();
	h->ctx = X509_STORE_CTX_new();
	BIO_free(h->bio);
	h->bio = BIO_new_mem_buf(VARDATA_ANY(anchors), VARSIZE_ANY_EXHDR(anchors));
	if (h->store == NULL || h->ctx == NULL || h->bio == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	while ((anchor = PEM_read_bio_X509(h->bio, NULL, NULL, NULL)) != NULL)
	{
		X509_STORE_add_cert(h->store, anchor);
		X509_free(anchor);
	}
	ERR_clear_error();
	/* an intermediate CA may be the anchor */
	X509_STORE_set_flags(h->store, X509_V_FLAG_PARTIAL_CHAIN);
	if (!X509_STORE_CTX_init(h->ctx, h->store, h->cert, NULL))
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	ok = (X509_verify_cert(h->ctx) == 1);
	ERR_clear_error();
	MemoryContextDelete(cxt);
	PG_RETURN_BOOL(ok);
}
