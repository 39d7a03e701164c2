-- Randomized write sequences (fixed seed): after every step, dynamic segment
-- membership equals segment.members(rule), rule tags follow their rules, every
-- contact is in the highest stage whose rule holds, and the change feed replays
-- to the current state.  Steps: track (past and present events), profile
-- changes, manual tags with expiry, untag, event deletes, static segment edits,
-- and clock moves followed by segment.refresh().
SET client_min_messages = warning;
CREATE EXTENSION segment;
SELECT plan(9);
SET timezone = 'UTC';
SET segment.clock_override = '2030-01-01 00:00:00+00';
\o /dev/null
SELECT setseed(0.42);

SELECT segment.define_field('country', 'text');
SELECT segment.define_field('plan', 'enum', ARRAY['free', 'pro']);
SELECT segment.upsert_contact('c' || g || '@example.com',
                              jsonb_build_object('country', (ARRAY['DE', 'FR', 'US'])[1 + g % 3]))
  FROM generate_series(1, 24) g;
SELECT segment.install_default_stages();
SELECT segment.create_segment('vips', NULL, 'static');
SELECT segment.create_segment('buyers', 'did purchase');
SELECT segment.create_segment('recent', 'did purchase within 30 days');
SELECT segment.create_segment('big', 'sum(purchase.amount) > 150');
SELECT segment.create_segment('frequent', 'count(purchase) within 60 days >= 3');
SELECT segment.create_segment('dach', 'country in (''DE'', ''AT'')');
SELECT segment.create_segment('pro_or_tagged', 'plan = ''pro'' or tagged ''vip''');
SELECT segment.create_segment('carts', 'did cart_add within 2 days and not did purchase within 2 days');
SELECT segment.create_segment('dach_big', 'in segment ''dach'' and in segment ''big''');
SELECT segment.create_segment('vip_buyers', 'in segment ''vips'' and in segment ''buyers''');
SELECT segment.create_tag_rule('whale', 'in segment ''dach_big'' or sum(purchase.amount) > 400');
SELECT segment.create_segment('whales', 'tagged ''whale'' and not stage = ''lapsed''');
SELECT segment.create_segment('opened', 'count(email_open) >= 2 and did email_open within 20 days');
SELECT segment.create_tag_rule('reader', 'did email_open within 10 days');
SELECT segment.create_segment('golf', 'did purchase where (category = ''golf'')');
SELECT segment.create_segment('attrs_any', 'attrs.score.value >= 5');

\o
\ir lib/maintained.psql

-- One random write.
CREATE FUNCTION pg_temp.step(i int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  r   float8 := random();
  c   bigint := 1 + floor(random() * 24)::int;
  typ text := (ARRAY['purchase', 'purchase', 'cart_add', 'email_open', 'page_view'])[1 + floor(random() * 5)::int];
BEGIN
  IF r < 0.40 THEN
    PERFORM segment.track(c, typ,
                          jsonb_build_object('category', (ARRAY['golf', 'tennis'])[1 + floor(random() * 2)::int]),
                          CASE WHEN typ = 'purchase' THEN round((random() * 120)::numeric, 2) END,
                          segment.now() - make_interval(days => floor(random() * random() * 100)::int));
  ELSIF r < 0.50 THEN
    PERFORM segment.upsert_contact('c' || c || '@example.com',
                                   jsonb_build_object('country', (ARRAY['DE', 'FR', 'AT', 'US'])[1 + floor(random() * 4)::int],
                                                      'plan', (ARRAY['free', 'pro'])[1 + floor(random() * 2)::int],
                                                      'score', jsonb_build_object('value', floor(random() * 10)::int)));
  ELSIF r < 0.60 THEN
    PERFORM segment.tag(c, (ARRAY['vip', 'whale', 'reader'])[1 + floor(random() * 3)::int],
                        CASE WHEN random() < 0.5 THEN segment.now() + make_interval(days => 1 + floor(random() * 10)::int) END);
  ELSIF r < 0.67 THEN
    PERFORM segment.untag(c, (ARRAY['vip', 'whale', 'reader'])[1 + floor(random() * 3)::int]);
  ELSIF r < 0.75 THEN
    DELETE FROM segment.events WHERE id = (SELECT id FROM segment.events WHERE contact_id = c ORDER BY random() LIMIT 1);
  ELSIF r < 0.80 THEN
    UPDATE segment.events SET amount = round((random() * 300)::numeric, 2)
     WHERE id = (SELECT id FROM segment.events WHERE contact_id = c AND type = 'purchase' ORDER BY random() LIMIT 1);
  ELSIF r < 0.87 THEN
    IF random() < 0.6 THEN PERFORM segment.add_to_segment('vips', c);
    ELSE PERFORM segment.remove_from_segment('vips', c); END IF;
  ELSIF r < 0.92 THEN
    -- A bulk statement: several contacts, several event types at once.
    INSERT INTO segment.events (contact_id, type, amount, occurred_at)
      SELECT 1 + floor(random() * 24)::int, (ARRAY['purchase', 'email_open', 'cart_add'])[1 + floor(random() * 3)::int],
             round((random() * 90)::numeric, 2), segment.now() - make_interval(days => floor(random() * 40)::int)
        FROM generate_series(1, 5);
  ELSE
    PERFORM set_config('segment.clock_override',
                       (segment.now() + make_interval(days => 1 + floor(random() * 20)::int))::text, false);
    PERFORM segment.refresh();
  END IF;
END $$;

DO $$
BEGIN
  FOR i IN 1..250 LOOP
    PERFORM pg_temp.step(i);
    PERFORM pg_temp.check_state(i);
  END LOOP;
END $$;

SELECT is((SELECT count(*) FROM mismatches), 0::bigint,
          'after 250 random writes, every maintained rule matched its definition after every step');
SELECT is((SELECT string_agg(DISTINCT what, ', ') FROM mismatches), NULL, 'no rule drifted');
SELECT cmp_ok((SELECT count(*) FROM segment.changes WHERE kind = 'segment_exit' AND source = 'rule'), '>', 20::bigint,
              'the sequence made contacts leave segments too (not a trivial run)');
SELECT cmp_ok((SELECT count(DISTINCT name) FROM segment.changes WHERE kind = 'stage_change'), '>=', 4::bigint,
              'the sequence visited most stages');

-- The change feed replays to the current state.
SELECT is((SELECT count(*) FROM (
             SELECT DISTINCT ON (name, contact_id) name, contact_id, kind
               FROM segment.changes WHERE kind IN ('segment_enter', 'segment_exit')
              ORDER BY name, contact_id, id DESC) last
             FULL JOIN (SELECT s.name, m.contact_id FROM segment.segment_members m
                          JOIN segment.segments s ON s.id = m.segment_id) cur USING (name, contact_id)
            WHERE (last.kind = 'segment_enter') IS DISTINCT FROM (cur.contact_id IS NOT NULL)
               OR last.kind IS NULL),
          0::bigint, 'the last segment change of each contact matches its membership');
SELECT is((SELECT count(*) FROM segment.contacts c
             LEFT JOIN segment.contact_stages cs ON cs.contact_id = c.id
             LEFT JOIN LATERAL (SELECT ch.name FROM segment.changes ch
                                 WHERE ch.contact_id = c.id AND ch.kind = 'stage_change'
                                 ORDER BY ch.id DESC LIMIT 1) last ON true
            WHERE last.name IS DISTINCT FROM cs.stage),
          0::bigint, 'the last stage change of each contact is its stage');
SELECT is((SELECT count(*) FROM segment.changes c1 JOIN segment.changes c2 ON c2.id > c1.id AND c2.at < c1.at),
          0::bigint, 'change ids increase with time');

-- refresh() found its work from window edges, not by re-evaluating everyone.
SELECT is((SELECT count(*) FROM (SELECT DISTINCT node_kind, node_name FROM segment.dependency_index
                                   WHERE key_kind = 'time') t
            WHERE segment._edge_candidates(t.node_kind, t.node_name) IS NULL),
          0::bigint, 'every time-relative rule here is refreshed by its window edges');
SELECT is(segment._edge_sql(segment.rule_to_jsonb('did purchase within 30 days and country = ''DE'''),
                            '2030-01-01 00:00+00', '2030-01-02 00:00+00'),
          'SELECT e.contact_id FROM segment.events e WHERE e.type = ''purchase'' AND e.occurred_at BETWEEN '
          || quote_literal('2029-12-02 00:00+00'::timestamptz::text) || '::timestamptz AND '
          || quote_literal('2029-12-03 00:00+00'::timestamptz::text) || '::timestamptz',
          'the window edge of did purchase within 30 days');

SELECT * FROM finish();
RESET segment.clock_override;
DROP EXTENSION segment;
