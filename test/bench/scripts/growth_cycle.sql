-- One connect cycle for the next Mac in turn (phase growth): enqueue, the
-- push worker claims the jobs and reports APNs success, Idle poll gets the
-- command, Acknowledged gets the empty reply.
SELECT nextval('bench.growth_seq') - 1 AS k
\gset
\set d :k % :g
\set u (:k / :g) % 2
SELECT mdm.enqueue(ARRAY[bench.eid(:d, :u)], '{"RequestType": "ProfileList"}'::jsonb) AS cmd
\gset
SELECT count(mdm.push_result(job_id, 200, NULL, 'bench')) AS pushed FROM mdm.claim_pushes(50)
\gset
SELECT status, length(body) AS idle_len FROM mdm.connect(bench.report(:d, :u, 'Idle', NULL), (SELECT c.der FROM bench.certs c WHERE c.i = :d))
\gset
SELECT status, length(body) AS ack_len FROM mdm.connect(bench.report(:d, :u, 'Acknowledged', :cmd), (SELECT c.der FROM bench.certs c WHERE c.i = :d))
\gset
\if :idle_len = 0 OR :ack_len > 0
SELECT 'growth cycle: wrong reply'::int;
\endif
