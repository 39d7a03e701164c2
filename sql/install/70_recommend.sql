-- segment: product recommendations from behavioral events (doc/recommend.md).
-- Products are what product_view and purchase events name in their properties
-- (product_id, name, category, price, url, image); nothing to load or sync.

-- The latest known attributes of every product seen since t, with its
-- popularity since p (purchases weigh 3, views 1).
CREATE FUNCTION segment._products(t timestamptz, p timestamptz)
  RETURNS TABLE (product_id text, name text, category text, price numeric, url text, image text,
                 popularity numeric, seen_at timestamptz)
  LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT DISTINCT ON (e.properties->>'product_id')
         e.properties->>'product_id', e.properties->>'name', e.properties->>'category',
         segment.jsonb_number(e.properties, 'price'), e.properties->>'url', e.properties->>'image',
         sum(CASE WHEN e.occurred_at >= p THEN CASE e.type WHEN 'purchase' THEN 3 ELSE 1 END ELSE 0 END)
           OVER (PARTITION BY e.properties->>'product_id'),
         e.occurred_at
    FROM segment.events e
   WHERE e.type IN ('product_view', 'purchase') AND e.occurred_at >= t AND e.occurred_at <= segment.now()
     AND e.properties ? 'product_id'
   ORDER BY e.properties->>'product_id', e.occurred_at DESC, e.id DESC
$$;
COMMENT ON FUNCTION segment._products(timestamptz, timestamptz) IS
  'Internal: products named by product_view/purchase events since t, latest attributes, popularity since p';

CREATE FUNCTION segment.recommend(contact_id bigint, n int DEFAULT 4) RETURNS jsonb
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  now_    timestamptz := segment.now();
  result  jsonb;
BEGIN
  PERFORM segment._check_contact(contact_id);
  IF n IS NULL OR n < 1 OR n > 100 THEN
    RAISE EXCEPTION 'n must be between 1 and 100, not %', coalesce(n::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  WITH products AS MATERIALIZED (
    SELECT * FROM segment._products(now_ - interval '365 days', now_ - interval '30 days')
  ),
  mine AS (      -- this contact's product events of the last 365 days
    SELECT e.type, e.occurred_at, e.properties->>'product_id' AS product_id,
           e.properties->>'category' AS category
      FROM segment.events e
     WHERE e.contact_id = recommend.contact_id AND e.type IN ('product_view', 'purchase')
       AND e.occurred_at >= now_ - interval '365 days' AND e.occurred_at <= now_
  ),
  bought AS (SELECT DISTINCT m.product_id FROM mine m WHERE m.type = 'purchase' AND m.product_id IS NOT NULL),
  -- The contact's strongest categories (180 days; purchases weigh 3, views 1).
  cats AS (
    SELECT m.category, row_number() OVER (ORDER BY sum(CASE m.type WHEN 'purchase' THEN 3 ELSE 1 END) DESC,
                                                   max(m.occurred_at) DESC, m.category) AS crank
      FROM mine m
     WHERE m.category IS NOT NULL AND m.occurred_at >= now_ - interval '180 days'
     GROUP BY m.category
     ORDER BY crank LIMIT 3
  ),
  -- 1. Popular there recently, not yet bought: round robin over the categories.
  by_category AS (
    SELECT p.product_id, 1 AS tier,
           row_number() OVER (PARTITION BY c.crank ORDER BY p.popularity DESC, p.product_id) * 10 + c.crank AS pos
      FROM cats c JOIN products p ON p.category = c.category
     WHERE p.popularity > 0 AND p.product_id NOT IN (SELECT b.product_id FROM bought b)
  ),
  -- 2. Bought with what this contact bought, by other buyers (365 days).
  co_buyers AS (
    SELECT DISTINCT e.contact_id
      FROM segment.events e
     WHERE e.type = 'purchase' AND e.occurred_at >= now_ - interval '365 days' AND e.occurred_at <= now_
       AND e.properties->>'product_id' IN (SELECT b.product_id FROM bought b)
       AND e.contact_id <> recommend.contact_id
  ),
  co_purchase AS (
    SELECT e.properties->>'product_id' AS product_id, 2 AS tier,
           row_number() OVER (ORDER BY count(DISTINCT e.contact_id) DESC, e.properties->>'product_id') AS pos
      FROM segment.events e JOIN co_buyers cb ON cb.contact_id = e.contact_id
     WHERE e.type = 'purchase' AND e.occurred_at >= now_ - interval '365 days' AND e.occurred_at <= now_
       AND e.properties ? 'product_id'
       AND e.properties->>'product_id' NOT IN (SELECT b.product_id FROM bought b)
     GROUP BY e.properties->>'product_id'
  ),
  -- 3. Popular everywhere (30 days, then the year), not yet bought.
  popular AS (
    SELECT p.product_id, 3 AS tier,
           row_number() OVER (ORDER BY p.popularity DESC, p.seen_at DESC, p.product_id) AS pos
      FROM products p
     WHERE p.product_id NOT IN (SELECT b.product_id FROM bought b)
  ),
  picks AS (
    SELECT DISTINCT ON (x.product_id) x.product_id, x.tier, x.pos
      FROM (SELECT * FROM by_category UNION ALL SELECT * FROM co_purchase UNION ALL SELECT * FROM popular) x
     ORDER BY x.product_id, x.tier, x.pos
  ),
  chosen AS (
    SELECT k.product_id, k.tier, k.pos FROM picks k ORDER BY k.tier, k.pos LIMIT n
  )
  SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
           'product_id', p.product_id, 'name', p.name, 'category', p.category, 'price', p.price,
           'url', p.url, 'image', p.image,
           'reason', CASE k.tier WHEN 1 THEN 'category' WHEN 2 THEN 'co_purchase' ELSE 'popular' END))
           ORDER BY k.tier, k.pos), '[]')
    INTO result
    FROM chosen k JOIN products p ON p.product_id = k.product_id;
  RETURN result;
END $$;
COMMENT ON FUNCTION segment.recommend(bigint, int) IS
  'Up to n products for a contact: popular lately in its strongest categories, bought together with what it bought, popular overall; never what it bought';

-- The context of a rendering gets recommendations (segment.recommend, 4
-- products) only when one of its templates can use them: computing them costs
-- a scan of the year's product events, which a receipt should not pay.  Partials
-- and changed delimiters may hide the name, so they count as a use.  A
-- recommendations key in extra wins.
CREATE FUNCTION segment._with_recommendations(ctx jsonb, contact_id bigint, VARIADIC parts text[])
  RETURNS jsonb
  LANGUAGE sql STABLE AS $$
  SELECT CASE
           WHEN ctx ? 'recommendations' THEN ctx
           WHEN NOT EXISTS (SELECT 1 FROM unnest(parts) p
                             WHERE strpos(p, 'recommendations') > 0 OR strpos(p, '{{>') > 0
                                OR strpos(p, '{{=') > 0) THEN ctx
           WHEN contact_id IS NULL THEN ctx || jsonb_build_object('recommendations', jsonb_build_array(
             jsonb_build_object('product_id', 'sample-1', 'name', 'Sample product', 'category', 'sample',
                                'price', 49.90, 'url', 'https://shop.example/p/sample-1', 'reason', 'popular'),
             jsonb_build_object('product_id', 'sample-2', 'name', 'Another sample', 'category', 'sample',
                                'price', 19.00, 'url', 'https://shop.example/p/sample-2', 'reason', 'popular')))
           ELSE ctx || jsonb_build_object('recommendations', segment.recommend(contact_id))
         END
$$;
COMMENT ON FUNCTION segment._with_recommendations(jsonb, bigint, text[]) IS
  'Internal: ctx plus recommendations for the contact (sample products without one) when a template part can use them';
