-- The connect cycle the application way (NanoMDM's pgsql storage), one
-- statement per round trip.  The enqueue: command and queue row in one
-- transaction (EnqueueCommand).
\set d :client_id + :nc * random(0, :n / :nc - 1)
\set u random(0, 1)
BEGIN;
INSERT INTO nanomdm.commands (command_uuid, request_type, command)
SELECT u, 'ProfileList', bench.command_text(u) FROM (SELECT upper(gen_random_uuid()::text) AS u) s
RETURNING command_uuid AS cmd
\gset
INSERT INTO nanomdm.enrollment_queue (id, command_uuid) VALUES (bench.eid(:d, :u), :cmd);
COMMIT;
-- The Idle poll: certificate check, last seen, next command from the queue view
SELECT COUNT(*) FROM nanomdm.cert_auth_associations
WHERE id = bench.udid(:d) AND sha256 = (SELECT c.sha256_hex FROM bench.certs c WHERE c.i = :d);
UPDATE nanomdm.enrollments SET last_seen_at = CURRENT_TIMESTAMP WHERE id = bench.eid(:d, :u);
SELECT command_uuid AS next_cmd, request_type, command FROM nanomdm.view_queue
WHERE id = bench.eid(:d, :u) AND active = TRUE AND (status IS NULL OR (status = 'NotNow' AND NOT false))
LIMIT 1
\gset
-- The Acknowledged report: certificate check, last seen, result upsert, next command
SELECT COUNT(*) FROM nanomdm.cert_auth_associations
WHERE id = bench.udid(:d) AND sha256 = (SELECT c.sha256_hex FROM bench.certs c WHERE c.i = :d);
UPDATE nanomdm.enrollments SET last_seen_at = CURRENT_TIMESTAMP WHERE id = bench.eid(:d, :u);
INSERT INTO nanomdm.command_results (id, command_uuid, status, result, not_now_at, not_now_tally)
VALUES (bench.eid(:d, :u), :cmd, 'Acknowledged', bench.report_text(:d, :u, 'Acknowledged', :cmd), NULL, 0)
ON CONFLICT ON CONSTRAINT command_results_pkey DO UPDATE
SET status = EXCLUDED.status, result = EXCLUDED.result;
SELECT command_uuid, request_type, command FROM nanomdm.view_queue
WHERE id = bench.eid(:d, :u) AND active = TRUE AND (status IS NULL OR (status = 'NotNow' AND NOT false))
LIMIT 1;
