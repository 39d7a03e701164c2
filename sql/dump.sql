-- Restoring a dump (sql/install/95_dump.sql, src/dump.c): what pg_dump saves,
-- the guard against a restore with the extension's triggers on, and what a
-- restore does to the change feed.  The dump and restore themselves:
-- test/integration/pg_dump.sh.
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';

-- Every table and identity sequence of the extension is dumped with its rows.
SELECT c.relname, c.relkind, c.oid = ANY (e.extconfig) AS dumped, e.extcondition[array_position(e.extconfig, c.oid)] AS filter
  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid JOIN pg_extension e ON e.oid = d.refobjid
 WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND e.extname = 'segment' AND c.relkind IN ('r', 'S')
 ORDER BY c.relkind, c.relname;

-- The change feed: two flows read up to different places, a third waits for
-- an event in the inbox.
SELECT segment.upsert_contact(x || '@example.com') FROM unnest(ARRAY['ann', 'bob', 'cy']) x;
SELECT segment.create_segment('buyers', 'did purchase');
SELECT segment.create_template('t', 'Hello', '<p>Hello</p>');
SELECT segment.track(1, 'purchase');
SELECT segment.create_flow('early', 'segment_enter:buyers', 't');
SELECT segment.track(2, 'purchase');
SELECT segment.create_flow('late', 'segment_enter:buyers', 't');
SELECT segment.track(3, 'purchase');
SELECT segment.create_flow('welcome', 'event:signup', 't');
SELECT segment.track(1, 'signup');
SELECT id, kind, name, contact_id FROM segment.changes ORDER BY xid, id;
SELECT name, cursor_id FROM segment.flows ORDER BY id;
-- A restore loads the rows with session_replication_role = replica: the dumped
-- row of _restore_guard is skipped (CREATE EXTENSION made it), and the load of
-- flows renumbers the transaction ids of the feed below this cluster's: the
-- changes each flow has read lie at or before its cursor, the others after it,
-- and the inbox row is ready.  The capture trigger of event flows (not in a
-- dump) is made again.
DROP TRIGGER events_60_flows ON segment.events;
SET session_replication_role = replica;
INSERT INTO segment._restore_guard VALUES (true);
SELECT count(*) FROM segment._restore_guard;
INSERT INTO segment.flows OVERRIDING SYSTEM VALUE SELECT * FROM segment.flows WHERE false;
RESET session_replication_role;
SELECT xid, id, kind, name, contact_id FROM segment.changes ORDER BY xid, id;
SELECT name, cursor_xid, cursor_id FROM segment.flows ORDER BY id;
SELECT xid, kind, name, contact_id FROM segment.flow_inbox;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'segment.events'::regclass AND tgname = 'events_60_flows';
-- run_flows: early starts the runs of bob and cy, late of cy, welcome of ann.
SELECT * FROM segment.run_flows();
SELECT f.name, r.contact_id FROM segment.flow_runs r JOIN segment.flows f ON f.id = r.flow_id ORDER BY f.name, r.contact_id;
SELECT * FROM segment.run_flows() WHERE runs > 0;

-- A restore with the triggers on is refused at its first row, and from then on
-- this session maintains nothing.
INSERT INTO segment._restore_guard VALUES (true);
SELECT segment.upsert_contact('dan@example.com');
SELECT segment.track(1, 'purchase');
SELECT count(*) FROM segment.contacts;
-- Another session is not affected.
\c
SELECT segment.upsert_contact('dan@example.com') AS dan \gset
SELECT segment.track(:dan, 'purchase') > 0 AS tracked;
SELECT segment.in_segment(:dan, 'buyers');
DROP EXTENSION segment;

-- A dump of a partitioned segment.events attaches its partitions to the plain
-- table CREATE EXTENSION makes: the event trigger makes it partitioned first
-- (no default partition, no indexes: both come from the dump), and the
-- parent's indexes when the dump attaches the first partition index.
CREATE EXTENSION segment;
CREATE TABLE segment.events_202601 (LIKE segment.events INCLUDING DEFAULTS);
ALTER TABLE ONLY segment.events ATTACH PARTITION segment.events_202601
  FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00');
SELECT c.relkind, (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid) AS indexes,
       (SELECT count(*) FROM pg_inherits h WHERE h.inhparent = c.oid) AS partitions
  FROM pg_class c WHERE c.oid = 'segment.events'::regclass;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'segment.events_202601'::regclass AND NOT tgisinternal ORDER BY 1;
ALTER TABLE ONLY segment.events_202601 ADD CONSTRAINT events_202601_pkey PRIMARY KEY (id, occurred_at);
ALTER INDEX segment.events_pkey ATTACH PARTITION segment.events_202601_pkey;
SELECT indexrelid::regclass, indisvalid FROM pg_index WHERE indrelid = 'segment.events'::regclass ORDER BY 1;
SELECT segment.upsert_contact('ann@example.com') AS ann \gset
SELECT segment.track(:ann, 'purchase', '{}', 5, '2026-01-15 00:00:00+00') > 0 AS tracked;
SELECT count, sum_amount FROM segment.event_stats;
DROP EXTENSION segment;
-- segment.events with rows is not a restore's: left alone, PostgreSQL refuses.
CREATE EXTENSION segment;
SELECT segment.upsert_contact('ann@example.com') AS ann \gset
SELECT segment.track(:ann, 'purchase') > 0 AS tracked;
CREATE TABLE segment.events_202601 (LIKE segment.events INCLUDING DEFAULTS);
ALTER TABLE ONLY segment.events ATTACH PARTITION segment.events_202601
  FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-02-01 00:00:00+00');
SELECT relkind FROM pg_class WHERE oid = 'segment.events'::regclass;
DROP TABLE segment.events_202601;
DROP EXTENSION segment;
