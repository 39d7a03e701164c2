-- Campaigns: create, launch (eligibility, holdout, variants, frequency cap,
-- send times), idempotence, pause / resume / cancel, schedule, errors.
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2026-06-01 12:00:00+00';
SET segment.from_address = 'Shop <news@shop.example>';
SET segment.unsubscribe_url = 'https://shop.example/unsubscribe';
SET segment.secret = 'a-long-enough-test-secret';

-- 40 customers in DE (various time zones), subscribed but for a few.
SELECT count(segment.upsert_contact('c' || i || '@example.com', jsonb_build_object('country', 'DE'),
                                    first_name => 'C' || i,
                                    time_zone => (ARRAY['Europe/Berlin', 'America/New_York', 'Asia/Tokyo', NULL])[1 + i % 4]))
  FROM generate_series(1, 40) i;
UPDATE segment.contacts SET status = 'subscribed' WHERE id NOT IN (3, 4);
UPDATE segment.contacts SET status = 'unsubscribed' WHERE id = 4;
SELECT segment.suppress('c5@example.com', 'manual');
SELECT segment.upsert_contact('us@example.com', '{"country": "US"}') AS us \gset
SELECT segment.create_segment('germany', 'attrs.country = ''DE''') IS NOT NULL AS created;
SELECT segment.create_template('spring', 'Spring sale, {{first_name}}!', '<p>Hi {{first_name}}: 20% off</p><p><a href="{{unsubscribe_url}}">unsubscribe</a></p>') IS NOT NULL AS t1;
SELECT segment.create_template('spring_b', 'Last chance, {{first_name}}', '<p>B for {{first_name}}</p>') IS NOT NULL AS t2;

-- A plain campaign: every subscribed, unsuppressed member, once.
SELECT segment.create_campaign('plain', 'germany', 'spring') AS plain \gset
SELECT name, status, segment, template, options FROM segment.campaigns;
SELECT segment.launch('plain') AS queued;
SELECT outcome, count(*) FROM segment.campaign_recipients GROUP BY outcome ORDER BY outcome;
SELECT contact_id, outcome FROM segment.campaign_recipients WHERE outcome <> 'queued' ORDER BY contact_id;
SELECT kind, campaign_id = :plain AS ours, variant, template, subject, status, mime LIKE '%List-Unsubscribe-Post%' AS one_click,
       mime LIKE '%List-Unsubscribe: <mailto:news@shop.example?subject=unsubscribe>,%' AS mailto_from
  FROM segment.messages WHERE contact_id = 1;
-- The unsubscribe link names the campaign.
SELECT segment.verify_token('unsubscribe',
         substring(replace(replace(mime, E'=\r\n', ''), '=3D', '=') FROM 'token=([A-Za-z0-9_.-]+)')) AS token_payload
  FROM segment.messages WHERE contact_id = 1;
-- Launching again mails nobody twice; a new member is mailed on the next launch.
SELECT segment.launch('plain') AS queued_again;
SELECT segment.upsert_contact('late@example.com', '{"country": "DE"}') AS late \gset
UPDATE segment.contacts SET status = 'subscribed' WHERE id = :late;
SELECT segment.launch('plain') AS queued_late;
SELECT count(*) AS messages, count(DISTINCT contact_id) AS contacts FROM segment.messages WHERE campaign_id = :plain;
SELECT * FROM segment.campaign_status;

-- Variants, holdout and frequency cap: deterministic per campaign and contact.
SELECT segment.create_campaign('ab', 'germany', 'spring',
  '{"variants": [{"name": "A", "weight": 3}, {"name": "B", "template": "spring_b"}],
    "holdout_pct": 25, "frequency_cap": {"max": 2, "per": "7 days"},
    "unsubscribe_mailto": "mailto:stop@shop.example?subject=stop"}') AS ab \gset
SELECT options FROM segment.campaigns WHERE id = :ab;
-- Contacts 1..6 already have a marketing mail this week; give 1 and 2 a second one.
SELECT segment.enqueue(i, 'Earlier', NULL, 'Earlier', '{"kind": "marketing"}') IS NOT NULL AS earlier
  FROM generate_series(1, 2) i;
SELECT segment.launch('ab') AS queued;
SELECT outcome, variant, count(*) FROM segment.campaign_recipients WHERE campaign_id = :ab
 GROUP BY outcome, variant ORDER BY outcome, variant;
-- Exactly the draws say who is held out and who gets which variant.
SELECT bool_and((r.outcome = 'holdout') = (segment._campaign_draw(:ab, r.contact_id, 'holdout') * 100 < 25))
         FILTER (WHERE r.outcome IN ('queued', 'holdout')) AS holdout_by_draw,
       bool_and(r.variant = CASE WHEN segment._campaign_draw(:ab, r.contact_id, 'variant') * 4 < 3 THEN 'A' ELSE 'B' END)
         FILTER (WHERE r.outcome = 'queued') AS variant_by_draw,
       bool_and(r.outcome = 'capped') FILTER (WHERE r.contact_id IN (1, 2)
                                               AND segment._campaign_draw(:ab, r.contact_id, 'holdout') * 100 >= 25) AS capped
  FROM segment.campaign_recipients r WHERE r.campaign_id = :ab;
SELECT m.variant, m.template, left(m.subject, 11) AS subject,
       bool_and(m.mime LIKE '%List-Unsubscribe: <mailto:stop@shop.example?subject=stop>,%') AS own_mailto
  FROM segment.messages m JOIN segment.campaign_recipients r ON r.message_id = m.id
 WHERE r.campaign_id = :ab GROUP BY 1, 2, 3 ORDER BY 1;

-- Send times: local_time in each contact's zone (UTC without one), quiet hours, send_at.
SELECT segment.create_campaign('morning', 'germany', 'spring',
  '{"local_time": "09:00", "send_at": "2026-06-02 00:00:00+00"}') AS morning \gset
SELECT segment.launch('morning') > 0 AS launched;
SELECT c.time_zone, min(m.next_attempt_at) AS due, count(*)
  FROM segment.messages m JOIN segment.contacts c ON c.id = m.contact_id
 WHERE m.campaign_id = :morning GROUP BY c.time_zone ORDER BY due;
SELECT segment._campaign_send_at('{"quiet_hours": {"start": "21:00", "end": "08:00"}}', 'Europe/Berlin') AS quiet_evening,
       segment._campaign_send_at('{"quiet_hours": {"start": "12:00", "end": "13:30"}}', 'UTC') AS quiet_noon,
       segment._campaign_send_at('{"quiet_hours": {"start": "01:00", "end": "02:00"}}', 'UTC') AS not_quiet,
       segment._campaign_send_at('{"send_at": "2020-01-01 00:00:00+00"}', NULL) AS past_send_at_is_now;

-- An A/B test: 30 % of the eligible members get A or B; after 4 hours the
-- variant with the best click rate goes to the rest (run_campaigns or launch).
SELECT segment.create_campaign('abtest', 'germany', 'spring',
  '{"variants": [{"name": "A"}, {"name": "B", "template": "spring_b"}],
    "ab_test": {"test_pct": 30, "decide_after": "4 hours"}}') AS abtest \gset
SELECT options -> 'ab_test' AS ab_test FROM segment.campaigns WHERE id = :abtest;
SELECT segment.launch('abtest') AS test_share;
SELECT outcome, variant, count(*) FROM segment.campaign_recipients WHERE campaign_id = :abtest
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT bool_and((r.outcome = 'waiting') = (segment._campaign_draw(:abtest, r.contact_id, 'test') * 100 >= 30))
         AS test_share_by_draw
  FROM segment.campaign_recipients r WHERE r.campaign_id = :abtest AND r.outcome IN ('queued', 'waiting');
-- B's mails are clicked more; too early to decide.
UPDATE segment.messages SET status = 'sent' WHERE campaign_id = :abtest;
SELECT count(segment.record(m.message_id, 'click', '{"url": "https://shop.example/"}')) AS b_clicks
  FROM segment.messages m WHERE m.campaign_id = :abtest AND m.variant = 'B';
SELECT * FROM segment.run_campaigns();
SET segment.clock_override = '2026-06-01 16:00:00+00';
SELECT * FROM segment.run_campaigns();
SELECT winner, decided_at FROM segment.campaigns WHERE id = :abtest;
SELECT outcome, variant, count(*) FROM segment.campaign_recipients WHERE campaign_id = :abtest
 GROUP BY 1, 2 ORDER BY 1, 2;
-- Decided once; later members get the winner at once.
SELECT * FROM segment.run_campaigns();
SELECT segment.upsert_contact('later@example.com', '{"country": "DE"}') AS later2 \gset
UPDATE segment.contacts SET status = 'subscribed' WHERE id = :later2;
SELECT segment.launch('abtest') AS later_queued;
SELECT outcome, variant FROM segment.campaign_recipients WHERE campaign_id = :abtest AND contact_id = :later2;
SELECT name, queued, holdout, waiting, winner FROM segment.campaign_status WHERE name = 'abtest';
SET segment.clock_override = '2026-06-01 12:00:00+00';

-- Pause holds the waiting messages, resume puts them back, cancel ends it.
SELECT segment.pause('morning') AS held;
SELECT status, count(*) FROM segment.messages WHERE campaign_id = :morning GROUP BY status;
SELECT status, messages FROM segment.queue_status WHERE status IN ('queued', 'paused');
SELECT segment.launch('morning');
SELECT segment.pause('morning');
SELECT segment.resume('morning') AS released;
SELECT status, count(*) FROM segment.messages WHERE campaign_id = :morning GROUP BY status;
SELECT segment.resume('morning');
SELECT segment.cancel('morning') AS cancelled, segment.cancel('morning') AS again;
SELECT status, count(*) FROM segment.messages WHERE campaign_id = :morning GROUP BY status;
SELECT segment.launch('morning');
SELECT name, status FROM segment.campaigns ORDER BY id;

-- Scheduling needs pg_cron in this database.
SELECT segment.schedule('plain', '0 9 * * *');
SELECT segment.unschedule('plain');

-- Bad input: each a clear error, nothing created.
SELECT segment.create_campaign('plain', 'germany', 'spring');
SELECT segment.create_campaign(' ', 'germany', 'spring');
SELECT segment.create_campaign('x', 'nowhere', 'spring');
SELECT segment.create_campaign('x', 'germany', 'nothing');
SELECT segment.create_campaign('x', 'germany', 'spring', '[]');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"colour": "red"}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"ab_test": {"test_pct": 20}}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"variants": [{"name": "A"}, {"name": "B"}], "ab_test": {"test_pct": 100}}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"variants": [{"name": "A"}, {"name": "B"}], "ab_test": {"test_pct": 20, "metric": "revenue"}}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"variants": [{"name": "A"}, {"name": "B"}], "ab_test": {"test_pct": 20, "decide_after": "later"}}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"holdout_pct": 100}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"frequency_cap": {"max": 0, "per": "7 days"}}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"frequency_cap": {"max": 2, "per": "soon"}}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"send_at": "tomorrow-ish"}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"local_time": "9am"}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"quiet_hours": {"start": "21:00"}}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"variants": []}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"variants": [{"name": "A"}, {"name": "A"}]}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"variants": [{"name": "A", "weight": 0}]}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"variants": [{"name": "A", "template": "gone"}]}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"variants": [{"name": "A", "colour": 1}]}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"from": 7}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"from": "not an address"}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"reply_to": "help@shop.example\r\nBcc: all@example.com"}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"unsubscribe_mailto": 7}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"unsubscribe_mailto": "unsubscribe@shop.example"}');
SELECT segment.create_campaign('x', 'germany', 'spring', '{"unsubscribe_mailto": "mailto:a@shop.example>, <https://evil.example"}');
SELECT segment.launch('nothing');
SELECT count(*) AS campaigns FROM segment.campaigns;
-- A message of a campaign per contact, even when written by hand.
SELECT segment.enqueue(1, 'Dup', NULL, 'Dup', jsonb_build_object('kind', 'marketing', 'campaign_id', :plain));

-- Clicks recorded before the worker reported any delivery still decide: the
-- rate is then taken over the variant's recipients (B wins, not the first listed).
SELECT segment.create_campaign('abclicks', 'germany', 'spring',
  '{"variants": [{"name": "A"}, {"name": "B", "template": "spring_b"}],
    "ab_test": {"test_pct": 50, "metric": "click_rate", "decide_after": "1 hour"}}') AS abclicks \gset
SELECT segment.launch('abclicks') > 0 AS launched;
SELECT count(segment.record(m.message_id, 'click')) > 0 AS b_clicked
  FROM segment.messages m WHERE m.campaign_id = :abclicks AND m.variant = 'B' AND m.status = 'queued';
SET segment.clock_override = '2026-06-01 17:01:00+00';
SELECT campaign, winner, queued > 0 AS rest_queued FROM segment.run_campaigns();
SET segment.clock_override = '2026-06-01 12:00:00+00';

-- A template (the campaign's or a variant's) or a segment a campaign not
-- cancelled uses cannot be dropped; once it is cancelled, it can.
SELECT segment.drop_template('spring_b');
SELECT segment.drop_segment('germany');
SELECT segment.create_template('once', 'Once', '<p>Once</p>') IS NOT NULL AS t3;
SELECT segment.create_campaign('once', 'germany', 'spring', '{"variants": [{"name": "A", "template": "once"}]}') IS NOT NULL AS c;
SELECT segment.drop_template('once');
SELECT segment.cancel('once');
SELECT segment.drop_template('once');

-- send_at without a zone is the creator's local time, kept with its offset.
SET timezone = 'America/New_York';
SELECT segment.create_campaign('evening', 'germany', 'spring', '{"send_at": "2026-06-05 18:00"}') AS evening \gset
SET timezone = 'UTC';
SELECT options ->> 'send_at' AS send_at, segment._campaign_send_at(options, NULL) AS due FROM segment.campaigns WHERE id = :evening;
SELECT segment.cancel('evening');

-- A contact whose mail cannot be built (a line break in the name, refused in
-- the To header) fails the launch, which names it; run_campaigns leaves such an
-- A/B test undecided (with a WARNING) and decides the others.  Contacts refuse
-- such names (sql/contacts.sql): the row is made as old data restored with the
-- checks lifted would be.
SELECT segment.upsert_contact('crlf@example.com', '{"country": "FR"}', first_name => 'Eve') AS crlf \gset
ALTER TABLE segment.contacts DROP CONSTRAINT contacts_first_name_no_control_chars;
SET session_replication_role = replica;
UPDATE segment.contacts SET first_name = E'Eve\r\nBcc: all@example.com' WHERE id = :crlf;
RESET session_replication_role;
SELECT segment.upsert_contact('fr@example.com', '{"country": "FR"}') AS fr \gset
UPDATE segment.contacts SET status = 'subscribed' WHERE id IN (:crlf, :fr);
SELECT segment.create_segment('france', 'attrs.country = ''FR''') IS NOT NULL AS s;
SELECT segment.create_campaign('fr', 'france', 'spring') IS NOT NULL AS c;
SELECT segment.launch('fr');
SELECT count(*) AS fr_decided FROM segment.campaign_recipients r JOIN segment.campaigns c ON c.id = r.campaign_id WHERE c.name = 'fr';
SELECT segment.create_campaign('fr_ab', 'france', 'spring',
  '{"variants": [{"name": "A"}, {"name": "B", "template": "spring_b"}], "ab_test": {"test_pct": 1, "decide_after": "1 hour"}}') IS NOT NULL AS c;
SELECT segment.create_campaign('de_ab', 'germany', 'spring',
  '{"variants": [{"name": "A"}, {"name": "B", "template": "spring_b"}], "ab_test": {"test_pct": 50, "decide_after": "1 hour"}}') IS NOT NULL AS c;
SELECT segment.launch('fr_ab') AS fr_test, segment.launch('de_ab') > 0 AS de_test;
SET segment.clock_override = '2026-06-01 13:01:00+00';
SELECT campaign, winner, queued > 0 AS queued FROM segment.run_campaigns();
SELECT name, winner, waiting FROM segment.campaign_status WHERE name IN ('fr_ab', 'de_ab') ORDER BY name;
UPDATE segment.contacts SET first_name = 'Eve' WHERE id = :crlf;
ALTER TABLE segment.contacts ADD CONSTRAINT contacts_first_name_no_control_chars CHECK (first_name !~ '[[:cntrl:]]');
SELECT campaign, winner, queued FROM segment.run_campaigns();
SELECT segment.launch('fr') AS fr_queued;
SET segment.clock_override = '2026-06-01 12:00:00+00';

-- Launched on this session's own clock (SET): a caller on the server's clock (the
-- worker, pg_cron; here: the real clock, long past decide_after) leaves it alone.
SELECT segment.create_campaign('ownclock', 'germany', 'spring',
  '{"variants": [{"name": "A"}, {"name": "B", "template": "spring_b"}], "ab_test": {"test_pct": 50, "decide_after": "1 hour"}}') IS NOT NULL AS c;
SELECT segment.launch('ownclock') > 0 AS launched;
SELECT own_clock FROM segment.campaigns WHERE name = 'ownclock';
RESET segment.clock_override;
SELECT segment._own_clock() AS own, count(*) AS decided FROM segment.run_campaigns();
SET segment.clock_override = '2026-06-01 13:01:00+00';
SELECT campaign, winner IS NOT NULL AS decided FROM segment.run_campaigns();
SET segment.clock_override = '2026-06-01 12:00:00+00';

-- decide_after counts from send_at when the test mails go out later than the
-- launch (and a day more with local_time): not decided 5 hours after launch.
SELECT segment.create_campaign('later_ab', 'germany', 'spring',
  '{"variants": [{"name": "A"}, {"name": "B", "template": "spring_b"}], "send_at": "2026-06-02 08:00+00",
    "ab_test": {"test_pct": 50, "decide_after": "4 hours"}}') IS NOT NULL AS c;
SELECT segment.create_campaign('local_ab', 'germany', 'spring',
  '{"variants": [{"name": "A"}, {"name": "B", "template": "spring_b"}], "local_time": "09:00",
    "ab_test": {"test_pct": 50, "decide_after": "4 hours"}}') IS NOT NULL AS c;
SELECT segment.launch('later_ab') > 0 AS later, segment.launch('local_ab') > 0 AS local;
SELECT name, segment._campaign_decide_at(c) AS decide_at FROM segment.campaigns c
 WHERE name IN ('later_ab', 'local_ab') ORDER BY name;
SET segment.clock_override = '2026-06-01 17:00:00+00';
SELECT count(*) AS decided FROM segment.run_campaigns() WHERE campaign IN ('later_ab', 'local_ab');
SET segment.clock_override = '2026-06-02 12:00:00+00';
SELECT campaign FROM segment.run_campaigns() WHERE campaign IN ('later_ab', 'local_ab');
SET segment.clock_override = '2026-06-02 16:00:00+00';
SELECT campaign FROM segment.run_campaigns() WHERE campaign IN ('later_ab', 'local_ab');
SET segment.clock_override = '2026-06-01 12:00:00+00';

-- A missing setting is not one contact's problem: run_campaigns fails, the test waits.
SELECT segment.create_campaign('cfg_ab', 'germany', 'spring',
  '{"variants": [{"name": "A"}, {"name": "B", "template": "spring_b"}], "ab_test": {"test_pct": 50, "decide_after": "1 hour"}}') IS NOT NULL AS c;
SELECT segment.launch('cfg_ab') > 0 AS launched;
SET segment.clock_override = '2026-06-01 13:01:00+00';
RESET segment.from_address;
SELECT * FROM segment.run_campaigns();
SET segment.from_address = 'Shop <news@shop.example>';
SELECT campaign, winner IS NOT NULL AS decided FROM segment.run_campaigns();
SET segment.clock_override = '2026-06-01 12:00:00+00';

-- Who may run campaigns: editors and admins, not the application.
SELECT has_function_privilege('segment_editor', 'segment.launch(text)', 'EXECUTE') AS editor_launch,
       has_function_privilege('segment_app', 'segment.launch(text)', 'EXECUTE') AS app_launch;
DROP EXTENSION segment;
