-- Templates: the segment.template type, render(), helpers, filters, escaping,
-- limits, stored templates, partials, the contact context, render_for, preview.
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2030-01-01 00:00:00+00';

-- ---------------------------------------------------------------- the type
SELECT 'Hi {{first_name}}'::segment.template;
SELECT pg_typeof('x'::segment.template), length('abc'::segment.template);
SELECT segment.template_valid('{{#a}}{{/a}}');
-- Invalid templates are refused at the cast, with line, column and a caret.
SELECT 'Hello {{first_name}},
{{#if vip}}
  Thanks {{name | shout}}!
{{/if}}'::segment.template;
SELECT E'Line one\n  {{#each items}}{{name}}'::segment.template;
SELECT '{{#if a}}x{{/unless}}'::segment.template;
SELECT 'Grüße {{name'::segment.template;
SELECT '{{/a}}'::segment.template;
SELECT '{{}}'::segment.template;
SELECT '{{#if (bigger a 1)}}{{/if}}'::segment.template;
SELECT '{{a | truncate: "x"}}'::segment.template;
SELECT '{{else}}'::segment.template;
SELECT '{{=<% %>}}'::segment.template;
SELECT repeat('x', 100) || '{{y | nope}}' || repeat('z', 100)::segment.template;
SELECT (repeat('x', 100) || '{{y | nope}}' || repeat('z', 100))::segment.template;
-- The error code is invalid_text_representation.
DO $$
BEGIN
  PERFORM '{{#a}}'::segment.template;
EXCEPTION WHEN invalid_text_representation THEN
  RAISE NOTICE 'caught %', SQLSTATE;
END
$$;
SELECT segment.template_valid(NULL) IS NULL AS null_is_null;
\set SHOW_CONTEXT errors
SELECT segment.template_valid('{{#x}}', 'my label');
\set SHOW_CONTEXT never

-- ---------------------------------------------------------------- render: Mustache
SELECT segment.render('Hi {{name}}!', '{"name": "Ann"}');
SELECT segment.render('{{v}} | {{{v}}} | {{& v}}', '{"v": "<b>Tom & \"Jerry\" O''Neil</b>"}');
SELECT segment.render('[{{missing}}] [{{a.b.c}}] [{{a.x.y}}]', '{"a": {"b": {"c": 42}}}');
SELECT segment.render('{{n}} {{d}} {{t}} {{f}} [{{z}}] {{list}} {{obj}}',
                      '{"n": 7, "d": 19.90, "t": true, "f": false, "z": null, "list": [1, "a"], "obj": {"k": 1}}');
SELECT segment.render('{{#items}}<{{name}}>{{/items}}{{^items}}none{{/items}}', '{"items": [{"name": "a"}, {"name": "b"}]}');
SELECT segment.render('{{#items}}<{{name}}>{{/items}}{{^items}}none{{/items}}', '{"items": []}');
SELECT segment.render('{{#user}}{{first}} {{last}}{{/user}}', '{"user": {"first": "Ann", "last": "Lee"}}');
SELECT segment.render('{{#s}}empty string is truthy for sections{{/s}}', '{"s": ""}');
SELECT segment.render('{{! comment }}{{=[[ ]]=}}[[a]] {{a}}', '{"a": 1}');
SELECT segment.render('{{.}}', '"a scalar document"'), segment.render('{{#.}}{{.}},{{/.}}', '[1, 2, 3]');
SELECT segment.render('no data: [{{a}}]', NULL), segment.render(NULL, '{}') IS NULL AS null_template;
SELECT segment.render(E'Dear {{name}},\n  {{> sig}}\nBye', '{"name": "Ann", "me": "Bo"}',
                      '{"sig": "--\n{{me}}\n"}');
SELECT segment.render('[{{> missing}}]', '{}', '{}'), segment.render('[{{> p}}]', '{}', NULL);

-- ---------------------------------------------------------------- helpers
SELECT segment.render('{{#if vip}}VIP{{else}}regular{{/if}}', v)
  FROM (VALUES ('{"vip": true}'::jsonb), ('{"vip": false}'), ('{"vip": 0}'), ('{"vip": 1}'),
               ('{"vip": ""}'), ('{"vip": "yes"}'), ('{"vip": []}'), ('{"vip": [0]}'),
               ('{"vip": {}}'), ('{"vip": null}'), ('{}')) AS t(v);
SELECT segment.render('{{#unless optout}}Send{{else}}Skip{{/unless}}', '{"optout": false}');
SELECT segment.render('{{#each items}}{{@index}}:{{name}}{{#if @first}} (first){{/if}}{{#if @last}} (last){{/if}}; {{/each}}',
                      '{"items": [{"name": "Driver"}, {"name": "Putter"}, {"name": "Tee"}]}');
SELECT segment.render('{{#each tags}}[{{this}}|{{.}}]{{/each}}', '{"tags": ["golf", "vip"]}');
SELECT segment.render('{{#each items}}x{{else}}Your cart is empty{{/each}}', '{"items": []}');
SELECT segment.render('{{#each one}}{{@index}}{{name}}{{/each}}', '{"one": {"name": "single object"}}');
SELECT segment.render('{{#each items}}{{name}}: {{@root.currency}} {{/each}}',
                      '{"currency": "EUR", "items": [{"name": "a"}, {"name": "b"}]}');
SELECT segment.render('{{#if (gt lifetime_value 500)}}big spender{{else}}welcome{{/if}}', v)
  FROM (VALUES ('{"lifetime_value": 500.01}'::jsonb), ('{"lifetime_value": 500}'), ('{}')) AS t(v);
SELECT segment.render('{{#if (eq n 3)}}eq {{/if}}{{#if (ne n 3)}}ne {{/if}}{{#if (lt n 3)}}lt {{/if}}'
                      '{{#if (le n 3)}}le {{/if}}{{#if (gt n 3)}}gt {{/if}}{{#if (ge n 3)}}ge{{/if}}', v)
  FROM (VALUES ('{"n": 2}'::jsonb), ('{"n": 3}'), ('{"n": 4}'), ('{"n": "3"}')) AS t(v);
SELECT segment.render('{{#if (eq country "DE")}}Hallo{{else}}{{#if (eq country ''FR'')}}Bonjour{{else}}Hello{{/if}}{{/if}}', v)
  FROM (VALUES ('{"country": "DE"}'::jsonb), ('{"country": "FR"}'), ('{"country": "US"}')) AS t(v);
SELECT segment.render('{{#if (and vip (or (gt orders 3) (not churned)))}}yes{{else}}no{{/if}}', v)
  FROM (VALUES ('{"vip": true, "orders": 1, "churned": false}'::jsonb),
               ('{"vip": true, "orders": 1, "churned": true}'),
               ('{"vip": true, "orders": 5, "churned": true}'),
               ('{"vip": false, "orders": 5}')) AS t(v);
SELECT segment.render('{{#if (gt last_purchase "2029-12-01")}}recent{{else}}lapsed{{/if}}',
                      '{"last_purchase": "2029-12-24T10:00:00+00:00"}');
SELECT segment.render('{{#if (eq flag true)}}T{{/if}}{{#if (eq gone null)}}N{{/if}}{{#if (eq 1 1.0)}}1{{/if}}', '{"flag": true}');
SELECT segment.render('{{#if (gt name 3)}}x{{else}}a string and a number do not compare{{/if}}', '{"name": "Ann"}');

-- ---------------------------------------------------------------- filters
SELECT segment.render('Hi {{ first_name | default: "there" | capitalize }}!', v)
  FROM (VALUES ('{"first_name": "aNNA"}'::jsonb), ('{"first_name": ""}'), ('{}'), ('{"first_name": null}')) AS t(v);
SELECT segment.render('{{ nick | default: first_name }}', '{"first_name": "Ann"}');
SELECT segment.render('{{ s | upper }} {{ s | lower }} {{ s | capitalize }}', '{"s": "élodie ÇA va"}');
SELECT segment.render('{{ s | truncate: 10 }}|{{ s | truncate: 100 }}|{{ s | truncate: 7, "…" }}|{{ s | truncate: 7, "" }}',
                      '{"s": "Spring collection is here"}');
SELECT segment.render('{{ d | date: "%Y-%m-%d" }} | {{ d | date: "%e %B %Y, %H:%M" }} | {{ d | date }} | {{ d | date: "%a %d %b %y %I:%M %p %z" }}',
                      '{"d": "2030-03-05T14:30:00-05:00"}');
SELECT segment.render('{{ d | date: "%d/%m/%Y" }} | {{ t | date: "%F %T %z" }} | {{ bad | date }}',
                      '{"d": "2030-02-28", "t": 1893456000, "bad": "next week"}');
-- timestamptz values of a contact context come from to_jsonb: ISO with an offset.
SELECT segment.render('{{ at | date: "%B %e, %Y %H:%M %z" }}',
                      jsonb_build_object('at', '2030-07-04 18:00:00+00'::timestamptz));
SELECT segment.render('{{ p | money: "EUR" }} {{ p | money: "USD" }} {{ p | money: "GBP" }} {{ p | money: "CHF" }} {{ p | money }}',
                      '{"p": 1234.5}');
SELECT segment.render('{{ p | money: "EUR" }}', jsonb_build_object('p', p))
  FROM unnest(ARRAY[0, 0.005, 2.675, 19.999, -42.5, 1234567.891, 1e21]::numeric[]) AS p;
SELECT segment.render('{{ p | money: "EUR" }}|{{ s | money: "EUR" }}|{{ x | money: "EUR" }}',
                      '{"p": "9.5", "s": "free", "x": null}');
SELECT segment.render('https://shop.example/search?q={{ q | url_encode }}', '{"q": "golf & tennis/ä"}');
SELECT segment.render('<script>var d = {{{ d | json }}};</script> {{ s | json }}',
                      '{"d": {"a": [1, 2.5, "x"], "b": null}, "s": "say \"hi\""}');
SELECT segment.render('{{ missing | upper }}[{{ missing | money: "EUR" }}][{{ missing | json }}]', '{}');

-- ---------------------------------------------------------------- limits
SET segment.max_render_size = 1;  -- kB
SELECT length(segment.render('{{#n}}{{s}}{{/n}}', jsonb_build_object('n', jsonb_build_array(1, 2), 's', repeat('x', 500))));
SELECT segment.render('{{#n}}{{s}}{{/n}}', jsonb_build_object('n', jsonb_build_array(1, 2, 3), 's', repeat('x', 500)));
RESET segment.max_render_size;
SELECT segment.render('{{> loop}}', '{}', '{"loop": "again {{> loop}}"}');
-- Recursion that ends (the leaf has an empty list) is fine; a leaf without
-- "items" would find its parent's items up the context stack and loop.
SELECT segment.render('{{#items}}{{> node}}{{/items}}', '{"items": [{"name": "a", "items": [{"name": "b", "items": []}]}]}',
                      '{"node": "<{{name}}{{#items}}{{> node}}{{/items}}>"}');
SELECT segment.render('{{#items}}{{> node}}{{/items}}', '{"items": [{"name": "a", "items": [{"name": "b"}]}]}',
                      '{"node": "<{{name}}{{#items}}{{> node}}{{/items}}>"}');
\set SHOW_CONTEXT errors
SELECT segment.render('x {{> bad}}', '{}', '{"bad": "{{#oops}}"}');
\set SHOW_CONTEXT never
-- Only superusers raise the limit.
CREATE ROLE regress_template_user;
SET ROLE regress_template_user;
SET segment.max_render_size = 100000;
RESET ROLE;
DROP ROLE regress_template_user;

-- A template cannot read outside its context: names only reach into the data.
SELECT segment.render('[{{pg_catalog.current_user}}][{{current_setting}}][{{@root.x}}]', '{"x": 1}');
SELECT segment.render('{{../x}}', '{"x": 1}');

-- Many rows, one compiled template; a template from a column changes per row.
SELECT count(DISTINCT segment.render('Hi {{n}}', jsonb_build_object('n', g % 3))) FROM generate_series(1, 1000) g;
SELECT segment.render(t, '{"n": 1}') FROM (VALUES ('a{{n}}'), ('b{{n}}'), ('a{{n}}')) AS v(t);

-- ---------------------------------------------------------------- html to text
SELECT segment.html_to_text('<html><head><title>Sale</title><style>p { color: red }</style></head>
<body><h1>Hi {{first_name}}!</h1><p>Our   <b>spring</b> sale &amp; more&nbsp;&hellip;</p>
<p><a href="https://shop.example/?utm=mail&amp;x=1">Shop now</a> &middot; <a href="{{unsubscribe_url}}">Unsubscribe</a></p>
<!-- tracking --><div>&copy; 2030 Shop</div></body></html>');

-- ---------------------------------------------------------------- stored templates
SELECT segment.create_template('footer', 'unused', '<p class="footer">Shop Ltd · <a href="{{unsubscribe_url}}">unsubscribe</a></p>',
                               E'--\nShop Ltd, unsubscribe: {{unsubscribe_url}}') AS footer_id;
SELECT segment.create_template('welcome',
  E'Welcome, {{ first_name | default: "friend" }}!\r\n{{#if tag.vip}}[VIP]{{/if}}',
  '<h1>Hello {{first_name}} & welcome</h1>
{{#if segments.high_value}}<p>VIP early access for {{email}}</p>{{else}}<p>Spent {{ lifetime_value | money: "EUR" }} in {{orders_count}} orders</p>{{/if}}
<ul>{{#each tags}}<li>{{.}}</li>{{/each}}</ul>
<p>Stage: {{stage}}, country: {{country}}, plan: {{plan}}</p>
{{> footer}}') AS welcome_id;
SELECT name, subject, text, text_derived FROM segment.templates ORDER BY id;
-- Names are unique: a second create is an error, update changes it.
SELECT segment.create_template('welcome', 's', 'h');
SELECT segment.create_template('bad one', 's', 'h');
\set SHOW_CONTEXT errors
SELECT segment.create_template('broken', 'ok', '<p>{{#if x}}</p>');
\set SHOW_CONTEXT never
SELECT segment.create_template('broken', '{{ s | nope }}', 'h');
SELECT segment.create_template('broken', 's', 'h', '{{');
SELECT segment.create_template(NULL, 's', 'h');
INSERT INTO segment.templates (name, subject, html, text) VALUES ('raw', '{{#x}}', 'h', 't');
SELECT segment.update_template('nope', 'x');
SELECT segment.drop_template('nope');

-- ---------------------------------------------------------------- the contact context
INSERT INTO segment.contacts (id, email, first_name, last_name, locale, time_zone, attrs, status)
VALUES (1, 'ann@example.com', 'Ann', 'Lee', 'en', 'Europe/Berlin',
        '{"country": "DE", "plan": "gold", "first_name": "attrs lose"}', 'subscribed'),
       (2, 'bob@example.com', NULL, NULL, NULL, NULL, '{}', 'pending');
SELECT segment.tag(1, 'vip'), segment.tag(1, 'golf'), segment.tag(1, 'trial', '2030-02-01');
-- An expired tag does not count.
INSERT INTO segment.contact_tags (contact_id, tag, expires_at) VALUES (1, 'old', '2029-12-01');
INSERT INTO segment.segments (name, mode) VALUES ('high_value', 'static'), ('newsletter', 'static');
INSERT INTO segment.segment_members (segment_id, contact_id)
  SELECT id, 1 FROM segment.segments WHERE name = 'high_value';
INSERT INTO segment.stages (name, position) VALUES ('loyal_customer', 4);
INSERT INTO segment.contact_stages (contact_id, stage) VALUES (1, 'loyal_customer');
SELECT segment.track(1, 'purchase', '{}', 120.50, '2029-11-02 10:00+00') > 0 AS tracked,
       segment.track(1, 'purchase', '{}', 80, '2029-12-20 09:30+00') > 0 AS tracked;
SELECT jsonb_pretty(segment.contact_context(1, '{"campaign": "spring", "coupon": "SPRING10", "plan": "extra wins"}')
                    - 'unsubscribe_url');
SELECT segment.contact_context(2) - 'created_at' - 'updated_at';
SELECT segment.contact_context(99);
-- The unsubscribe link is the signed one when segment.unsubscribe_url is set.
SET segment.unsubscribe_url = 'https://shop.example/unsub';
SET segment.secret = 'a regress secret of some length';
SELECT segment.contact_context(1) ->> 'unsubscribe_url' LIKE 'https://shop.example/unsub?token=%' AS signed_link;
RESET segment.unsubscribe_url;

-- ---------------------------------------------------------------- render_for and preview
SELECT * FROM segment.render_for('welcome', 1);
SELECT * FROM segment.render_for('welcome', 2, '{"country": "FR"}');
SELECT segment.render_for('nope', 1);
SELECT segment.render_for('welcome', 99);
-- Editing the html re-derives a derived text part; an explicit text part stays.
SELECT segment.update_template('welcome', html => '<p>Hi {{first_name}} &amp; co</p>{{> footer}}') > 0 AS updated;
SELECT subject, text FROM segment.templates WHERE name = 'welcome';
SELECT * FROM segment.render_for('welcome', 1);
SELECT segment.update_template('footer', html => '<p>New footer</p>') > 0 AS updated;
SELECT text FROM segment.templates WHERE name = 'footer';
SELECT html FROM segment.render_for('welcome', 1);
SELECT * FROM segment.preview('welcome');
SELECT * FROM segment.preview('welcome', NULL, '{"first_name": "Sam"}');
SELECT * FROM segment.preview('welcome', 1);
SELECT * FROM segment.preview('nope');
SELECT * FROM segment.preview_draft('Re: {{first_name}}', '<p>Draft for {{email}}</p>{{> footer}}');
SELECT * FROM segment.preview_draft('Re: {{first_name}}', '<p>{{x}}</p>', 'Text {{x}}', 1, '{"x": "<&>"}');
SELECT * FROM segment.preview_draft('Re: {{first_name}}', '<p></p>', NULL, 99);
SELECT * FROM segment.preview_draft('Re: {{first_name', '<p></p>');
SELECT segment.render_stored('{{> footer}}', '{}', 'text'), segment.render_stored('{{x}}', '{"x": "<"}', 'subject');
SELECT segment.render_stored('{{x}}', '{}', 'body');
-- A stored partial that includes itself is stopped.
SELECT segment.create_template('selfish', 's', 'again {{> selfish}}') > 0 AS created;
SELECT html FROM segment.preview('selfish');
SELECT segment.drop_template('selfish');
SELECT count(*) FROM segment.templates;

-- The application and editor roles render mail, signed unsubscribe link included.
SET segment.unsubscribe_url = 'https://shop.example/unsub';
CREATE ROLE regress_template_app IN ROLE segment_app;
CREATE ROLE regress_template_editor IN ROLE segment_editor;
SET ROLE regress_template_app;
SELECT subject, text LIKE '%unsubscribe: https://shop.example/unsub?token=%' AS signed_link FROM segment.render_for('welcome', 1);
SELECT segment.create_template('app_made', 's', 'h');
RESET ROLE;
SET ROLE regress_template_editor;
SELECT subject FROM segment.preview('welcome', 1);
SELECT segment.create_template('editor_made', 's', '<p>{{first_name}}</p>') > 0 AS created;
RESET ROLE;
RESET segment.unsubscribe_url;
DROP ROLE regress_template_app;
DROP ROLE regress_template_editor;

-- Lookups go through a one-pass binding of each object's keys to the
-- template's names (remembered per key layout): wide objects (more than 32
-- keys, where jsonb stores offsets), keys of equal length, every value type,
-- rows of different layouts at one call site, loops, partials.
SELECT segment.render('{{x}}|{{xxxxx}}|{{xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx}}|{{k3}}|{{k33}}|{{k39}}|{{k4}}|{{nope}}|{{#o}}{{k34}}{{k0}}{{/o}}',
       jsonb_build_object('o', d) || d)
FROM (SELECT jsonb_object_agg(k, v) AS d
      FROM (SELECT 'k' || i AS k, 'v' || i AS v FROM generate_series(0, 39) i
            UNION ALL SELECT repeat('x', i), i || 'x' FROM generate_series(1, 40) i) s) w;
SELECT segment.render('{{s}}|{{{s}}}|{{n}}|{{t}}|{{f}}|{{z}}|{{o}}|{{l}}|{{e}}|{{#o}}{{a}}{{/o}}|{{#l}}({{.}}){{/l}}',
       '{"s": "a<b", "n": 12.50, "t": true, "f": false, "z": null, "o": {"a": 1}, "l": [1, "x"], "e": ""}');
SELECT i, segment.render('{{ab}}-{{cd}}-{{ef}}', d)
FROM (VALUES (1, '{"ab": "1", "cd": "2", "ef": "3"}'::jsonb), (2, '{"ef": "6", "cd": "5", "ab": "4"}'),
             (3, '{"ab": "7", "cx": "8", "ef": "9"}'), (4, '{"ab": "x", "cd": "y", "ef": "z"}'),
             (5, '{"ab": 1, "cd": [2], "ef": {"g": 3}}'), (6, '{"ab": "only"}'), (7, '{}'), (8, '[1, 2]'),
             (9, '"s"'), (10, 'null'), (11, '{"ab": "a", "cd": "b", "ef": "c", "gh": "d"}'),
             (12, '{"ab": "1", "cd": "2", "ef": "3"}')) v(i, d)
ORDER BY i;
SELECT segment.render('{{#items}}[{{name}}:{{price}}:{{cur}}]{{/items}}',
       '{"cur": "EUR", "items": [{"name": "a", "price": "1"}, {"name": "b", "price": "2", "cur": "USD"}, {"price": "3"}, {"name": "d", "price": "4"}]}');
SELECT t, segment.render(t, '{"a": "A", "bb": "B", "é": "e", "éa": "ea", "z": "Z"}')
FROM (VALUES ('{{a}}{{bb}}'), ('{{bb}}{{a}}'), ('{{a}}'), ('{{c}}{{a}}'), ('{{é}}{{z}}{{éa}}')) v(t);
SELECT segment.render('{{#items}}{{>card}};{{/items}}', '{"shop": "S", "items": [{"n": "a"}, {"n": "b", "shop": "T"}]}',
       '{"card": "{{n}}@{{shop}}"}');

-- Runs of text and plain names print strings from the innermost object
-- context's slots directly; loop elements of one key layout rewrite only the
-- slots of their keys.  Names missing from an element (between elements that
-- have them), a flag section between object and name, non-string values,
-- output growing past the first guess in the middle of a run, and HTML
-- escaping in values of every length class, with neighbours of the five
-- escaped characters left alone.
SELECT segment.render('{{#items}}[{{a}}|{{b}}|{{c}}]{{/items}}',
       '{"b": "root-b", "c": "root-c", "items": [{"a": "1", "b": "x"}, {"a": "2"}, {"a": "3", "b": "y"},
         {"a": "4", "b": "z"}, {"a": "5"}, {"a": "6"}, {"b": "w", "a": "7"}]}');
SELECT segment.render('{{#o}}{{#f}}[{{n}}|{{m}}|{{k}}|{{l}}]{{/f}}{{/o}}',
       '{"k": "root-k", "m": "root-m", "l": "root-l", "f": true, "o": {"n": "in-o", "m": 5, "l": null}}');
SELECT segment.render('a{{x}}b{{{x}}}c{{x}}d', jsonb_build_object('x', repeat('é<', 3000)))
       = 'a' || replace(repeat('é<', 3000), '<', '&lt;') || 'b' || repeat('é<', 3000) || 'c'
         || replace(repeat('é<', 3000), '<', '&lt;') || 'd' AS grown_in_run;
SELECT n, segment.render('[{{v}}]', jsonb_build_object('v', left(s, n)))
FROM (VALUES (';=?%(<>&"''$!#:')) v(s), generate_series(1, 14) n
ORDER BY n;
SELECT n, segment.render('[{{v}}]', jsonb_build_object('v', left(repeat('ab;=?%(', 6), n - 1) || c))
FROM (VALUES ('<'), ('>'), ('&'), ('"'), (''''), ('=')) v(c), (VALUES (3), (8), (16), (17), (33)) w(n)
ORDER BY ascii(c), n;

-- A section's plain name is read from the bound slots, found up the stack
-- like any name: in the loop element or, when the element lacks it, outside
-- (booleans, strings, numbers, null, objects); loop elements of different
-- layouts rebind the one loop frame.
SELECT segment.render('{{#items}}[{{#vip}}V{{/vip}}{{^vip}}-{{/vip}}{{#if gift}}G{{/if}}{{#tag}}<{{.}}>{{/tag}}{{#n}}{{.}}{{/n}}]{{/items}}',
       '{"vip": true, "gift": "yes", "tag": "root", "items": [{"vip": false, "n": 1}, {"tag": "t2", "n": null},
         {"gift": "", "vip": true, "tag": {"x": 1}}, {}]}');

-- The contact context: extra merged at the top and whole under extra; tags as
-- a map through the list (tags.vip) as well as through tag.
SELECT segment.create_template('context_keys', 'S',
  '<p>{{coupon}} {{extra.coupon}} {{#if tags.vip}}VIP{{/if}}{{#if tags.old}}OLD{{/if}} {{#if tag.golf}}golf{{/if}}</p>', 'T {{extra.coupon}}');
SELECT * FROM segment.render_for('context_keys', 1, '{"coupon": "C1"}');
SELECT * FROM segment.preview('context_keys', NULL, '{"coupon": "C2"}');
-- The sample contact has an unsubscribe link too (of the configured shape, with
-- a token that unsubscribes nobody), or null like a real contact's.
SELECT segment.sample_context() -> 'unsubscribe_url' AS sample_link;
SET segment.unsubscribe_url = 'https://shop.example/unsub?list=1';
SELECT html FROM segment.preview_draft('s', '<a href="{{unsubscribe_url}}">stop</a>');
SELECT segment.unsubscribe('preview');
RESET segment.unsubscribe_url;
SELECT * FROM segment.preview_draft('{{extra.coupon}}', '<b>{{coupon}}</b>', NULL, 2, '{"coupon": "C3"}');
SELECT segment.define_field('extra', 'text');

-- A name after a list reads it as a set of strings: tags is a list and a map.
SELECT segment.render('{{tags.VIP}}|{{#if tags.VIP}}y{{else}}n{{/if}}|{{#if tags.gold}}y{{else}}n{{/if}}|'
                      '{{#tags.VIP}}s{{/tags.VIP}}|{{^tags.gold}}i{{/tags.gold}}|{{tags.VIP.x}}|{{n.1}}|'
                      '{{#each tags}}{{.}}{{/each}}',
                      '{"tags": ["VIP", "new"], "n": [1, "1"]}');

DROP EXTENSION segment;
