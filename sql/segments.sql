-- Segments: dynamic (kept current on every write), scheduled (refresh), static (by
-- hand); in segment cascades; time-relative rules and refresh; history; errors.
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2030-01-01 00:00:00+00';
SELECT segment.define_field('country', 'text');
SELECT segment.upsert_contact('c' || g || '@example.com',
                              jsonb_build_object('country', CASE WHEN g % 2 = 0 THEN 'DE' ELSE 'FR' END))
  FROM generate_series(1, 6) g;

SELECT segment.create_segment('buyers', 'did purchase');
SELECT segment.create_segment('big_spenders', 'sum(purchase.amount) > 100');
SELECT segment.create_segment('germans', 'country = ''DE''');
SELECT segment.create_segment('german_buyers', 'in segment ''buyers'' and in segment ''germans''');
SELECT segment.create_segment('active', 'did purchase within 30 days');
SELECT segment.create_segment('weekly', 'count(page_view) >= 2', 'scheduled');
SELECT segment, mode, members FROM segment.segment_sizes ORDER BY segment;

-- An event re-evaluates the segments that depend on its type, and cascades.
SELECT segment.track(2, 'purchase', '{}', 80) > 0 AS tracked;
SELECT segment.track(3, 'purchase', '{}', 150) > 0 AS tracked;
SELECT segment, mode, members FROM segment.segment_sizes ORDER BY segment;
SELECT segment.in_segment(2, 'german_buyers'), segment.in_segment(3, 'german_buyers'),
       segment.in_segment(3, 'big_spenders');
SELECT segment.segment_members('buyers');
-- A second purchase pushes contact 2 over 100.
SELECT segment.track(2, 'purchase', '{}', 30) > 0 AS tracked;
SELECT segment.segment_members('big_spenders');

-- A profile change re-evaluates the rules on the changed field, and cascades.
SELECT segment.upsert_contact('c3@example.com', '{"country": "DE"}') = 3 AS same_contact;
SELECT segment.segment_members('german_buyers');

-- Deleting the events takes the contact out again.
DELETE FROM segment.events WHERE contact_id = 3;
SELECT segment.in_segment(3, 'buyers'), segment.in_segment(3, 'german_buyers'),
       segment.in_segment(3, 'big_spenders');

-- A scheduled segment changes only by refresh.
SELECT segment.track(5, 'page_view') > 0, segment.track(5, 'page_view') > 0;
SELECT segment.segment_members('weekly');
SELECT * FROM segment.refresh('weekly');
SELECT segment.segment_members('weekly');

-- Time-relative rules change without any write: refresh picks that up.
SET segment.clock_override = '2030-02-15 00:00:00+00';
SELECT segment.segment_members('active');             -- not yet re-evaluated
SELECT * FROM segment.refresh();
SELECT segment.segment_members('active');
SELECT segment, members, refreshed_at FROM segment.segment_sizes WHERE segment IN ('active', 'weekly');

-- Static segments: members by hand; a dynamic rule on one follows it.
SELECT segment.create_segment('vip_list', NULL, 'static');
SELECT segment.create_segment('vip_buyers', 'in segment ''vip_list'' and did purchase');
SELECT segment.add_to_segment('vip_list', 2), segment.add_to_segment('vip_list', 2),
       segment.add_to_segment('vip_list', 5);
SELECT segment.segment_members('vip_buyers');
SELECT segment.remove_from_segment('vip_list', 2), segment.remove_from_segment('vip_list', 2);
SELECT segment.segment_members('vip_buyers');
-- A static segment made from a rule keeps its first members.
SELECT segment.create_segment('first_germans', 'country = ''DE''', 'static');
SELECT segment.upsert_contact('c6@example.com', '{"country": "FR"}') = 6 AS same_contact;
SELECT segment.segment_members('first_germans');

-- Changing a rule recomputes the members at once.
SELECT * FROM segment.update_segment('big_spenders', 'sum(purchase.amount) > 50');
SELECT segment.segment_members('big_spenders');
SELECT * FROM segment.update_segment('weekly', 'count(page_view) >= 1', 'dynamic');
SELECT segment.track(1, 'page_view') > 0 AS tracked;
SELECT segment.segment_members('weekly');

-- History: entries and exits, with time.
SELECT at, contact_id, segment, action, source FROM segment.segment_history ORDER BY id;

-- Dynamic membership equals the rule's members.
SELECT s.name, s.mode
  FROM segment.segments s
 WHERE s.mode = 'dynamic'
   AND EXISTS (SELECT segment.members(s.rule) EXCEPT SELECT segment.segment_members(s.name)
               UNION ALL
               SELECT segment.segment_members(s.name) EXCEPT SELECT segment.members(s.rule));

SELECT segment.drop_segment('vip_buyers');
SELECT segment.drop_segment('vip_list');
SELECT segment FROM segment.segment_sizes ORDER BY 1;

-- Errors.
SELECT segment.create_segment('buyers', 'did purchase');
SELECT segment.create_segment('', 'did purchase');
SELECT segment.create_segment('x', 'did purchase', 'sometimes');
SELECT segment.create_segment('x', NULL);
SELECT segment.create_segment('x', 'in segment ''nope''');
SELECT segment.in_segment(1, 'nope');
SELECT segment.segment_members('nope');
SELECT segment.refresh('nope');
SELECT segment.drop_segment('nope');
SELECT segment.add_to_segment('buyers', 1);
SELECT segment.remove_from_segment('weekly', 1);
SELECT segment.add_to_segment('first_germans', 99);
SELECT segment.refresh('first_germans');
SELECT segment.drop_segment('buyers');
SELECT segment.update_segment('buyers', 'in segment ''german_buyers''');
SELECT segment.update_segment('nope', 'did purchase');

-- A static segment keeps the rule it was made from: the segments it names
-- cannot be dropped either (the rule would no longer be valid).
SELECT segment.create_segment('vip_list', 'in segment ''weekly''', 'static') > 0 AS created;
SELECT segment.drop_segment('weekly');
SELECT segment.drop_segment('vip_list');
SELECT segment.drop_segment('weekly');
-- Nor those a flow's unless rule names (run_flows would fail on it).
SELECT segment.create_template('seg_mail', 'Hi', '<p>Hi</p>') > 0 AS created;
SELECT segment.create_flow('seg_flow', 'event:signup', 'seg_mail', '{"unless": "in segment ''germans''"}') > 0 AS created;
SELECT segment.drop_segment('germans');
SELECT segment.drop_flow('seg_flow');

RESET segment.clock_override;
DROP EXTENSION segment;
