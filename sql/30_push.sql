--
-- Push jobs and push certificates: durable jobs per enrollment, coalescing,
-- claim and report, token invalidation, retries, the claim timeout, jobs
-- that wait for a certificate, re-push, and the enrollment profile.
-- (NOTIFY and concurrent claims are in test/isolation/specs/push_jobs.spec.)
--
SELECT reset_mdm();
\! sh test/push_certs.sh results/push_certs
\set cert `cat results/push_certs/mdm.crt`
\set key `cat results/push_certs/mdm.key`
\set cert2 `cat results/push_certs/mdm2.crt`
\set key2 `cat results/push_certs/mdm2.key`
\set other_key `cat results/push_certs/other.key`
\set nonmdm_cert `cat results/push_certs/nonmdm.crt`
\set nonmdm_key `cat results/push_certs/nonmdm.key`
\set nocert_cert `cat results/push_certs/nocert.crt`
\set nocert_key `cat results/push_certs/nocert.key`
\set mac '980E3D0B-5A28-537C-B7CB-7AFD15AFB933'
\set victor '980E3D0B-5A28-537C-B7CB-7AFD15AFB933:23B1AB9F-5A19-4919-8610-0A74091497E1'

-- Certificates: the topic comes from the subject's UID
SELECT mdm.upload_push_cert(:'cert', :'key') AS topic;
SELECT topic, subject, days_to_expiry BETWEEN 360 AND 365 AS about_a_year FROM mdm.view_push_certs;
SELECT try(format('SELECT mdm.upload_push_cert(%L, %L)', :'cert', :'other_key')) AS mismatched_key;
SELECT try(format('SELECT mdm.upload_push_cert(%L, %L)', :'nonmdm_cert', :'nonmdm_key')) AS not_mdm;
SELECT left(try(format('SELECT mdm.upload_push_cert(%L, %L)', 'garbage', :'key')), 80) AS garbage_cert;
SELECT left(try(format('SELECT mdm.upload_push_cert(%L, %L)', :'cert', 'garbage')), 80) AS garbage_key;
-- a renewal for the same topic replaces the pair
SELECT mdm.upload_push_cert(:'cert2', :'key2') AS renewed;
SELECT count(*) AS certs, bool_and(days_to_expiry BETWEEN 725 AND 730) AS two_years FROM mdm.view_push_certs;
-- nobody reads keys but the extension: the table is not granted to anyone
SELECT has_table_privilege('public', 'mdm.push_certs', 'SELECT') AS public_can_read;

-- The seed's Mac and Victor's user channel
SELECT (mdm.checkin(v(n))).status FROM unnest(ARRAY[
    'checkin/01-authenticate.plist', 'checkin/02-tokenupdate-device.plist', 'checkin/05-tokenupdate-user.plist']) n;

-- Enqueue to the device and to the user channel: two jobs, each with its own
-- token and PushMagic and the certificate's topic
SELECT mdm.enqueue(ARRAY[:'mac', :'victor'], '{"RequestType": "ProfileList"}'::jsonb) IS NOT NULL AS queued;
SELECT enrollment_id, state FROM mdm.push_jobs ORDER BY enrollment_id;
-- enqueueing again before the push is sent coalesces into the pending jobs
SELECT mdm.enqueue(ARRAY[:'mac', :'victor'], '{"RequestType": "CertificateList"}'::jsonb) IS NOT NULL AS queued_again;
SELECT mdm.push(ARRAY[:'victor']) AS created_by_push;
SELECT count(*) AS jobs FROM mdm.push_jobs;

-- the backlog's age: the oldest claimable job waited a little; none after the claim
UPDATE mdm.push_jobs SET not_before = not_before - interval '30 seconds' WHERE state = 'pending';
SELECT mdm.push_backlog_age() BETWEEN 30 AND 3600 AS backlog_age;
CREATE TEMP TABLE claimed AS SELECT * FROM mdm.claim_pushes();
SELECT mdm.push_backlog_age() AS backlog_age_after_claim;
SELECT enrollment_id, token_hex, push_magic, topic, apns_push_type, apns_priority,
       apns_expiration - extract(epoch FROM now())::bigint BETWEEN 86390 AND 86400 AS expires_in_a_day,
       cert_pem = :'cert2' AS cert, key_pem = :'key2' AS key
FROM claimed ORDER BY enrollment_id;
SELECT count(*) AS nothing_left_to_claim FROM mdm.claim_pushes();
SELECT job_id AS mac_job FROM claimed WHERE enrollment_id = :'mac' \gset
SELECT job_id AS victor_job FROM claimed WHERE enrollment_id = :'victor' \gset

-- A claimed job that a new enqueue needs again: a new pending job, since the
-- claimed one may already be on its way
SELECT mdm.push(ARRAY[:'mac']) AS new_job_while_claimed;
SELECT enrollment_id, state, count(*) FROM mdm.push_jobs GROUP BY 1, 2 ORDER BY 1, 2;

-- 200: sent
SELECT mdm.push_result(:victor_job, 200, NULL, 'apns-1') AS victor_result;
SELECT try(format('SELECT mdm.push_result(%s, 200)', :victor_job)) AS reported_twice;
SELECT try('SELECT mdm.push_result(999999, 200)') AS unknown_job;

-- 410 Unregistered: the token is dead; no pushes to that channel (and its
-- pending job fails) until its next TokenUpdate
SELECT mdm.push_result(:mac_job, 410, 'Unregistered') AS mac_result;
SELECT id, token_invalid_at IS NOT NULL AS token_invalid, token_invalid_reason
FROM mdm.nano_enrollments ORDER BY id;
SELECT enrollment_id, state, apns_status, apns_reason FROM mdm.push_jobs ORDER BY id;
SELECT mdm.push(ARRAY[:'mac']) AS no_job_for_dead_token;
-- the next TokenUpdate makes the channel pushable again, and pushes for the
-- commands that waited meanwhile
SELECT (mdm.checkin(v('checkin/02-tokenupdate-device.plist'))).status AS token_update;
SELECT count(*) AS job_from_token_update FROM mdm.push_jobs WHERE enrollment_id = :'mac' AND state = 'pending';
SELECT mdm.push(ARRAY[:'mac']) AS coalesced_into_it;

-- 503: retried later with backoff, not claimable before then
SELECT job_id AS retry_job FROM mdm.claim_pushes() \gset
SELECT mdm.push_result(:retry_job, 503, 'ServiceUnavailable') AS after_503;
SELECT state, attempts, not_before > now() + interval '5 seconds' AS backs_off FROM mdm.push_jobs WHERE id = :retry_job;
SELECT count(*) AS claimable_now FROM mdm.claim_pushes();
-- once the retry time has come it is claimed again; the delay doubles per attempt
UPDATE mdm.push_jobs SET not_before = now() WHERE id = :retry_job;
SELECT job_id = :retry_job AS same_job FROM mdm.claim_pushes();
SELECT mdm.push_result(:retry_job, 429, 'TooManyRequests') AS after_429;
SELECT attempts, not_before - now() > interval '15 seconds' AS doubled FROM mdm.push_jobs WHERE id = :retry_job;
-- until mdm.push_max_attempts
SET mdm.push_max_attempts = 3;
UPDATE mdm.push_jobs SET not_before = now() WHERE id = :retry_job;
SELECT count(*) FROM mdm.claim_pushes();
SELECT mdm.push_result(:retry_job, 500, 'InternalServerError') AS gives_up;
RESET mdm.push_max_attempts;
-- The backoff at the largest settings: base * 2^(attempts - 1) is clamped
-- in seconds before it becomes an interval (an interval overflowed at 41
-- attempts, push_result raised and the job stayed claimed for good)
CREATE TEMP TABLE saved_job AS SELECT * FROM mdm.push_jobs WHERE id = :retry_job;
CREATE FUNCTION backoff_after(job bigint, n integer, OUT result text, OUT delay interval)
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mdm.push_jobs SET state = 'pending', finished_at = NULL, not_before = now(), attempts = n - 1
    WHERE id = job;
    PERFORM FROM mdm.claim_pushes() c WHERE c.job_id = job;
    result := mdm.push_result(job, 503, 'ServiceUnavailable');
    SELECT date_trunc('second', j.not_before - now() + interval '0.5 s') INTO delay
    FROM mdm.push_jobs j WHERE j.id = job;
END $$;
SET mdm.push_max_attempts = 1000;
SET mdm.push_retry_base = '1d';
SET mdm.push_retry_max = '7d';
SELECT n AS attempts, b.* FROM unnest(ARRAY[1, 2, 3, 4, 41, 42, 64, 999, 1000]) n, backoff_after(:retry_job, n) b;
SET mdm.push_retry_base = 1;
SELECT n AS attempts, b.* FROM unnest(ARRAY[1, 20, 21, 41, 1000]) n, backoff_after(:retry_job, n) b;
RESET mdm.push_retry_base;
SELECT n AS attempts, b.* FROM unnest(ARRAY[10, 16, 17, 18, 41, 999]) n, backoff_after(:retry_job, n) b;
RESET mdm.push_retry_max;
RESET mdm.push_max_attempts;
DROP FUNCTION backoff_after(bigint, integer);
-- the job as it was (failed after three attempts)
DELETE FROM mdm.push_attempts a USING saved_job s WHERE a.job_id = s.id AND a.attempt > s.attempts;
UPDATE mdm.push_jobs j SET state = s.state, attempts = s.attempts, not_before = s.not_before,
       finished_at = s.finished_at, claimed_at = s.claimed_at, apns_status = s.apns_status,
       apns_reason = s.apns_reason
FROM saved_job s WHERE j.id = s.id;

-- Other statuses fail without retry and without touching the token
SELECT mdm.push(ARRAY[:'victor']);
SELECT job_id AS cert_job FROM mdm.claim_pushes() \gset
SELECT mdm.push_result(:cert_job, 403, 'BadCertificateEnvironment') AS after_403;
SELECT token_invalid_at IS NULL AS token_still_valid FROM mdm.nano_enrollments WHERE id = :'victor';
SELECT enrollment_id, job_id = :cert_job AS is_it, problem, apns_status, apns_reason FROM mdm.view_push_problems ORDER BY job_id;

-- 400 BadDeviceToken also invalidates the token
SELECT mdm.push(ARRAY[:'victor']);
SELECT mdm.push_result(job_id, 400, 'BadDeviceToken') FROM mdm.claim_pushes();
SELECT token_invalid_reason FROM mdm.nano_enrollments WHERE id = :'victor';
SELECT (mdm.checkin(v('checkin/05-tokenupdate-user.plist'))).status AS user_token_update;

-- A claim that is never reported: after the timeout its job ends and a new
-- pending job takes its place, counting the attempts on
SELECT mdm.push(ARRAY[:'victor']);
SELECT job_id AS lost_job FROM mdm.claim_pushes() \gset
SELECT count(*) AS not_yet FROM mdm.claim_pushes();
UPDATE mdm.push_jobs SET claimed_at = now() - interval '10 minutes' WHERE id = :lost_job;
SELECT job_id AS new_job FROM mdm.claim_pushes() \gset
SELECT id <> :lost_job AS a_new_job, enrollment_id, attempts FROM mdm.push_jobs WHERE id = :new_job;
SELECT state, apns_reason FROM mdm.push_jobs WHERE id = :lost_job;
-- a late report of the lost claim is recorded against its own job, and
-- does not decide the new claim
SELECT mdm.push_result(:lost_job, 200, NULL, 'apns-late') AS late_report;
SELECT attempt, apns_status, apns_id FROM mdm.push_attempts WHERE job_id = :lost_job;
SELECT count(*) AS new_claim_still_open FROM mdm.push_jobs WHERE enrollment_id = :'victor' AND state = 'claimed';
-- when a newer job is pending meanwhile, the timed-out one just ends
SELECT id AS second_job FROM mdm.push_jobs WHERE enrollment_id = :'victor' AND state = 'claimed' \gset
SELECT mdm.push(ARRAY[:'victor']) AS newer_job;
UPDATE mdm.push_jobs SET claimed_at = now() - interval '10 minutes' WHERE id = :second_job;
SELECT mdm.run_maintenance() -> 'released_push_claims' AS released;
SELECT state, count(*) FROM mdm.push_jobs WHERE enrollment_id = :'victor' AND id >= :second_job GROUP BY 1 ORDER BY 1;
-- two claims of one enrollment timing out at once: one new job
SELECT count(*) AS claimed FROM mdm.claim_pushes() WHERE enrollment_id = :'victor';
SELECT mdm.push(ARRAY[:'victor']) AS another_job;
SELECT count(*) AS claimed FROM mdm.claim_pushes() WHERE enrollment_id = :'victor';
UPDATE mdm.push_jobs SET claimed_at = now() - interval '10 minutes' WHERE enrollment_id = :'victor' AND state = 'claimed';
SELECT mdm.run_maintenance() -> 'released_push_claims' AS released_two;
SELECT count(*) AS pending FROM mdm.push_jobs WHERE enrollment_id = :'victor' AND state = 'pending';
-- and a list of targets naming one enrollment twice makes one job
SELECT mdm_internal._announce_pushes(ARRAY[ROW(:'mac', :'mac', 'Device', NULL)::mdm_internal._target,
                                  ROW(:'mac', :'mac', 'Device', NULL)::mdm_internal._target]) AS one_job;
-- a job that was never claimed has no outcome to report
SELECT try(format('SELECT mdm.push_result(%s, 200)', j.id)) AS never_claimed
FROM mdm.push_jobs j WHERE j.enrollment_id = :'victor' AND j.state = 'pending';
-- a claim that keeps timing out gives up after mdm.push_max_attempts
SET mdm.push_max_attempts = 1;
SELECT job_id AS doomed_job FROM mdm.claim_pushes() WHERE enrollment_id = :'victor' \gset
UPDATE mdm.push_jobs SET claimed_at = now() - interval '10 minutes' WHERE id = :doomed_job;
SELECT mdm.run_maintenance() -> 'released_push_claims' AS released;
SELECT state, apns_reason FROM mdm.push_jobs WHERE id = :doomed_job;
RESET mdm.push_max_attempts;

-- A 410 about a token the channel no longer has (a TokenUpdate came between
-- the claim and the report) leaves the new token alone: the job is retried
-- at once, with the new token
SELECT mdm.push(ARRAY[:'victor']) AS pushed;
SELECT job_id AS old_token_job, token_hex AS old_token FROM mdm.claim_pushes() \gset
SELECT (mdm.checkin(mdm.jsonb_to_plist(jsonb_set(mdm.plist_to_jsonb(v('checkin/05-tokenupdate-user.plist')),
        '{Token}', '{"$data": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}')))).status AS new_token;
SELECT mdm.push_result(:old_token_job, 410, 'Unregistered') AS stale_410;
SELECT token_invalid_at IS NULL AS new_token_still_valid, token_hex <> :'old_token' AS changed
FROM mdm.nano_enrollments WHERE id = :'victor';
SELECT token_hex = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f' AS retried_with_new_token
FROM mdm.claim_pushes();
SELECT token_hex = :'old_token' AS attempt_records_old_token FROM mdm.push_attempts WHERE job_id = :old_token_job;

-- Commands queued while a channel cannot be pushed (re-enrolled, waiting
-- for its TokenUpdate) get their push with that TokenUpdate
SELECT (mdm.checkin(v('checkin/01-authenticate.plist'))).status AS re_enrolled;
SELECT mdm.enqueue(ARRAY[:'mac'], '{"RequestType": "ProfileList"}'::jsonb) IS NOT NULL AS queued_while_disabled;
SELECT count(*) AS no_job_yet FROM mdm.push_jobs WHERE enrollment_id = :'mac' AND state = 'pending';
SELECT (mdm.checkin(v('checkin/02-tokenupdate-device.plist'))).status AS token_update;
SELECT count(*) AS job_with_token_update FROM mdm.push_jobs WHERE enrollment_id = :'mac' AND state = 'pending';
SELECT (mdm.checkin(v('checkin/05-tokenupdate-user.plist'))).status AS user_token_update;

-- A TokenUpdate whose topic has no certificate is accepted; its jobs wait,
-- visible to operators, and become claimable once the certificate arrives
SELECT (mdm.checkin(v('checkin/20-authenticate-mac2.plist'))).status AS authenticate;
SELECT (mdm.checkin(mdm.jsonb_to_plist(jsonb_set(mdm.plist_to_jsonb(v('checkin/21-tokenupdate-mac2-device.plist')),
        '{Topic}', '"com.apple.mgmt.External.no-cert-yet"')))).status AS token_update_other_topic;
SELECT mdm.enqueue(ARRAY['5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B'], '{"RequestType": "ProfileList"}'::jsonb) IS NOT NULL AS queued;
SELECT enrollment_id, topic, waiting_jobs FROM mdm.view_enrollments_without_push_cert;
SELECT enrollment_id, problem FROM mdm.view_push_problems WHERE problem = 'no push certificate';
SELECT count(*) AS claimable FROM mdm.claim_pushes() WHERE enrollment_id = '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B';
SELECT mdm.upload_push_cert(:'nocert_cert', :'nocert_key') AS uploaded;
SELECT enrollment_id, topic FROM mdm.claim_pushes() WHERE enrollment_id = '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B';
DELETE FROM mdm.push_certs WHERE topic = 'com.apple.mgmt.External.no-cert-yet';

-- claim_pushes takes at least one job
SELECT try('SELECT count(*) FROM mdm.claim_pushes(0)') AS zero_jobs;
SELECT try('SELECT count(*) FROM mdm.claim_pushes(NULL)') AS null_jobs;

-- Re-push: commands still waiting, no poll since the last push, and the
-- interval (doubled per unanswered push) has passed
DELETE FROM mdm.push_attempts;
DELETE FROM mdm.push_jobs;
UPDATE mdm.nano_enrollments SET last_seen_at = now() - interval '3 hours' WHERE id = :'mac';
INSERT INTO mdm.push_jobs (device_id, enrollment_id, state, finished_at, attempts)
VALUES (:'mac', :'mac', 'sent', now() - interval '2 hours', 1);
SELECT mdm.run_maintenance() -> 'repushed' AS repushed;
SELECT mdm.run_maintenance() -> 'repushed' AS not_twice;
UPDATE mdm.push_jobs SET state = 'sent', finished_at = now() - interval '90 minutes' WHERE state = 'pending';
SELECT mdm.run_maintenance() -> 'repushed' AS two_unanswered_wait_longer;
-- forty unanswered pushes: the wait stays a day (doubling an interval
-- overflowed after about 32 of them, and run_maintenance failed for good)
DELETE FROM mdm.push_attempts;
DELETE FROM mdm.push_jobs;
UPDATE mdm.nano_enrollments SET last_seen_at = now() - interval '60 days' WHERE id = :'mac';
INSERT INTO mdm.push_jobs (device_id, enrollment_id, state, finished_at, attempts)
SELECT :'mac', :'mac', 'sent', now() - interval '25 hours' - g * interval '1 day', 1
FROM generate_series(0, 39) g;
SELECT mdm.run_maintenance() -> 'repushed' AS repushed_after_a_day;
UPDATE mdm.push_jobs SET finished_at = now() - interval '23 hours' WHERE state = 'pending';
UPDATE mdm.push_jobs SET state = 'sent' WHERE state = 'pending';
SELECT mdm.run_maintenance() -> 'repushed' AS not_within_the_day;
-- a poll that came while an enqueue was still uncommitted did not see its
-- command: once the poll is mdm.repush_interval old, it is pushed again
SELECT mdm.enqueue(ARRAY[:'victor'], '{"RequestType": "ProfileList"}'::jsonb) IS NOT NULL AS victor_waits;
DELETE FROM mdm.push_attempts;
DELETE FROM mdm.push_jobs;
UPDATE mdm.nano_enrollment_queue SET created_at = now() - interval '2 hours', sent_at = NULL
WHERE id IN (:'mac', :'victor') AND active;
UPDATE mdm.nano_enrollments SET last_seen_at = now() - interval '90 minutes' WHERE id IN (:'mac', :'victor');
-- more targets than the fan-out threshold: still pending jobs, which the
-- next run sees (a fan-out row it would not, and it would add one a run)
SET mdm.push_fanout_threshold = 1;
SELECT mdm.run_maintenance() -> 'repushed' AS missed_by_a_poll;
SELECT mdm.run_maintenance() -> 'repushed' AS not_again;
RESET mdm.push_fanout_threshold;
SELECT enrollment_id, state FROM mdm.push_jobs ORDER BY 1;
SELECT count(*) AS repush_fanouts FROM mdm.push_fanouts;

-- Many outcomes at once: mdm.push_results records each as mdm.push_result
-- would (the 200s set-based), and returns one state per outcome
DELETE FROM mdm.push_attempts;
DELETE FROM mdm.push_jobs;
SELECT mdm.push(ARRAY[:'mac', :'victor']) AS batch_jobs;
CREATE TEMP TABLE batch AS SELECT job_id, enrollment_id FROM mdm.claim_pushes() ORDER BY enrollment_id;
SELECT b.enrollment_id, r.state
FROM mdm.push_results(ARRAY(SELECT job_id FROM batch ORDER BY enrollment_id),
                      ARRAY(SELECT CASE WHEN enrollment_id = :'mac' THEN 200 ELSE 503 END FROM batch ORDER BY enrollment_id),
                      ARRAY(SELECT CASE WHEN enrollment_id = :'mac' THEN NULL ELSE 'ServiceUnavailable' END FROM batch ORDER BY enrollment_id),
                      ARRAY(SELECT 'apns-' || enrollment_id FROM batch ORDER BY enrollment_id)) r
JOIN batch b ON b.job_id = r.job_id ORDER BY 1;
SELECT j.enrollment_id, j.state, j.apns_status, j.apns_reason, j.apns_id = 'apns-' || j.enrollment_id AS apns_id,
       a.attempt, a.apns_status AS attempt_status, a.token_hex = e.token_hex AS attempt_token
FROM mdm.push_jobs j JOIN mdm.push_attempts a ON a.job_id = j.id
JOIN mdm.nano_enrollments e ON e.device_id = j.device_id AND e.id = j.enrollment_id
ORDER BY 1;
-- a job reported again keeps its state (as with push_result); errors are push_result's
SELECT r.state AS reported_again FROM mdm.push_results(ARRAY(SELECT job_id FROM batch WHERE enrollment_id = :'mac'), ARRAY[200]) r;
SELECT try('SELECT mdm.push_results(ARRAY[999999], ARRAY[200])') AS unknown_job;
SELECT try('SELECT mdm.push_results(ARRAY[1, 2], ARRAY[200])') AS lengths_differ;
SELECT count(*) AS nothing FROM mdm.push_results('{}', '{}');

-- Large fan-outs (more targets than mdm.push_fanout_threshold): the pushes
-- wait as chunks of enrollment IDs, which claim_pushes turns into claimed
-- jobs; each target is checked then, and reported as any job
DELETE FROM mdm.push_attempts;
DELETE FROM mdm.push_jobs;
SET mdm.push_fanout_threshold = 1;
SELECT mdm.enqueue(ARRAY[:'mac', :'victor'], '{"RequestType": "ProfileList"}'::jsonb) IS NOT NULL AS fanned_out;
SELECT chunk, enrollment_ids = ARRAY[:'mac', :'victor'] AS targets, next_target FROM mdm.push_fanouts;
SELECT count(*) AS jobs_before_the_claim FROM mdm.push_jobs;
SELECT mdm.push_backlog_age() >= 0 AS backlog_seen;
CREATE TEMP TABLE fan1 AS SELECT * FROM mdm.claim_pushes(1);
SELECT enrollment_id = :'mac' AS first_target, token_hex IS NOT NULL AND push_magic IS NOT NULL AS pushable FROM fan1;
SELECT next_target FROM mdm.push_fanouts;
SELECT state, attempts, claimed_at IS NOT NULL AS claimed FROM mdm.push_jobs WHERE id = (SELECT job_id FROM fan1);
-- a target with a pending job is left to that job; the chunk is done
SELECT mdm.push(ARRAY[:'victor']) AS victor_pending;
RESET mdm.push_fanout_threshold;
SELECT count(*) AS from_fanout FROM mdm_internal._claim_fanouts(10);
SELECT count(*) AS fanouts_left FROM mdm.push_fanouts;
SELECT enrollment_id FROM mdm.claim_pushes() ORDER BY 1;
SELECT mdm.push_result(job_id, 200) AS fan_reported FROM fan1;
-- a disabled channel is skipped at the claim
SET mdm.push_fanout_threshold = 1;
SELECT mdm.push(ARRAY[:'mac', :'victor']) AS fan_targets;
RESET mdm.push_fanout_threshold;
UPDATE mdm.nano_enrollments SET enabled = false WHERE id = :'victor';
SELECT enrollment_id FROM mdm.claim_pushes() ORDER BY 1;
SELECT count(*) AS fanouts_left FROM mdm.push_fanouts;
UPDATE mdm.nano_enrollments SET enabled = true WHERE id = :'victor';
-- two fan-outs naming the same targets (two large enqueues while the
-- sender is slow): one push per target, whether the second is expanded by
-- the same claim or by a later one while the first one's jobs are claimed
DELETE FROM mdm.push_attempts;
DELETE FROM mdm.push_jobs;
SET mdm.push_fanout_threshold = 1;
SELECT mdm.push(ARRAY[:'mac', :'victor']) AS first_fanout;
SELECT mdm.push(ARRAY[:'mac', :'victor']) AS second_fanout;
SELECT enrollment_id, count(*) AS pushes FROM mdm.claim_pushes(3) GROUP BY 1 ORDER BY 1;
SELECT count(*) AS fanouts_left FROM mdm.push_fanouts;
SELECT mdm.push(ARRAY[:'mac', :'victor']) AS third_fanout;
RESET mdm.push_fanout_threshold;
SELECT count(*) AS later_claim FROM mdm.claim_pushes();
SELECT count(*) AS fanouts_left FROM mdm.push_fanouts;
SELECT enrollment_id, state, count(*) AS jobs FROM mdm.push_jobs GROUP BY 1, 2 ORDER BY 1, 2;
-- oldest first between jobs and fan-outs: jobs made after a fan-out do not
-- keep it waiting (a claim expanded it only when it had room left)
DELETE FROM mdm.push_attempts;
DELETE FROM mdm.push_jobs;
SET mdm.push_fanout_threshold = 1;
SELECT mdm.push(ARRAY[:'mac', '5B0C2E4A-1C3D-4E5F-8A9B-0C1D2E3F4A5B']) AS older_fanout;
RESET mdm.push_fanout_threshold;
SELECT mdm.push(ARRAY[:'victor']) AS newer_job;
SELECT enrollment_id = :'mac' AS fanout_first FROM mdm.claim_pushes(1);
SELECT enrollment_id = :'victor' AS then_the_job FROM mdm.claim_pushes();
SELECT count(*) AS fanouts_left FROM mdm.push_fanouts;
SELECT integrity() AS broken;

-- a pending job whose enrollment is gone (a hand delete racing a fan-out's
-- claim; written here directly) is pruned by maintenance, with its attempts
INSERT INTO mdm.push_jobs (device_id, enrollment_id) VALUES ('GONE-DEVICE', 'GONE-DEVICE') RETURNING id AS orphan_job \gset
INSERT INTO mdm.push_attempts (device_id, job_id, attempt, apns_status) VALUES ('GONE-DEVICE', :orphan_job, 1, 500);
SELECT integrity() AS orphaned;
SELECT (mdm.run_maintenance() -> 'push_jobs')::integer >= 1 AS pruned;
SELECT (SELECT count(*) FROM mdm.push_jobs WHERE id = :orphan_job) AS job,
       (SELECT count(*) FROM mdm.push_attempts WHERE job_id = :orphan_job) AS attempts;

-- The enrollment profile: per-user connections, or no Mac opens a user channel
SELECT jsonb_pretty(p - 'PayloadUUID' - 'PayloadContent') AS wrapper,
       jsonb_pretty((p -> 'PayloadContent' -> -1) - 'PayloadUUID') AS mdm_payload
FROM mdm.plist_to_jsonb(mdm.enrollment_profile('https://mdm.example.com/mdm',
                                               'A1B2C3D4-0000-4000-8000-000000000001',
                                               checkin_url => 'https://mdm.example.com/checkin',
                                               extra_payloads => '[{"PayloadType": "com.apple.security.scep",
                                                   "PayloadUUID": "A1B2C3D4-0000-4000-8000-000000000001",
                                                   "PayloadIdentifier": "com.example.mdm.scep",
                                                   "PayloadVersion": 1}]')) p;
SELECT try($$SELECT mdm.enrollment_profile('https://x', gen_random_uuid(), topic => 'com.apple.mgmt.External.other')$$);

-- pg_cron lives in the postgres database: schedule_maintenance says what to run there
SELECT mdm.schedule_maintenance();
