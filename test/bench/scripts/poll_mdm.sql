-- An Idle poll of Mac :dev's device channel, whose queue is empty.
SELECT status, length(body) AS len FROM mdm.connect(bench.report(:dev, 0, 'Idle', NULL), (SELECT c.der FROM bench.certs c WHERE c.i = :dev))
\gset
\if :len > 0
SELECT 'poll: unexpected command'::int;
\endif
