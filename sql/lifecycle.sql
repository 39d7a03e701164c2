-- Lifecycle stages: the highest-position stage whose rule holds; transitions
-- recorded; the five default stages; errors.
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2030-01-01 00:00:00+00';
SELECT segment.upsert_contact('c' || g || '@example.com') FROM generate_series(1, 5) g;

SELECT segment.install_default_stages();
SELECT stage, position, contacts, rule FROM segment.stage_counts ORDER BY position;
SELECT segment.stage(1);

-- First purchase: new customer.
SELECT segment.track(1, 'purchase', '{}', 40) > 0 AS tracked;
SELECT segment.stage(1);
-- Still one purchase, 40 days later: no default stage holds (see doc/segments.md).
SET segment.clock_override = '2030-02-10 00:00:00+00';
SELECT * FROM segment.refresh();
SELECT segment.stage(1);
-- A second purchase: repeat buyer.
SELECT segment.track(1, 'purchase', '{}', 40) > 0 AS tracked;
SELECT segment.stage(1);
-- Four purchases within 180 days worth 500 or more: loyal customer.
SELECT segment.track(1, 'purchase', '{}', 300) > 0, segment.track(1, 'purchase', '{}', 200) > 0;
SELECT segment.stage(1);
-- Nothing for 180 days: lapsed (time passes, refresh notices).
SET segment.clock_override = '2030-09-01 00:00:00+00';
SELECT * FROM segment.refresh();
SELECT segment.stage(1);

-- Events in the past count too: contact 2 bought a year ago, once.
SELECT segment.track(2, 'purchase', '{}', 10, '2029-09-01') > 0 AS tracked;
SELECT segment.stage(2);
SELECT stage, contacts FROM segment.stage_counts ORDER BY position;

SELECT at, contact_id, from_stage, to_stage FROM segment.stage_history ORDER BY id;

-- A rule on stages follows the stage.
SELECT segment.create_segment('winback', 'stage = ''lapsed''');
SELECT segment.segment_members('winback');
SELECT segment.track(2, 'purchase', '{}', 10) > 0 AS tracked;
SELECT segment.stage(2), segment.in_segment(2, 'winback');

-- A custom stage between the defaults: single-purchase customers past 30 days.
-- (Named notation: POSITION is an SQL keyword, so the argument name is quoted.)
SELECT segment.define_stage(name => 'one_time_buyer', "position" => 15, rule => 'did purchase');
SELECT segment.stage(3);
SELECT segment.track(3, 'purchase', '{}', 10, '2030-06-01') > 0 AS tracked;
SELECT segment.stage(3);
-- Dropping a stage moves its contacts to the next stage whose rule holds;
-- refused while a rule names the stage.
SELECT segment.drop_stage('lapsed');
SELECT segment.drop_segment('winback');
SELECT segment.drop_stage('lapsed');
SELECT segment.stage(1), segment.stage(2);
SELECT contact_id, from_stage, to_stage FROM segment.stage_history WHERE at = segment.now() ORDER BY id;

-- Errors.
SELECT segment.define_stage('lead', 99, 'true');
SELECT segment.define_stage('other', 10, 'true');
SELECT segment.define_stage('', 99, 'true');
SELECT segment.define_stage('x', NULL, 'true');
SELECT segment.define_stage('self', 99, 'stage = ''lead''');
SELECT segment.drop_stage('nope');
SELECT segment.stage(99);

-- install_default_stages again: the default stages it finds as it defines
-- them are kept (nothing changes); a customised one is an error, not replaced.
SELECT segment.define_stage('lapsed', 50, 'did purchase and not did purchase within 180 days');
SELECT count(*) AS changes_before FROM segment.changes \gset
SELECT segment.install_default_stages();
SELECT count(*) - :changes_before AS new_changes FROM segment.changes;
SELECT stage, position FROM segment.stage_counts ORDER BY position;
SELECT segment.drop_stage('lead');
SELECT segment.define_stage('lead', 10, 'not did purchase and not did cart_add');
SELECT segment.install_default_stages();
SELECT stage, position, rule FROM segment.stage_counts WHERE stage = 'lead';

-- A stage named by a segment or tag rule cannot be dropped (the rule would no
-- longer be valid), as a segment named by a rule cannot.
SELECT segment.create_segment('early', 'stage in (''lead'', ''new_customer'')') > 0 AS created;
SELECT segment.create_tag_rule('is_lead', 'not stage = ''lead''') > 0 AS created;
SELECT segment.drop_stage('lead');
SELECT segment.drop_stage('new_customer');
SELECT segment.drop_segment('early'), segment.drop_tag_rule('is_lead');
SELECT segment.drop_stage('new_customer');
SELECT stage FROM segment.stage_counts ORDER BY position;

RESET segment.clock_override;
DROP EXTENSION segment;
