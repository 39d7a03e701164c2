-- Contacts, typed custom fields, events and their per-contact aggregates.
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2026-06-01 12:00:00+00';
\set VERBOSITY default

-- upsert_contact: new contacts start pending; emails are trimmed and lower-cased.
SELECT segment.upsert_contact('  Ann.Lee@Example.COM ', '{"plan": "pro"}', 'Ann', 'Lee', 'de-DE', 'europe/berlin');
SELECT id, email, first_name, last_name, locale, time_zone, attrs, status, created_at, updated_at
  FROM segment.contacts;
-- The same address in another case is the same contact; attrs merge, null arguments keep values.
SET segment.clock_override = '2026-06-02 08:00:00+00';
SELECT segment.upsert_contact('ann.lee@example.com', '{"city": "Bonn"}');
SELECT email, first_name, time_zone, attrs, updated_at FROM segment.contacts;
-- A null in attrs removes the key; an unchanged upsert does not touch updated_at.
SET segment.clock_override = '2026-06-03 08:00:00+00';
SELECT segment.upsert_contact('ann.lee@example.com', '{"city": null}');
SELECT segment.upsert_contact('ann.lee@example.com', '{"plan": "pro"}');
SELECT attrs, updated_at FROM segment.contacts;
-- upsert_contact never changes status.
UPDATE segment.contacts SET status = 'subscribed';
SELECT segment.upsert_contact('ann.lee@example.com', first_name => 'Anna');
SELECT first_name, status FROM segment.contacts;
SELECT segment.contact_id('ANN.LEE@example.com'), segment.contact_id('nobody@example.com');

-- Bad emails, time zones and attrs are refused, and nothing is written.
SELECT segment.upsert_contact('not-an-email');
SELECT segment.upsert_contact('two@@example.com');
SELECT segment.upsert_contact('ann lee@example.com');
SELECT segment.upsert_contact('ann@localhost');
SELECT segment.upsert_contact('ann@example..com');
SELECT segment.upsert_contact(NULL);
-- Control characters (CR, LF, tab, ...) would end up in mail headers (see the end for names).
SELECT segment.upsert_contact(E'bob@exam\rple.com');
SELECT segment.upsert_contact(E'bob@example.com\r\nBcc: x@example.net');
SELECT segment.upsert_contact('bob@example.com', time_zone => 'Mars/Olympus');
SELECT segment.upsert_contact('bob@example.com', time_zone => 'UTC+3');
SELECT segment.upsert_contact('bob@example.com', '[1, 2]');
SELECT segment.upsert_contact('bob@example.com', '"x"');
INSERT INTO segment.contacts (email, status) VALUES ('bob@example.com', 'happy');
INSERT INTO segment.contacts (email) VALUES ('ANN.LEE@EXAMPLE.COM');
SELECT count(*) AS contacts FROM segment.contacts;

-- define_field: typed custom fields.
SELECT segment.define_field('lifetime_spend', 'number');
SELECT segment.define_field('vip', 'boolean');
SELECT segment.define_field('birthday', 'date');
SELECT segment.define_field('trial_ends', 'timestamp');
SELECT segment.define_field('country', 'enum', ARRAY['DE', 'AT', 'CH', 'FR']);
SELECT segment.define_field('interests', 'text[]');
SELECT segment.define_field('nickname', 'text');
SELECT name, type, enum_values FROM segment.fields ORDER BY name;

-- Writes are checked and normalised: numbers from numeric strings, ISO dates, UTC timestamps.
SELECT segment.upsert_contact('carl@example.com',
  '{"lifetime_spend": "120.50", "vip": "TRUE", "birthday": "1990-2-3", "trial_ends": "2026-07-01 10:00:00+02",
    "country": "AT", "interests": ["golf", "tennis"], "nickname": "Calle", "shoe_size": "44"}');
SELECT attrs FROM segment.contacts WHERE email = 'carl@example.com';

-- Each refusal names the field, the expected type and the value.
SELECT segment.upsert_contact('carl@example.com', '{"lifetime_spend": "a lot"}');
SELECT segment.upsert_contact('carl@example.com', '{"vip": "yes"}');
SELECT segment.upsert_contact('carl@example.com', '{"birthday": "1990-02-30"}');
SELECT segment.upsert_contact('carl@example.com', '{"birthday": "yesterday"}');
SELECT segment.upsert_contact('carl@example.com', '{"trial_ends": 12}');
SELECT segment.upsert_contact('carl@example.com', '{"country": "US"}');
SELECT segment.upsert_contact('carl@example.com', '{"interests": ["golf", 3]}');
SELECT segment.upsert_contact('carl@example.com', '{"nickname": 7}');
UPDATE segment.contacts SET attrs = '{"lifetime_spend": true}' WHERE email = 'carl@example.com';
SELECT attrs->'lifetime_spend' AS unchanged FROM segment.contacts WHERE email = 'carl@example.com';

-- Field definitions are validated, and existing data must fit.
SELECT segment.define_field('Bad Name', 'text');
SELECT segment.define_field('email', 'text');
SELECT segment.define_field('tagged', 'text');
SELECT segment.define_field('size', 'integer');
SELECT segment.define_field('tier', 'enum');
SELECT segment.define_field('tier', 'enum', ARRAY['a', 'a']);
SELECT segment.define_field('tier', 'text', ARRAY['a']);
SELECT segment.define_field('nickname', 'number');
-- Redefining with a type the data fits normalises the stored values.
SELECT segment.define_field('shoe_size', 'number');
SELECT attrs->'shoe_size' AS shoe_size FROM segment.contacts WHERE email = 'carl@example.com';
SELECT segment.define_field('country', 'enum', ARRAY['DE', 'AT', 'CH', 'FR', 'US']);
SELECT segment.upsert_contact('carl@example.com', '{"country": "US"}');

-- track: events with properties and amounts.
SELECT segment.upsert_contact('dora@example.com') AS dora \gset
SELECT segment.track(:dora, 'purchase', '{"category": "golf"}', 120, '2026-05-01 10:00+00');
SELECT segment.track('DORA@example.com', 'purchase', '{"category": "tennis"}', 30.5, '2026-05-20 10:00+00');
SELECT segment.track(:dora, 'purchase', '{}', NULL, '2026-04-01 10:00+00');
SELECT segment.track(:dora, 'page_view', '{"url": "/golf"}');
SELECT contact_id = :dora AS dora, type, properties, amount, occurred_at FROM segment.events ORDER BY id;
SELECT type, count, first_at, last_at, amount_count, sum_amount, min_amount, max_amount
  FROM segment.event_stats WHERE contact_id = :dora ORDER BY type;

-- Bad events are refused.
SELECT segment.track(:dora, 'Placed Order');
SELECT segment.track(:dora, NULL);
SELECT segment.track(:dora, 'purchase', '[1]');
SELECT segment.track(:dora, 'purchase', NULL);
SELECT segment.track(999999, 'purchase');
SELECT segment.track(NULL::bigint, 'purchase');
SELECT segment.track('nobody@example.com', 'purchase');
SELECT count(*) AS events FROM segment.events;

-- Aggregates follow direct writes too: multi-row insert, update, delete.
INSERT INTO segment.events (contact_id, type, amount, occurred_at)
SELECT :dora, 'purchase', a, '2026-05-25 10:00+00' FROM unnest(ARRAY[5, 500]) a;
UPDATE segment.events SET amount = 50 WHERE amount = 500;
DELETE FROM segment.events WHERE amount = 120;
SELECT type, count, first_at, last_at, amount_count, sum_amount, min_amount, max_amount
  FROM segment.event_stats WHERE contact_id = :dora ORDER BY type;
DELETE FROM segment.events WHERE type = 'page_view';
SELECT type FROM segment.event_stats WHERE contact_id = :dora ORDER BY type;
-- Moving an event to another type or contact moves it in the aggregates.
UPDATE segment.events SET type = 'refund' WHERE amount = 5;
SELECT type, count, sum_amount FROM segment.event_stats WHERE contact_id = :dora ORDER BY type;
-- The aggregates always equal a GROUP BY over the events.
SELECT count(*) AS mismatches FROM (
  SELECT type, contact_id, count(*) AS count, min(occurred_at) AS first_at, max(occurred_at) AS last_at,
         count(amount) AS amount_count, sum(amount) AS sum_amount, min(amount) AS min_amount, max(amount) AS max_amount
    FROM segment.events GROUP BY 1, 2) g
  FULL JOIN segment.event_stats s USING (type, contact_id)
 WHERE (g.*) IS DISTINCT FROM (s.type, s.contact_id, s.count, s.first_at, s.last_at, s.amount_count,
                               s.sum_amount, s.min_amount, s.max_amount);
-- rebuild_event_stats() after a bulk load with the triggers disabled.
ALTER TABLE segment.events DISABLE TRIGGER events_10_stats_insert;
INSERT INTO segment.events (contact_id, type, amount) VALUES (:dora, 'purchase', 1000);
ALTER TABLE segment.events ENABLE TRIGGER events_10_stats_insert;
SELECT segment.rebuild_event_stats();
SELECT type, count, sum_amount FROM segment.event_stats WHERE contact_id = :dora ORDER BY type;

-- An event adds to its existing aggregate row in place, without a statement,
-- only where that does what the upsert would.  A trigger of the table's own
-- (here one that reports each update) makes the upsert run, so it fires:
CREATE FUNCTION pg_temp.stats_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'event_stats % of %: count % -> %', TG_OP, NEW.type, OLD.count, NEW.count;
  RETURN NEW;
END $$;
CREATE TRIGGER stats_seen BEFORE UPDATE ON segment.event_stats
  FOR EACH ROW EXECUTE FUNCTION pg_temp.stats_seen();
SELECT segment.track(:dora, 'purchase', '{}', 7, '2026-05-26 10:00+00') > 0 AS tracked;
DROP TRIGGER stats_seen ON segment.event_stats;
SELECT segment.track(:dora, 'purchase', '{}', 8, '2026-05-27 10:00+00') > 0 AS tracked;
SELECT type, count, sum_amount, min_amount, max_amount FROM segment.event_stats WHERE contact_id = :dora ORDER BY type;
-- Without the right to update the aggregates, adding to an existing row is
-- refused as the upsert refuses it.
BEGIN;
CREATE ROLE stats_app IN ROLE segment_app;
REVOKE UPDATE ON segment.event_stats FROM segment_app;
SET ROLE stats_app;
SELECT segment.track(:dora, 'purchase', '{}', 9, '2026-05-28 10:00+00') > 0 AS tracked;
ROLLBACK;

-- Deleting a contact deletes its events and aggregates.
DELETE FROM segment.contacts WHERE id = :dora;
SELECT count(*) AS events, (SELECT count(*) FROM segment.event_stats) AS stats FROM segment.events;

-- time zones in canonical spelling.
SELECT segment.canonical_time_zone('america/new_york'), segment.canonical_time_zone('utc'),
       segment.canonical_time_zone('EST'), segment.canonical_time_zone('Nowhere/City');

-- Control characters in first_name and last_name are refused too, whether written by
-- upsert_contact or directly: mail building would refuse them in the To header.
SELECT segment.upsert_contact('eve@example.com', first_name => E'Eve\r\nBcc: x@example.net');
SELECT segment.upsert_contact('eve@example.com', last_name => E'Smith\u0001');
SELECT segment.upsert_contact('ann.lee@example.com', first_name => E'Ann\tLee');
UPDATE segment.contacts SET last_name = E'Lee\n' WHERE email = 'ann.lee@example.com';
INSERT INTO segment.contacts (email, first_name) VALUES ('eve@example.com', E'Eve\n');
-- With the trigger bypassed (a replica, a bulk load), CHECK constraints still refuse them.
SET session_replication_role = replica;
\set VERBOSITY terse
UPDATE segment.contacts SET first_name = E'Ann\r' WHERE email = 'ann.lee@example.com';
UPDATE segment.contacts SET last_name = E'Lee\n' WHERE email = 'ann.lee@example.com';
UPDATE segment.contacts SET email = E'ann\n@example.com' WHERE email = 'ann.lee@example.com';
\set VERBOSITY default
RESET session_replication_role;
SELECT email, first_name, last_name FROM segment.contacts WHERE email IN ('ann.lee@example.com', 'eve@example.com');

DROP EXTENSION segment;
