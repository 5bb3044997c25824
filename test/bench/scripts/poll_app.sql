-- The same Idle poll the application way: certificate check, last seen,
-- next command from the queue view (none).
SELECT COUNT(*) FROM nanomdm.cert_auth_associations
WHERE id = bench.udid(:dev) AND sha256 = (SELECT c.sha256_hex FROM bench.certs c WHERE c.i = :dev);
UPDATE nanomdm.enrollments SET last_seen_at = CURRENT_TIMESTAMP WHERE id = bench.udid(:dev);
SELECT command_uuid, request_type, command FROM nanomdm.view_queue
WHERE id = bench.udid(:dev) AND active = TRUE AND (status IS NULL OR (status = 'NotNow' AND NOT false))
LIMIT 1;
