-- The TokenUpdates of Macs 0 .. :n - 1 of the benchmark database as raw HTTP
-- requests for test/bench/http/driver.c: per Mac its device channel's, then
-- its user channel's, each as its length in bytes, a newline, the request and
-- a newline.  Every request carries its Mac's certificate in X-Client-Cert
-- (URL-escaped PEM, as nginx's $ssl_client_escaped_cert), as wrk.lua's do.
-- psql -At -v n=N -f requests.sql -o FILE
WITH r AS (
    SELECT i, u, format(E'PUT /mdm HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                        || E'Content-Type: application/x-apple-aspen-mdm-checkin\r\n'
                        || E'X-Client-Cert: %s\r\nContent-Length: %s\r\n\r\n%s',
                        replace(replace(replace(replace(replace(
                            E'-----BEGIN CERTIFICATE-----\n' || encode(der, 'base64') || E'\n-----END CERTIFICATE-----\n',
                            '+', '%2B'), '/', '%2F'), '=', '%3D'), ' ', '%20'), E'\n', '%0A'),
                        octet_length(bench.tokenupdate(i, u)), bench.tokenupdate_text(i, u)) AS req
    FROM bench.certs, generate_series(0, 1) u WHERE i < :n
)
SELECT octet_length(req) || E'\n' || req FROM r ORDER BY i, u;
