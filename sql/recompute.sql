-- Whole-rule recomputation is set-based (segment._recompute_all: the rule's
-- members() against the stored state, only the differences written).  Each case
-- runs it, shows the changes it recorded, rolls back, then runs the incremental
-- evaluation of every contact (segment._maintain with n:<node>, what these
-- functions did before) from the same state, and checks that both leave the
-- same members, tags, stages and change rows (the same rows; within one
-- transaction their order carries no meaning, so they are compared sorted).
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2030-01-01 00:00:00+00';

-- Everything the maintained rules produce, and the changes recorded after mark.
CREATE FUNCTION public.recompute_state(mark bigint) RETURNS text LANGUAGE sql AS $$
  SELECT concat_ws(E'\n',
    (SELECT string_agg(format('%s=%s@%s', s.name, m.contact_id, m.since), ' ' ORDER BY s.name, m.contact_id)
       FROM segment.segment_members m JOIN segment.segments s ON s.id = m.segment_id),
    (SELECT string_agg(format('%s:%s:%s:%s:%s', t.contact_id, t.tag, t.source, t.tagged_at, t.expires_at), ' '
                       ORDER BY t.contact_id, t.tag) FROM segment.contact_tags t),
    (SELECT string_agg(format('%s:%s@%s', cs.contact_id, cs.stage, cs.since), ' ' ORDER BY cs.contact_id)
       FROM segment.contact_stages cs),
    (SELECT string_agg(format('%s:%s:%s:%s:%s:%s:%s', c.contact_id, c.kind, c.name, c.previous, c.source, c.at,
                              c.xid = pg_current_xact_id()), ' '
                       ORDER BY c.contact_id, c.kind, c.name, c.previous)
       FROM segment.changes c WHERE c.id > mark))
$$;
-- The changes recorded after mark, one line each.
CREATE FUNCTION public.recompute_changes(mark bigint)
  RETURNS TABLE (contact_id bigint, kind text, name text, previous text, source text)
  LANGUAGE sql AS $$
  SELECT c.contact_id, c.kind, c.name, c.previous, c.source FROM segment.changes c
   WHERE c.id > mark ORDER BY c.contact_id, c.kind, c.name
$$;

SELECT count(*) FROM (SELECT segment.upsert_contact('r' || g || '@example.com') FROM generate_series(1, 24) g) x;
-- Contact i bought i % 5 times, 40 days apart, the last one 3 * i days ago.
SELECT count(*) FROM (
  SELECT segment.track(i, 'purchase', '{}', 60 + 20 * k,
                       timestamptz '2030-01-01' - make_interval(days => 3 * i + 40 * k))
    FROM generate_series(1, 24) i, generate_series(0, 4) k WHERE k < i % 5) x;
SELECT count(*) FROM (SELECT segment.track(i, 'email_open', '{}', NULL, timestamptz '2030-01-01' - make_interval(days => i))
                        FROM generate_series(3, 24, 3) i) x;
-- Tags by hand: unexpired (2), expiring soon (3), by a flow (4).
SELECT segment.tag(2, 'fan'), segment.tag(3, 'fan', '2030-01-10'), segment.tag(4, 'fan', NULL, 'flow');
-- Rules downstream of what is recomputed: on the tag, on the stages, on a segment.
SELECT segment.create_segment('fans', 'tagged ''fan''') > 0 AS created;
SELECT segment.define_stage('prospect', 5, 'did email_open');
SELECT segment.create_segment('prospects', 'stage = ''prospect''') > 0 AS created;
SELECT segment.create_segment('big', 'sum(purchase.amount) > 150') > 0 AS created;
SELECT segment.create_segment('big_openers', 'in segment ''big'' and did email_open') > 0 AS created;
-- The tag of 3 has expired now, without a refresh.
SET segment.clock_override = '2030-01-15 00:00:00+00';

-- 1. create_tag_rule: the rule takes over no-tag and expired tags, leaves the
--    unexpired manual and flow ones; "fans" follows.
BEGIN;
SELECT coalesce(max(id), 0) AS mark FROM segment.changes \gset
SELECT segment.create_tag_rule('fan', 'did purchase within 60 days') > 0 AS created;
SELECT * FROM public.recompute_changes(:mark);
SELECT public.recompute_state(:mark) AS set_state \gset
ROLLBACK;
BEGIN;
INSERT INTO segment.tag_rules (tag, rule, deps, refreshed_at)
  VALUES ('fan', 'did purchase within 60 days', segment.rule_dependencies('did purchase within 60 days'), segment.now());
SELECT segment._index_rule('tag_rule', 'fan', segment.rule_dependencies('did purchase within 60 days'));
SELECT segment._maintain(ARRAY['n:t:fan'], (SELECT array_agg(id) FROM segment.contacts));
SELECT public.recompute_state(:mark) = :'set_state' AS same_as_incremental;
ROLLBACK;
SELECT segment.create_tag_rule('fan', 'did purchase within 60 days') > 0 AS created;

-- 2. install_default_stages: five set-based stage definitions in a row, each
--    moving contacts up; "prospects" follows the stages.
BEGIN;
SELECT coalesce(max(id), 0) AS mark FROM segment.changes \gset
SELECT segment.install_default_stages();
SELECT * FROM public.recompute_changes(:mark) WHERE kind = 'stage_change';
SELECT * FROM public.recompute_changes(:mark) WHERE kind <> 'stage_change';
SELECT public.recompute_state(:mark) AS set_state \gset
ROLLBACK;
BEGIN;
DO $$
DECLARE
  s record;
BEGIN
  FOR s IN SELECT * FROM (VALUES
      ('lead', 10, 'not did purchase'),
      ('new_customer', 20, 'did purchase within 30 days and not did purchase between date ''1970-01-01'' and 30 days ago'),
      ('repeat_buyer', 30, 'count(purchase) >= 2'),
      ('loyal_customer', 40, 'count(purchase) within 180 days >= 4 and sum(purchase.amount) >= 500'),
      ('lapsed', 50, 'did purchase and not did purchase within 180 days')) AS v(name, pos, rule) LOOP
    INSERT INTO segment.stages (name, position, rule, deps)
      VALUES (s.name, s.pos, s.rule::segment.rule, segment.rule_dependencies(s.rule::segment.rule));
    PERFORM segment._index_rule('stage', s.name, segment.rule_dependencies(s.rule::segment.rule));
    PERFORM segment._maintain(ARRAY['n:g'], (SELECT array_agg(id) FROM segment.contacts));
  END LOOP;
END $$;
SELECT public.recompute_state(:mark) = :'set_state' AS same_as_incremental;
ROLLBACK;
SELECT segment.install_default_stages();
SELECT stage, contacts FROM segment.stage_counts ORDER BY position;

-- 3. A segment's rule changes: members enter and leave; "big_openers" follows.
--    (update_segment recomputes so; with as few differences as here, at most
--    64, it hands them to _maintain unless it holds the lock, as here.)
BEGIN;
SELECT coalesce(max(id), 0) AS mark FROM segment.changes \gset
SELECT segment._lock_all();
UPDATE segment.segments SET rule = 'sum(purchase.amount) > 100 and count(purchase) < 4' WHERE name = 'big';
SELECT segment._recompute('segment', 'big', false, true);
SELECT * FROM public.recompute_changes(:mark);
SELECT public.recompute_state(:mark) AS set_state \gset
ROLLBACK;
BEGIN;
UPDATE segment.segments SET rule = 'sum(purchase.amount) > 100 and count(purchase) < 4' WHERE name = 'big';
SELECT segment._maintain(ARRAY['n:s:big'], (SELECT array_agg(id) FROM segment.contacts));
SELECT public.recompute_state(:mark) = :'set_state' AS same_as_incremental;
ROLLBACK;

-- 4. 20 days later, without a refresh: the tag rule gives tags up (last
--    purchase more than 60 days ago), contact 1 is no new customer any more and
--    in no stage; each rule recomputed as a whole.
SET segment.clock_override = '2030-02-04 00:00:00+00';
BEGIN;
SELECT coalesce(max(id), 0) AS mark FROM segment.changes \gset
SELECT segment._lock_all();
SELECT segment._recompute('tag_rule', 'fan', false, true);
SELECT segment._recompute('stage', NULL, false, true);
SELECT segment._recompute('segment', 'prospects', false, true);
SELECT * FROM public.recompute_changes(:mark);
SELECT public.recompute_state(:mark) AS set_state \gset
-- Recomputing again (without the lock: the differences are looked for first)
-- finds nothing to change and writes nothing.
SELECT coalesce(max(id), 0) AS mark2 FROM segment.changes \gset
SELECT segment._recompute('tag_rule', 'fan'), segment._recompute('stage', NULL),
       segment._recompute('segment', 'prospects'), segment._recompute('segment', 'big');
SELECT count(*) AS changes FROM segment.changes WHERE id > :mark2;
ROLLBACK;
BEGIN;
SELECT segment._maintain(ARRAY['n:t:fan'], (SELECT array_agg(id) FROM segment.contacts));
SELECT segment._maintain(ARRAY['n:g'], (SELECT array_agg(id) FROM segment.contacts));
SELECT segment._maintain(ARRAY['n:s:prospects'], (SELECT array_agg(id) FROM segment.contacts));
SELECT public.recompute_state(:mark) = :'set_state' AS same_as_incremental;
ROLLBACK;

-- Without the lock and with few differences (at most 64), the contacts that
-- differ go through the per-contact path; the same outcome as above.
BEGIN;
SELECT segment._recompute('tag_rule', 'fan');
SELECT segment._recompute('stage', NULL);
SELECT segment._recompute('segment', 'prospects');
SELECT public.recompute_state(:mark) = :'set_state' AS same_as_locked;
ROLLBACK;

-- The bulk inserts check the foreign keys set-wise.
SELECT segment._insert_members((SELECT id FROM segment.segments WHERE name = 'big'), '{1, 1000}', segment.now());
SELECT segment._insert_stages('{1000}', '{lead}', segment.now());
SELECT segment._insert_stages('{20}', '{no_such_stage}', segment.now());
SELECT segment._insert_members(0, '{1}', segment.now());
SELECT segment._insert_members((SELECT id FROM segment.segments WHERE name = 'big'), '{2, 1}', segment.now());
SELECT segment._insert_stages('{1, 2}', '{lead}', segment.now());
-- A contact that is already a member: the primary key says no.
SELECT segment._insert_members((SELECT id FROM segment.segments WHERE name = 'big'),
                               (SELECT array_agg(m.contact_id ORDER BY m.contact_id) FROM segment.segment_members m
                                 WHERE m.segment_id = (SELECT id FROM segment.segments WHERE name = 'big')),
                               segment.now());

DROP FUNCTION public.recompute_state(bigint);
DROP FUNCTION public.recompute_changes(bigint);
DROP EXTENSION segment;
