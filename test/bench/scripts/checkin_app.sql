-- The same TokenUpdate the application way (NanoMDM's pgsql storage): the
-- front end parsed the plist and hashed the certificate; it sends one
-- statement per round trip, each in its own transaction (autocommit).
\set d :client_id + :nc * random(0, :n / :nc - 1)
\set u random(0, 1)
-- certauth: IsCertHashAssociated (every request is checked against the device ID)
SELECT COUNT(*) FROM nanomdm.cert_auth_associations
WHERE id = bench.udid(:d) AND sha256 = (SELECT c.sha256_hex FROM bench.certs c WHERE c.i = :d);
\if :u
-- storeUserTokenUpdate
INSERT INTO nanomdm.users (id, device_id, user_short_name, user_long_name, token_update, token_update_at)
VALUES (bench.eid(:d, 1), bench.udid(:d), 'bench' || :d, 'Bench User ' || :d, bench.tokenupdate_text(:d, 1), CURRENT_TIMESTAMP)
ON CONFLICT ON CONSTRAINT users_pkey DO UPDATE
SET device_id = EXCLUDED.device_id, user_short_name = EXCLUDED.user_short_name,
    user_long_name = EXCLUDED.user_long_name, token_update = EXCLUDED.token_update,
    token_update_at = CURRENT_TIMESTAMP;
\else
-- storeDeviceTokenUpdate
UPDATE nanomdm.devices SET token_update = bench.tokenupdate_text(:d, 0), token_update_at = CURRENT_TIMESTAMP
WHERE id = bench.udid(:d);
\endif
-- StoreTokenUpdate: the enrollment upsert
INSERT INTO nanomdm.enrollments
    (id, device_id, user_id, type, topic, push_magic, token_hex, last_seen_at, token_update_tally)
VALUES (bench.eid(:d, :u), bench.udid(:d), CASE WHEN :u = 1 THEN bench.eid(:d, 1) END,
        CASE WHEN :u = 1 THEN 'User' ELSE 'Device' END, bench.topic(), bench.push_magic(:d, :u),
        encode(bench.token(:d, :u), 'hex'), CURRENT_TIMESTAMP, 1)
ON CONFLICT ON CONSTRAINT enrollments_pkey DO UPDATE
SET device_id = EXCLUDED.device_id, user_id = EXCLUDED.user_id, type = EXCLUDED.type,
    topic = EXCLUDED.topic, push_magic = EXCLUDED.push_magic, token_hex = EXCLUDED.token_hex,
    enabled = TRUE, last_seen_at = CURRENT_TIMESTAMP,
    token_update_tally = enrollments.token_update_tally + 1;
