-- The connect cycle: a command is queued to a random channel, the channel's
-- Idle poll fetches it, its Acknowledged report gets the empty reply.
-- Three calls, three round trips; a wrong reply aborts the run.
\set d :client_id + :nc * random(0, :n / :nc - 1)
\set u random(0, 1)
SELECT mdm.enqueue(ARRAY[bench.eid(:d, :u)], '{"RequestType": "ProfileList"}'::jsonb) AS cmd
\gset
SELECT status, length(body) AS idle_len FROM mdm.connect(bench.report(:d, :u, 'Idle', NULL), (SELECT c.der FROM bench.certs c WHERE c.i = :d))
\gset
SELECT status, length(body) AS ack_len FROM mdm.connect(bench.report(:d, :u, 'Acknowledged', :cmd), (SELECT c.der FROM bench.certs c WHERE c.i = :d))
\gset
\if :idle_len = 0 OR :ack_len > 0
SELECT 'connect cycle: wrong reply'::int;
\endif
