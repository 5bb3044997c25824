-- The per-message overhead every check-in workload pays: build the message
-- from :d and :u, and look up the device's certificate.  One round trip.
\set d :client_id + :nc * random(0, :n / :nc - 1)
\set u random(0, 1)
SELECT length(bench.tokenupdate(:d, :u)), (SELECT length(c.der) FROM bench.certs c WHERE c.i = :d);
