-- Product recommendations from product_view and purchase events.
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2026-06-01 12:00:00+00';

SELECT segment.upsert_contact(x || '@example.com') FROM unnest(ARRAY['ann', 'bob', 'cy', 'dan', 'eve', 'new']) x;
-- A small catalog: golf (g1..g4), running (r1..r3), books (b1).
CREATE TEMP TABLE p (id text, name text, category text, price numeric);
INSERT INTO p VALUES ('g1', 'Driver', 'golf', 349), ('g2', 'Golf balls', 'golf', 24.5),
  ('g3', 'Golf glove', 'golf', 19), ('g4', 'Putter', 'golf', 129), ('r1', 'Trail shoes', 'running', 140),
  ('r2', 'Socks', 'running', 12), ('r3', 'Running cap', 'running', 25), ('b1', 'Golf book', 'books', 30);
CREATE FUNCTION pg_temp.ev(who text, type text, pid text, days int) RETURNS void LANGUAGE sql AS $$
  SELECT NULL::void FROM (SELECT segment.track(segment.contact_id(who || '@example.com'), type,
           jsonb_build_object('product_id', p.id, 'name', p.name, 'category', p.category, 'price', p.price,
                              'url', 'https://shop.example/p/' || p.id, 'image', 'https://cdn.example/' || p.id || '.jpg'),
           CASE WHEN type = 'purchase' THEN p.price END,
           segment.now() - make_interval(days => days)) FROM p WHERE p.id = pid) x
$$;
-- Ann: golf fan (bought g1, viewed g2 and r1).  Bob and Cy bought g1 too, and g4 / g3.
SELECT pg_temp.ev('ann', 'purchase', 'g1', 20), pg_temp.ev('ann', 'product_view', 'g2', 5),
       pg_temp.ev('ann', 'product_view', 'g2', 4), pg_temp.ev('ann', 'product_view', 'r1', 3);
SELECT pg_temp.ev('bob', 'purchase', 'g1', 40), pg_temp.ev('bob', 'purchase', 'g4', 39),
       pg_temp.ev('cy', 'purchase', 'g1', 50), pg_temp.ev('cy', 'purchase', 'g4', 10),
       pg_temp.ev('cy', 'purchase', 'b1', 10);
-- Lately popular: g2 (views), g3 (a purchase), r2 (many views), r3 (one view).
SELECT pg_temp.ev('dan', 'product_view', 'g2', 2), pg_temp.ev('dan', 'purchase', 'g3', 2),
       pg_temp.ev('dan', 'product_view', 'r2', 1), pg_temp.ev('eve', 'product_view', 'r2', 1),
       pg_temp.ev('eve', 'product_view', 'r2', 2), pg_temp.ev('eve', 'product_view', 'r2', 3),
       pg_temp.ev('eve', 'product_view', 'r2', 6), pg_temp.ev('eve', 'product_view', 'r3', 200);
-- Events without a product_id are not products; future events (after segment.now()) do not count.
SELECT segment.track(segment.contact_id('dan@example.com'), 'product_view', '{"name": "no id"}') IS NOT NULL AS tracked;
SELECT pg_temp.ev('eve', 'purchase', 'r1', -3);

-- Ann: golf first (popular lately there, round robin with running), then what
-- g1 buyers also bought, then popular overall; never g1, which she bought.
SELECT r->>'product_id' AS product_id, r->>'name' AS name, r->>'category' AS category,
       r->'price' AS price, r->>'reason' AS reason
  FROM jsonb_array_elements(segment.recommend(segment.contact_id('ann@example.com'), 8)) r;
-- The default is 4, each with every attribute the latest event gave.
SELECT segment.recommend(segment.contact_id('ann@example.com'));
-- A contact without events gets what is popular; the popular list spans the year.
SELECT string_agg(r->>'product_id' || ':' || (r->>'reason'), ', ')
  FROM jsonb_array_elements(segment.recommend(segment.contact_id('new@example.com'), 10)) r;
-- Errors.
SELECT segment.recommend(segment.contact_id('new@example.com'), 0);
SELECT segment.recommend(segment.contact_id('new@example.com'), 101);
SELECT segment.recommend(-1);
SELECT segment.recommend(NULL);

-- In templates: recommendations are in the context when a template can use them.
SELECT segment.create_template('picks', 'Picks for {{first_name | default: "you"}}',
  '<ul>{{#each recommendations}}<li>{{name}} ({{price | money: "EUR"}})</li>{{/each}}</ul>') IS NOT NULL AS created;
SELECT subject, html FROM segment.render_for('picks', segment.contact_id('ann@example.com'));
-- extra can give them instead; the sample contact of previews has sample products.
SELECT html FROM segment.render_for('picks', segment.contact_id('ann@example.com'),
                                    '{"recommendations": [{"name": "Given", "price": 1}]}');
SELECT html FROM segment.preview('picks');
SELECT html FROM segment.preview_draft('x', '{{#recommendations}}{{product_id}} {{/recommendations}}', NULL,
                                       segment.contact_id('bob@example.com'));
-- Only templates that can use them pay for them: named, or behind a partial or changed delimiters.
SELECT t AS template, segment._with_recommendations('{}', segment.contact_id('bob@example.com'), 'Hi', t) ? 'recommendations' AS computed
  FROM unnest(ARRAY['Hello {{name}}', '{{#recommendations}}x{{/recommendations}}', '{{> footer}}', '{{=<% %>=}}']) t;
DROP EXTENSION segment;
