-- segment: what happened to sent mail (delivered, opened, clicked, bounced,
-- complained, unsubscribed, converted), signed tracking links, and campaign
-- reports with lift against the holdout and significance between variants
-- (doc/analytics.md).

CREATE TABLE segment.message_events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id  bigint NOT NULL REFERENCES segment.messages (id) ON DELETE CASCADE,
  contact_id  bigint REFERENCES segment.contacts (id) ON DELETE SET NULL,
  campaign_id bigint,
  flow_id     bigint,
  variant     text,
  kind        text NOT NULL
              CHECK (kind IN ('delivered', 'open', 'click', 'bounce', 'complaint', 'unsubscribe', 'conversion')),
  meta        jsonb NOT NULL DEFAULT '{}',
  amount      numeric,
  at          timestamptz NOT NULL DEFAULT segment.now()
);
CREATE INDEX message_events_message ON segment.message_events (message_id, kind);
CREATE INDEX message_events_campaign ON segment.message_events (campaign_id, kind) WHERE campaign_id IS NOT NULL;
-- A contact's message events: export_contact reads them, and deleting a
-- contact (forget) sets their contact_id NULL (the foreign key's action).
CREATE INDEX message_events_contact ON segment.message_events (contact_id);
COMMENT ON TABLE segment.message_events IS
  'What happened to sent messages: delivered, open, click, bounce, complaint, unsubscribe, conversion (segment.record)';

-- Record what happened to a message, by its Message-ID (with or without <>).
-- Opens and clicks are also behavioral events (email_open, email_click) so
-- rules can use them; hard bounces and complaints suppress the address;
-- unsubscribe and complaint change the contact's status.
CREATE FUNCTION segment.record(message_id text, kind text, meta jsonb DEFAULT '{}') RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  m      segment.messages;
  mid    text := btrim(message_id, '<> ');
  md     jsonb := coalesce(meta, '{}');
  eid    bigint;
  amt    numeric;
  props  jsonb;
BEGIN
  IF message_id IS NULL THEN
    RAISE EXCEPTION 'message_id must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF kind IS NULL OR kind NOT IN ('delivered', 'open', 'click', 'bounce', 'complaint', 'unsubscribe', 'conversion') THEN
    RAISE EXCEPTION 'invalid message event kind "%"', coalesce(kind, 'NULL')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Kinds are delivered, open, click, bounce, complaint, unsubscribe and conversion.';
  END IF;
  IF jsonb_typeof(md) <> 'object' THEN
    RAISE EXCEPTION 'meta must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO m FROM segment.messages x WHERE x.message_id = mid;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no message with Message-ID "%"', mid
      USING ERRCODE = 'undefined_object', HINT = 'The Message-ID is segment.messages.message_id, without the angle brackets.';
  END IF;
  IF kind = 'bounce' AND coalesce(md ->> 'type', 'hard') NOT IN ('hard', 'soft') THEN
    RAISE EXCEPTION 'bounce type must be hard or soft, not "%"', md ->> 'type' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF md ? 'amount' THEN
    IF jsonb_typeof(md -> 'amount') <> 'number' THEN
      RAISE EXCEPTION 'meta amount must be a number, not %', md -> 'amount' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    amt := (md ->> 'amount')::numeric;
  END IF;
  INSERT INTO segment.message_events (message_id, contact_id, campaign_id, flow_id, variant, kind, meta, amount)
    VALUES (m.id, m.contact_id, m.campaign_id, m.flow_id, m.variant, kind, md, amt)
    RETURNING id INTO eid;
  IF m.contact_id IS NOT NULL AND EXISTS (SELECT 1 FROM segment.contacts c WHERE c.id = m.contact_id) THEN
    props := jsonb_strip_nulls(jsonb_build_object('message_id', m.message_id, 'campaign_id', m.campaign_id,
                                                  'flow_id', m.flow_id, 'variant', m.variant,
                                                  'url', CASE WHEN kind = 'click' THEN md ->> 'url' END));
    IF kind = 'open' THEN
      PERFORM segment.track(m.contact_id, 'email_open', props);
    ELSIF kind = 'click' THEN
      PERFORM segment.track(m.contact_id, 'email_click', props);
    ELSIF kind = 'unsubscribe' THEN
      UPDATE segment.contacts SET status = 'unsubscribed'
       WHERE id = m.contact_id AND status IN ('subscribed', 'pending');
    ELSIF kind = 'complaint' THEN
      UPDATE segment.contacts SET status = 'complained' WHERE id = m.contact_id;
    ELSIF kind = 'bounce' AND coalesce(md ->> 'type', 'hard') = 'hard' THEN
      UPDATE segment.contacts SET status = 'bounced' WHERE id = m.contact_id AND status <> 'complained';
    END IF;
  END IF;
  IF kind = 'complaint' OR (kind = 'bounce' AND coalesce(md ->> 'type', 'hard') = 'hard') THEN
    INSERT INTO segment.suppressions (address_hash, address, reason, detail)
      VALUES (segment.address_hash(m.rcpt_to), lower(m.rcpt_to), kind, md ->> 'reason')
      ON CONFLICT (address_hash) DO NOTHING;
  END IF;
  RETURN eid;
END $$;
COMMENT ON FUNCTION segment.record(text, text, jsonb) IS
  'Record what happened to a message (delivered, open, click, bounce, complaint, unsubscribe, conversion) by its Message-ID; returns the event id';

-- A signed tracking link: segment.tracking_url + ?t=token.  With a url, a
-- click link that records the click and leads to the url; without, the open
-- pixel.  SECURITY DEFINER: the roles that build mail do not sign tokens.
CREATE FUNCTION segment.track_url(message_id text, url text) RETURNS text
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, segment, pg_temp AS $$
DECLARE
  base text := coalesce(current_setting('segment.tracking_url', true), '');
  mid  text := btrim(message_id, '<> ');
BEGIN
  IF base = '' THEN
    RAISE EXCEPTION 'segment.tracking_url is not set'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Set it to the endpoint that calls segment.resolve_click, e.g. ALTER SYSTEM SET segment.tracking_url = ''https://shop.example/t''.';
  END IF;
  IF mid IS NULL OR mid = '' THEN
    RAISE EXCEPTION 'message_id must not be empty' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF url IS NOT NULL AND url !~* '^https?://[^[:space:]]+$' THEN
    RAISE EXCEPTION 'invalid link "%"', url
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Tracked links are absolute http:// or https:// URLs without spaces.';
  END IF;
  RETURN base || CASE WHEN strpos(base, '?') > 0 THEN '&' ELSE '?' END || 't='
         || CASE WHEN url IS NULL
                 THEN segment.sign_token('open', mid, segment.now() + interval '1 year')
                 ELSE segment.sign_token('click', mid || E'\n' || url, segment.now() + interval '1 year') END;
END $$;
COMMENT ON FUNCTION segment.track_url(text, text) IS
  'A signed click-tracking link to url for a message (or, with url NULL, its open pixel), at segment.tracking_url';

-- The tracking endpoint calls this: records the click (or open) and returns
-- the url to redirect to (NULL for the open pixel: serve the image).  A link
-- whose message is gone (the person was forgotten) still leads to its url;
-- nothing is recorded.
CREATE FUNCTION segment.resolve_click(token text) RETURNS text
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, segment, pg_temp AS $$
DECLARE
  payload text;
  mid     text;
  url     text;
BEGIN
  IF token IS NULL THEN
    RAISE EXCEPTION 'token must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  BEGIN
    payload := segment.verify_token('click', token);
  EXCEPTION WHEN invalid_parameter_value THEN
    payload := NULL;
  END;
  IF payload IS NULL THEN
    -- Not a click link: the open pixel, or the error of a bad token.
    mid := segment.verify_token('open', token);
    IF EXISTS (SELECT 1 FROM segment.messages m WHERE m.message_id = mid) THEN
      PERFORM segment.record(mid, 'open', '{}');
    END IF;
    RETURN NULL;
  END IF;
  mid := split_part(payload, E'\n', 1);
  url := substr(payload, length(mid) + 2);
  IF EXISTS (SELECT 1 FROM segment.messages m WHERE m.message_id = mid) THEN
    PERFORM segment.record(mid, 'click', jsonb_build_object('url', url));
  END IF;
  RETURN url;
END $$;
COMMENT ON FUNCTION segment.resolve_click(text) IS
  'Record the click (or open) a tracking token stands for; returns the link to redirect to (NULL for the open pixel)';

-- The standard normal distribution function (Abramowitz & Stegun 7.1.26, error < 1.5e-7).
CREATE FUNCTION segment._normal_cdf(z float8) RETURNS float8
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN z < 0 THEN 1 - v ELSE v END
    FROM (SELECT 1 - 0.5 * t * exp(-x * x) AS v
            FROM (SELECT abs(z) / sqrt(2) AS x) a,
                 LATERAL (SELECT (0.254829592 * k - 0.284496736 * k ^ 2 + 1.421413741 * k ^ 3
                                  - 1.453152027 * k ^ 4 + 1.061405429 * k ^ 5) AS t
                            FROM (SELECT 1 / (1 + 0.3275911 * a.x) AS k) kk) b) c
$$;
COMMENT ON FUNCTION segment._normal_cdf(float8) IS 'Internal: the standard normal distribution function';

-- Two-sided p-value of the two-proportion z-test (x1 of n1 against x2 of n2).
CREATE FUNCTION segment._two_proportion_p(x1 bigint, n1 bigint, x2 bigint, n2 bigint) RETURNS float8
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN n1 > 0 AND n2 > 0 AND p > 0 AND p < 1
              THEN 2 * (1 - segment._normal_cdf(abs(x1::float8 / n1 - x2::float8 / n2)
                                                / sqrt(p * (1 - p) * (1.0 / n1 + 1.0 / n2)))) END
    FROM (SELECT (x1 + x2)::float8 / nullif(n1 + n2, 0) AS p) s
$$;
COMMENT ON FUNCTION segment._two_proportion_p(bigint, bigint, bigint, bigint) IS
  'Internal: two-sided p-value of the two-proportion z-test';

-- One row per variant (variant NULL when the campaign has none).
CREATE FUNCTION segment.campaign_report(campaign text, attribution interval DEFAULT '5 days')
  RETURNS TABLE (variant text, recipients bigint, sent bigint, delivered bigint, bounced bigint,
                 opened bigint, clicked bigint, converted bigint, revenue numeric,
                 bounce_rate float8, open_rate float8, click_rate float8, conversion_rate float8,
                 purchase_rate float8, lift float8, p_value float8, unsubscribed bigint, complained bigint)
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  c segment.campaigns := segment._campaign(campaign);
  t0 timestamptz;
BEGIN
  IF attribution IS NULL OR attribution <= interval '0' THEN
    RAISE EXCEPTION 'attribution must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  t0 := coalesce(c.launched_at, segment.now());
  RETURN QUERY
  WITH rec AS (      -- a message with a recorded event went out, whatever the queue says yet
    SELECT r.contact_id, r.outcome, r.variant, m.id AS mid,
           CASE WHEN m.status IN ('queued', 'sending', 'retry')
                     AND EXISTS (SELECT 1 FROM segment.message_events e WHERE e.message_id = m.id)
                THEN 'sent' ELSE m.status END AS status,
           (SELECT min(e.at) FROM segment.message_events e WHERE e.message_id = m.id AND e.kind = 'click') AS first_click,
           EXISTS (SELECT 1 FROM segment.message_events e WHERE e.message_id = m.id AND e.kind = 'bounce') AS bounce_rec,
           EXISTS (SELECT 1 FROM segment.message_events e WHERE e.message_id = m.id AND e.kind = 'open') AS opened,
           EXISTS (SELECT 1 FROM segment.message_events e WHERE e.message_id = m.id AND e.kind = 'unsubscribe') AS unsub_rec,
           EXISTS (SELECT 1 FROM segment.message_events e WHERE e.message_id = m.id AND e.kind = 'complaint') AS complaint_rec,
           (SELECT sum(e.amount) FROM segment.message_events e WHERE e.message_id = m.id AND e.kind = 'conversion') AS conv_amount,
           EXISTS (SELECT 1 FROM segment.message_events e WHERE e.message_id = m.id AND e.kind = 'conversion') AS conv_rec,
           EXISTS (SELECT 1 FROM segment.events p WHERE p.contact_id = r.contact_id AND p.type = 'purchase'
                     AND p.occurred_at >= t0 AND p.occurred_at < t0 + attribution) AS purchased
      FROM segment.campaign_recipients r
      LEFT JOIN segment.messages m ON m.id = r.message_id
     WHERE r.campaign_id = c.id AND r.outcome IN ('queued', 'holdout')
  ),
  attributed AS (     -- purchases within the window after a click (any) on the message, each once
    SELECT rec.mid, count(p.id) AS n, sum(p.amount) AS amount
      FROM rec JOIN segment.events p
        ON p.contact_id = rec.contact_id AND p.type = 'purchase' AND p.occurred_at >= rec.first_click
     WHERE rec.first_click IS NOT NULL
       AND EXISTS (SELECT 1 FROM segment.message_events e
                    WHERE e.message_id = rec.mid AND e.kind = 'click'
                      AND p.occurred_at >= e.at AND p.occurred_at < e.at + attribution)
     GROUP BY rec.mid
  ),
  ord AS (            -- variants in the order the campaign lists them; the first is the control
    SELECT x.v ->> 'name' AS v, x.i FROM jsonb_array_elements(c.options -> 'variants') WITH ORDINALITY AS x(v, i)
  ),
  per AS (
    SELECT rec.variant AS v,
           count(*) AS recipients,
           count(*) FILTER (WHERE rec.status = 'sent') AS sent,
           count(*) FILTER (WHERE rec.status = 'sent' AND NOT rec.bounce_rec) AS delivered,
           count(*) FILTER (WHERE rec.status = 'failed' OR rec.bounce_rec) AS bounced,
           count(*) FILTER (WHERE rec.opened) AS opened,
           count(*) FILTER (WHERE rec.first_click IS NOT NULL) AS clicked,
           count(*) FILTER (WHERE rec.conv_rec OR a.n > 0) AS converted,
           coalesce(sum(coalesce(a.amount, 0) + coalesce(rec.conv_amount, 0)), 0) AS revenue,
           count(*) FILTER (WHERE rec.purchased) AS purchasers,
           count(*) FILTER (WHERE rec.unsub_rec) AS unsubscribed,
           count(*) FILTER (WHERE rec.complaint_rec) AS complained
      FROM rec LEFT JOIN attributed a ON a.mid = rec.mid
     WHERE rec.outcome = 'queued'
     GROUP BY rec.variant
    UNION ALL         -- a launched campaign's variant nobody got yet: a row of zeros
    SELECT ord.v, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
      FROM ord
     WHERE c.launched_at IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM rec WHERE rec.outcome = 'queued' AND rec.variant = ord.v)
  ),
  hold AS (
    SELECT count(*) AS n, count(*) FILTER (WHERE rec.purchased) AS purchasers
      FROM rec WHERE rec.outcome = 'holdout'
  ),
  control AS (
    SELECT per.* FROM per JOIN ord ON ord.v = per.v ORDER BY ord.i LIMIT 1
  ),
  -- The successes the p-value compares: those of the A/B test's metric (clicks by default).
  metric AS (
    SELECT per.v,
           CASE c.options #>> '{ab_test,metric}' WHEN 'open_rate' THEN per.opened
                                                 WHEN 'conversion_rate' THEN per.converted
                                                 ELSE per.clicked END AS x
      FROM per
  )
  SELECT per.v, per.recipients, per.sent, per.delivered, per.bounced, per.opened, per.clicked, per.converted,
         per.revenue,
         per.bounced::float8 / nullif(per.sent + count_failed.n, 0),
         per.opened::float8 / nullif(per.delivered, 0),
         per.clicked::float8 / nullif(per.delivered, 0),
         per.converted::float8 / nullif(per.delivered, 0),
         per.purchasers::float8 / nullif(per.recipients, 0),
         (per.purchasers::float8 / nullif(per.recipients, 0))
           / nullif(hold.purchasers::float8 / nullif(hold.n, 0), 0) - 1,
         CASE WHEN per.v IS DISTINCT FROM (SELECT control.v FROM control)
              THEN segment._two_proportion_p((SELECT metric.x FROM metric WHERE metric.v IS NOT DISTINCT FROM per.v),
                                             per.delivered,
                                             (SELECT metric.x FROM metric JOIN control ON control.v = metric.v),
                                             (SELECT control.delivered FROM control))
         END,
         per.unsubscribed, per.complained
    FROM per CROSS JOIN hold
    LEFT JOIN ord ON ord.v = per.v
    CROSS JOIN LATERAL (SELECT count(*) AS n FROM rec
                         WHERE rec.outcome = 'queued' AND rec.variant IS NOT DISTINCT FROM per.v
                           AND rec.status = 'failed') count_failed
   ORDER BY ord.i NULLS FIRST, per.v;
END $$;
COMMENT ON FUNCTION segment.campaign_report(text, interval) IS
  'Per variant: recipients, sent, delivered, bounces, opens, clicks, conversions, revenue, rates, lift against the holdout, p-value of the A/B metric (click rate unless ab_test says otherwise) against the first variant, unsubscribes, complaints';

-- Engagement of a segment's current members over time: per bucket (hour, day,
-- week or month) since a time, the messages sent to them and what they did.
-- Conversions as in campaign_report: recorded, or a purchase within the
-- attribution window after a click on the message.
CREATE FUNCTION segment.segment_engagement(segment text, since timestamptz DEFAULT NULL, bucket text DEFAULT 'day',
                                           attribution interval DEFAULT '5 days')
  RETURNS TABLE (period timestamptz, sent bigint, opened bigint, clicked bigint, converted bigint,
                 open_rate float8, click_rate float8)
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  t0 timestamptz := coalesce(since, segment.now() - interval '30 days');
BEGIN
  PERFORM segment._segment(segment);
  IF bucket IS NULL OR bucket NOT IN ('hour', 'day', 'week', 'month') THEN
    RAISE EXCEPTION 'bucket must be hour, day, week or month, not %', coalesce(bucket, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF attribution IS NULL OR attribution <= interval '0' THEN
    RAISE EXCEPTION 'attribution must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY
  WITH msgs AS (      -- sent, or still queued or in flight with a recorded event (then at its first)
    SELECT date_trunc(bucket, x.sent_at) AS p,
           EXISTS (SELECT 1 FROM segment.message_events e WHERE e.message_id = m.id AND e.kind = 'open') AS opened,
           EXISTS (SELECT 1 FROM segment.message_events e WHERE e.message_id = m.id AND e.kind = 'unsubscribe') AS unsub_rec,
           EXISTS (SELECT 1 FROM segment.message_events e WHERE e.message_id = m.id AND e.kind = 'complaint') AS complaint_rec,
           EXISTS (SELECT 1 FROM segment.message_events e WHERE e.message_id = m.id AND e.kind = 'click') AS clicked,
           EXISTS (SELECT 1 FROM segment.message_events e WHERE e.message_id = m.id AND e.kind = 'conversion')
           OR EXISTS (SELECT 1 FROM segment.message_events e
                        JOIN segment.events pe ON pe.contact_id = m.contact_id AND pe.type = 'purchase'
                                              AND pe.occurred_at >= e.at AND pe.occurred_at < e.at + attribution
                       WHERE e.message_id = m.id AND e.kind = 'click') AS converted
      FROM segment.segment_members(segment) sm(id)
      JOIN segment.messages m ON m.contact_id = sm.id
      CROSS JOIN LATERAL (SELECT CASE WHEN m.status = 'sent' THEN m.sent_at
                                      WHEN m.status IN ('queued', 'sending', 'retry')
                                      THEN (SELECT min(e.at) FROM segment.message_events e WHERE e.message_id = m.id)
                                 END AS sent_at) x
     WHERE x.sent_at >= t0 AND x.sent_at <= segment.now()
  )
  SELECT ms.p, count(*), count(*) FILTER (WHERE ms.opened), count(*) FILTER (WHERE ms.clicked),
         count(*) FILTER (WHERE ms.converted),
         (count(*) FILTER (WHERE ms.opened))::float8 / count(*), (count(*) FILTER (WHERE ms.clicked))::float8 / count(*)
    FROM msgs ms
   GROUP BY ms.p
   ORDER BY ms.p;
END $$;
COMMENT ON FUNCTION segment.segment_engagement(text, timestamptz, text, interval) IS
  'Per hour, day, week or month since a time (default 30 days ago): messages sent to the segment''s current members, opened, clicked, converted (recorded, or a purchase within attribution after a click), rates';

-- Campaign and flow mail with segment.tracking_url set: every http(s) link of
-- the HTML part except unsubscribe links becomes a signed click link, and an
-- open pixel is added; the Message-ID the links carry is chosen here (the
-- message is queued with it).  Returns the html and that Message-ID (both NULL
-- when tracking is off).
CREATE FUNCTION segment._tracked_html(html text, from_address text, OUT html_out text, OUT message_id text)
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  link    text;
  unsub   text := nullif(coalesce(current_setting('segment.unsubscribe_url', true), ''), '');
  pixel   text;
BEGIN
  IF html IS NULL OR coalesce(current_setting('segment.tracking_url', true), '') = '' THEN
    RETURN;
  END IF;
  message_id := replace(gen_random_uuid()::text, '-', '') || '@'
                || coalesce(substring(coalesce(from_address, current_setting('segment.from_address', true))
                                      FROM '@([A-Za-z0-9.-]+)>?\s*$'), 'localhost');
  html_out := html;
  FOR link IN SELECT DISTINCT m[1] FROM regexp_matches(html, 'href="(https?://[^"]+)"', 'gi') m LOOP
    CONTINUE WHEN unsub IS NOT NULL AND starts_with(replace(link, '&amp;', '&'), unsub);
    html_out := replace(html_out, 'href="' || link || '"',
                        'href="' || replace(segment.track_url(message_id, replace(link, '&amp;', '&')), '&', '&amp;') || '"');
  END LOOP;
  pixel := '<img src="' || replace(segment.track_url(message_id, NULL), '&', '&amp;')
           || '" width="1" height="1" alt="" style="display:none">';
  html_out := CASE WHEN strpos(lower(html_out), '</body>') > 0
                   THEN overlay(html_out PLACING pixel || '</body>' FROM strpos(lower(html_out), '</body>') FOR 7)
                   ELSE html_out || pixel END;
END $$;
COMMENT ON FUNCTION segment._tracked_html(text, text) IS
  'Internal: the HTML with tracked links and an open pixel, and the Message-ID they name (NULL when segment.tracking_url is not set)';
