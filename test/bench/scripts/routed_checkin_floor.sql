-- The Citus comparison's floor: the same message stored with one plain
-- single-row upsert (bench.floor is distributed by id on Citus).
\set d :client_id + :nc * random(0, :n / :nc - 1)
\set u random(0, 1)
SELECT bench.tokenupdate(:d, :u) AS msg, (SELECT c.der FROM bench.certs c WHERE c.i = :d) AS der
\gset
INSERT INTO bench.floor (id, body, cert_sha256) VALUES (bench.eid(:d, :u), :msg, sha256(:der))
ON CONFLICT (id) DO UPDATE SET body = excluded.body, cert_sha256 = excluded.cert_sha256,
    updated_at = excluded.updated_at;
