-- Message events (segment.record), tracking links, campaign reports.
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2026-06-01 12:00:00+00';
SET segment.from_address = 'Shop <news@shop.example>';
SET segment.unsubscribe_url = 'https://shop.example/unsubscribe';
SET segment.secret = 'a-long-enough-test-secret';

SELECT count(segment.upsert_contact('c' || i || '@example.com')) FROM generate_series(1, 16) i;
UPDATE segment.contacts SET status = 'subscribed';
SELECT segment.create_segment('everyone', 'true') IS NOT NULL AS s;
SELECT segment.create_template('a', 'Sale A', '<p>A</p>') IS NOT NULL AS ta,
       segment.create_template('b', 'Sale B', '<p>B</p>') IS NOT NULL AS tb;
SELECT segment.create_campaign('sale', 'everyone', 'a',
  '{"variants": [{"name": "A"}, {"name": "B", "template": "b"}], "holdout_pct": 20}') AS sale \gset
SELECT segment.launch('sale') AS queued;
SELECT contact_id, outcome, variant FROM segment.campaign_recipients ORDER BY contact_id;
-- The worker's outcomes, written by hand here: all sent but one A message refused (550).
UPDATE segment.messages SET status = 'sent', attempts = 1, last_code = 250, sent_at = segment.now();
SELECT min(contact_id) FILTER (WHERE variant = 'A') AS a1, (array_agg(contact_id ORDER BY contact_id) FILTER (WHERE variant = 'A'))[2] AS a2,
       (array_agg(contact_id ORDER BY contact_id) FILTER (WHERE variant = 'A'))[3] AS a3,
       (array_agg(contact_id ORDER BY contact_id) FILTER (WHERE variant = 'A'))[4] AS a4,
       min(contact_id) FILTER (WHERE variant = 'B') AS b1, (array_agg(contact_id ORDER BY contact_id) FILTER (WHERE variant = 'B'))[2] AS b2,
       (array_agg(contact_id ORDER BY contact_id) FILTER (WHERE variant = 'B'))[3] AS b3,
       min(contact_id) FILTER (WHERE outcome = 'holdout') AS h1
  FROM segment.campaign_recipients \gset
UPDATE segment.messages SET status = 'failed', last_code = 550 WHERE contact_id = :a4;
CREATE FUNCTION pg_temp.mid(c bigint) RETURNS text LANGUAGE sql AS
  $$ SELECT message_id FROM segment.messages WHERE contact_id = c $$;

-- Opens and clicks: message events and behavioral events (email_open, email_click).
SELECT segment.record(pg_temp.mid(:a1), 'open') IS NOT NULL AS a1_open,
       segment.record('<' || pg_temp.mid(:a1) || '>', 'open') IS NOT NULL AS a1_open_again,
       segment.record(pg_temp.mid(:a2), 'open') IS NOT NULL AS a2_open,
       segment.record(pg_temp.mid(:b1), 'open') IS NOT NULL AS b1_open,
       segment.record(pg_temp.mid(:b1), 'click', '{"url": "https://shop.example/b"}') IS NOT NULL AS b1_click,
       segment.record(pg_temp.mid(:b2), 'click', '{"url": "https://shop.example/b"}') IS NOT NULL AS b2_click;
SELECT contact_id, type, properties - 'message_id' AS properties FROM segment.events ORDER BY id;
-- A click through a signed tracking link: the endpoint resolves it and redirects.
SELECT segment.track_url(pg_temp.mid(:a1), 'https://shop.example/sale');
SET segment.tracking_url = 'https://t.shop.example/c';
SELECT split_part(segment.track_url(pg_temp.mid(:a1), 'https://shop.example/sale?x=1'), 't=', 2) AS click_token \gset
SELECT split_part(segment.track_url(pg_temp.mid(:a3), NULL), 't=', 2) AS pixel_token \gset
SELECT segment.resolve_click(:'click_token') AS redirect_to;
SELECT segment.resolve_click(:'pixel_token') IS NULL AS pixel;
SELECT segment.resolve_click(:'click_token' || 'x');
SELECT segment.resolve_click(split_part(segment.unsubscribe_url(:a1), 'token=', 2));
SELECT segment.resolve_click(NULL);
SELECT segment.track_url(pg_temp.mid(:a1), 'javascript:alert(1)');
SELECT segment.track_url('', 'https://shop.example/');
SELECT m.contact_id = :a1 AS a1, e.kind, e.meta FROM segment.message_events e JOIN segment.messages m ON m.id = e.message_id
 WHERE e.kind = 'click' ORDER BY e.id;

-- Conversions: a1 buys 2 days after the click (attributed), b2 buys after 6 days (too late),
-- b1 reports a conversion directly; the holdout contact h1 buys too.
SET segment.clock_override = '2026-06-03 12:00:00+00';
SELECT segment.track(:a1, 'purchase', '{}', 100) IS NOT NULL AS a1_bought;
SELECT segment.track(:h1, 'purchase', '{}', 40) IS NOT NULL AS h1_bought;
SELECT segment.record(pg_temp.mid(:b1), 'conversion', '{"amount": 30, "order": "B-7"}') IS NOT NULL AS b1_conversion;
SET segment.clock_override = '2026-06-07 13:00:00+00';
SELECT segment.track(:b2, 'purchase', '{}', 55) IS NOT NULL AS b2_bought_late;

-- Bounces, complaints, unsubscribes change the contact and suppress the address.
SELECT segment.record(pg_temp.mid(:b3), 'bounce', '{"type": "hard", "reason": "5.1.1 user unknown"}') IS NOT NULL AS b3_bounce;
SELECT segment.record(pg_temp.mid(:a2), 'complaint') IS NOT NULL AS a2_complaint;
SELECT segment.record(pg_temp.mid(:a3), 'unsubscribe') IS NOT NULL AS a3_unsub;
-- The one-click link of a campaign's mail (List-Unsubscribe, {{unsubscribe_url}}) also
-- records the unsubscribe on that message, once however often it is followed.
SELECT segment.unsubscribe(split_part(segment.unsubscribe_url(:b1, 'sale'), 'token=', 2)) = :b1 AS b1_unsub,
       segment.unsubscribe(split_part(segment.unsubscribe_url(:b1, 'sale'), 'token=', 2)) = :b1 AS b1_unsub_again,
       segment.unsubscribe(split_part(segment.unsubscribe_url(:b1), 'token=', 2)) = :b1 AS b1_unsub_no_campaign;
SELECT e.kind, e.meta, e.variant FROM segment.message_events e JOIN segment.messages m ON m.id = e.message_id
 WHERE m.contact_id = :b1 AND e.kind = 'unsubscribe';
SELECT segment.record(pg_temp.mid(:a3), 'bounce', '{"type": "soft"}') IS NOT NULL AS a3_soft;
SELECT id = :b3 AS b3, id = :a2 AS a2, id = :a3 AS a3, status, segment.is_suppressed(email) AS suppressed
  FROM segment.contacts WHERE id IN (:b3, :a2, :a3) ORDER BY id;
SELECT reason, detail FROM segment.suppressions ORDER BY reason;

-- The report: per variant, in the campaign's order; A is the control.
SELECT variant, recipients, sent, delivered, bounced, opened, clicked, converted, revenue,
       round(bounce_rate::numeric, 4) AS bounce_rate, round(open_rate::numeric, 4) AS open_rate,
       round(click_rate::numeric, 4) AS click_rate, round(conversion_rate::numeric, 4) AS conversion_rate,
       round(purchase_rate::numeric, 4) AS purchase_rate, round(lift::numeric, 4) AS lift,
       round(p_value::numeric, 4) AS p_value
  FROM segment.campaign_report('sale');
-- Unsubscribes and complaints per variant: a3 and a2 in A, b1 (by its link) in B.
SELECT variant, unsubscribed, complained FROM segment.campaign_report('sale');
-- The p-value is the two-proportion z-test's (checked against a known value:
-- 30/100 against 20/100 gives z = 1.6330, p = 0.1025).
SELECT round(segment._two_proportion_p(30, 100, 20, 100)::numeric, 4) AS p,
       round(segment._normal_cdf(1.959964)::numeric, 4) AS cdf_1_96, round(segment._normal_cdf(-1)::numeric, 4) AS cdf_minus_1,
       segment._two_proportion_p(0, 10, 0, 10) IS NULL AS undefined_without_clicks;
-- A 7-day window also attributes b2's purchase, 6 days after the click.
SELECT variant, converted, revenue FROM segment.campaign_report('sale', '7 days');
-- Each click opens a window: after a second click of b2 on June 3rd, its purchase of
-- the 7th (4 days later) is attributed with the default 5 days too, once.
SET segment.clock_override = '2026-06-03 12:00:00+00';
SELECT segment.record(pg_temp.mid(:b2), 'click', '{"url": "https://shop.example/b"}') IS NOT NULL AS b2_click_again;
SET segment.clock_override = '2026-06-07 13:00:00+00';
SELECT variant, clicked, converted, revenue FROM segment.campaign_report('sale');
-- The p-value tests the A/B test's metric: with "metric": "open_rate", B's opens (1 of 5
-- delivered) against A's (3 of 5): z = 1.2910, p = 0.1967; conversion_rate: 2 of 5 against 1 of 5.
BEGIN;
UPDATE segment.campaigns SET options = options || '{"ab_test": {"test_pct": 50, "metric": "open_rate", "decide_after": "4 hours"}}'
 WHERE name = 'sale';
SELECT variant, opened, delivered, round(p_value::numeric, 4) AS p_value FROM segment.campaign_report('sale');
UPDATE segment.campaigns SET options = jsonb_set(options, '{ab_test,metric}', '"conversion_rate"') WHERE name = 'sale';
SELECT variant, converted, delivered, round(p_value::numeric, 4) AS p_value,
       round(segment._two_proportion_p(2, 5, 1, 5)::numeric, 4) AS by_hand
  FROM segment.campaign_report('sale');
ROLLBACK;

-- With segment.tracking_url set, campaign mail is tracked: links (not the unsubscribe
-- link) go through signed click links naming the message, and an open pixel is added.
SELECT segment.create_segment('just_c16', 'email = ''c16@example.com''') IS NOT NULL AS s16;
SELECT segment.create_template('links', 'Links',
  '<html><body><p><a href="https://shop.example/sale?a=1&amp;b=2">Sale</a> <a href="https://shop.example/">Home</a></p>'
  '<p><a href="{{unsubscribe_url}}">Unsubscribe</a></p></body></html>') IS NOT NULL AS tl;
SELECT segment.create_campaign('tracked', 'just_c16', 'links') IS NOT NULL AS c;
SELECT segment.launch('tracked') AS queued;
SELECT message_id AS tracked_mid, html FROM (
  SELECT m.message_id, replace(replace(replace(split_part(split_part(m.mime, E'Content-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n', 2), E'\r\n--', 1),
                                        E'=\r\n', ''), '=3D', '='), '=20', ' ') AS html
    FROM segment.messages m JOIN segment.campaigns c ON c.id = m.campaign_id WHERE c.name = 'tracked') x \gset
SELECT regexp_replace(regexp_replace(:'html', 't=[A-Za-z0-9_.-]+', 't=TOKEN', 'g'), 'token=[A-Za-z0-9_.-]+', 'token=TOKEN', 'g') AS html;
SELECT segment.resolve_click(replace(t[1], '&amp;', '&')) AS redirect, segment.verify_token('click', t[1]) = :'tracked_mid' || E'\n' || 'https://shop.example/sale?a=1&b=2' AS names_the_message
  FROM regexp_matches(:'html', 'https://t\.shop\.example/c\?t=([A-Za-z0-9_.-]+)') t LIMIT 1;
SELECT e.kind, e.meta FROM segment.message_events e JOIN segment.messages m ON m.id = e.message_id
 WHERE m.message_id = :'tracked_mid';

-- Every variant of a launched campaign has its row, also one nobody got (one contact, two
-- variants); a draft has none.
SELECT segment.create_campaign('duo', 'just_c16', 'a', '{"variants": [{"name": "A"}, {"name": "B", "template": "b"}]}') IS NOT NULL AS c;
SELECT segment.launch('duo') AS queued;
SELECT variant, recipients, sent, delivered, opened, open_rate, revenue, p_value FROM segment.campaign_report('duo');
-- Events reported for a message the queue does not show as sent yet (a webhook faster than
-- the worker's bookkeeping, or mail relayed elsewhere): it went out.
SELECT segment.record(m.message_id, 'delivered') IS NOT NULL AS delivered, segment.record(m.message_id, 'open') IS NOT NULL AS opened, m.status
  FROM segment.messages m JOIN segment.campaigns c ON c.id = m.campaign_id WHERE c.name = 'duo';
SELECT variant, recipients, sent, delivered, opened, open_rate FROM segment.campaign_report('duo');
SELECT period, sent, opened FROM segment.segment_engagement('just_c16');
SELECT segment.create_campaign('draft_duo', 'just_c16', 'a', '{"variants": [{"name": "A"}, {"name": "B", "template": "b"}]}') IS NOT NULL AS c;
SELECT count(*) AS rows FROM segment.campaign_report('draft_duo');

-- Engagement of a segment's members over time (all messages were sent on June 1st; one more on the 3rd;
-- c16's tracked and duo mail, still queued, count from their first event, on the 7th).
-- Conversions count as in the report: a1's and b2's purchases after their clicks, b1's recorded one.
UPDATE segment.messages SET sent_at = '2026-06-03 09:00:00+00' WHERE contact_id = :b1;
SELECT period, sent, opened, clicked, converted, round(open_rate::numeric, 4) AS open_rate,
       round(click_rate::numeric, 4) AS click_rate
  FROM segment.segment_engagement('everyone');
SELECT period, sent FROM segment.segment_engagement('everyone', '2026-06-02', 'week');
SELECT segment.segment_engagement('nowhere');
SELECT segment.segment_engagement('everyone', NULL, 'fortnight');
SELECT segment.segment_engagement('everyone', NULL, 'day', '-1 day');
-- With a 1-day window neither a1's purchase (2 days after its click) nor b2's converts.
SELECT period, converted FROM segment.segment_engagement('everyone', attribution => '1 day');

-- Errors.
SELECT segment.record(NULL, 'open');
SELECT segment.record('nope@shop.example', 'open');
SELECT segment.record(pg_temp.mid(:a1), 'read');
SELECT segment.record(pg_temp.mid(:a1), 'open', '[]');
SELECT segment.record(pg_temp.mid(:a1), 'bounce', '{"type": "medium"}');
SELECT segment.record(pg_temp.mid(:a1), 'conversion', '{"amount": "lots"}');
SELECT segment.campaign_report('nothing');
SELECT segment.campaign_report('sale', '0 days');
SELECT count(*) AS message_events FROM segment.message_events;
-- After the person is forgotten, the links in the mail they kept still lead where they
-- pointed (nothing is recorded); the pixel still answers.
SELECT split_part(segment.track_url(:'tracked_mid', NULL), 't=', 2) AS tracked_pixel \gset
SELECT segment.forget(segment.contact_id('c16@example.com'));
SELECT segment.resolve_click(replace(t[1], '&amp;', '&')) AS redirect
  FROM regexp_matches(:'html', 'https://t\.shop\.example/c\?t=([A-Za-z0-9_.-]+)') t LIMIT 1;
SELECT segment.resolve_click(:'tracked_pixel') IS NULL AS pixel;
SELECT count(*) AS message_events FROM segment.message_events;
DROP EXTENSION segment;
