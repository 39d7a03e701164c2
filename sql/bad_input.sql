-- Bad input (doc/reliability.md): the rule and template parsers refuse every
-- malformed input with a clear error -- SQLSTATE 22P02 and the position --
-- and never crash, hang or overflow the stack; oversize inputs are refused
-- cleanly.  Hand-written cases show their exact message; generated cases
-- (truncations, deletions and insertions applied to valid inputs) are checked
-- against the message format and position bounds.
CREATE EXTENSION segment;
SET timezone = 'UTC';
SET client_min_messages = warning;
SELECT segment.define_field('country', 'text');
SELECT segment.define_field('lifetime', 'number');

-- The error of one input: SQLSTATE and message, or 'ok' when it is accepted.
CREATE FUNCTION pg_temp.rule_error(src text, OUT state text, OUT message text)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM src::segment.rule;
  state := 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
END $$;
CREATE FUNCTION pg_temp.template_error(src text, OUT state text, OUT message text)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM src::segment.template;
  state := 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
END $$;

-- The full error, with the rule and a caret in DETAIL, for two of them.
SELECT 'count(purchase) within 60 days >'::segment.rule;
SELECT 'x{{#a}}
y{{/b}}'::segment.template;

-- 1. Malformed rules, each with its exact message.
CREATE TABLE bad_rules (n serial, src text);
INSERT INTO bad_rules (src) VALUES
  (''),
  ('   '),
  ('('),
  (')'),
  ('()'),
  ('(true'),
  ('true)'),
  ('((true)'),
  ('and'),
  ('or'),
  ('not'),
  ('true and'),
  ('true or'),
  ('not not'),
  ('and true'),
  ('true true'),
  ('true and or false'),
  ('email'),
  ('email ='),
  ('email = '),
  ('= ''x'''),
  ('email == ''x'''),
  ('email = ''x'),
  ('email = x'''),
  ('email = ''x'' ''y'''),
  ('email !'),
  ('email ! ''x'''),
  ('email <> '),
  ('email < = ''x'''),
  ('email in'),
  ('email in ('),
  ('email in ()'),
  ('email in (''a'''),
  ('email in (''a'',)'),
  ('email in (''a'' ''b'')'),
  ('email in ''a'''),
  ('email not'),
  ('email not ''a'''),
  ('email is'),
  ('email is not'),
  ('email is nul'),
  ('email is not ''x'''),
  ('email between'),
  ('email between ''a'''),
  ('email between ''a'' and'),
  ('email between ''a'' or ''b'''),
  ('email contains'),
  ('email contains 1'),
  ('email starts ''a'''),
  ('email starts with'),
  ('email ends ''a'''),
  ('email ends with 5'),
  ('email = ''a'' @'),
  ('email = ''a'' #'),
  ('email = ''a'' ;'),
  ('email = ''a''; drop table x'),
  ('email = $1'),
  ('email = "x"'),
  ('email = ''a'' and and email = ''b'''),
  ('tagged'),
  ('tagged vip'),
  ('tagged ''vip'' ''x'''),
  ('tagged '''''),
  ('in'),
  ('in segment'),
  ('in segment high_value'),
  ('in segment '''''),
  ('stage'),
  ('stage ='),
  ('stage = loyal'),
  ('stage in'),
  ('stage in ()'),
  ('stage not'),
  ('did'),
  ('did not'),
  ('did purchase within'),
  ('did purchase within days'),
  ('did purchase within 30'),
  ('did purchase within 30 parsecs'),
  ('did purchase within -1 days'),
  ('did purchase within 1.5 days'),
  ('did purchase since'),
  ('did purchase since 30 days'),
  ('did purchase since yesterday'),
  ('did purchase between'),
  ('did purchase between now'),
  ('did purchase between now and'),
  ('did purchase where'),
  ('did purchase where category = ''golf'''),
  ('did purchase where ('),
  ('did purchase where ()'),
  ('did purchase where (category = ''golf'''),
  ('did purchase where (category =)'),
  ('count'),
  ('count('),
  ('count()'),
  ('count(purchase'),
  ('count(purchase)'),
  ('count(purchase) >'),
  ('count(purchase) > ''x'''),
  ('count(purchase) > now'),
  ('count(purchase) within 60 days'),
  ('count(purchase) within 60 days > '),
  ('count(purchase where) > 1'),
  ('count(purchase.amount) > 1'),
  ('sum'),
  ('sum('),
  ('sum(purchase)'),
  ('sum(purchase.) > 1'),
  ('sum(purchase.amount'),
  ('sum(purchase.amount) '),
  ('sum(purchase.amount) > '),
  ('sum(purchase.amount) > ''big'''),
  ('sum(.amount) > 1'),
  ('avg(purchase) > 1'),
  ('min(purchase.amount) between 1 and '),
  ('max(purchase.amount) in (1, 2)'),
  ('median(purchase.amount) > 1'),
  ('last'),
  ('last('),
  ('last(purchase'),
  ('last(purchase)'),
  ('last(purchase) >'),
  ('last(purchase) > 5'),
  ('last(purchase) > 30 days'),
  ('last(purchase) > 30 days before'),
  ('created_at > 30 days'),
  ('created_at > 30 days ag'),
  ('created_at > ago'),
  ('created_at > date'),
  ('created_at > date 2024-01-01'),
  ('created_at > date ''2024-13-01'''),
  ('created_at > date ''2024-02-30'''),
  ('created_at > date ''yesterday'''),
  ('created_at > date '''''),
  ('created_at > timestamp'),
  ('created_at > timestamp ''2024-01-01 25:00:00'''),
  ('created_at > timestamp ''soon'''),
  ('created_at > 2 weeks from'),
  ('created_at > 2 weeks from then'),
  ('created_at > 99999999999999999999 days ago'),
  ('attrs.'),
  ('attrs. = 1'),
  ('attrs'),
  ('attrs = 1'),
  ('attrs.plan ='),
  ('attrs..plan = ''x'''),
  ('first_name = ''a'' or'),
  ('(first_name = ''a'''),
  ('first_name = ''a'')'),
  ('first_name = ''a'' and ('),
  ('not ('),
  ('not ()'),
  ('email = 1e'),
  ('email = 1.2.3'),
  ('email = --1'),
  ('email = .5.'),
  ('é = 1'),
  ('email = ''a'' é'),
  ('✓'),
  ('email = ''✓'' and ✓');
SELECT n, src, state, message FROM bad_rules, pg_temp.rule_error(src) ORDER BY n;

-- 2. Malformed templates, each with its exact message.
CREATE TABLE bad_templates (n serial, src text);
INSERT INTO bad_templates (src) VALUES
  ('{{'),
  ('{{x'),
  ('{{x}'),
  ('{{{x}}'),
  ('{{{x}'),
  ('{{}}'),
  ('{{ }}'),
  ('{{#}}'),
  ('{{/}}'),
  ('{{^}}'),
  ('{{>}}'),
  ('{{#a}}'),
  ('{{^a}}'),
  ('{{/a}}'),
  ('{{#a}}{{/b}}'),
  ('{{#a}}{{#b}}{{/a}}{{/b}}'),
  ('{{#a}}x{{/a}}{{/a}}'),
  ('{{^a}}{{/b}}'),
  (E'x{{#a}}\ny{{/b}}'),
  (E'line1\nline2\n{{#open}}'),
  ('{{=}}'),
  ('{{=<% %>}}'),
  ('{{=<% %>=}}<% x'),
  ('{{=<%%>=}}'),
  ('{{= =}}'),
  ('{{=a b c=}}'),
  ('{{=<%  =}}'),
  ('{{&}}'),
  ('{{& }}'),
  ('{{!'),
  ('{{! unclosed comment'),
  ('{{a b}}'),
  ('{{a.}}'),
  ('{{.a.}}'),
  ('{{a..b}}'),
  ('{{#if a}}'),
  ('{{#if a}}{{/unless}}'),
  ('{{#if a}}{{else}}{{else}}{{/if}}'),
  ('{{else}}'),
  ('{{#unless a}}'),
  ('{{#each a}}'),
  ('{{#each a}}{{/if}}'),
  ('{{#each a b}}{{/each}}'),
  ('{{#if (gt a)}}{{/if}}'),
  ('{{#if (gt a 1}}{{/if}}'),
  ('{{#if gt a 1)}}{{/if}}'),
  ('{{#if (nosuch a 1)}}{{/if}}'),
  ('{{#if ()}}{{/if}}'),
  ('{{#if (and)}}{{/if}}'),
  ('{{#if (not a b)}}{{/if}}'),
  ('{{#if (eq a "x)}}{{/if}}'),
  ('{{ a | }}'),
  ('{{ a | nosuch }}'),
  ('{{ a | upper: }}'),
  ('{{ a | default: }}'),
  ('{{ a | default: "x" "y" }}'),
  ('{{ a | truncate }}'),
  ('{{ a | truncate: x }}'),
  ('{{ a || upper }}'),
  ('{{ | upper }}'),
  ('{{ a | upper | }}'),
  ('{{ a | default: "unterminated }}'),
  ('{{{ a | upper }}'),
  ('{{@nosuch}}'),
  ('{{$}}'),
  ('{{$a}}'),
  ('{{<}}'),
  ('{{<a}}'),
  ('{{<a}}{{/b}}'),
  ('{{>a b}}'),
  ('{{#each items}}{{@index}}{{/each'),
  ('{{#a}}{{{b}}{{/a}}'),
  ('Hello {{name}'),
  ('Hello {{name}}, {{#if vip}}VIP{{/if}'),
  ('<p>{{#each items}}<li>{{name}}</li>{{/each}}</p>{{/p}}');
SELECT n, replace(src, E'\n', '\n') AS src, state, message
  FROM bad_templates, pg_temp.template_error(src) ORDER BY n;

-- 3. Generated malformed rules: every proper prefix (in words) of valid rules,
-- each word deleted, and a stray token inserted after each word.  Whatever is
-- refused is refused with 22P02, the message format and a position inside the
-- rule (one past its end for "found the end of the rule").
CREATE TABLE good_rules (src text);
INSERT INTO good_rules VALUES
  ('sum(purchase.amount) > 500'),
  ('count(purchase) within 60 days > 3'),
  ('did purchase and not did purchase within 180 days'),
  ('did cart_add within 1 day and not did purchase within 1 day'),
  ('country in (''DE'', ''AT'') and tagged ''VIP'''),
  ('did purchase where (category = ''golf'') within 365 days'),
  ('created_at > 30 days ago and not did purchase'),
  ('did email_open within 30 days'),
  ('not tagged ''vip'' or country = ''DE'''),
  ('lifetime between 10 and 20 or not (country is null)'),
  ('email ends with ''@example.com'' and status != ''bounced'''),
  ('last(purchase) > date ''2024-01-01'''),
  ('avg(purchase.amount where (currency = ''EUR'')) since 2 weeks ago >= 12.5'),
  ('count(page_view) between timestamp ''2024-01-01 00:00:00+00'' and now < 10'),
  ('attrs.plan.tier not in (''free'', ''trial'') and first_name not contains ''test''');
SELECT src, state, message FROM good_rules, pg_temp.rule_error(src) WHERE state <> 'ok';

CREATE TABLE rule_variants AS
WITH t AS (SELECT src, regexp_split_to_array(src, ' ') AS tok FROM good_rules)
SELECT DISTINCT v FROM (
  SELECT array_to_string(tok[1:i], ' ') FROM t, generate_series(1, array_length(tok, 1) - 1) i
  UNION ALL
  SELECT array_to_string(tok[1:i - 1] || tok[i + 1:], ' ') FROM t, generate_series(1, array_length(tok, 1)) i
  UNION ALL
  SELECT array_to_string(tok[1:i] || ARRAY[x] || tok[i + 1:], ' ')
    FROM t, generate_series(1, array_length(tok, 1)) i, unnest(ARRAY['(', ')', 'and', '''', '=', ',', 'not']) x
) s(v);
CREATE TABLE rule_results AS SELECT v, e.* FROM rule_variants, pg_temp.rule_error(v) e;
SELECT count(*) AS variants, count(*) FILTER (WHERE state = 'ok') AS accepted,
       count(*) FILTER (WHERE state = '22P02') AS refused_22p02,
       count(*) FILTER (WHERE state NOT IN ('ok', '22P02')) AS other
  FROM rule_results;
-- Refused otherwise, or with a message or position out of shape: none.
SELECT v, state, message FROM rule_results
 WHERE state <> 'ok'
   AND NOT (state = '22P02'
            AND message ~ '^invalid segment rule at character [0-9]+: (expected|unexpected) '
            AND substring(message FROM 'character ([0-9]+)')::int BETWEEN 1 AND char_length(v) + 1);

-- 4. Generated malformed templates: every prefix of valid templates that is
-- refused (a cut inside a tag or a section), every single brace deleted, and
-- every closing tag renamed.  Line and column must point inside the template.
CREATE TABLE good_templates (src text);
INSERT INTO good_templates VALUES
  ('Hi {{ first_name | default: "there" | capitalize }},'),
  ('{{#if segments.high_value}}VIP early access{{else}}Our new range{{/if}}'),
  (E'<ul>\n{{#each items}}\n  <li>{{@index}}: {{name}}{{#if @last}}.{{/if}}</li>\n{{/each}}\n</ul>'),
  ('{{#if (gt lifetime_spend 500)}}gold{{/if}}{{#unless (and (ge n 1) (not t))}}x{{/unless}}'),
  ('{{ price | money: "EUR" }} on {{ d | date: "%Y-%m-%d" }}: {{ s | truncate: 10 | upper }}'),
  ('{{{raw}}} {{& raw}} {{! a comment }} {{name}}'),
  (E'{{#repo}}\n  <b>{{name}}</b>\n{{/repo}}\n{{^repo}}\n  No repos :(\n{{/repo}}'),
  ('{{=<% %>=}}(<% text %>)<%={{ }}=%>{{x}}'),
  ('{{> footer}} {{<layout}}{{$body}}Hello{{/body}}{{/layout}}'),
  ('{{#a}}{{#b}}{{#c}}{{d.e.f}}{{/c}}{{/b}}{{/a}}'),
  ('<a href="{{ url | url_encode }}">{{ o | json }}</a>');
SELECT src, state, message FROM good_templates, pg_temp.template_error(src) WHERE state <> 'ok';

CREATE TABLE template_variants AS
SELECT DISTINCT v FROM (
  SELECT left(src, i) FROM good_templates, generate_series(1, char_length(src) - 1) i
  UNION ALL
  SELECT overlay(src PLACING '' FROM i FOR 1) FROM good_templates, generate_series(1, char_length(src)) i
   WHERE substr(src, i, 1) IN ('{', '}')
  UNION ALL
  SELECT overlay(src PLACING '{{/zz' FROM i FOR 3) FROM good_templates, generate_series(1, char_length(src)) i
   WHERE substr(src, i, 3) = '{{/'
) s(v);
CREATE TABLE template_results AS SELECT v, e.* FROM template_variants, pg_temp.template_error(v) e;
SELECT count(*) AS variants, count(*) FILTER (WHERE state = 'ok') AS accepted,
       count(*) FILTER (WHERE state = '22P02') AS refused_22p02,
       count(*) FILTER (WHERE state NOT IN ('ok', '22P02')) AS other
  FROM template_results;
-- Refused otherwise, or with a line or column outside the template: none.
SELECT replace(v, E'\n', '\n') AS v, state, message FROM template_results
 WHERE state <> 'ok'
   AND NOT (state = '22P02'
            AND message ~ '^invalid template at line [0-9]+, column [0-9]+: '
            AND substring(message FROM 'line ([0-9]+)')::int
                BETWEEN 1 AND array_length(string_to_array(v, E'\n'), 1)
            AND substring(message FROM 'column ([0-9]+)')::int
                BETWEEN 1 AND char_length(split_part(v, E'\n', substring(message FROM 'line ([0-9]+)')::int)) + 1);

-- 5. Oversize and deep inputs are refused cleanly, never by a stack overflow.
SELECT state, message FROM pg_temp.rule_error(repeat('(', 10000) || 'true' || repeat(')', 10000));
SELECT state, message FROM pg_temp.rule_error(repeat('not ', 10000) || 'true');
SELECT state, message FROM pg_temp.rule_error('did purchase where (' || repeat('(', 10000) || 'amount > 1' || repeat(')', 10001));
SELECT state, message FROM pg_temp.rule_error(repeat('email = ''x'' or ', 100000) || 'true');
SELECT state, message FROM pg_temp.template_error(repeat('{{#a}}', 10000) || repeat('{{/a}}', 10000));
SELECT state, message FROM pg_temp.template_error('{{#if ' || repeat('(not ', 10000) || 'a' || repeat(')', 10000) || '}}x{{/if}}');
-- A 10 MB template: 2 million tags parse in linear time; rendering stops at
-- segment.max_render_size.  10 MB of text likewise.
SELECT segment.render(repeat('{{a}}', 2 * 1024 * 1024), '{"a": "x"}') IS NULL;
SELECT segment.render(repeat('x', 10 * 1024 * 1024), '{}') IS NULL;
SELECT length(segment.render(repeat('{{a}}', 2 * 1024 * 1024), '{"a": ""}'));
-- Partials that include themselves stop at the depth limit.
SELECT segment.render('{{>self}}', '{}', '{"self": "x{{>self}}"}');
-- Regression: rendering more distinct templates than the backend cache holds
-- (it is trimmed between renders) once freed a program under its renderer.
SELECT count(*), sum(length(segment.render('t' || g || ' {{a}}', '{"a": "y"}'))) FROM generate_series(1, 2500) g;

DROP EXTENSION segment;
