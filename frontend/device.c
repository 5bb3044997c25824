/*
 * device.c: PUT /mdm and PUT /checkin, each one call of mdm.checkin or
 * mdm.connect whose reply is written back unchanged; GET /mdm/enroll.
 * The identity passed is the TLS client certificate of the connection or,
 * with --cert-header, the certificate in that header (never both).
 */
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "device.h"
#include "log.h"

#define CHECKIN_TYPE "application/x-apple-aspen-mdm-checkin"

static int	stmt_checkin;
static int	stmt_connect;
static char *profile;
static size_t profile_len;

int
device_init(void)
{
	static const Oid types[3] = {17, 17, 25};	/* bytea, bytea, text */

	/* the enrollment ID, for the log line, comes from the database too */
	stmt_checkin = db_register(DB_DEVICE,
							   "SELECT status, content_type, body, mdm.message_enrollment_id($1, false) "
							   "FROM mdm.checkin($1, $2, $3)",
							   3, types);
	stmt_connect = db_register(DB_DEVICE,
							   "SELECT status, content_type, body, mdm.message_enrollment_id($1, true) "
							   "FROM mdm.connect($1, $2, $3)",
							   3, types);
	if (config.enroll_profile)
	{
		profile = config_read_file(config.enroll_profile, &profile_len);
		if (profile == NULL)
		{
			fprintf(stderr, "mdm-frontend: cannot read --enroll-profile %s\n",
					config.enroll_profile);
			return -1;
		}
	}
	return 0;
}

/*
 * The certificate header's value, URL-unescaped in place (nginx's
 * $ssl_client_escaped_cert): PEM.  Empty means none (nginx sends an empty
 * value when the client sent no certificate).  The PEM is passed as the DER
 * it encodes when it decodes to one (gnutls' PEM decoder: the first
 * CERTIFICATE block): the database then compares the DER's SHA-256 with
 * the device's bound certificate and parses nothing, where PEM would cost
 * it an X.509 decode, about as much as the rest of a check-in
 * (docs/performance.md).  Anything else, or a value larger than
 * mdm.max_identity_bytes, is passed unchanged: the database decides.
 * *der is set when the DER is passed (free it with gnutls_free).
 */
static const char *
header_cert(struct request *req, size_t *len, char **copy, gnutls_datum_t *der)
{
	const char *v = request_header(req, config.cert_header);
	gnutls_datum_t pem;

	*copy = NULL;
	der->data = NULL;
	der->size = 0;
	if (v == NULL || v[0] == '\0')
		return NULL;
	*copy = strdup(v);
	if (*copy == NULL)
		return NULL;
	*len = MHD_http_unescape(*copy);
	if (*len > (size_t) db_max_identity_bytes())
		return *copy;
	pem.data = (unsigned char *) *copy;
	pem.size = (unsigned int) *len;
	if (gnutls_pem_base64_decode2("CERTIFICATE", &pem, der) != GNUTLS_E_SUCCESS)
	{
		der->data = NULL;
		der->size = 0;
		return *copy;
	}
	if (der->size == 0 || der->data[0] != 0x30)
	{
		/* not a DER SEQUENCE: the database reads the PEM itself */
		gnutls_free(der->data);
		der->data = NULL;
		der->size = 0;
		return *copy;
	}
	*len = der->size;
	return (const char *) der->data;
}

/*
 * The enrollment ID for the log line: "id=" and the ID, control characters
 * replaced (a user short name is the device's to choose), cut to fit.
 */
static void
note_enrollment(struct request *req, const char *id, int len)
{
	size_t		n = snprintf(req->log_note, sizeof(req->log_note), "id=");

	for (int i = 0; i < len && n + 1 < sizeof(req->log_note); i++)
		req->log_note[n++] = ((unsigned char) id[i] < 0x20 || id[i] == 0x7f) ? '?' : id[i];
	req->log_note[n] = '\0';
}

/*
 * Writes mdm.reply (status, content_type, body), read in binary, to out, and
 * notes the enrollment ID (the fourth column) for the log line.
 */
static void
reply_from_row(struct request *req, PGresult *res, struct reply *out)
{
	uint32_t	status;

	if (PQntuples(res) != 1 || PQnfields(res) != 4 || PQgetisnull(res, 0, 0) ||
		PQgetlength(res, 0, 0) != 4)
	{
		log_error("mdm.reply of an unexpected shape");
		reply_empty(out, 500);
		return;
	}
	memcpy(&status, PQgetvalue(res, 0, 0), 4);
	out->status = (int) ntohl(status);
	out->content_type = NULL;
	out->len = 0;
	out->body = NULL;
	if (!PQgetisnull(res, 0, 1))
	{
		int			n = PQgetlength(res, 0, 1);

		if ((size_t) n >= sizeof(out->content_type_buf))
		{
			log_error("mdm.reply with a content type of %d bytes", n);
			reply_empty(out, 500);
			return;
		}
		memcpy(out->content_type_buf, PQgetvalue(res, 0, 1), n);
		out->content_type_buf[n] = '\0';
		out->content_type = out->content_type_buf;
	}
	if (!PQgetisnull(res, 0, 2) && PQgetlength(res, 0, 2) > 0)
	{
		out->len = PQgetlength(res, 0, 2);
		out->body = malloc(out->len);
		if (out->body == NULL)
		{
			reply_empty(out, 503);
			return;
		}
		memcpy(out->body, PQgetvalue(res, 0, 2), out->len);
	}
	if (!PQgetisnull(res, 0, 3))
		note_enrollment(req, PQgetvalue(res, 0, 3), PQgetlength(res, 0, 3));
}

static void
device_call(struct request *req, struct reply *out, int stmt)
{
	const char *values[3];
	int			lengths[3];
	static const int formats[3] = {1, 1, 0};
	struct db_call call = {.nparams = 3, .values = values, .lengths = lengths,
	.formats = formats, .result_format = 1};
	char	   *hcert = NULL;
	gnutls_datum_t der = {NULL, 0};
	const void *cert = NULL;
	size_t		cert_len = 0;

	if (config.cert_header)
		cert = header_cert(req, &cert_len, &hcert, &der);
	else
		cert = request_peer_cert(req, &cert_len);

	values[0] = req->body ? req->body : "";
	lengths[0] = (int) req->len;
	values[1] = cert;
	lengths[1] = (int) cert_len;
	values[2] = request_header(req, "Mdm-Signature");
	lengths[2] = 0;

	switch (db_exec(stmt, &call))
	{
		case DB_OK:
			reply_from_row(req, call.res, out);
			PQclear(call.res);
			break;
		case DB_ERROR:
			reply_empty(out, db_http_status(call.sqlstate, false));
			snprintf(req->log_note, sizeof(req->log_note), "sqlstate=%s", call.sqlstate);
			log_debug("%s %s: %s", req->method, req->url, call.message);
			break;
		case DB_UNAVAILABLE:
			reply_empty(out, 503);
			snprintf(req->log_note, sizeof(req->log_note), "database unavailable");
			break;
	}
	free(hcert);
	gnutls_free(der.data);
}

/* ServerURL: a check-in by its content type, else a command report or poll. */
void
device_mdm(struct request *req, struct reply *out)
{
	const char *ct = request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);

	if (ct && strncmp(ct, CHECKIN_TYPE, strlen(CHECKIN_TYPE)) == 0)
		device_call(req, out, stmt_checkin);
	else
		device_call(req, out, stmt_connect);
}

/* CheckInURL */
void
device_checkin(struct request *req, struct reply *out)
{
	device_call(req, out, stmt_checkin);
}

void
device_enroll(struct request *req, struct reply *out)
{
	if (profile == NULL)
	{
		reply_empty(out, 404);
		return;
	}
	out->status = 200;
	out->content_type = "application/x-apple-aspen-config";
	out->len = profile_len;
	out->body = malloc(profile_len ? profile_len : 1);
	if (out->body == NULL)
	{
		reply_empty(out, 503);
		return;
	}
	memcpy(out->body, profile, profile_len);
}
