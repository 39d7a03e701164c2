-- bench/data.sql — the benchmark data set, generated set-based with a fixed seed.
--
--   psql -v contacts=1000000 -v events=10000000 -v seed=0.42 -f bench/data.sql
--
-- Contacts carry typed custom fields (country enum of 20 countries, age number,
-- plan enum, signup date).  Events are skewed like a real store: activity follows
-- a power law over a fixed permutation of the contacts, so the same people view,
-- add to cart and buy the most; purchases come from a fifth of the base only and
-- concentrate on a few heavy buyers (hundreds of orders) while most buyers order
-- once or twice and most contacts never buy.  Times lie in the two years before
-- the moment of generation and lean towards recent.
--
-- Loading runs with session_replication_role = replica, which skips every
-- trigger (event_stats maintenance, email normalisation, segment maintenance
-- and the foreign-key checks): the generator produces valid, normalised rows and
-- no segment exists yet.  segment.event_stats is then filled by one INSERT ...
-- SELECT ... GROUP BY, the same content the triggers would have produced.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET maintenance_work_mem = '1GB';
SET work_mem = '512MB';
SET synchronous_commit = off;

-- Typed custom fields, through segment.define_field once it exists.
DO $fields$
BEGIN
  IF to_regprocedure('segment.define_field(text,text,text[])') IS NOT NULL THEN
    PERFORM segment.define_field('country', 'enum', ARRAY['US','GB','DE','FR','CA','AU','NL','ES','IT','SE',
                                                         'AT','CH','BE','DK','NO','PL','IE','NZ','PT','FI']);
    PERFORM segment.define_field('age', 'number');
    PERFORM segment.define_field('plan', 'enum', ARRAY['free','basic','pro','enterprise']);
    PERFORM segment.define_field('signup', 'date');
  ELSE
    INSERT INTO segment.fields (name, type, enum_values) VALUES
      ('country', 'enum', ARRAY['US','GB','DE','FR','CA','AU','NL','ES','IT','SE',
                                'AT','CH','BE','DK','NO','PL','IE','NZ','PT','FI']),
      ('age', 'number', NULL),
      ('plan', 'enum', ARRAY['free','basic','pro','enterprise']),
      ('signup', 'date', NULL);
  END IF;
END
$fields$;

SET session_replication_role = replica;
SELECT setseed(:seed);

-- The reference time of the data set: every time is relative to it, so the same
-- seed gives the same data relative to "now" on every run.
CREATE TABLE bench.params AS
  SELECT now() AS ref, :contacts::bigint AS contacts, :events::bigint AS events;
SELECT ref FROM bench.params \gset
\set categories '{golf,running,tennis,cycling,swimming,yoga,camping,fishing,skiing,fitness,football,basketball}'

INSERT INTO segment.contacts (id, email, first_name, last_name, locale, time_zone, attrs,
                              status, consent_at, created_at, updated_at)
SELECT i,
       'user' || i || '@example.com',
       (ARRAY['Anna','Ben','Clara','David','Emma','Felix','Grace','Hugo','Ida','Jonas',
              'Kira','Leo','Mia','Noah','Olivia','Paul'])[1 + (i * 7) % 16],
       (ARRAY['Smith','Muller','Martin','Rossi','Garcia','Jansen','Novak','Berg'])[1 + (i * 5) % 8],
       CASE WHEN c IN ('DE','AT','CH') THEN 'de' WHEN c = 'FR' THEN 'fr' WHEN c = 'ES' THEN 'es'
            WHEN c = 'IT' THEN 'it' WHEN c = 'NL' THEN 'nl' ELSE 'en' END,
       CASE WHEN c IN ('US','CA') THEN 'America/New_York' WHEN c IN ('GB','IE','PT') THEN 'Europe/London'
            WHEN c IN ('AU','NZ') THEN 'Australia/Sydney' ELSE 'Europe/Berlin' END,
       jsonb_build_object('country', c, 'age', age, 'plan', plan, 'signup', signup::text),
       CASE WHEN s < 0.80 THEN 'subscribed' WHEN s < 0.88 THEN 'pending' WHEN s < 0.96 THEN 'unsubscribed'
            WHEN s < 0.99 THEN 'bounced' ELSE 'complained' END,
       CASE WHEN s < 0.80 THEN signup::timestamptz END,
       signup::timestamptz, signup::timestamptz
FROM (
  SELECT i,
         (ARRAY['US','GB','DE','FR','CA','AU','NL','ES','IT','SE',
                'AT','CH','BE','DK','NO','PL','IE','NZ','PT','FI'])[1 + floor(random() ^ 1.8 * 20)::int] AS c,
         18 + floor((random() + random() + random()) / 3 * 60)::int AS age,
         (ARRAY['free','free','free','free','free','free','basic','basic','basic','pro','pro','enterprise'])
           [1 + floor(random() * 12)::int] AS plan,
         (:'ref'::timestamptz - floor(random() ^ 0.7 * 1800) * interval '1 day')::date AS signup,
         random() AS s
  FROM generate_series(1, :contacts) i
) g;
SELECT setval(pg_get_serial_sequence('segment.contacts', 'id'), :contacts);

-- Events, one INSERT per type.  An activity rank k (power-law distributed) maps
-- to a contact id by a fixed bijection, (k * 999983) % contacts + 1 (999983 is
-- prime), so rank 0 is the most active contact for every type and heavy viewers
-- are also heavy buyers.  Products follow a power law too; a product's category
-- is fixed (product_id % 12).

-- Drop the secondary indexes during the load and build them afterwards (faster);
-- they are the extension's own definitions, recreated identically below.
CREATE TEMP TABLE saved_indexes AS
  SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def
  FROM pg_index WHERE indrelid = 'segment.events'::regclass AND NOT indisprimary;
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT name FROM saved_indexes LOOP EXECUTE 'DROP INDEX ' || r.name; END LOOP;
END $$;

-- product_view 52%, email_open 24%, cart_add 10%, email_click 8%, purchase 6%.
INSERT INTO segment.events (contact_id, type, properties, amount, occurred_at)
SELECT (floor(:contacts * random() ^ 2)::bigint * 999983) % :contacts + 1, 'product_view',
       jsonb_build_object('product_id', p, 'category', (:'categories'::text[])[1 + p % 12]), NULL,
       :'ref'::timestamptz - random() ^ 1.5 * interval '730 days'
FROM (SELECT 1 + floor(random() ^ 2 * 5000)::int AS p, i FROM generate_series(1, (:events * 0.52)::bigint) i) g;

INSERT INTO segment.events (contact_id, type, properties, amount, occurred_at)
SELECT (floor(:contacts * random() ^ 1.5)::bigint * 999983) % :contacts + 1, 'email_open',
       jsonb_build_object('campaign_id', 1 + floor(random() * 200)::int), NULL,
       :'ref'::timestamptz - random() ^ 1.5 * interval '730 days'
FROM generate_series(1, (:events * 0.24)::bigint) i;

INSERT INTO segment.events (contact_id, type, properties, amount, occurred_at)
SELECT (floor(:contacts * random() ^ 2.5)::bigint * 999983) % :contacts + 1, 'cart_add',
       jsonb_build_object('product_id', p, 'category', (:'categories'::text[])[1 + p % 12]), NULL,
       :'ref'::timestamptz - random() ^ 1.5 * interval '730 days'
FROM (SELECT 1 + floor(random() ^ 2 * 5000)::int AS p, i FROM generate_series(1, (:events * 0.10)::bigint) i) g;

INSERT INTO segment.events (contact_id, type, properties, amount, occurred_at)
SELECT (floor(:contacts * random() ^ 2)::bigint * 999983) % :contacts + 1, 'email_click',
       jsonb_build_object('campaign_id', 1 + floor(random() * 200)::int), NULL,
       :'ref'::timestamptz - random() ^ 1.5 * interval '730 days'
FROM generate_series(1, (:events * 0.08)::bigint) i;

-- Buyers: a fifth of the base, ranked by the same activity order.
INSERT INTO segment.events (contact_id, type, properties, amount, occurred_at)
SELECT (floor(:contacts / 5 * random() ^ 2)::bigint * 999983) % :contacts + 1, 'purchase',
       jsonb_build_object('product_id', p, 'category', (:'categories'::text[])[1 + p % 12]), round((5 + random() ^ 3 * 400)::numeric, 2),
       :'ref'::timestamptz - random() ^ 1.5 * interval '730 days'
FROM (SELECT 1 + floor(random() ^ 2 * 5000)::int AS p, i FROM generate_series(1, (:events * 0.06)::bigint) i) g;
SELECT setval(pg_get_serial_sequence('segment.events', 'id'), (SELECT max(id) FROM segment.events));

DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT def FROM saved_indexes LOOP EXECUTE r.def; END LOOP;
END $$;

-- Per-contact, per-type aggregates: what the event triggers maintain row by row.
DO $stats$
BEGIN
  IF to_regprocedure('segment.rebuild_event_stats()') IS NOT NULL THEN
    PERFORM segment.rebuild_event_stats();
  ELSE
    INSERT INTO segment.event_stats (type, contact_id, count, first_at, last_at,
                                     amount_count, sum_amount, min_amount, max_amount)
    SELECT type, contact_id, count(*), min(occurred_at), max(occurred_at),
           count(amount), sum(amount), min(amount), max(amount)
    FROM segment.events GROUP BY type, contact_id;
  END IF;
END
$stats$;

-- Tags: 'vip' (2%), 'newsletter' (30%), 'beta' (5%, half of them expired).
INSERT INTO segment.contact_tags (contact_id, tag, source, tagged_at, expires_at)
SELECT i, t, 'manual', :'ref'::timestamptz - interval '30 days',
       CASE WHEN t = 'beta' THEN :'ref'::timestamptz + (random() - 0.5) * interval '60 days' END
FROM generate_series(1, :contacts) i,
     LATERAL (SELECT 'vip' AS t WHERE random() < 0.02 AND i > 0
              UNION ALL SELECT 'newsletter' WHERE random() < 0.30 AND i > 0
              UNION ALL SELECT 'beta' WHERE random() < 0.05 AND i > 0) t;

RESET session_replication_role;
