-- segment: what pg_dump saves.  Every table of the extension is configuration
-- data (pg_extension_config_dump), so a logical dump holds its rows, and so is
-- every identity sequence, so ids continue after a restore.  The install script
-- inserts no rows, so no table needs a filter.  A dump is restored with the
-- extension's triggers off (session_replication_role = replica): the rows come
-- back verbatim, nothing is computed again (doc/operations.md, "Backups").
-- test/integration/pg_dump.sh fails when a table or sequence of the extension
-- is missing here.
SELECT pg_catalog.pg_extension_config_dump('segment.fields', '');
SELECT pg_catalog.pg_extension_config_dump('segment.contacts', '');
SELECT pg_catalog.pg_extension_config_dump('segment.events', '');
SELECT pg_catalog.pg_extension_config_dump('segment.event_stats', '');
SELECT pg_catalog.pg_extension_config_dump('segment.segments', '');
SELECT pg_catalog.pg_extension_config_dump('segment.segment_members', '');
SELECT pg_catalog.pg_extension_config_dump('segment.dependency_index', '');
SELECT pg_catalog.pg_extension_config_dump('segment.changes', '');
SELECT pg_catalog.pg_extension_config_dump('segment.contact_tags', '');
SELECT pg_catalog.pg_extension_config_dump('segment.tag_rules', '');
SELECT pg_catalog.pg_extension_config_dump('segment.stages', '');
SELECT pg_catalog.pg_extension_config_dump('segment.contact_stages', '');
SELECT pg_catalog.pg_extension_config_dump('segment.templates', '');
SELECT pg_catalog.pg_extension_config_dump('segment.messages', '');
SELECT pg_catalog.pg_extension_config_dump('segment.message_events', '');
SELECT pg_catalog.pg_extension_config_dump('segment.suppressions', '');
SELECT pg_catalog.pg_extension_config_dump('segment.campaigns', '');
SELECT pg_catalog.pg_extension_config_dump('segment.campaign_recipients', '');
SELECT pg_catalog.pg_extension_config_dump('segment.flows', '');
SELECT pg_catalog.pg_extension_config_dump('segment.flow_runs', '');
SELECT pg_catalog.pg_extension_config_dump('segment.flow_inbox', '');
SELECT pg_catalog.pg_extension_config_dump('segment.contacts_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.segments_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.changes_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.tag_rules_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.templates_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.messages_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.message_events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.campaigns_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.flows_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.flow_runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segment.flow_inbox_id_seq', '');

-- The guard against a restore with the triggers on (src/dump.c).  Its one row
-- is made here, before the trigger exists, and is dumped like every other row:
-- named to sort first, it is the first data a restore loads.  The trigger fires
-- whatever session_replication_role is (ENABLE ALWAYS): with the triggers off
-- it skips the dumped copy, with them on it refuses the restore.
CREATE TABLE segment._restore_guard (
  guard boolean PRIMARY KEY DEFAULT true CHECK (guard)
);
COMMENT ON TABLE segment._restore_guard IS
  'One row; its dumped copy makes a restore with the extension''s triggers on fail early (doc/operations.md, Backups)';
INSERT INTO segment._restore_guard DEFAULT VALUES;
SELECT pg_catalog.pg_extension_config_dump('segment._restore_guard', '');
CREATE FUNCTION segment._restore_guard() RETURNS trigger
  AS 'MODULE_PATHNAME', 'segment_restore_guard' LANGUAGE C;
COMMENT ON FUNCTION segment._restore_guard() IS
  'Trigger: skips the dumped row of _restore_guard when a restore runs with session_replication_role = replica, refuses the restore otherwise';
CREATE TRIGGER restore_guard BEFORE INSERT ON segment._restore_guard
  FOR EACH ROW EXECUTE FUNCTION segment._restore_guard();
ALTER TABLE segment._restore_guard ENABLE ALWAYS TRIGGER restore_guard;

-- The change feed after a restore.  segment.changes, segment.flow_inbox and the
-- flows' cursors are keyed by transaction ids, which belong to the dumped
-- cluster: in another cluster new transactions may get ids below the restored
-- ones, so flows would skip new changes and leave restored ones waiting.  The
-- restore renumbers them below every transaction id of the restoring cluster,
-- keeping what each flow has read and what it has not: the cursors cut the feed
-- into spans, each span gets one small id (the span after the k-th distinct
-- cursor gets k + 1) and each cursor (its span, the largest change id), and
-- the waiting inbox rows get 1.  Within a span, changes are then read in id
-- order.  The capture triggers of event and field flows are not dumped (they
-- are made by _flow_sync_triggers, not by the install script), so they are made
-- again.  And a partitioned segment.events gets its identity sequence set.  A
-- trigger on flows, fired only with session_replication_role = replica, so only
-- by a restore (the data of flows follows that of changes, flow_inbox and the
-- partitions of events).
CREATE FUNCTION segment._restore_finish() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  WITH marks AS (
    SELECT cursor_xid AS x, cursor_id AS i, false AS is_change FROM segment.flows
    UNION
    SELECT xid, id, true FROM segment.changes),
  spans AS (
    SELECT x, i, is_change,
           count(*) FILTER (WHERE NOT is_change)
             OVER (ORDER BY x, i, is_change DESC ROWS UNBOUNDED PRECEDING) AS k
      FROM marks)
  UPDATE segment.changes c SET xid = (s.k + 1)::text::xid8
    FROM spans s
   WHERE s.is_change AND c.xid = s.x AND c.id = s.i;
  UPDATE segment.flows f
     SET cursor_xid = r.k::text::xid8,
         cursor_id = (SELECT coalesce(max(id), 0) FROM segment.changes)
    FROM (SELECT x, i, dense_rank() OVER (ORDER BY x, i) AS k
            FROM (SELECT DISTINCT cursor_xid AS x, cursor_id AS i FROM segment.flows) d) r
   WHERE f.cursor_xid = r.x AND f.cursor_id = r.i;
  UPDATE segment.flow_inbox SET xid = '1';
  PERFORM segment._flow_sync_triggers();
  -- A partitioned segment.events has an identity sequence of its own, not in
  -- the dump (12_partitioning.sql): ids continue after the restored ones.
  IF (SELECT relkind FROM pg_class WHERE oid = 'segment.events'::regclass) = 'p' THEN
    PERFORM setval(pg_get_serial_sequence('segment.events', 'id'), max(id))
       FROM segment.events HAVING count(*) > 0;
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION segment._restore_finish() IS
  'Trigger: after a restore loads segment.flows, renumbers the transaction ids of the change feed below the restoring cluster''s, makes the flows'' capture triggers and sets the id sequence of a partitioned events';
CREATE TRIGGER restore_change_feed AFTER INSERT ON segment.flows
  FOR EACH STATEMENT EXECUTE FUNCTION segment._restore_finish();
ALTER TABLE segment.flows ENABLE REPLICA TRIGGER restore_change_feed;

-- A partitioned segment.events: the dump attaches its partitions to the plain
-- table CREATE EXTENSION makes; this event trigger makes it partitioned first
-- (src/dump.c).  It fires in every replication role.
CREATE FUNCTION segment._restore_partitions() RETURNS event_trigger
  AS 'MODULE_PATHNAME', 'segment_restore_partitions' LANGUAGE C;
COMMENT ON FUNCTION segment._restore_partitions() IS
  'Event trigger: when a restore attaches partitions to the plain segment.events, makes it partitioned first, and its indexes before the partitions'' are attached';
CREATE EVENT TRIGGER segment_restore_partitions ON ddl_command_start
  WHEN TAG IN ('ALTER TABLE', 'ALTER INDEX') EXECUTE FUNCTION segment._restore_partitions();
ALTER EVENT TRIGGER segment_restore_partitions ENABLE ALWAYS;
