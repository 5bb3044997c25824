-- The wrk script's data (test/bench/http/wrk.lua) for Macs 0 .. :n - 1 of the
-- benchmark database, as a Lua file: per Mac its certificate (URL-escaped
-- PEM), its TokenUpdates, Idle polls and Acknowledged reports (CommandUUID
-- @@CMD@@) for both channels, and the enrollment IDs; the enqueue body.
-- psql -At -v n=N -f data.sql -o FILE
SELECT 'return {command = [==[' || bench.command_text('@@CMD@@') || ']==], devices = {';
SELECT format('[%s] = {cert = "%s", tu0 = [==[%s]==], tu1 = [==[%s]==], idle0 = [==[%s]==], '
              'idle1 = [==[%s]==], ack0 = [==[%s]==], ack1 = [==[%s]==], eid0 = "%s", eid1 = "%s"},',
              i,
              replace(replace(replace(replace(replace(
                  E'-----BEGIN CERTIFICATE-----\n' || encode(der, 'base64') || E'\n-----END CERTIFICATE-----\n',
                  '+', '%2B'), '/', '%2F'), '=', '%3D'), ' ', '%20'), E'\n', '%0A'),
              bench.tokenupdate_text(i, 0), bench.tokenupdate_text(i, 1),
              bench.report_text(i, 0, 'Idle', NULL), bench.report_text(i, 1, 'Idle', NULL),
              bench.report_text(i, 0, 'Acknowledged', '@@CMD@@'), bench.report_text(i, 1, 'Acknowledged', '@@CMD@@'),
              bench.eid(i, 0), bench.eid(i, 1))
FROM bench.certs WHERE i < :n ORDER BY i;
SELECT '}}';
