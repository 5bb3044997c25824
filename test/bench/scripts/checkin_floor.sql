-- The floor: one single-row upsert of the message, one round trip.
\set d :client_id + :nc * random(0, :n / :nc - 1)
\set u random(0, 1)
INSERT INTO bench.floor (id, body, cert_sha256)
VALUES (bench.eid(:d, :u), bench.tokenupdate(:d, :u), (SELECT c.sha256 FROM bench.certs c WHERE c.i = :d))
ON CONFLICT (id) DO UPDATE SET body = excluded.body, cert_sha256 = excluded.cert_sha256, updated_at = now();
