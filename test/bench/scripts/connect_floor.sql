-- The floor of the connect cycle: one single-row upsert per message
-- (enqueue, Idle, Acknowledged), one round trip each.
\set d :client_id + :nc * random(0, :n / :nc - 1)
\set u random(0, 1)
INSERT INTO bench.floor (id, body, cert_sha256)
VALUES (bench.eid(:d, :u), bench.command(gen_random_uuid()::text), NULL)
ON CONFLICT (id) DO UPDATE SET body = excluded.body, cert_sha256 = excluded.cert_sha256, updated_at = now();
INSERT INTO bench.floor (id, body, cert_sha256)
VALUES (bench.eid(:d, :u), bench.report(:d, :u, 'Idle', NULL), (SELECT c.sha256 FROM bench.certs c WHERE c.i = :d))
ON CONFLICT (id) DO UPDATE SET body = excluded.body, cert_sha256 = excluded.cert_sha256, updated_at = now();
INSERT INTO bench.floor (id, body, cert_sha256)
VALUES (bench.eid(:d, :u), bench.report(:d, :u, 'Acknowledged', 'C0FFEE00-0000-4000-8000-000000000000'), (SELECT c.sha256 FROM bench.certs c WHERE c.i = :d))
ON CONFLICT (id) DO UPDATE SET body = excluded.body, cert_sha256 = excluded.cert_sha256, updated_at = now();
