-- TokenUpdate on the device (u = 0) or user (u = 1) channel of a random Mac,
-- with the Mac's identity certificate: one call, one round trip.
\set d :client_id + :nc * random(0, :n / :nc - 1)
\set u random(0, 1)
SELECT * FROM mdm.checkin(bench.tokenupdate(:d, :u), (SELECT c.der FROM bench.certs c WHERE c.i = :d));
