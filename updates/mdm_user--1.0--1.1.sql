-- mdm_user 1.0 -> 1.1: what changed in SQL objects since release 1.0.
-- Each change here is also made in schema/ (docs/releasing.md); test/upgrade/run
-- checks that an upgraded 1.0 and a fresh 1.1 are the same.

\echo Use "ALTER EXTENSION mdm_user UPDATE TO '1.1'" to load this file. \quit
