-- Consent (subscribe, double opt-in, confirm) and the rights of the person
-- (export_contact, forget).
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2026-06-01 12:00:00+00';
SET segment.from_address = 'Shop <news@shop.example>';
SET segment.secret = 'a-long-enough-test-secret';

-- Single opt-in: subscribed at once, with the time and source of the consent.
SELECT segment.subscribe('Ann@Example.com', 'checkout', double_opt_in => false) AS ann \gset
SELECT email, status, consent_at, consent_source FROM segment.contacts WHERE id = :ann;
-- Subscribing again changes nothing (the first consent stays) and mails nobody.
SELECT segment.subscribe('ann@example.com', 'signup_form') = :ann AS same_contact;
SELECT status, consent_at, consent_source FROM segment.contacts WHERE id = :ann;
SELECT count(*) AS mails FROM segment.messages;

-- Double opt-in (the default) needs the confirmation endpoint.
SELECT segment.subscribe('bob@example.com', 'signup_form');
SELECT count(*) AS contacts_after_error FROM segment.contacts;
SET segment.confirm_url = 'https://shop.example/confirm';
SELECT segment.subscribe('bob@example.com', 'signup_form') AS bob \gset
-- Bob is pending (no marketing consent yet) and has a transactional confirmation mail.
SELECT status, consent_at, consent_source FROM segment.contacts WHERE id = :bob;
SELECT kind, template, rcpt_to, subject, status FROM segment.messages WHERE contact_id = :bob;
SELECT mime LIKE '%List-Unsubscribe%' AS has_list_unsubscribe FROM segment.messages WHERE contact_id = :bob;
-- The link in the mail (text part, quoted-printable undone for what a link holds).
SELECT substring(replace(replace(mime, E'=\r\n', ''), '=3D', '=') FROM 'https://shop\.example/confirm\?token=[A-Za-z0-9_.-]+') AS link
  FROM segment.messages WHERE contact_id = :bob ORDER BY id LIMIT 1 \gset
SELECT :'link' LIKE 'https://shop.example/confirm?token=%' AS link_found;
SELECT split_part(:'link', 'token=', 2) AS token \gset

-- The endpoint confirms: subscribed, consent time and source recorded; idempotent.
SET segment.clock_override = '2026-06-02 08:30:00+00';
SELECT segment.confirm(:'token') = :bob AS confirmed;
SELECT status, consent_at, consent_source FROM segment.contacts WHERE id = :bob;
SELECT segment.confirm(:'token') = :bob AS confirmed_again;
SELECT consent_at FROM segment.contacts WHERE id = :bob;

-- No token, a token for another purpose, a forged one, an expired one.
SELECT segment.confirm(NULL);
SET segment.unsubscribe_url = 'https://shop.example/unsubscribe';
SELECT segment.confirm(split_part(segment.unsubscribe_url(:bob), 'token=', 2));
SELECT segment.confirm(:'token' || 'x');
SET segment.clock_override = '2026-06-09 12:00:01+00';
SELECT segment.confirm(:'token');
SET segment.clock_override = '2026-06-02 08:30:00+00';

-- A stored template confirm_subscription replaces the built-in mail.
SELECT segment.create_template('confirm_subscription', 'Confirm, {{ first_name | default: "friend" }}',
  '<p><a href="{{ confirm_url }}">Confirm</a></p>', 'Confirm: {{{ confirm_url }}}') IS NOT NULL AS created;
SELECT segment.upsert_contact('cy@example.com', first_name => 'Cy') AS cy \gset
SELECT segment.subscribe('cy@example.com', 'popup') = :cy AS subscribed;
SELECT template, subject FROM segment.messages WHERE contact_id = :cy;
SELECT substring(replace(replace(mime, E'=\r\n', ''), '=3D', '=') FROM 'Confirm: (https://[^\s]+)') AS cy_link
  FROM segment.messages WHERE contact_id = :cy \gset
SELECT :'cy_link' ~ '^https://shop\.example/confirm\?token=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' AS cy_link_found;
-- The address changed after the mail was sent: the old link does not confirm the new address.
UPDATE segment.contacts SET email = 'cy.new@example.com' WHERE id = :cy;
SELECT segment.confirm(split_part(:'cy_link', 'token=', 2));
UPDATE segment.contacts SET email = 'cy@example.com' WHERE id = :cy;
SELECT segment.confirm(split_part(:'cy_link', 'token=', 2)) = :cy AS confirmed;

-- An unsubscribed contact that subscribes again is pending until it confirms again.
SELECT segment.unsubscribe(split_part(segment.unsubscribe_url(:cy), 'token=', 2)) = :cy AS unsubscribed;
-- The old confirmation link, still valid, does not take the unsubscribe back.
SELECT segment.confirm(split_part(:'cy_link', 'token=', 2));
SELECT status FROM segment.contacts WHERE id = :cy;
SELECT segment.subscribe('cy@example.com', 'popup') = :cy AS resubscribed;
SELECT status FROM segment.contacts WHERE id = :cy;
SELECT count(*) AS confirmation_mails FROM segment.messages WHERE contact_id = :cy;

-- Bounced, complained and suppressed addresses cannot be subscribed.
SELECT segment.upsert_contact('dora@example.com') AS dora \gset
UPDATE segment.contacts SET status = 'bounced' WHERE id = :dora;
SELECT segment.subscribe('dora@example.com', 'signup_form', false);
SELECT segment.suppress('eve@example.com', 'complaint');
SELECT segment.subscribe('eve@example.com', 'signup_form', false);
SELECT segment.unsuppress('eve@example.com');
-- Bad arguments.
SELECT segment.subscribe(NULL, 'signup_form');
SELECT segment.subscribe('not an address', 'signup_form');
SELECT segment.subscribe('fay@example.com', ' ');
SELECT segment.subscribe('fay@example.com', 'form', NULL);
SELECT count(*) AS contacts_after_errors FROM segment.contacts;

-- Export: everything held on a person, in one document.
SELECT segment.define_field('country', 'text');
UPDATE segment.contacts SET attrs = '{"country": "DE"}', first_name = 'Bob' WHERE id = :bob;
SELECT segment.create_template('thanks', 'Thanks', '<p>Thanks</p>') IS NOT NULL AS template;
SELECT segment.create_flow('welcome_vip', 'tag:VIP', 'thanks', '{"delay": "1 day"}') IS NOT NULL AS flow;
SELECT segment.track(:bob, 'purchase', '{"sku": "A1"}', 20, '2026-05-01 10:00+00') IS NOT NULL AS tracked;
SELECT segment.track(:bob, 'page_view', '{"url": "/"}', NULL, '2026-05-02 10:00+00') IS NOT NULL AS tracked;
SELECT segment.tag(:bob, 'VIP');
SELECT segment.create_segment('buyers', 'did purchase') IS NOT NULL AS created;
SELECT segment.define_stage('customer', 10, 'did purchase');
SELECT outcome, runs FROM segment.run_flows() WHERE runs > 0;
SELECT jsonb_object_keys(segment.export_contact(:bob)) AS part ORDER BY 1;
SELECT d->'contact'->>'email' AS email, d->'contact'->>'status' AS status,
       d->'contact'->'attrs' AS attrs, d->'contact'->>'consent_source' AS consent_source,
       jsonb_array_length(d->'events') AS events,
       d->'events'->0->>'type' AS first_event, d->'events'->0->'properties' AS first_properties,
       d->'event_stats'->0->>'type' AS stats_type,
       (SELECT array_agg(t->>'tag') FROM jsonb_array_elements(d->'tags') t) AS tags,
       (SELECT array_agg(s->>'segment') FROM jsonb_array_elements(d->'segments') s) AS segments,
       d->'stage'->>'stage' AS stage,
       (SELECT array_agg(h->>'kind' || ':' || (h->>'name') ORDER BY (h->>'id')::bigint)
          FROM jsonb_array_elements(d->'history') h) AS history,
       jsonb_array_length(d->'messages') AS messages, d->'messages'->0->>'subject' AS message_subject,
       d->'suppression' AS suppression,
       (SELECT array_agg(r->>'flow' || ':' || (r->>'status') || ':' || (r->>'due_at')) FROM jsonb_array_elements(d->'flows') r) AS flows
  FROM segment.export_contact(:bob) AS d;
SELECT segment.export_contact(-1);
SELECT segment.export_contact(NULL);

-- Forget: the person is erased, a hashed suppression entry stays.
SELECT segment.suppress('bob@example.com', 'manual', 'asked by phone: bob@example.com');
-- A purchase run_flows has not read yet: the inbox of an event flow names the contact too.
SELECT segment.create_flow('thanks', 'event:purchase', 'thanks') IS NOT NULL AS flow;
SELECT segment.track(:bob, 'purchase', '{"sku": "A2"}', 5) IS NOT NULL AS tracked;
SELECT count(*) AS inbox FROM segment.flow_inbox WHERE contact_id = :bob;
SELECT segment.forget(:bob);
SELECT count(*) AS flow_runs FROM segment.flow_runs WHERE contact_id = :bob;
SELECT count(*) AS inbox FROM segment.flow_inbox WHERE contact_id = :bob;
SELECT count(*) AS contact FROM segment.contacts WHERE id = :bob;
SELECT count(*) AS events FROM segment.events WHERE contact_id = :bob;
SELECT count(*) AS stats FROM segment.event_stats WHERE contact_id = :bob;
SELECT count(*) AS tags FROM segment.contact_tags WHERE contact_id = :bob;
SELECT count(*) AS memberships FROM segment.segment_members WHERE contact_id = :bob;
SELECT count(*) AS stages FROM segment.contact_stages WHERE contact_id = :bob;
SELECT count(*) AS history FROM segment.changes WHERE contact_id = :bob;
SELECT count(*) AS messages FROM segment.messages WHERE contact_id = :bob OR rcpt_to = 'bob@example.com'
                                                      OR mime LIKE '%bob@example.com%';
SELECT address, reason, detail FROM segment.suppressions
 WHERE address_hash = segment.address_hash('bob@example.com');
SELECT count(*) AS rows_naming_bob FROM segment.suppressions
 WHERE address LIKE '%bob%' OR detail LIKE '%bob%';
-- The same address imported again is never mailed.
SELECT segment.upsert_contact('bob@example.com') AS bob2 \gset
SELECT segment.is_suppressed('bob@example.com') AS suppressed;
SELECT segment.subscribe('bob@example.com', 'signup_form', false);
SELECT segment.forget(:ann);
SELECT reason FROM segment.suppressions WHERE address_hash = segment.address_hash('ann@example.com');
SELECT segment.forget(:ann);
SELECT segment.forget(NULL);

-- At scale: export_contact and forget read the person's rows through indexes,
-- foreign key actions included; no table with many rows is read whole.  The
-- messages a deleted contact left to the same address are the person's too;
-- those of another contact that once had the address stay that contact's.
SELECT segment.upsert_contact('flo@example.com') AS flo_gone \gset
SELECT segment.enqueue(:flo_gone, 'To the deleted Flo', NULL, 'x') > 0 AS queued;
DELETE FROM segment.contacts WHERE id = :flo_gone;
SELECT segment.upsert_contact('flo@example.com') AS flo_moved \gset
SELECT segment.enqueue(:flo_moved, 'To the Flo who moved', NULL, 'x') > 0 AS queued;
UPDATE segment.contacts SET email = 'flo.moved@example.com' WHERE id = :flo_moved;
SELECT segment.upsert_contact('flo@example.com') AS flo \gset
SELECT segment.enqueue(:flo, 'To Flo', NULL, 'x') > 0 AS queued;
INSERT INTO segment.contacts (email) SELECT 'many' || i || '@example.com' FROM generate_series(1, 2000) AS i;
INSERT INTO segment.events (contact_id, type) SELECT c.id, 'view' FROM segment.contacts c, generate_series(1, 2);
INSERT INTO segment.messages (contact_id, kind, mail_from, rcpt_to, subject, mime, message_id, status)
  SELECT c.id, 'transactional', 'news@shop.example', c.email, 'bulk', 'x', 'bulk-' || c.id || '-' || i || '@shop.example', 'sent'
    FROM segment.contacts c, generate_series(1, 2) AS i;
INSERT INTO segment.message_events (message_id, contact_id, kind)
  SELECT m.id, m.contact_id, 'delivered' FROM segment.messages m;
INSERT INTO segment.campaigns (name, segment, template) VALUES ('bulk', 'buyers', 'thanks');
INSERT INTO segment.campaign_recipients (campaign_id, contact_id, outcome)
  SELECT g.id, c.id, 'holdout' FROM segment.campaigns g, segment.contacts c WHERE g.name = 'bulk';
INSERT INTO segment.flow_runs (flow_id, contact_id, triggered_at, due_at, status)
  SELECT f.id, c.id, segment.now(), segment.now(), 'sent' FROM segment.flows f, segment.contacts c WHERE f.name = 'thanks';
INSERT INTO segment.flow_inbox (kind, name, contact_id) SELECT 'event', 'purchase', c.id FROM segment.contacts c;
INSERT INTO segment.suppressions (address_hash, reason)
  SELECT segment.address_hash('gone' || i || '@example.com'), 'forgotten' FROM generate_series(1, 2000) AS i;
ANALYZE;
CREATE FUNCTION pg_temp.big_tables_read_whole(since jsonb) RETURNS text[] LANGUAGE sql AS $$
  SELECT coalesce(array_agg(s.relname::text ORDER BY s.relname), '{}') FROM pg_stat_xact_user_tables s
    JOIN pg_class k ON k.oid = s.relid
   WHERE s.schemaname = 'segment' AND k.reltuples >= 1000
     AND s.seq_scan > coalesce((since ->> s.relname)::bigint, 0) $$;
CREATE FUNCTION pg_temp.seq_scans() RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_object_agg(relname, seq_scan) FROM pg_stat_xact_user_tables WHERE schemaname = 'segment' $$;
SELECT array_agg(relname::text ORDER BY relname) AS big_tables FROM pg_class
 WHERE relnamespace = 'segment'::regnamespace AND relkind = 'r' AND reltuples >= 1000;
BEGIN;
SELECT pg_temp.seq_scans() AS before \gset
SELECT (SELECT array_agg(m->>'subject' ORDER BY (m->>'id')::bigint) FROM jsonb_array_elements(d->'messages') m) AS messages,
       jsonb_array_length(d->'message_events') AS message_events, jsonb_array_length(d->'events') AS events,
       d->'campaigns'->0->>'campaign' AS campaign, d->'flows'->0->>'flow' AS flow
  FROM segment.export_contact(:flo) AS d;
SELECT pg_temp.big_tables_read_whole(:'before') AS read_whole_by_export;
SELECT pg_temp.seq_scans() AS before \gset
SELECT segment.forget(:flo);
SELECT pg_temp.big_tables_read_whole(:'before') AS read_whole_by_forget;
COMMIT;
SELECT subject, contact_id = :flo_moved AS of_moved_flo FROM segment.messages
 WHERE rcpt_to = 'flo@example.com' OR contact_id IN (:flo, :flo_moved) OR contact_id IS NULL;
SELECT (SELECT count(*) FROM segment.message_events WHERE contact_id = :flo) AS message_events,
       (SELECT count(*) FROM segment.campaign_recipients WHERE contact_id = :flo) AS campaign_recipients,
       (SELECT count(*) FROM segment.flow_runs WHERE contact_id = :flo) AS flow_runs,
       (SELECT count(*) FROM segment.flow_inbox WHERE contact_id = :flo) AS flow_inbox,
       (SELECT count(*) FROM segment.events WHERE contact_id = :flo) AS events;

-- Who may do what: export and erasure are for the application and admins, not editors.
SELECT has_function_privilege('segment_app', 'segment.forget(bigint)', 'EXECUTE') AS app_forget,
       has_function_privilege('segment_editor', 'segment.forget(bigint)', 'EXECUTE') AS editor_forget,
       has_function_privilege('segment_editor', 'segment.export_contact(bigint)', 'EXECUTE') AS editor_export,
       has_function_privilege('segment_app', 'segment.subscribe(text, text, boolean)', 'EXECUTE') AS app_subscribe,
       has_function_privilege('segment_app', 'segment.confirm(text)', 'EXECUTE') AS app_confirm;
DROP EXTENSION segment;
