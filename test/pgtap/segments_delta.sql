-- Randomized single-event tracks (fixed seed) against rules on every event
-- aggregate: a statement that inserts one event evaluates the rules on its
-- type as they stood before it too, and reads no stored state for a rule
-- whose value it left alone (doc/segments.md, "What a tracked event reads").
-- After every step, membership equals segment.members(rule), rule tags follow
-- their rules and every contact is in the highest stage whose rule holds.
-- Amounts and times come from small sets, so events tie on amount (minimum,
-- maximum) and on time (the previous event at the same instant), fall inside
-- and outside the windows, and lie in the future.
SET client_min_messages = warning;
CREATE EXTENSION segment;
SELECT plan(5);
SET timezone = 'UTC';
SET segment.clock_override = '2030-01-01 00:00:00+00';
\o /dev/null
SELECT setseed(0.17);

SELECT segment.upsert_contact('d' || g || '@example.com') FROM generate_series(1, 12) g;
SELECT segment.create_segment(name, rule::segment.rule) FROM (VALUES
  ('ever',        'did purchase'),
  ('never',       'not did purchase'),
  ('within3',     'did purchase within 3 days'),
  ('not_within3', 'not did purchase within 3 days'),
  ('count_eq1',   'count(purchase) = 1'),
  ('count_ne2',   'count(purchase) <> 2'),
  ('count_ge3',   'count(purchase) >= 3'),
  ('sum_eq100',   'sum(purchase.amount) = 100'),
  ('sum_gt150',   'sum(purchase.amount) > 150'),
  ('sum_le50',    'sum(purchase.amount) <= 50'),
  ('min_lt20',    'min(purchase.amount) < 20'),
  ('min_ge50',    'min(purchase.amount) >= 50'),
  ('max_gt100',   'max(purchase.amount) > 100'),
  ('max_eq70',    'max(purchase.amount) = 70'),
  ('w_eq2',       'count(purchase) within 7 days = 2'),
  ('w_gt1_5',     'count(purchase) within 7 days > 1.5'),
  ('w_lt3',       'count(purchase) within 7 days < 3'),
  ('mixed',       'did purchase within 3 days and not did email_open within 3 days'),
  ('either',      'count(email_open) >= 2 or max(purchase.amount) >= 100'),
  ('negated',     'not (count(purchase) within 7 days >= 2 and sum(purchase.amount) > 60)')) AS r(name, rule);
SELECT segment.create_tag_rule('t_recent', 'did purchase within 3 days');
SELECT segment.create_tag_rule('t_single', 'count(purchase) = 1');
SELECT segment.create_tag_rule('t_cheap',  'min(purchase.amount) < 20');
SELECT segment.create_tag_rule('t_opens',  'count(email_open) within 7 days >= 2');
SELECT segment.install_default_stages();
\o

\ir lib/maintained.psql

-- One single-event track (the delta path), now and then a delete, a
-- two-event statement or a clock move with refresh (the other paths).
CREATE FUNCTION pg_temp.step(i int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  r   float8 := random();
  c   bigint := 1 + floor(random() * 12)::int;
  typ text := (ARRAY['purchase', 'purchase', 'purchase', 'email_open'])[1 + floor(random() * 4)::int];
  at  timestamptz := segment.now() - make_interval(days => (ARRAY[0, 0, 1, 2, 3, 5, 7, 8, 30, -1])[1 + floor(random() * 10)::int]);
BEGIN
  IF r < 0.85 THEN
    PERFORM segment.track(c, typ, '{}',
                          CASE WHEN typ = 'purchase' AND random() < 0.9
                               THEN (ARRAY[10, 20, 50, 70, 100, 120])[1 + floor(random() * 6)::int] END,
                          at);
  ELSIF r < 0.92 THEN
    DELETE FROM segment.events WHERE id = (SELECT id FROM segment.events WHERE contact_id = c ORDER BY random() LIMIT 1);
  ELSIF r < 0.97 THEN
    INSERT INTO segment.events (contact_id, type, amount, occurred_at)
      VALUES (c, 'purchase', 20, at), (c, 'purchase', 120, segment.now());
  ELSE
    PERFORM set_config('segment.clock_override',
                       (segment.now() + make_interval(days => 1 + floor(random() * 4)::int))::text, false);
    PERFORM segment.refresh();
  END IF;
END $$;

DO $$
BEGIN
  FOR i IN 1..400 LOOP
    PERFORM pg_temp.step(i);
    PERFORM pg_temp.check_state(i);
  END LOOP;
END $$;

SELECT is((SELECT count(*) FROM mismatches), 0::bigint,
          'after 400 random writes, every maintained rule matched its definition after every step');
SELECT is((SELECT string_agg(DISTINCT what, ', ') FROM mismatches), NULL, 'no rule drifted');
SELECT cmp_ok((SELECT count(*) FROM segment.changes WHERE kind = 'segment_exit' AND source = 'rule'), '>', 50::bigint,
              'the sequence made contacts leave segments (not a trivial run)');
SELECT cmp_ok((SELECT count(DISTINCT name) FROM segment.changes WHERE kind = 'segment_enter'), '=', 20::bigint,
              'every segment gained members at some point');
SELECT cmp_ok((SELECT count(DISTINCT name) FROM segment.changes WHERE kind = 'tag_remove'), '>=', 3::bigint,
              'tag rules removed their tags too');

SELECT * FROM finish();
DROP EXTENSION segment;
