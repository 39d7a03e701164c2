-- Incremental maintenance evaluates event conditions in C (src/maintain_eval.c):
-- did [not] with or without a within window and count / sum / min / max of
-- amounts from segment.event_stats, counts in a window from the raw events, and
-- everything else as SQL leaves fetched only when the rest leaves the value open.
-- Each form at its edges (window boundaries to the microsecond, NULL amounts,
-- nothing at all), mixed with SQL leaves under and / or / not, in tag rules and
-- stages; after partitioning (raw counts then come from SQL); with every rule
-- dropped and a rule created after the events.  After every step, membership must
-- equal segment.members(rule) ("drift" lists the rules that differ: none).
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2030-03-10 12:00:00+00';
SELECT segment.define_field('country', 'text');
SELECT segment.upsert_contact('c' || g || '@example.com',
                              jsonb_build_object('country', CASE WHEN g % 2 = 1 THEN 'DE' ELSE 'FR' END))
  FROM generate_series(1, 4) g;

SELECT count(*) AS segments FROM (
  SELECT segment.create_segment(name, rule::segment.rule) FROM (VALUES
    ('did_view',   'did page_view'),
    ('not_view',   'did not page_view'),
    ('view_7d',    'did page_view within 7 days'),
    ('view_1h',    'did page_view within 1 hour'),
    ('buy_1mo',    'did purchase within 1 month'),
    ('views_3',    'count(page_view) >= 3'),
    ('buys_ne0',   'count(purchase) <> 0'),
    ('buys_eq0',   'count(purchase) = 0'),
    ('sum_gt',     'sum(purchase.amount) > 100'),
    ('sum_le0',    'sum(purchase.amount) <= 0'),
    ('min_lt',     'min(purchase.amount) < 10'),
    ('max_ge',     'max(purchase.amount) >= 50.5'),
    ('views_2d',   'count(page_view) within 2 days > 1'),
    ('buy_and_de', 'did purchase and country = ''DE'''),
    ('buy_or_de',  'did purchase or country = ''DE'''),
    ('neither',    'not (country = ''DE'' or did page_view within 7 days)'),
    ('avg_gt',     'avg(purchase.amount) > 20'),
    ('big_buy',    'did purchase where (amount > 100)')) AS d(name, rule)) s;
SELECT segment.create_tag_rule('de_spender', 'sum(purchase.amount) > 50 and country = ''DE''');
SELECT segment.define_stage('known', 1, 'did page_view or country = ''DE''');
SELECT segment.define_stage('hot', 2, 'did purchase within 7 days and country = ''FR''');

CREATE VIEW state AS
  SELECT s.name AS rule, coalesce(string_agg(m.contact_id::text, ',' ORDER BY m.contact_id), '') AS contacts
    FROM segment.segments s LEFT JOIN segment.segment_members m ON m.segment_id = s.id
   GROUP BY s.name
  UNION ALL
  SELECT 'tag ' || r.tag, coalesce(string_agg(t.contact_id::text, ',' ORDER BY t.contact_id), '')
    FROM segment.tag_rules r LEFT JOIN segment.contact_tags t ON t.tag = r.tag AND t.source = 'rule'
   GROUP BY r.tag
  UNION ALL
  SELECT 'stage ' || st.name, coalesce(string_agg(cs.contact_id::text, ',' ORDER BY cs.contact_id), '')
    FROM segment.stages st LEFT JOIN segment.contact_stages cs ON cs.stage = st.name
   GROUP BY st.name;
CREATE VIEW drift AS
  SELECT s.name FROM segment.segments s
   WHERE EXISTS (SELECT segment.members(s.rule) EXCEPT SELECT segment.segment_members(s.name))
      OR EXISTS (SELECT segment.segment_members(s.name) EXCEPT SELECT segment.members(s.rule))
  UNION ALL
  SELECT 'tag ' || r.tag FROM segment.tag_rules r
   WHERE EXISTS (SELECT segment.members(r.rule)
                 EXCEPT SELECT contact_id FROM segment.contact_tags t WHERE t.tag = r.tag AND t.source = 'rule')
      OR EXISTS (SELECT contact_id FROM segment.contact_tags t WHERE t.tag = r.tag AND t.source = 'rule'
                 EXCEPT SELECT segment.members(r.rule))
  UNION ALL
  SELECT 'stage of ' || c.id FROM segment.contacts c
   WHERE segment.stage(c.id) IS DISTINCT FROM
         (SELECT st.name FROM segment.stages st WHERE segment.matches(c.id, st.rule)
           ORDER BY st.position DESC LIMIT 1);

-- No events yet: the "nothing" side of every form.
SELECT * FROM state ORDER BY rule;
SELECT * FROM drift;

-- Contact 1: a view exactly 7 days ago (inside "within 7 days"), a purchase
-- without amount 40 days ago.  Contact 2: three views, one exactly an hour ago,
-- and a purchase of 120 a day ago.  Contact 3: purchases of 5 (a month and a
-- microsecond ago: outside "within 1 month") and 60 two days ago.  Contact 4: nothing.
SELECT count(segment.track(c, t, '{}', a, segment.now() - i::interval)) AS tracked FROM (VALUES
  (1, 'page_view', NULL::numeric, '7 days'),
  (1, 'purchase', NULL, '40 days'),
  (2, 'page_view', NULL, '1 hour'),
  (2, 'page_view', NULL, '1 day'),
  (2, 'page_view', NULL, '3 days'),
  (2, 'purchase', 120, '1 day'),
  (3, 'purchase', 5, '1 month 1 microsecond'),
  (3, 'purchase', 60, '2 days')) AS e(c, t, a, i);
SELECT * FROM state ORDER BY rule;
SELECT * FROM drift;

-- One statement writing several contacts' events: maintained set-wise.
SELECT segment.track(c, 'page_view', '{}', NULL, segment.now() - interval '1 minute') > 0 AS tracked
  FROM generate_series(3, 4) c;
SELECT rule, contacts FROM state WHERE rule IN ('did_view', 'not_view', 'view_1h', 'views_2d', 'neither', 'stage known')
 ORDER BY rule;
SELECT * FROM drift;

-- A microsecond past the window edge of contact 2's view, a view backdated
-- outside every window changes no rule's value: the stored state is not read
-- or rewritten (contact 2 stays in view_1h), and refresh applies the passed
-- edge below.
SET segment.clock_override = '2030-03-10 13:00:00.000001+00';
SELECT segment.track(2, 'page_view', '{}', NULL, '2030-03-01 00:00:00+00') > 0 AS tracked;
SELECT rule, contacts FROM state WHERE rule IN ('view_1h', 'views_3', 'views_2d') ORDER BY rule;
-- Other window edges passed without a write: refresh catches them up.
SELECT * FROM drift;
SELECT * FROM segment.refresh() WHERE entered + exited > 0 ORDER BY 1;
SELECT * FROM drift;

-- Deleting events recomputes the aggregates, and the rules follow.
DELETE FROM segment.events WHERE contact_id = 3 AND amount = 60;
SELECT rule, contacts FROM state WHERE rule IN ('buy_1mo', 'sum_le0', 'max_ge', 'min_lt', 'avg_gt', 'tag de_spender', 'stage hot')
 ORDER BY rule;
SELECT * FROM drift;

-- A profile change re-evaluates the SQL leaves on the field.
SELECT segment.upsert_contact('c2@example.com', '{"country": "DE"}') = 2 AS same_contact;
SELECT rule, contacts FROM state WHERE rule IN ('buy_and_de', 'buy_or_de', 'neither', 'tag de_spender', 'stage hot', 'stage known')
 ORDER BY rule;
SELECT * FROM drift;

-- Windowed counts stop reading events as soon as the comparison is settled:
-- each comparison around its literal, decimal and negative literals too.  Two
-- tag rules on one event type read the contact's tags in one scan: a manual tag
-- stays manual while the rule holds; a manual tag with an expiry put on a tag
-- the rule holds stays a rule tag (the expiry ends only the manual hold).
SELECT count(*) AS segments FROM (
  SELECT segment.create_segment(name, rule::segment.rule) FROM (VALUES
    ('w_lt2',   'count(page_view) within 7 days < 2'),
    ('w_le2',   'count(page_view) within 7 days <= 2'),
    ('w_eq2',   'count(page_view) within 7 days = 2'),
    ('w_ne3',   'count(page_view) within 7 days <> 3'),
    ('w_ge3',   'count(page_view) within 7 days >= 3'),
    ('w_gt1_5', 'count(page_view) within 7 days > 1.5'),
    ('w_gt_neg', 'count(page_view) within 7 days > -1'),
    ('w_lt_neg', 'count(page_view) within 7 days < -0.5')) AS d(name, rule)) s;
SELECT segment.create_tag_rule('viewer', 'did page_view within 7 days');
SELECT segment.create_tag_rule('heavy_viewer', 'count(page_view) within 7 days > 2');
SELECT segment.tag(4, 'heavy_viewer');
SELECT segment.tag(3, 'viewer', segment.now() + interval '1 minute');
SET segment.clock_override = '2030-03-10 13:02:00+00';
CREATE VIEW counts AS
  SELECT c.id AS contact,
         (SELECT count(*) FROM segment.events e WHERE e.contact_id = c.id AND e.type = 'page_view'
             AND e.occurred_at >= segment.now() - interval '7 days') AS views_7d,
         (SELECT string_agg(s.name, ',' ORDER BY s.name) FROM segment.segment_members m
            JOIN segment.segments s ON s.id = m.segment_id WHERE m.contact_id = c.id AND s.name LIKE 'w\_%') AS segments,
         (SELECT string_agg(t.tag || ':' || t.source || CASE WHEN t.expires_at <= segment.now() THEN ' (expired)' ELSE '' END,
                            ',' ORDER BY t.tag)
            FROM segment.contact_tags t WHERE t.contact_id = c.id AND t.tag IN ('viewer', 'heavy_viewer')) AS tags
    FROM segment.contacts c;
SELECT * FROM counts ORDER BY contact;
SELECT * FROM drift WHERE name NOT IN ('tag viewer', 'tag heavy_viewer');
-- Contact 1 gets a second view before the window: its count within the window is
-- then bounded by [1, all but one] (= 2 inside that range must still be counted).
SELECT segment.track(1, 'page_view', '{}', NULL, segment.now() - interval '10 days') > 0 AS tracked;
SELECT segment.track(c, 'page_view', '{}', NULL, segment.now() - interval '1 hour') > 0 AS tracked
  FROM generate_series(1, 4) c;
SELECT * FROM counts ORDER BY contact;
SELECT * FROM drift WHERE name NOT IN ('tag viewer', 'tag heavy_viewer');
SELECT segment.track(c, 'page_view', '{}', NULL, segment.now() - interval '1 hour') > 0 AS tracked
  FROM generate_series(1, 4) c;
SELECT * FROM counts ORDER BY contact;
SELECT * FROM drift WHERE name NOT IN ('tag viewer', 'tag heavy_viewer');
SELECT segment.track(4, 'page_view', '{}', NULL, segment.now() - interval '1 hour') > 0 AS tracked;
SELECT * FROM counts ORDER BY contact;
SELECT * FROM drift WHERE name NOT IN ('tag viewer', 'tag heavy_viewer');
-- Contact 3's manual expiry has passed: the rule still holds "viewer", so
-- refresh leaves the tag as it is.
SELECT count(*) > 0 AS refreshed FROM segment.refresh();
SELECT * FROM counts WHERE contact = 3;

-- A tracked event reads a contact's stored state only for the rules whose
-- value it changed: the tags are read once, when heavy_viewer becomes true.
SELECT segment.upsert_contact('reads@example.com') AS reads \gset
SELECT segment.track(:reads, 'page_view', '{}', NULL, segment.now() - interval '3 days') > 0 AS tracked;
BEGIN;
SELECT pg_stat_get_xact_numscans('segment.contact_tags_pkey'::regclass) AS t0 \gset
SELECT segment.track(:reads, 'page_view', '{}', NULL, segment.now() - interval '2 days') > 0 AS tracked;
SELECT pg_stat_get_xact_numscans('segment.contact_tags_pkey'::regclass) - :t0 AS tag_reads;
SELECT segment.track(:reads, 'page_view', '{}', NULL, segment.now() - interval '1 day') > 0 AS tracked;
SELECT pg_stat_get_xact_numscans('segment.contact_tags_pkey'::regclass) - :t0 AS tag_reads;
COMMIT;
SELECT string_agg(tag || ':' || source, ',' ORDER BY tag) AS tags FROM segment.contact_tags WHERE contact_id = :reads;
DELETE FROM segment.contacts WHERE id = :reads;

-- The manual tag removed while the rule holds: the rule keeps it, as its own.
SELECT segment.untag(4, 'heavy_viewer');
SELECT * FROM counts WHERE contact = 4;
SELECT * FROM drift;

-- With events partitioned, windowed counts of raw events come from SQL leaves.
SELECT segment.partition_events('month', 1) IS NOT NULL AS partitioned;
SELECT segment.track(4, 'page_view', '{}', NULL, segment.now() - interval '2 days') > 0 AS tracked;
SELECT segment.track(1, 'page_view', '{}', NULL, segment.now() - interval '3 days') > 0 AS tracked;
SELECT rule, contacts FROM state WHERE rule IN ('views_2d', 'views_3', 'view_7d') ORDER BY rule;
SELECT * FROM drift;

-- Every rule dropped: writes maintain nothing and fail nothing.
DROP VIEW counts;
DROP VIEW drift;
DROP VIEW state;
SELECT count(*) AS dropped FROM (SELECT segment.drop_segment(name) FROM segment.segments) d;
SELECT segment.drop_tag_rule('de_spender'), segment.drop_tag_rule('viewer'), segment.drop_tag_rule('heavy_viewer');
SELECT segment.drop_stage('hot'), segment.drop_stage('known');
SELECT segment.track(4, 'purchase', '{}', 500) > 0 AS tracked;
SELECT count(*) AS memberships FROM segment.segment_members;
-- The first rule created after the events: its members come from what was tracked.
SELECT segment.create_segment('spent', 'sum(purchase.amount) > 100') > 0 AS created;
SELECT segment.segment_members('spent') ORDER BY 1;
SELECT segment.track(3, 'purchase', '{}', 100) > 0 AS tracked;
SELECT segment.segment_members('spent') ORDER BY 1;

-- Maintenance locks a tracked event takes, until its transaction ends: the
-- global one (shared) always; the contact's own only when a rule on the
-- event's type is to be evaluated.
CREATE VIEW maint_locks AS
  SELECT CASE objsubid WHEN x'5E6E'::int THEN 'global' WHEN x'5E6D'::int THEN 'contact' END AS lock, mode
    FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objsubid IN (x'5E6E'::int, x'5E6D'::int);
BEGIN;
SELECT segment.track(3, 'page_view', '{}') > 0 AS tracked;
SELECT * FROM maint_locks ORDER BY 1;
SELECT segment.track(3, 'purchase', '{}', 5) > 0 AS tracked;
SELECT * FROM maint_locks ORDER BY 1;
COMMIT;
DROP VIEW maint_locks;

RESET segment.clock_override;
DROP EXTENSION segment;
