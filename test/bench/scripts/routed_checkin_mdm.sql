-- The Citus comparison (test/bench/citus.sh): a TokenUpdate through the
-- routed call, with the message and certificate as parameters, as a front
-- end sends them, so that Citus can route it.  The first statement makes
-- them (as every variant of this phase does).
\set d :client_id + :nc * random(0, :n / :nc - 1)
\set u random(0, 1)
SELECT bench.tokenupdate(:d, :u) AS msg, (SELECT c.der FROM bench.certs c WHERE c.i = :d) AS der
\gset
SELECT * FROM mdm.checkin_routed(mdm.message_device_id(:msg), :msg, :der);
