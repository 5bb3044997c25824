-- The Citus comparison's connect cycle: a command queued to a random
-- channel (through the routed enqueue), its Idle poll and its Acknowledged report through the routed
-- call; the messages are made in statements of their own.  A wrong reply
-- aborts the run.
\set d :client_id + :nc * random(0, :n / :nc - 1)
\set u random(0, 1)
SELECT bench.udid(:d) AS dev, bench.eid(:d, :u) AS eid,
       bench.report(:d, :u, 'Idle', NULL) AS idle, (SELECT c.der FROM bench.certs c WHERE c.i = :d) AS der
\gset
-- the enqueue routed by its target's device: one worker (schema/90_citus.sql)
SELECT mdm.enqueue_routed(:dev, ARRAY[:eid], '{"RequestType": "ProfileList"}'::jsonb, 0, false, true) AS cmd
\gset
SELECT status, length(body) AS idle_len FROM mdm.connect_routed(mdm.report_device_id(:idle), :idle, :der)
\gset
SELECT bench.report(:d, :u, 'Acknowledged', :cmd) AS ack
\gset
SELECT status, length(body) AS ack_len FROM mdm.connect_routed(mdm.report_device_id(:ack), :ack, :der)
\gset
\if :idle_len = 0 OR :ack_len > 0
SELECT 'connect cycle: wrong reply'::int;
\endif
