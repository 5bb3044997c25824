-- One connect cycle on Mac :dev's device channel (phase history builds the
-- device's history with it, one transaction per call as in production).
SELECT mdm.enqueue(ARRAY[bench.udid(:dev)], '{"RequestType": "ProfileList"}'::jsonb) AS cmd
\gset
SELECT status, length(body) AS idle_len FROM mdm.connect(bench.report(:dev, 0, 'Idle', NULL), (SELECT c.der FROM bench.certs c WHERE c.i = :dev))
\gset
SELECT status, length(body) AS ack_len FROM mdm.connect(bench.report(:dev, 0, 'Acknowledged', :cmd), (SELECT c.der FROM bench.certs c WHERE c.i = :dev))
\gset
\if :idle_len = 0 OR :ack_len > 0
SELECT 'history cycle: wrong reply'::int;
\endif
