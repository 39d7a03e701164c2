-- The segment demo, run by "make demo" against a throwaway cluster: a small shop's
-- contacts and a year of behavior, rules, tags, templates — all in SQL.
\pset footer off
\set ON_ERROR_STOP 1
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

\echo
\echo '== 1. Install: one extension in the application database'
CREATE EXTENSION segment;
SELECT extname, extversion FROM pg_extension WHERE extname = 'segment';

\echo
\echo '== 2. The clock: every time-relative decision uses segment.now(); the demo pins it'
SET segment.clock_override = '2026-12-01 09:00:00+00';
SELECT segment.now() AS "segment.now()";

\echo
\echo '== 3. Typed custom fields; contacts; a refused write says exactly what is wrong'
\o /dev/null
SELECT segment.define_field('country', 'enum', ARRAY['DE', 'AT', 'CH', 'FR', 'US']);
SELECT segment.define_field('plan', 'enum', ARRAY['free', 'pro', 'enterprise']);
SELECT segment.define_field('age', 'number');
\o
SELECT name, type, enum_values FROM segment.fields ORDER BY name;
SELECT count(segment.upsert_contact(
         format('customer%s@shop.example', g),
         jsonb_build_object('country', (ARRAY['DE', 'AT', 'CH', 'FR', 'US'])[1 + g % 5],
                            'plan', (ARRAY['free', 'free', 'pro', 'enterprise'])[1 + g % 4],
                            'age', 20 + g % 45),
         (ARRAY['Ann', 'Ben', 'Cleo', 'Dev', 'Eva', 'Finn', 'Gia', 'Hugo'])[1 + g % 8],
         time_zone => (ARRAY['Europe/Berlin', 'Europe/Vienna', 'Europe/Zurich', 'Europe/Paris', 'America/New_York'])[1 + g % 5]))
       AS contacts_loaded
  FROM generate_series(1, 400) g;
UPDATE segment.contacts SET status = 'subscribed' WHERE id % 10 <> 0;
\set ON_ERROR_STOP 0
SELECT segment.upsert_contact('ann@shop.example', '{"age": "forty"}');
\set ON_ERROR_STOP 1

\echo
\echo '== 4. A year of behavior: views, carts, purchases, opens, clicks (per-contact aggregates kept as they commit)'
SELECT count(segment.track(c.id, e.type, e.props, e.amount, e.at)) AS events_tracked
  FROM segment.contacts c
  CROSS JOIN LATERAL (
    SELECT CASE WHEN k % 7 = 0 THEN 'purchase' WHEN k % 7 = 1 THEN 'cart_add'
                WHEN k % 7 IN (2, 3) THEN 'email_open' WHEN k % 7 = 4 THEN 'email_click'
                ELSE 'product_view' END AS type,
           jsonb_build_object('category', (ARRAY['golf', 'tennis', 'running'])[1 + (c.id + k) % 3],
                              'product_id', 'sku-' || ((c.id * 7 + k) % 40)) AS props,
           CASE WHEN k % 7 = 0 THEN round((20 + (c.id * k) % 230)::numeric, 2) END AS amount,
           segment.now() - make_interval(days => ((c.id * 37 + k * 53) % 365)::int) AS at
      FROM generate_series(1, (c.id % 13) + (CASE WHEN c.id % 17 = 0 THEN 40 ELSE 0 END)) k) e;
SELECT type, sum(count) AS events, count(*) AS contacts, round(sum(sum_amount), 2) AS revenue
  FROM segment.event_stats GROUP BY type ORDER BY events DESC;

\echo
\echo '== 5. The rule language: typed, validated at the cast, compiled to one indexed SQL query'
SELECT r AS rule, segment.count(r::segment.rule) AS contacts
  FROM unnest(ARRAY[
    'sum(purchase.amount) > 500',
    'count(purchase) within 60 days > 3',
    'did purchase and not did purchase within 180 days',
    'did cart_add within 30 days and not did purchase within 30 days',
    $$country in ('DE','AT') and plan != 'free'$$,
    $$did purchase where (category = 'golf') within 365 days$$,
    'created_at > 30 days ago and not did purchase',
    'did email_open within 30 days']) r;
\echo 'Canonical form, and the SQL that segment.members() runs:'
SELECT $$country IN ('DE', 'AT') AND (Sum(purchase.amount) > 500 OR Did cart_add)$$::segment.rule AS canonical;
SELECT segment.rule_sql('sum(purchase.amount) > 500 and not did purchase within 180 days');
\echo 'Mistakes are caught when the rule is written, with the position:'
\set ON_ERROR_STOP 0
SELECT 'count(purchase) within 60 dayz > 3'::segment.rule;
SELECT 'contry = ''DE'''::segment.rule;
SELECT 'age > ''old'''::segment.rule;
\set ON_ERROR_STOP 1
\echo 'One contact, evaluated now (segment.matches agrees with segment.members on every contact):'
SELECT c.email, segment.matches(c.id, 'sum(purchase.amount) > 500') AS high_value
  FROM segment.contacts c WHERE c.id IN (17, 18) ORDER BY c.id;

\echo
\echo '== 6. Tags, with expiry'
SELECT segment.tag(17, 'VIP'), segment.tag(18, 'black-friday', segment.now() + interval '3 days');
SELECT segment.tags(17) AS tags_17, segment.tags(18) AS tags_18;
SELECT segment.count($$tagged 'VIP' or tagged 'black-friday'$$) AS tagged_now;
SET segment.clock_override = '2026-12-05 09:00:00+00';
SELECT segment.count($$tagged 'VIP' or tagged 'black-friday'$$) AS tagged_after_expiry;
SET segment.clock_override = '2026-12-01 09:00:00+00';

\echo
\echo '== 7. Templates: Mustache plus the helpers marketers expect, rendered in C'
SELECT segment.create_template('winback',
  'We miss you, {{ first_name | default: "there" }}!',
  '<h1>Hi {{ first_name | default: "there" | capitalize }}</h1>'
  '{{#if (gt lifetime_value 500)}}<p>As one of our best customers ({{ lifetime_value | money: "EUR" }} so far), take 20% off.</p>'
  '{{else}}<p>Take 10% off your next order.</p>{{/if}}'
  '<p>Your tags: {{#each tags}}{{.}}{{#unless @last}}, {{/unless}}{{/each}}</p>'
  '<a href="https://shop.example/?c={{ email | url_encode }}">Shop now</a>') AS template_id;
SELECT subject, text FROM segment.render_for('winback', 17);
SELECT segment.render('{{#items}}{{name}}: {{price | money: "EUR"}}
{{/items}}', '{"items": [{"name": "Driver", "price": 349}, {"name": "Balls <12>", "price": 24.5}]}') AS rendered;

\echo
\echo '== 8. Segments kept current on every commit (no cron, no rebuild)'
SELECT segment.create_segment('high_value', 'sum(purchase.amount) > 500') AS high_value,
       segment.create_segment('cart_abandoners', 'did cart_add within 1 day and not did purchase within 1 day') AS cart_abandoners,
       segment.create_segment('golf_fans_de', $$country = 'DE' and did purchase where (category = 'golf')$$) AS golf_fans_de;
SELECT * FROM segment.segment_sizes ORDER BY 1;
\echo 'customer18 puts a driver in the cart ... and is a cart abandoner the moment it commits:'
SELECT segment.track(18, 'cart_add', '{"product_id": "sku-7", "category": "golf"}') > 0 AS tracked;
SELECT segment.in_segment(18, 'cart_abandoners') AS abandoner, segment.in_segment(18, 'high_value') AS high_value;
\echo '... then buys it (and a lot more): out of cart_abandoners, into high_value, in the same commit:'
SELECT segment.track(18, 'purchase', '{"product_id": "sku-7", "category": "golf"}', 899) > 0 AS tracked;
SELECT segment.in_segment(18, 'cart_abandoners') AS abandoner, segment.in_segment(18, 'high_value') AS high_value;
SELECT at, contact_id, segment, action FROM segment.segment_history WHERE contact_id = 18 ORDER BY id;
\echo 'Time-relative rules change with time alone: two days later, segment.refresh() (schedule it with pg_cron):'
SET segment.clock_override = '2026-12-03 09:00:00+00';
SELECT * FROM segment.refresh() ORDER BY 1;
SET segment.clock_override = '2026-12-01 09:00:00+00';

\echo
\echo '== 9. Tag rules and lifecycle stages, maintained the same way'
SELECT segment.create_tag_rule('big_spender', 'sum(purchase.amount) > 1000') AS tag_rule;
SELECT segment.install_default_stages();
SELECT * FROM segment.stage_counts ORDER BY position;
SELECT segment.upsert_contact('newbie@shop.example', '{"country": "DE", "plan": "free"}', 'Nia') AS newbie \gset
SELECT segment.stage(:newbie) AS stage_at_signup;
SELECT segment.track(:newbie, 'purchase', '{"category": "running"}', 120) > 0 AS first_order;
SELECT segment.stage(:newbie) AS stage_after_first_order;
SELECT segment.track(:newbie, 'purchase', '{"category": "running"}', 80) > 0 AS second_order;
SELECT segment.stage(:newbie) AS stage_after_second_order;
SELECT contact_id, from_stage, to_stage FROM segment.stage_history WHERE contact_id = :newbie ORDER BY id;

\echo
\echo '== 10. Sending: transactional mail through the background worker and libcurl SMTP'
-- The worker runs on the real clock: back to it for sending.
RESET segment.clock_override;
UPDATE segment.contacts SET status = 'subscribed' WHERE id = :newbie;
SELECT segment.create_template('order_confirmation',
  'Danke für deine Bestellung, {{ first_name }}!',
  '<p>Hi {{ first_name }},</p><p>We received your order of {{ total | money: "EUR" }}.</p>'
  '{{#each items}}<li>{{ name }} × {{ qty }}</li>{{/each}}<p>Grüße aus München</p>') AS template_id;
SELECT segment.send(:newbie, 'order_confirmation',
  '{"total": 200, "items": [{"name": "Trail shoes", "qty": 1}, {"name": "Socks", "qty": 2}]}') AS message_id \gset
SELECT set_config('demo.message_id', :'message_id', false) IS NOT NULL AS queued;
\echo 'Waiting for the worker (woken by the commit) to deliver it ...'
DO $$
BEGIN
  FOR i IN 1..200 LOOP
    EXIT WHEN (SELECT status FROM segment.messages WHERE id = current_setting('demo.message_id')::bigint) IN ('sent', 'failed');
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT id, status, attempts, last_code, rcpt_to, message_id FROM segment.messages WHERE id = :message_id;
SELECT status, messages FROM segment.queue_status;
SELECT state, sent, failed FROM segment.worker_status();

\echo
\echo '== 11. Campaigns, triggered flows, consent, recommendations and what happened to the mail'
\echo 'Recommendations for customer17 from the events (its strongest categories first, never what it bought):'
SET segment.clock_override = '2026-12-01 09:00:00+00';
SELECT r->>'product_id' AS product, r->>'category' AS category, r->>'reason' AS reason
  FROM jsonb_array_elements(segment.recommend(17)) r;
RESET segment.clock_override;
\echo 'An A/B campaign to high_value with a 20 % holdout; launching twice mails nobody twice:'
SELECT segment.create_template('vip_a', 'A thank-you for you, {{ first_name }}',
  '<p>Hi {{ first_name }}, you are one of our best customers: 20% off this week.</p>'
  '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>') IS NOT NULL AS template_a,
       segment.create_template('vip_b', 'Only for our best customers, {{ first_name }}',
  '<p>{{ first_name }}, early access to the winter collection starts now.</p>'
  '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>') IS NOT NULL AS template_b;
SELECT segment.create_campaign('vip_sale', 'high_value', 'vip_a',
  '{"variants": [{"name": "A"}, {"name": "B", "template": "vip_b"}], "holdout_pct": 20}') AS campaign_id;
SELECT segment.launch('vip_sale') AS queued, segment.launch('vip_sale') AS queued_again;
SELECT outcome, variant, count(*) AS contacts FROM segment.campaign_recipients GROUP BY 1, 2 ORDER BY 1, 2;
\echo 'A flow: a welcome for every new high_value customer (from the change feed, no polling of rules):'
SELECT segment.create_flow('welcome_vip', 'segment_enter:high_value', 'vip_b', '{"once_per": "ever"}') AS flow_id;
SELECT segment.track(:newbie, 'purchase', '{"category": "golf"}', 400) > 0 AS nia_buys_more;
-- run_flows (the sending worker runs it every 5 s; here it is called at once) reads changes of transactions that
-- have finished before it starts: while the sending worker has a transaction
-- open from before, it waits for the next call.
DO $$
BEGIN
  FOR i IN 1..200 LOOP
    PERFORM segment.run_flows();
    EXIT WHEN EXISTS (SELECT 1 FROM segment.flow_runs);
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT name, trigger, waiting, sent, cancelled, skipped FROM segment.flow_status;
\echo 'Consent: a double opt-in from the shop counter, confirmed from the link in its mail:'
SET segment.confirm_url = 'https://shop.example/confirm';
SELECT segment.subscribe('walk-in@shop.example', 'store_counter') AS walkin \gset
SELECT status FROM segment.contacts WHERE id = :walkin;
SELECT segment.confirm(substring(replace(replace(mime, E'=\r\n', ''), '=3D', '=') FROM 'token=([A-Za-z0-9_.-]+)')) = :walkin AS confirmed
  FROM segment.messages WHERE contact_id = :walkin;
SELECT status, consent_source FROM segment.contacts WHERE id = :walkin;
\echo 'Waiting for the worker to deliver everything ...'
DO $$
BEGIN
  FOR i IN 1..400 LOOP
    EXIT WHEN NOT EXISTS (SELECT 1 FROM segment.messages WHERE status IN ('queued', 'sending', 'retry'));
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
SELECT kind, status, count(*) AS messages FROM segment.messages GROUP BY 1, 2 ORDER BY 1, 2;
\echo 'Opens and clicks come back (from tracking links or ESP webhooks); the report per variant:'
SELECT count(segment.record(m.message_id, 'open')) AS opens
  FROM segment.messages m WHERE m.campaign_id IS NOT NULL AND m.contact_id % 2 = 0;
SELECT count(segment.record(m.message_id, 'click', '{"url": "https://shop.example/winter"}')) AS clicks
  FROM segment.messages m WHERE m.campaign_id IS NOT NULL AND m.contact_id % 3 = 0;
SELECT variant, recipients, sent, delivered, opened, clicked, round(open_rate::numeric, 2) AS open_rate,
       round(click_rate::numeric, 2) AS click_rate, round(p_value::numeric, 2) AS p_value
  FROM segment.campaign_report('vip_sale');
SELECT name, status, queued, holdout, skipped, sent FROM segment.campaign_status;
