-- Time partitioning of segment.events for large installs.
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2026-06-15 12:00:00+00';
SELECT segment.upsert_contact('ann@example.com') AS ann \gset
SELECT segment.track(:ann, 'purchase', '{}', a, t)
  FROM (VALUES (10, '2026-03-02 10:00+00'::timestamptz), (20, '2026-04-30 23:59:59+00'),
               (30, '2026-06-01 00:00+00'), (40, '2026-06-15 11:00+00')) v(a, t);

-- Bad arguments.
SELECT segment.partition_events('fortnight');
SELECT segment.partition_events('month', -1);
CREATE ROLE regress_part_admin IN ROLE segment_admin;
SET ROLE regress_part_admin;
SELECT segment.partition_events();
RESET ROLE;
DROP ROLE regress_part_admin;

-- First call: convert, then March .. September 2026 (3 months ahead of June).
SELECT segment.partition_events('month', 3);
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bounds,
       (SELECT count(*) FROM segment.events e WHERE e.tableoid = c.oid) AS rows
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'segment.events'::regclass ORDER BY c.relname;
-- Nothing lost, aggregates untouched, ids continue.
SELECT count(*), sum(amount) FROM segment.events;
SELECT count, sum_amount, first_at, last_at FROM segment.event_stats;
SELECT segment.track(:ann, 'purchase', '{}', 50) AS next_id;
-- Triggers came along: inserts, deletes and updates still maintain the aggregates.
SELECT count, sum_amount FROM segment.event_stats;
DELETE FROM segment.events WHERE amount = 10;
UPDATE segment.events SET amount = 25 WHERE amount = 20;
SELECT count, sum_amount, first_at FROM segment.event_stats;
-- The table still belongs to the extension; its partitions do not (their data is dumped).
SELECT count(*) AS member FROM pg_depend
 WHERE objid = 'segment.events'::regclass AND deptype = 'e';
SELECT count(*) AS member_partitions FROM pg_depend
 WHERE objid = 'segment.events_202606'::regclass AND deptype = 'e';

-- Idempotent; as time passes it only adds what is missing.
SELECT segment.partition_events('month', 3);
SET segment.clock_override = '2026-08-20 12:00:00+00';
SELECT segment.partition_events('month', 3);
-- An event outside every partition lands in the default one, and moves out later.
SELECT segment.track(:ann, 'purchase', '{}', 60, '2027-03-05 00:00+00') > 0 AS tracked;
SELECT count(*) AS in_default FROM segment.events_default;
SET segment.clock_override = '2027-01-10 12:00:00+00';
SELECT segment.partition_events('month', 2);
SELECT count(*) AS in_default FROM segment.events_default;
SELECT count, sum_amount FROM segment.event_stats;
-- Pruning: a windowed question reads only the partitions of its window.
EXPLAIN (COSTS OFF) SELECT count(*) FROM segment.events
 WHERE type = 'purchase' AND occurred_at >= '2026-06-01' AND occurred_at < '2026-07-01';
DROP EXTENSION segment;
SELECT count(*) AS leftovers FROM pg_class WHERE relname LIKE 'events\_%';
