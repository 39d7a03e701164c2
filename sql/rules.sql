-- The rule language: parsing, canonical printing, type checking, errors,
-- compiled SQL, dependencies, jsonb, and evaluation (matches / members / count).
CREATE EXTENSION segment;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2030-01-01 00:00:00+00';
SET search_path = segment, public;

-- Contacts first: one of them holds a value its field type would refuse.
INSERT INTO segment.contacts (id, email, attrs, status, created_at) VALUES
  (1, 'ann@example.com', '{"lifetime": 600, "country": "DE", "plan": "pro", "vip": true, "interests": ["golf", "tennis"], "birthday": "1990-05-01"}', 'subscribed', '2029-12-01'),
  (2, 'bob@example.com', '{"lifetime": 50, "country": "AT", "plan": "free", "vip": false, "renews_at": "2030-01-10 00:00:00+00"}', 'pending', '2025-01-01'),
  (3, 'cid@example.net', '{}', 'subscribed', '2029-12-30'),
  (4, 'dan@example.com', '{"lifetime": "oops", "country": "US", "interests": "golf"}', 'unsubscribed', '2020-01-01'),
  (5, 'eve@example.org', '{"profile": {"score": 12}, "nick": "O''Brien", "flag": true}', 'bounced', '2029-12-31'),
  (6, 'fay@example.org', '{"n": 2.5, "nick": "50%_off\\"}', 'pending', '2029-12-31');
INSERT INTO segment.fields (name, type, enum_values) VALUES
  ('lifetime', 'number', NULL), ('country', 'text', NULL), ('plan', 'enum', '{free,pro}'),
  ('vip', 'boolean', NULL), ('birthday', 'date', NULL), ('renews_at', 'timestamp', NULL),
  ('interests', 'text[]', NULL);
INSERT INTO segment.segments (name) VALUES ('high_value');
INSERT INTO segment.stages (name, position) VALUES ('lead', 1), ('customer', 2), ('loyal_customer', 3);

-- Every grammar form, printed canonically (keywords lower case, minimal parentheses).
SELECT r::segment.rule AS canonical FROM (VALUES
  ('true'), ('FALSE'),
  ('sum(purchase.amount) > 500'),
  ('count(purchase) within 60 days > 3'),
  ('did purchase and not did purchase within 180 days'),
  ('did cart_add within 1 day and not did purchase within 1 day'),
  ('country in (''DE'',''AT'') and tagged ''VIP'''),
  ('did purchase where (category = ''golf'') within 365 days'),
  ('created_at > 30 days ago and not did purchase'),
  ('did email_open within 30 days'),
  ('stage = ''loyal_customer'' or in segment ''high_value'''),
  ('((attrs.a = 1 or attrs.b = 2) and (attrs.c = 3))'),
  ('attrs.a = 1 or (attrs.b = 2 or attrs.c = 3)'),
  ('not (attrs.a = 1 and attrs.b = 2)'),
  ('not not attrs.a = 1'),
  ('NOT (attrs.a = 1) AND (NOT attrs.b = 2)'),
  ('lifetime <> 5 and lifetime != 6 and lifetime >= -007.50 and lifetime <= 0'),
  ('lifetime not between 1 and 10'),
  ('lifetime is not null or country is null'),
  ('country not in (''US'')'),
  ('email contains ''@gmail'' and email not contains ''x'' and first_name starts with ''Jo'' and last_name not ends with ''son'''),
  ('interests contains ''golf'' and interests not contains ''tennis'''),
  ('plan = ''pro'' and plan != ''free'' and plan in (''pro'') and vip = true and vip != false'),
  ('birthday > date ''2000-02-29'' and birthday < 20 years ago and renews_at between now and 2 weeks from now'),
  ('renews_at > timestamp ''2030-01-01T10:00:00Z'' and updated_at >= timestamp ''2030-01-01 10:00'''),
  ('status = ''subscribed'' and locale = ''de'' and time_zone starts with ''Europe/'''),
  ('stage in (''lead'', ''customer'') or stage not in (''lead'') or stage >= ''customer'' or stage < ''loyal_customer'''),
  ('did not purchase since date ''2029-01-01'''),
  ('did purchase between 10 days ago and 1 day ago'),
  ('did purchase where (amount > 10 and (sku.id = ''a'' or gift = true)) since 1 week ago'),
  ('count(purchase where (amount >= 5)) since 1 month ago >= 2'),
  ('avg(purchase.amount) > 50 and min(purchase.amount) >= 1 and max(purchase.amount) < 1000'),
  ('sum(purchase.price where (currency = ''EUR'')) within 1 year >= 100.00'),
  ('last(purchase) > 30 days ago and last(purchase where (category = ''golf'')) < date ''2029-06-01'''),
  ('did ''page-view'' and count(''not'') = 0 and did ''where'' and did ''It''''s'''),
  ('did page_view within 90 minutes and did page_view within 2 hours and did page_view within 3 weeks and did page_view within 1 month'),
  ('attrs.profile.score >= 10 and attrs.nick = ''O''''Brien'' and attrs.flag = true and attrs.n in (1, 2.5)')
) AS t(r);

-- Keywords are case-insensitive; names are not.
SELECT 'DID Purchase WITHIN 2 DAYS AND Tagged ''VIP'''::segment.rule;
-- Equality compares canonical forms.
SELECT 'did  purchase'::segment.rule = 'DID purchase'::segment.rule AS same,
       'did purchase'::segment.rule <> 'did Purchase'::segment.rule AS different,
       'attrs.a = 1 or (attrs.b = 2)'::segment.rule OPERATOR(pg_catalog.=) '(attrs.a = 1) or attrs.b = 2'::segment.rule AS qualified;
-- The comparison operators are in pg_catalog: found whatever the search_path.
SET search_path = public;
SELECT 'did  purchase'::segment.rule = 'DID purchase'::segment.rule AS same,
       'did a'::segment.rule < 'did b'::segment.rule AS before,
       segment.rule_from_jsonb(segment.rule_to_jsonb('did purchase within 30 days and tagged ''VIP''')) =
         'did purchase within 30 days and tagged ''VIP'''::segment.rule AS round_trip;
SET search_path = segment, public;
-- Canonical text parses back to itself.
SELECT r::text::segment.rule = r AS reparses
  FROM (SELECT 'not (attrs.a = 1 or not did x where (not (y = 2 or z = 3)))'::segment.rule AS r) t;

-- Syntax errors: 22P02, position and caret.
\set VERBOSITY default
SELECT ''::segment.rule;
SELECT 'x = 1 and'::segment.rule;
SELECT 'email = '::segment.rule;
SELECT 'email ='''::segment.rule;
SELECT 'email = "x"'::segment.rule;
SELECT 'email = ''x'' @'::segment.rule;
SELECT 'email ! ''x'''::segment.rule;
SELECT 'email'::segment.rule;
SELECT 'email is'::segment.rule;
SELECT 'email is not 5'::segment.rule;
SELECT 'email not like ''x'''::segment.rule;
SELECT 'email starts ''x'''::segment.rule;
SELECT 'email contains 5'::segment.rule;
SELECT 'email in ''x'''::segment.rule;
SELECT 'email in (''x'' ''y'')'::segment.rule;
SELECT 'lifetime between 1 or 2'::segment.rule;
SELECT '(email = ''x'''::segment.rule;
SELECT 'email = ''x'')'::segment.rule;
SELECT 'lifetime > 1e5'::segment.rule;
SELECT 'lifetime > 5 days'::segment.rule;
SELECT 'created_at > 5 fortnights ago'::segment.rule;
SELECT 'created_at > 1.5 days ago'::segment.rule;
SELECT 'created_at > 1001 years ago'::segment.rule;
SELECT 'created_at > date ''2023-02-29'''::segment.rule;
SELECT 'created_at > date 2023'::segment.rule;
SELECT 'created_at > timestamp ''2023-01-01 25:00'''::segment.rule;
SELECT 'attrs = 1'::segment.rule;
SELECT 'attrs. = 1'::segment.rule;
SELECT 'country.code = 1'::segment.rule;
SELECT 'tagged VIP'::segment.rule;
SELECT 'tagged '''''::segment.rule;
SELECT 'in segmnt ''x'''::segment.rule;
SELECT 'stage is null'::segment.rule;
SELECT 'stage in (1)'::segment.rule;
SELECT 'did'::segment.rule;
SELECT 'did purchase where category = 1'::segment.rule;
SELECT 'did purchase where (tagged ''x'')'::segment.rule;
SELECT 'did purchase within 30'::segment.rule;
SELECT 'did purchase since 5'::segment.rule;
SELECT 'did purchase between now or now'::segment.rule;
SELECT 'count(purchase.amount) > 1'::segment.rule;
SELECT 'count(purchase) > ''x'''::segment.rule;
SELECT 'count(purchase) > 3 days ago'::segment.rule;
SELECT 'count(purchase)'::segment.rule;
SELECT 'sum(purchase) > 1'::segment.rule;
SELECT 'last(purchase) > 5'::segment.rule;
SELECT 'last(purchase) within 3 days > now'::segment.rule;
SELECT 'did purchase or'::segment.rule;
SELECT 'did purchase did cart_add'::segment.rule;
-- multi-line rules: the caret points into the right line
SELECT E'did purchase\n  and lifetime >\n  ''abc'''::segment.rule;
-- long rules are cut around the error
SELECT ('attrs.a = 1 and ' || repeat('attrs.b = 2 and ', 10) || 'attrs.c = ' || repeat(' and attrs.d = 1', 10))::segment.rule;

-- Nesting is limited (54001), never a stack overflow.
SELECT (repeat('(', 201) || 'true' || repeat(')', 201))::segment.rule;
SELECT (repeat('not ', 300) || 'true')::segment.rule;
SELECT length((repeat('(', 150) || 'true' || repeat(')', 150))::segment.rule::text) AS nested_ok;
SELECT (repeat('not ', 150) || 'true')::segment.rule::text = repeat('not ', 150) || 'true' AS nots_ok;

-- Type errors (22P02).
SELECT 'lifetime > ''abc'''::segment.rule;
SELECT 'lifetime contains ''1'''::segment.rule;
SELECT 'country > 5'::segment.rule;
SELECT 'plan = ''gold'''::segment.rule;
SELECT 'plan > ''free'''::segment.rule;
SELECT 'plan between ''free'' and ''pro'''::segment.rule;
SELECT 'status = ''active'''::segment.rule;
SELECT 'vip = 1'::segment.rule;
SELECT 'vip < true'::segment.rule;
SELECT 'birthday > ''2020-01-01'''::segment.rule;
SELECT 'renews_at > 5'::segment.rule;
SELECT 'interests = ''golf'''::segment.rule;
SELECT 'interests starts with ''g'''::segment.rule;
SELECT 'attrs.x > now'::segment.rule;
SELECT 'attrs.x in (1, ''a'')'::segment.rule;
SELECT 'attrs.x > true'::segment.rule;
SELECT 'attrs.x between true and false'::segment.rule;
SELECT 'did purchase where (amount = ''a'')'::segment.rule;
SELECT 'did purchase where (shipped_at > 3 days ago)'::segment.rule;

-- Unknown names: fields 42703 with a hint, segments and stages 42704.
SELECT 'lifetim > 5'::segment.rule;
SELECT 'emial = ''a@b.c'''::segment.rule;
SELECT 'zzzzzz = 1'::segment.rule;
SELECT 'in segment ''nope'''::segment.rule;
SELECT 'stage = ''nope'''::segment.rule;
SELECT 'stage in (''lead'', ''nope'')'::segment.rule;
\set VERBOSITY terse

-- Binary send/recv round trip (COPY binary through a file of this backend).
CREATE TEMP TABLE bin (r segment.rule);
INSERT INTO bin VALUES ('did purchase and lifetime > 5');
SELECT segment.rule_send(r) FROM bin;
DO $$
BEGIN
  EXECUTE format('COPY bin TO %L WITH (FORMAT binary)', '/tmp/segment_rules_' || pg_backend_pid() || '.copy');
  EXECUTE format('COPY bin FROM PROGRAM %L WITH (FORMAT binary)',
                 format('cat %1$s && rm -f %1$s', '/tmp/segment_rules_' || pg_backend_pid() || '.copy'));
END
$$;
SELECT r FROM bin;
-- Rules group, sort and index by canonical text.
SELECT r, count(*) FROM bin GROUP BY r;
SELECT DISTINCT r FROM bin;
CREATE TEMP TABLE uniq (r segment.rule UNIQUE);
INSERT INTO uniq VALUES ('tagged ''b'''), ('did a'), ('TAGGED ''a''');
INSERT INTO uniq VALUES ('(did  a)');
SELECT r FROM uniq ORDER BY r;
SELECT 'did a'::segment.rule < 'did b'::segment.rule AS lt, 'did b'::segment.rule >= 'did a'::segment.rule AS ge;
DROP TABLE uniq;

-- Evaluation.  Events, their per-contact aggregates (kept by triggers when
-- present, computed here otherwise), tags, stages and segment members.
INSERT INTO segment.events (contact_id, type, properties, amount, occurred_at) VALUES
  (1, 'purchase', '{"category": "golf", "price": 10}', 400, '2029-12-20'),
  (1, 'purchase', '{"category": "tennis", "price": 5}', 300, '2029-06-01'),
  (1, 'email_open', '{}', NULL, '2029-12-31'),
  (2, 'purchase', '{}', 20, '2028-01-01'),
  (2, 'cart_add', '{}', NULL, '2029-12-31 12:00'),
  (3, 'cart_add', '{}', NULL, '2029-12-31 18:00'),
  (3, 'purchase', '{"category": "golf", "gift": true}', NULL, '2029-12-31 20:00'),
  (5, 'page_view', '{"path": "/a"}', NULL, '2030-01-05');
INSERT INTO segment.event_stats (type, contact_id, count, first_at, last_at, amount_count, sum_amount, min_amount, max_amount)
SELECT type, contact_id, count(*), min(occurred_at), max(occurred_at), count(amount), sum(amount), min(amount), max(amount)
  FROM segment.events GROUP BY type, contact_id
ON CONFLICT (type, contact_id) DO NOTHING;
INSERT INTO segment.contact_tags (contact_id, tag, expires_at) VALUES
  (1, 'VIP', NULL), (2, 'VIP', '2029-12-01'), (3, 'VIP', '2030-02-01'), (4, 'it''s', NULL);
INSERT INTO segment.contact_stages (contact_id, stage) VALUES (1, 'loyal_customer'), (2, 'lead'), (3, 'customer');
INSERT INTO segment.segment_members (segment_id, contact_id)
SELECT id, 1 FROM segment.segments WHERE name = 'high_value';

-- members() (one set-based statement) and matches() (per contact) side by side.
-- (The rule comes from a column here, so members() runs as a function; see
-- "inlined" below for the same rules with constant rules.)
CREATE TEMP TABLE eval_rules AS SELECT r, row_number() OVER () AS n FROM (VALUES
  ('true'), ('false'),
  ('sum(purchase.amount) > 500'),
  ('sum(purchase.amount) < 100'),
  ('sum(purchase.amount) = 0'),
  ('count(purchase) = 0'),
  ('count(purchase) >= 1'),
  ('count(purchase) != 2'),
  ('count(purchase) within 60 days > 0'),
  ('count(purchase) within 60 days < 1'),
  ('did purchase and not did purchase within 180 days'),
  ('did cart_add within 1 day and not did purchase within 1 day'),
  ('did not purchase'),
  ('country in (''DE'',''AT'') and tagged ''VIP'''),
  ('tagged ''VIP'''),
  ('tagged ''it''''s'''),
  ('did purchase where (category = ''golf'') within 365 days'),
  ('did purchase where (category = ''golf'')'),
  ('did purchase where (gift = true)'),
  ('did purchase where (gift != true)'),
  ('did purchase where (category is null)'),
  ('did purchase where (amount is null)'),
  ('did purchase where (price > 6)'),
  ('created_at > 30 days ago and not did purchase'),
  ('did email_open within 30 days'),
  ('did page_view within 1 day'),
  ('did page_view since now'),
  ('did purchase between date ''2029-06-01'' and date ''2029-12-20'''),
  ('did purchase since date ''2029-12-20'''),
  ('did not purchase since date ''2029-12-21'''),
  ('stage = ''loyal_customer'' or in segment ''high_value'''),
  ('stage != ''lead'''),
  ('stage >= ''customer'''),
  ('stage < ''loyal_customer'''),
  ('stage not in (''lead'')'),
  ('not stage in (''lead'')'),
  ('lifetime > 100'),
  ('lifetime <= 100'),
  ('not lifetime > 100'),
  ('lifetime is null'),
  ('lifetime is not null'),
  ('lifetime between 50 and 600'),
  ('lifetime not between 51 and 599'),
  ('lifetime in (50, 600)'),
  ('lifetime not in (50)'),
  ('country not in (''DE'')'),
  ('plan = ''pro'''),
  ('plan != ''pro'''),
  ('vip = false'),
  ('vip != true'),
  ('interests contains ''golf'''),
  ('interests not contains ''golf'''),
  ('interests is not null'),
  ('birthday < date ''2000-01-01'''),
  ('birthday > 100 years ago'),
  ('renews_at between now and 2 weeks from now'),
  ('renews_at < timestamp ''2030-01-10 00:00:01'''),
  ('email ends with ''@example.com'''),
  ('email starts with ''ann'' or email contains ''.net'''),
  ('email not contains ''example.com'''),
  ('status in (''subscribed'', ''pending'')'),
  ('created_at >= date ''2029-12-30'''),
  ('attrs.profile.score >= 10'),
  ('attrs.nick = ''O''''Brien'''),
  ('attrs.nick contains ''%_'''),
  ('attrs.nick ends with ''\'''),
  ('attrs.nick starts with ''50%'''),
  ('attrs.flag = true'),
  ('attrs.n in (1, 2.5)'),
  ('attrs.lifetime > 0'),
  ('attrs.lifetime = ''oops'''),
  ('avg(purchase.amount) > 300'),
  ('avg(purchase.amount) < 1000'),
  ('min(purchase.amount) >= 300'),
  ('max(purchase.amount) > 100'),
  ('sum(purchase.price) >= 15'),
  ('sum(purchase.price) < 1'),
  ('avg(purchase.price where (category = ''golf'')) = 10'),
  ('last(purchase) > 30 days ago'),
  ('last(purchase) < 30 days ago'),
  ('last(purchase where (category = ''golf'')) >= date ''2029-12-31'''),
  ('count(purchase where (amount >= 300)) = 2'),
  ('count(purchase where (amount >= 300)) < 2'),
  ('sum(purchase.amount) since date ''2029-12-01'' >= 400'),
  ('sum(purchase.amount) since date ''2029-12-01'' < 400'),
  ('not (did purchase or tagged ''VIP'') and status != ''bounced'''),
  -- conditions on one event type decided together by its event_stats row
  ('did purchase and not avg(purchase.amount) > 100'),
  ('did purchase and sum(purchase.amount) = 0'),
  ('did purchase within 30 days and avg(purchase.amount) >= 20 and not max(purchase.amount) > 450'),
  ('count(purchase) >= 1 and not did purchase since date ''2029-12-21'''),
  ('sum(purchase.amount) > 500 and country in (''DE'',''AT'') and not did purchase within 180 days')
  ) AS t(r);
SELECT r AS rule,
       ARRAY(SELECT m FROM segment.members(r::segment.rule) m ORDER BY 1) AS members,
       ARRAY(SELECT id FROM segment.contacts WHERE segment.matches(id, r::segment.rule) ORDER BY 1) AS matching,
       segment.count(r::segment.rule) AS count
  FROM eval_rules ORDER BY n;

-- The compiled SQL: set form for members(), per-contact form for matches().
SELECT segment.rule_sql('did purchase and not did purchase within 180 days');
-- Event, tag, segment and stage conditions alone compile to set algebra (no scan of contacts) ...
SELECT segment.rule_sql('did email_open within 30 days');
SELECT segment.rule_sql('tagged ''VIP'' or (did purchase and not stage = ''lead'')');
SELECT segment.rule_sql('not (not did a or count(b) < 2)');
-- ... but not when nothing positive bounds the set, or a field is read.
SELECT segment.rule_sql('not did purchase and not tagged ''VIP''');
SELECT segment.rule_sql('did purchase and lifetime > 5');
SELECT segment.rule_condition_sql('count(purchase) < 3');
SELECT segment.rule_condition_sql('count(purchase) < 3', true);
SELECT segment.rule_condition_sql('did purchase where (category = ''golf'') within 365 days and lifetime > 5');
SELECT segment.rule_condition_sql('did purchase where (category = ''golf'') within 365 days and lifetime > 5', true);
SELECT segment.rule_condition_sql('sum(purchase.amount) within 1 year >= 100 or stage > ''lead''', true);
SELECT segment.rule_condition_sql('renews_at > 3 days ago and birthday < 3 days ago and birthday > date ''2000-01-01''');
-- Literals are always quoted: nothing in a rule reaches SQL unquoted.
SELECT segment.rule_condition_sql($r$email = '''); DROP TABLE segment.contacts; --' or attrs.x = 'a\' or tagged 'x\' or did 'a''b' where (k = '\\')$r$);
SELECT count(*) AS members FROM segment.members($r$email = '''); DROP TABLE segment.contacts; --' or attrs.x = 'a\' or tagged 'x\' or did 'a''b' where (k = '\\')$r$);
SELECT count(*) AS contacts_survive FROM segment.contacts;

-- Inlined: members(rule) with a rule known when planning (a constant, or a
-- parameter of a custom plan) is planned as its compiled statement, with no
-- function scan; segment.inline_members = off runs the function instead.
EXPLAIN (COSTS OFF) SELECT count(*) FROM segment.members('did purchase and not did purchase within 180 days');
SET segment.inline_members = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM segment.members('did purchase and not did purchase within 180 days');
RESET segment.inline_members;
-- Same members both ways, for every rule above.
CREATE FUNCTION pg_temp.members_both_ways(r text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  inlined bigint[];
  called bigint[];
BEGIN
  EXECUTE format('SELECT ARRAY(SELECT m FROM segment.members(%L) m ORDER BY 1)', r) INTO inlined;
  PERFORM set_config('segment.inline_members', 'off', true);
  EXECUTE format('SELECT ARRAY(SELECT m FROM segment.members(%L) m ORDER BY 1)', r) INTO called;
  PERFORM set_config('segment.inline_members', 'on', true);
  IF inlined IS DISTINCT FROM called THEN
    RAISE WARNING 'members(%) inlined % but called %', r, inlined, called;
  END IF;
  RETURN inlined IS NOT DISTINCT FROM called;
END
$$;
SELECT count(*) FILTER (WHERE pg_temp.members_both_ways(r)) AS same, count(*) AS rules FROM eval_rules;
-- Anywhere in a query: joins, CTEs, sublinks, several calls.
SELECT m, c.email FROM segment.members('did purchase and not avg(purchase.amount) > 100') m
  JOIN segment.contacts c ON c.id = m ORDER BY 1;
WITH b AS (SELECT * FROM segment.members('did purchase') b)
SELECT (SELECT count(*) FROM b) AS buyers,
       (SELECT count(*) FROM segment.contacts WHERE id IN (SELECT * FROM segment.members('tagged ''VIP'''))) AS vips,
       (SELECT count(*) FROM segment.members('did purchase') x JOIN segment.members('tagged ''VIP''') y ON x = y) AS both;
-- A parameter of a custom plan is known when planning; a generic plan calls the function.
PREPARE members_of(segment.rule) AS SELECT array_agg(m ORDER BY m) FROM segment.members($1) m;
EXPLAIN (COSTS OFF) EXECUTE members_of('did purchase and sum(purchase.amount) = 0');
EXECUTE members_of('did purchase and sum(purchase.amount) = 0');
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE members_of('did purchase and sum(purchase.amount) = 0');
EXECUTE members_of('did purchase and sum(purchase.amount) = 0');
RESET plan_cache_mode;
DEALLOCATE members_of;
-- Not inlined: WITH ORDINALITY, and a NULL rule (no members).
SELECT * FROM segment.members('tagged ''VIP''') WITH ORDINALITY AS m(id, n) ORDER BY id;
SELECT count(*) AS none FROM segment.members(NULL);
-- Inlining never bypasses the EXECUTE privilege on members().
CREATE ROLE segment_rules_reader;
GRANT USAGE ON SCHEMA segment TO segment_rules_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA segment TO segment_rules_reader;
SET ROLE segment_rules_reader;
SELECT count(*) FROM segment.members('did purchase');
RESET ROLE;
DROP OWNED BY segment_rules_reader;
DROP ROLE segment_rules_reader;

-- segment.jsonb_number: how compiled rules read number fields (one lookup).
SELECT k, segment.jsonb_number('{"a": 1.5, "b": "2", "c": null, "d": true, "e": {"x": 1}, "f": -0.0}', k)
  FROM unnest(ARRAY['a', 'b', 'c', 'd', 'e', 'f', 'missing']) k;
SELECT segment.jsonb_number('[1, 2]', '0') AS not_an_object, segment.jsonb_number('3', 'a') AS scalar;

-- Dependencies, for incremental maintenance.
SELECT segment.rule_dependencies('true');
SELECT segment.rule_dependencies('did purchase and not did purchase within 180 days and lifetime > 5 and email contains ''x''');
SELECT segment.rule_dependencies('count(cart_add where (sku = ''a'')) > 1 and tagged ''b'' and tagged ''a'' and in segment ''high_value'' and stage = ''lead''');
SELECT segment.rule_dependencies('last(purchase) > 30 days ago');
SELECT segment.rule_dependencies('did purchase between date ''2020-01-01'' and date ''2021-01-01'' and attrs.a.b = 1 and attrs.c = 2');
SELECT segment.rule_dependencies('created_at > now');

-- jsonb form.
SELECT segment.rule_to_jsonb('did purchase and not did purchase within 180 days');
SELECT jsonb_pretty(segment.rule_to_jsonb('(country in (''DE'',''AT'') or lifetime between 1 and 2.50) and sum(purchase.amount where (category = ''golf'')) since 30 days ago > 10 and last(purchase) < date ''2029-01-01'' and stage in (''lead'') and email is not null'));

-- jsonb round trip: rule_from_jsonb(rule_to_jsonb(r)) = r.
SELECT r, segment.rule_from_jsonb(segment.rule_to_jsonb(r)) = r AS round_trip FROM (VALUES
  ('did purchase and not did purchase within 180 days'::segment.rule),
  ('(country in (''DE'',''AT'') or lifetime between 1 and 2.50) and sum(purchase.amount where (category = ''golf'' and not (x.y = true))) since 30 days ago > 10'),
  ('did ''it''''s'' between 2 weeks from now and timestamp ''2024-01-01 10:00Z'' or count(x) = 0 or avg(y.price) != -1.5 or attrs.q.r is null'),
  ('true or false and email not starts with ''a\'' and first_name ends with ''"'''),
  ('tagged ''a'' and not in segment ''high_value'' and stage not in (''lead'') and stage <= ''customer'''),
  ('last(purchase where (amount > 1)) >= now and birthday < 20 years ago and vip != true and plan in (''pro'')'),
  ('interests not contains ''x'' and renews_at not between date ''2030-01-01'' and 1 month from now')
  ) AS t(r);
-- A UI builder may write plural units and omit the canonical form.
SELECT segment.rule_from_jsonb('{"or": [{"did": "purchase", "within": {"amount": 3, "unit": "days"}}, {"or": [{"tagged": "VIP"}, {"const": false}]}]}');
-- Bad jsonb: the path of the problem and what was expected (22P02).
SELECT segment.rule_from_jsonb('[1]');
SELECT segment.rule_from_jsonb('{}');
SELECT segment.rule_from_jsonb('{"did": 5}');
SELECT segment.rule_from_jsonb('{"and": []}');
SELECT segment.rule_from_jsonb('{"not": [true]}');
SELECT segment.rule_from_jsonb('{"const": 1}');
SELECT segment.rule_from_jsonb('{"and": [{"did": "x"}, {"field": "email", "op": "like", "value": "x"}]}');
SELECT segment.rule_from_jsonb('{"field": "email = 1 or true", "op": "=", "value": "x"}');
SELECT segment.rule_from_jsonb('{"field": "lifetime", "op": ">", "value": 5, "extra": 1}');
SELECT segment.rule_from_jsonb('{"field": "lifetime", "op": "in", "values": []}');
SELECT segment.rule_from_jsonb('{"field": "lifetime", "op": "between", "values": [1]}');
SELECT segment.rule_from_jsonb('{"field": "lifetime", "op": ">", "value": null}');
SELECT segment.rule_from_jsonb('{"field": "lifetime", "op": ">", "value": {"yesterday": true}}');
SELECT segment.rule_from_jsonb('{"did": "x", "where": {"tagged": "a"}}');
SELECT segment.rule_from_jsonb('{"did": "x", "within": {"amount": 1, "unit": "fortnight"}}');
SELECT segment.rule_from_jsonb('{"did": "x", "within": {"amount": 1, "unit": "day"}, "since": {"now": true}}');
SELECT segment.rule_from_jsonb('{"did": "x", "tagged": "y"}');
SELECT segment.rule_from_jsonb('{"count": "x", "property": "amount", "op": ">", "value": 1}');
SELECT segment.rule_from_jsonb('{"sum": "x", "op": ">", "value": 1}');
SELECT segment.rule_from_jsonb('{"stage": {"op": "~", "value": "lead"}}');
-- Checked like text input: errors show the rule text built from the jsonb.
\set VERBOSITY default
SELECT segment.rule_from_jsonb('{"field": "lifetime", "op": ">", "value": "abc"}');
SELECT segment.rule_from_jsonb('{"did": "x", "within": {"amount": 1.5, "unit": "day"}}');
SELECT segment.rule_from_jsonb('{"in_segment": "nope"}');
\set VERBOSITY terse

-- timestamp 'YYYY-MM-DD' is midnight UTC (as in PostgreSQL), kept with its time.
SELECT 'created_at > timestamp ''2024-02-29'''::segment.rule;
SELECT segment.rule_from_jsonb('{"field": "created_at", "op": "<", "value": {"timestamp": "2024-01-31"}}');
SELECT segment.rule_sql('created_at > timestamp ''2024-02-29''');
SELECT 'created_at > timestamp ''2023-02-29'''::segment.rule;

DROP TABLE bin;
RESET segment.clock_override;
DROP EXTENSION segment;
