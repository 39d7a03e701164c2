-- Segment entries written by maintenance go in without a SQL statement
-- (src/maintain_write.c): the membership row and its change-feed row, with the
-- tables' own defaults, CHECK constraints, unique indexes and foreign keys.
-- Shown here: the rows written (exact values), the foreign keys' row locks,
-- CHECK constraints and defaults changed after the first write (kept
-- preparations must follow), and the statement path taken instead when a
-- table has a trigger of its own or the user lacks a right on it.
CREATE EXTENSION segment;
CREATE EXTENSION pgrowlocks;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2030-03-10 12:00:00+00';
SELECT segment.define_field('country', 'text');
SELECT segment.upsert_contact('w' || g || '@example.com', jsonb_build_object('country', 'DE'))
  FROM generate_series(1, 3) g;
SELECT segment.create_segment('viewers', 'did page_view within 7 days');
SELECT segment.create_segment('buyers', 'did purchase');
SELECT segment.create_segment('big_buyers', 'sum(purchase.amount) > 100');

CREATE VIEW feed AS
  SELECT c.id - (SELECT min(id) FROM segment.changes) + 1 AS n, c.contact_id, c.kind, c.name,
         c.previous, c.source, c.at, c.xid = pg_current_xact_id() AS this_xact
    FROM segment.changes c ORDER BY c.id;
CREATE VIEW members AS
  SELECT s.name, m.contact_id, m.since
    FROM segment.segment_members m JOIN segment.segments s ON s.id = m.segment_id
   ORDER BY s.name, m.contact_id;

-- Two entries from one event, one from the next; in a transaction, so the
-- change rows show this transaction's id and the foreign keys' row locks show.
BEGIN;
SELECT segment.track(1, 'purchase', '{}', 150) > 0 AS tracked;
SELECT segment.track(2, 'page_view') > 0 AS tracked;
SELECT * FROM feed;
SELECT * FROM members;
-- each referenced contact is locked FOR KEY SHARE, as the foreign key's check locks it
SELECT c.id, l.modes
  FROM segment.contacts c, pgrowlocks('segment.contacts') l
 WHERE l.locked_row = c.ctid ORDER BY c.id;
-- segment rows are not locked: a segment goes only under the maintenance lock,
-- which this transaction holds in share mode until it ends (segments_10_guard)
SELECT count(*) AS locked_segments FROM pgrowlocks('segment.segments');
SELECT mode, granted FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = 0 AND objid = 0 AND objsubid = 24174;
COMMIT;

-- A CHECK constraint added after the first write is enforced (nothing written).
ALTER TABLE segment.changes ADD CONSTRAINT no_viewers CHECK (name <> 'viewers') NOT VALID;
\set VERBOSITY terse
SELECT segment.track(3, 'page_view');
\set VERBOSITY default
SELECT count(*) AS rows_for_3 FROM segment.segment_members WHERE contact_id = 3;
ALTER TABLE segment.changes DROP CONSTRAINT no_viewers;

-- A default changed after the first write is the one used.
ALTER TABLE segment.changes ALTER COLUMN at SET DEFAULT '2001-02-03 04:05:06+00';
SELECT segment.track(3, 'page_view') > 0 AS tracked;
ALTER TABLE segment.changes ALTER COLUMN at SET DEFAULT segment.now();
SELECT segment.track(3, 'purchase', '{}', 5) > 0 AS tracked;
SELECT n, contact_id, kind, name, source, at FROM feed WHERE contact_id = 3;

-- A trigger of the table's own: the entry is written by the statement, which
-- fires it; the rows are the same.
CREATE FUNCTION note_member() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'member % of segment %', NEW.contact_id, (SELECT name FROM segment.segments WHERE id = NEW.segment_id);
  RETURN NEW;
END $$;
CREATE TRIGGER note_member AFTER INSERT ON segment.segment_members FOR EACH ROW EXECUTE FUNCTION note_member();
SELECT segment.track(2, 'purchase', '{}', 500) > 0 AS tracked;
DROP TRIGGER note_member ON segment.segment_members;
SELECT n, contact_id, kind, name, source, at FROM feed WHERE contact_id = 2;

-- Without the right to insert into segment_members, tracking fails as the
-- statement would (the fast path is not a way around table rights).
CREATE ROLE maintain_write_app;
GRANT segment_app TO maintain_write_app;
REVOKE INSERT ON segment.segment_members FROM segment_app;
SET ROLE maintain_write_app;
SELECT segment.track(3, 'purchase', '{}', 200);
RESET ROLE;
GRANT INSERT ON segment.segment_members TO segment_app;
SET ROLE maintain_write_app;
SELECT segment.track(3, 'purchase', '{}', 200) > 0 AS tracked;
RESET ROLE;
SELECT n, contact_id, kind, name, source, at FROM feed WHERE contact_id = 3;
DROP ROLE maintain_write_app;

-- Rule tags: a new one goes in without a statement (its row and change row),
-- the same way; an expired manual tag is renewed as a rule tag by the statement.
SELECT segment.upsert_contact('w4@example.com');
SELECT segment.tag(1, 'viewer', '2030-03-10 13:00:00+00');
SET segment.clock_override = '2030-03-10 14:00:00+00';
SELECT segment.create_tag_rule('viewer', 'did page_view within 7 days');
SELECT segment.track(4, 'page_view') > 0 AS tracked;
SELECT segment.track(1, 'page_view') > 0 AS tracked;
SELECT contact_id, tag, source, tagged_at, expires_at FROM segment.contact_tags ORDER BY contact_id, tag;
SELECT n, contact_id, kind, name, source, at FROM feed WHERE kind = 'tag_add';
-- a failure after the new tag's rows were written takes every row of the
-- event back with it; the next event writes them
SELECT segment.upsert_contact('w5@example.com') AS w5 \gset
BEGIN;
SAVEPOINT s;
ALTER TABLE segment.changes ADD CONSTRAINT no_tag_add CHECK (kind <> 'tag_add') NOT VALID;
\set VERBOSITY terse
SELECT segment.track(:w5, 'page_view');
\set VERBOSITY default
ROLLBACK TO s;
SELECT (SELECT count(*) FROM segment.segment_members WHERE contact_id = :w5) AS members_of_w5,
       (SELECT count(*) FROM segment.contact_tags WHERE contact_id = :w5) AS tags_of_w5;
SELECT segment.track(:w5, 'page_view') > 0 AS tracked;
COMMIT;
SELECT kind, name FROM feed WHERE contact_id = :w5;

-- A contact is locked once per subtransaction however many writes name it; a
-- lock taken in a subtransaction that rolls back is gone, and the next write
-- takes it again.  remove_from_segment locks nothing itself (a delete checks no
-- foreign key), so the lock shown is the one maintenance takes when the contact
-- enters 'unpicked'.
SELECT segment.create_segment('picked', NULL, 'static');
SELECT segment.create_segment('unpicked', 'not in segment ''picked''');
SELECT segment.add_to_segment('picked', 3);
BEGIN;
SAVEPOINT a;
SELECT segment.remove_from_segment('picked', 3);
SELECT c.id, l.modes
  FROM segment.contacts c, pgrowlocks('segment.contacts') l
 WHERE l.locked_row = c.ctid ORDER BY c.id;
ROLLBACK TO a;
SELECT count(*) AS locked_contacts FROM pgrowlocks('segment.contacts');
SELECT segment.remove_from_segment('picked', 3);
SELECT c.id, l.modes
  FROM segment.contacts c, pgrowlocks('segment.contacts') l
 WHERE l.locked_row = c.ctid ORDER BY c.id;
SELECT segment.add_to_segment('picked', 3);
COMMIT;
SELECT segment.drop_segment('unpicked');
SELECT segment.drop_segment('picked');

-- Membership and rule tags are what the rules say.
SELECT * FROM members;
SELECT s.name,
       ARRAY(SELECT contact_id FROM segment.segment_members WHERE segment_id = s.id ORDER BY 1)
       = ARRAY(SELECT m FROM segment.members(s.rule) m ORDER BY 1) AS exact
  FROM segment.segments s ORDER BY s.name;
SELECT ARRAY(SELECT contact_id FROM segment.contact_tags WHERE tag = 'viewer' AND source = 'rule' ORDER BY 1)
       = ARRAY(SELECT m FROM segment.members('did page_view within 7 days') m ORDER BY 1) AS tag_exact;

DROP VIEW members;
DROP VIEW feed;
DROP FUNCTION note_member();
DROP EXTENSION pgrowlocks;
DROP EXTENSION segment;
