-- segment: campaigns — one mailing to the members of a segment, with A/B/n
-- variants, a holdout group, a frequency cap and per-contact send times
-- (doc/campaigns.md).  launch() decides once per contact and records it, so a
-- second launch mails nobody twice.

CREATE TABLE segment.campaigns (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL UNIQUE CONSTRAINT campaigns_name_check CHECK (btrim(name) <> ''),
  segment     text NOT NULL,
  template    text NOT NULL,
  options     jsonb NOT NULL DEFAULT '{}',
  status      text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'launched', 'paused', 'cancelled')),
  created_at  timestamptz NOT NULL DEFAULT segment.now(),
  launched_at timestamptz,
  winner      text,
  decided_at  timestamptz,
  own_clock   boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE segment.campaigns IS
  'Campaigns: a stored template mailed to the members of a segment (status draft, launched, paused, cancelled)';
COMMENT ON COLUMN segment.campaigns.options IS
  'from, reply_to, unsubscribe_mailto, variants, holdout_pct, frequency_cap, send_at, local_time, quiet_hours, ab_test (validated by create_campaign)';
COMMENT ON COLUMN segment.campaigns.winner IS 'With ab_test: the variant chosen for the rest of the audience, once decided';
COMMENT ON COLUMN segment.campaigns.own_clock IS
  'Launched in a session with a segment.clock_override of its own (SET): the worker and pg_cron, on the server''s clock, leave its A/B decision to such sessions';

-- Does this session run on a segment.clock_override of its own (SET in the
-- session), rather than the server's (postgresql.conf, ALTER SYSTEM) that the
-- worker and pg_cron share?
CREATE FUNCTION segment._own_clock() RETURNS boolean
  LANGUAGE sql STABLE AS $$
  SELECT current_setting('segment.clock_override', true) IS DISTINCT FROM
         (SELECT s.reset_val FROM pg_settings s WHERE s.name = 'segment.clock_override')
$$;
COMMENT ON FUNCTION segment._own_clock() IS
  'Internal: true when this session''s segment.clock_override differs from the server''s (a SET in the session)';

-- Every launch decision, one row per contact of the segment: the audience of
-- the campaign, its holdout (for lift) and who was skipped and why.
CREATE TABLE segment.campaign_recipients (
  campaign_id bigint NOT NULL REFERENCES segment.campaigns (id) ON DELETE CASCADE,
  contact_id  bigint NOT NULL REFERENCES segment.contacts (id) ON DELETE CASCADE,
  outcome     text NOT NULL CHECK (outcome IN ('queued', 'holdout', 'waiting', 'capped', 'not_subscribed', 'suppressed')),
  variant     text,
  message_id  bigint,
  decided_at  timestamptz NOT NULL DEFAULT segment.now(),
  PRIMARY KEY (campaign_id, contact_id)
);
-- A contact's launch decisions: export_contact reads them, and deleting a
-- contact (forget) cascades to them; the primary key, campaign first, serves
-- neither, and without this both read every decision of every campaign.
CREATE INDEX campaign_recipients_contact ON segment.campaign_recipients (contact_id);
COMMENT ON TABLE segment.campaign_recipients IS
  'What launch decided for each segment member: queued (with variant and message), holdout, waiting (for the A/B test''s winner), or skipped (capped, not_subscribed, suppressed)';

-- At most one message of a campaign per contact, whatever runs concurrently.
CREATE UNIQUE INDEX messages_campaign_contact ON segment.messages (campaign_id, contact_id)
  WHERE campaign_id IS NOT NULL AND contact_id IS NOT NULL;

-- The campaign row of a name, or the error for an unknown one.
CREATE FUNCTION segment._campaign(name text) RETURNS segment.campaigns
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  c segment.campaigns;
BEGIN
  SELECT * INTO c FROM segment.campaigns x WHERE x.name = _campaign.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'campaign "%" does not exist', name
      USING ERRCODE = 'undefined_object', HINT = 'segment.create_campaign() creates it.';
  END IF;
  RETURN c;
END $$;
COMMENT ON FUNCTION segment._campaign(text) IS 'Internal: the campaign of that name, or an error';

-- An interval option, or an error naming it.
CREATE FUNCTION segment._interval_option(v jsonb, what text) RETURNS interval
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  i interval;
BEGIN
  BEGIN
    i := (v #>> '{}')::interval;
  EXCEPTION WHEN OTHERS THEN
    i := NULL;
  END;
  IF jsonb_typeof(v) IS DISTINCT FROM 'string' OR i IS NULL OR i < interval '0' THEN
    RAISE EXCEPTION 'option % must be an interval such as "24 hours", not %', what, coalesce(v::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN i;
END $$;
COMMENT ON FUNCTION segment._interval_option(jsonb, text) IS 'Internal: an interval option value, or an error';

-- An "HH:MM" time of day, or an error naming the option.
CREATE FUNCTION segment._time_of_day(v jsonb, what text) RETURNS time
  LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF jsonb_typeof(v) IS DISTINCT FROM 'string' OR v #>> '{}' !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
    RAISE EXCEPTION 'option % must be a time of day "HH:MM", not %', what, coalesce(v::text, 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN (v #>> '{}')::time;
END $$;
COMMENT ON FUNCTION segment._time_of_day(jsonb, text) IS 'Internal: an "HH:MM" option value as a time';

-- The sender options campaigns and flows share: from, reply_to (one mailbox
-- each) and unsubscribe_mailto (a mailto: URL or "none"), checked when they
-- are stored rather than when the first mail is built.
CREATE FUNCTION segment._check_sender_options(o jsonb) RETURNS void
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  k text;
  e text;
BEGIN
  FOREACH k IN ARRAY ARRAY['from', 'reply_to'] LOOP
    IF o ? k AND jsonb_typeof(o -> k) <> 'string' THEN
      RAISE EXCEPTION 'option % must be a string', k USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF o ? k AND segment._mailbox_error(o ->> k) IS NOT NULL THEN
      RAISE EXCEPTION 'option % is not a valid address: %', k, segment._mailbox_error(o ->> k)
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Use "Name <address@domain>" or "address@domain".';
    END IF;
  END LOOP;
  IF o ? 'unsubscribe_mailto' THEN
    e := CASE WHEN jsonb_typeof(o -> 'unsubscribe_mailto') = 'string'
              THEN segment._mailto_error(o ->> 'unsubscribe_mailto') ELSE 'it is not a string' END;
    IF e IS NOT NULL THEN
      RAISE EXCEPTION 'option unsubscribe_mailto must be a mailto: URL or "none", not %', o -> 'unsubscribe_mailto'
        USING ERRCODE = 'invalid_parameter_value', DETAIL = upper(left(e, 1)) || substr(e, 2) || '.',
              HINT = 'For example "mailto:unsubscribe@shop.example?subject=unsubscribe".';
    END IF;
  END IF;
END $$;
COMMENT ON FUNCTION segment._check_sender_options(jsonb) IS
  'Internal: check the from, reply_to and unsubscribe_mailto options of a campaign or flow';

-- Campaign options checked and normalised (variants with template and weight).
CREATE FUNCTION segment._campaign_options(options jsonb, template text) RETURNS jsonb
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  k       text;
  o       jsonb := coalesce(options, '{}');
  v       jsonb;
  out     jsonb := '[]';
  names   text[] := '{}';
  w       numeric;
BEGIN
  IF jsonb_typeof(o) <> 'object' THEN
    RAISE EXCEPTION 'campaign options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR k IN SELECT jsonb_object_keys(o) LOOP
    IF k NOT IN ('from', 'reply_to', 'unsubscribe_mailto', 'variants', 'holdout_pct', 'frequency_cap',
                 'send_at', 'local_time', 'quiet_hours', 'ab_test') THEN
      RAISE EXCEPTION 'unknown campaign option "%"', k
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Options are from, reply_to, unsubscribe_mailto, variants, holdout_pct, frequency_cap, send_at, local_time, quiet_hours and ab_test.';
    END IF;
  END LOOP;
  PERFORM segment._check_sender_options(o);
  IF o ? 'holdout_pct' AND (jsonb_typeof(o -> 'holdout_pct') <> 'number'
                            OR (o ->> 'holdout_pct')::numeric < 0 OR (o ->> 'holdout_pct')::numeric >= 100) THEN
    RAISE EXCEPTION 'option holdout_pct must be a number from 0 to below 100, not %', o -> 'holdout_pct'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF o ? 'frequency_cap' THEN
    v := o -> 'frequency_cap';
    IF jsonb_typeof(v) <> 'object' OR jsonb_typeof(v -> 'max') <> 'number' OR (v ->> 'max')::numeric < 1
       OR (v ->> 'max')::numeric <> trunc((v ->> 'max')::numeric) OR jsonb_typeof(v -> 'per') <> 'string'
       OR (SELECT count(*) FROM jsonb_object_keys(v)) <> 2 THEN
      RAISE EXCEPTION 'option frequency_cap must be {"max": N, "per": "an interval"}, not %', v
        USING ERRCODE = 'invalid_parameter_value', HINT = 'For example {"max": 2, "per": "7 days"}.';
    END IF;
    BEGIN
      IF (v ->> 'per')::interval <= interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_datetime_format';
      END IF;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
      RAISE EXCEPTION 'option frequency_cap.per must be a positive interval, not %', v -> 'per'
        USING ERRCODE = 'invalid_parameter_value', HINT = 'For example "7 days" or "24 hours".';
    END;
  END IF;
  IF o ? 'send_at' THEN
    -- Stored with its UTC offset: a time without a zone means the creator's
    -- TimeZone, not that of whichever session (pg_cron's) launches it.
    BEGIN
      o := jsonb_set(o, '{send_at}', to_jsonb((o ->> 'send_at')::timestamptz));
    EXCEPTION WHEN OTHERS THEN
      RAISE EXCEPTION 'option send_at must be a timestamp, not %', o -> 'send_at'
        USING ERRCODE = 'invalid_parameter_value';
    END;
  END IF;
  IF o ? 'local_time' THEN
    PERFORM segment._time_of_day(o -> 'local_time', 'local_time');
  END IF;
  IF o ? 'quiet_hours' THEN
    v := o -> 'quiet_hours';
    IF jsonb_typeof(v) <> 'object' OR NOT (v ? 'start' AND v ? 'end')
       OR (SELECT count(*) FROM jsonb_object_keys(v)) <> 2 THEN
      RAISE EXCEPTION 'option quiet_hours must be {"start": "HH:MM", "end": "HH:MM"}, not %', v
        USING ERRCODE = 'invalid_parameter_value', HINT = 'For example {"start": "21:00", "end": "08:00"}.';
    END IF;
    PERFORM segment._time_of_day(v -> 'start', 'quiet_hours.start'), segment._time_of_day(v -> 'end', 'quiet_hours.end');
  END IF;
  -- Variants: [{name, template, weight}], template defaulting to the campaign's, weight to 1.
  IF o ? 'variants' THEN
    IF jsonb_typeof(o -> 'variants') <> 'array' OR jsonb_array_length(o -> 'variants') = 0 THEN
      RAISE EXCEPTION 'option variants must be a non-empty array of {"name", "template", "weight"}'
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR v IN SELECT x FROM jsonb_array_elements(o -> 'variants') x LOOP
      IF jsonb_typeof(v) <> 'object' OR jsonb_typeof(v -> 'name') <> 'string' OR btrim(v ->> 'name') = ''
         OR (v ? 'template' AND jsonb_typeof(v -> 'template') <> 'string')
         OR (v ? 'weight' AND jsonb_typeof(v -> 'weight') <> 'number')
         OR EXISTS (SELECT 1 FROM jsonb_object_keys(v) kk WHERE kk NOT IN ('name', 'template', 'weight')) THEN
        RAISE EXCEPTION 'invalid variant %', v
          USING ERRCODE = 'invalid_parameter_value',
                HINT = 'A variant is {"name": "B", "template": "a stored template", "weight": 1}; template and weight are optional.';
      END IF;
      IF v ->> 'name' = ANY (names) THEN
        RAISE EXCEPTION 'variant "%" is named twice', v ->> 'name' USING ERRCODE = 'invalid_parameter_value';
      END IF;
      names := names || (v ->> 'name');
      w := coalesce((v ->> 'weight')::numeric, 1);
      IF w <= 0 THEN
        RAISE EXCEPTION 'variant "%" has weight %: weights must be positive', v ->> 'name', w
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      IF NOT EXISTS (SELECT 1 FROM segment.templates t WHERE t.name = coalesce(v ->> 'template', template)) THEN
        RAISE EXCEPTION 'template "%" does not exist', coalesce(v ->> 'template', template)
          USING ERRCODE = 'undefined_object', HINT = 'segment.create_template() creates it.';
      END IF;
      out := out || jsonb_build_object('name', v ->> 'name', 'template', coalesce(v ->> 'template', template),
                                       'weight', w);
    END LOOP;
    o := jsonb_set(o, '{variants}', out);
  END IF;
  -- ab_test: {test_pct, metric, decide_after}: the test share gets the variants,
  -- the rest waits for the winner.
  IF o ? 'ab_test' THEN
    v := o -> 'ab_test';
    IF jsonb_typeof(v) <> 'object'
       OR EXISTS (SELECT 1 FROM jsonb_object_keys(v) kk WHERE kk NOT IN ('test_pct', 'metric', 'decide_after'))
       OR jsonb_typeof(v -> 'test_pct') IS DISTINCT FROM 'number'
       OR (v ->> 'test_pct')::numeric <= 0 OR (v ->> 'test_pct')::numeric >= 100
       OR coalesce(v ->> 'metric', 'click_rate') NOT IN ('open_rate', 'click_rate', 'conversion_rate') THEN
      RAISE EXCEPTION 'option ab_test must be {"test_pct": 1..99, "metric": "open_rate" | "click_rate" | "conversion_rate", "decide_after": "an interval"}, not %', v
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'For example {"test_pct": 20, "metric": "click_rate", "decide_after": "4 hours"}.';
    END IF;
    IF jsonb_array_length(coalesce(o -> 'variants', '[]')) < 2 THEN
      RAISE EXCEPTION 'option ab_test needs at least two variants' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    o := jsonb_set(o, '{ab_test}', jsonb_build_object(
           'test_pct', v -> 'test_pct', 'metric', coalesce(v ->> 'metric', 'click_rate'),
           'decide_after', coalesce(v -> 'decide_after', '"4 hours"')));
    PERFORM segment._interval_option(o #> '{ab_test,decide_after}', 'ab_test.decide_after');
  END IF;
  RETURN o;
END $$;
COMMENT ON FUNCTION segment._campaign_options(jsonb, text) IS
  'Internal: campaign options checked (an error names the bad one) and normalised';

CREATE FUNCTION segment.create_campaign(name text, segment text, template text, options jsonb DEFAULT '{}')
  RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  cid bigint;
  o   jsonb;
BEGIN
  IF name IS NULL OR btrim(name) = '' THEN
    RAISE EXCEPTION 'campaign name must not be empty' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM segment._segment(segment);
  IF NOT EXISTS (SELECT 1 FROM segment.templates t WHERE t.name = create_campaign.template) THEN
    RAISE EXCEPTION 'template "%" does not exist', template
      USING ERRCODE = 'undefined_object', HINT = 'segment.create_template() creates it.';
  END IF;
  o := segment._campaign_options(options, template);
  IF EXISTS (SELECT 1 FROM segment.campaigns c WHERE c.name = create_campaign.name) THEN
    RAISE EXCEPTION 'campaign "%" already exists', name
      USING ERRCODE = 'duplicate_object', HINT = 'Pick another name.';
  END IF;
  INSERT INTO segment.campaigns (name, segment, template, options)
    VALUES (name, segment, template, o) RETURNING id INTO cid;
  RETURN cid;
END $$;
COMMENT ON FUNCTION segment.create_campaign(text, text, text, jsonb) IS
  'Create a campaign (a draft) mailing a stored template to a segment; options checked; returns its id';

-- When a contact's mail of this campaign is due: send_at (or now), moved to the
-- next local_time in the contact's time zone (UTC when it has none), then out
-- of quiet hours.
CREATE FUNCTION segment._campaign_send_at(o jsonb, time_zone text) RETURNS timestamptz
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  base  timestamptz := greatest(coalesce((o ->> 'send_at')::timestamptz, segment.now()), segment.now());
  tz    text := coalesce(time_zone, 'UTC');
  at    timestamptz := base;
  local timestamp;
  qs    time;
  qe    time;
BEGIN
  IF o ? 'local_time' THEN
    at := ((base AT TIME ZONE tz)::date + (o ->> 'local_time')::time) AT TIME ZONE tz;
    IF at < base THEN
      at := (((base AT TIME ZONE tz)::date + 1) + (o ->> 'local_time')::time) AT TIME ZONE tz;
    END IF;
  END IF;
  IF o ? 'quiet_hours' THEN
    qs := (o #>> '{quiet_hours,start}')::time;
    qe := (o #>> '{quiet_hours,end}')::time;
    local := at AT TIME ZONE tz;
    IF qs < qe AND local::time >= qs AND local::time < qe THEN
      at := (local::date + qe) AT TIME ZONE tz;
    ELSIF qs > qe AND local::time >= qs THEN            -- over midnight, evening part
      at := (local::date + 1 + qe) AT TIME ZONE tz;
    ELSIF qs > qe AND local::time < qe THEN             -- over midnight, morning part
      at := (local::date + qe) AT TIME ZONE tz;
    END IF;
  END IF;
  RETURN at;
END $$;
COMMENT ON FUNCTION segment._campaign_send_at(jsonb, text) IS
  'Internal: the due time of a campaign mail for a contact in time_zone (send_at, local_time, quiet_hours)';

-- A number in [0, 1) fixed by the campaign, the contact and a purpose.
CREATE FUNCTION segment._campaign_draw(campaign_id bigint, contact_id bigint, purpose text) RETURNS float8
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT ((hashtextextended(purpose || ':' || campaign_id || ':' || contact_id, 0) & 281474976710655)::float8
          / 281474976710656.0)
$$;
COMMENT ON FUNCTION segment._campaign_draw(bigint, bigint, text) IS
  'Internal: a deterministic draw in [0, 1) for a campaign and contact (holdout, variant)';

-- Why a contact cannot get this campaign now (not_subscribed, suppressed,
-- capped), or NULL when it can.
CREATE FUNCTION segment._campaign_skip(c segment.campaigns, contact_id bigint) RETURNS text
  LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN ct.status <> 'subscribed' THEN 'not_subscribed'
              WHEN segment.is_suppressed(ct.email) THEN 'suppressed'
              WHEN c.options ? 'frequency_cap' AND
                   (SELECT count(*) FROM segment.messages x
                     WHERE x.contact_id = ct.id AND x.kind = 'marketing' AND x.status NOT IN ('cancelled', 'failed')
                       AND x.created_at > segment.now() - (c.options #>> '{frequency_cap,per}')::interval)
                   >= (c.options #>> '{frequency_cap,max}')::bigint THEN 'capped'
         END
    FROM segment.contacts ct WHERE ct.id = contact_id
$$;
COMMENT ON FUNCTION segment._campaign_skip(segment.campaigns, bigint) IS
  'Internal: why the contact cannot get the campaign now (not_subscribed, suppressed, capped), NULL when it can';

-- Render a variant (NULL: the campaign's template) for a contact and queue it;
-- returns the message id.
CREATE FUNCTION segment._campaign_send(c segment.campaigns, contact_id bigint, variant jsonb) RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  r   record;
  t   record;
  tpl text := coalesce(variant ->> 'template', c.template);
BEGIN
  SELECT * INTO r FROM segment.render_for(tpl, contact_id, jsonb_build_object('campaign', c.name));
  t := segment._tracked_html(r.html, c.options ->> 'from');
  RETURN segment.enqueue(contact_id, r.subject, coalesce(t.html_out, r.html), r.text,
    jsonb_strip_nulls(jsonb_build_object(
      'kind', 'marketing', 'campaign_id', c.id, 'campaign', c.name, 'message_id', t.message_id,
      'from', c.options -> 'from', 'reply_to', c.options -> 'reply_to',
      'unsubscribe_mailto', c.options -> 'unsubscribe_mailto',
      'variant', variant ->> 'name', 'template', tpl,
      'send_at', segment._campaign_send_at(c.options,
                                           (SELECT ct.time_zone FROM segment.contacts ct WHERE ct.id = contact_id)))));
END $$;
COMMENT ON FUNCTION segment._campaign_send(segment.campaigns, bigint, jsonb) IS
  'Internal: render a campaign variant for a contact and queue it; returns the message id';

-- When an A/B test is decided: decide_after from when its test mails go out,
-- not from the launch: at send_at when later, and with local_time a day
-- later still (each contact's next local time comes within a day).
CREATE FUNCTION segment._campaign_decide_at(c segment.campaigns) RETURNS timestamptz
  LANGUAGE sql STABLE AS $$
  SELECT greatest(c.launched_at, (c.options ->> 'send_at')::timestamptz)
         + CASE WHEN c.options ? 'local_time' THEN interval '1 day' ELSE interval '0' END
         + (c.options #>> '{ab_test,decide_after}')::interval
$$;
COMMENT ON FUNCTION segment._campaign_decide_at(segment.campaigns) IS
  'Internal: when the A/B test of a launched campaign is decided (decide_after from send_at, or the launch, plus a day with local_time)';

-- Raise again an error met while queueing a campaign's mail for a contact,
-- naming both: a message that cannot be built (a line break in the contact's
-- name, refused in the To header) does not say whose it was.
CREATE FUNCTION segment._campaign_error(campaign text, contact_id bigint, state text, message text,
                                        detail text, hint text) RETURNS void
  LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = state, MESSAGE = message,
    DETAIL = concat_ws(' ', nullif(detail, ''),
                       format('Campaign "%s", contact %s: this call queued nothing.', campaign, contact_id)),
    HINT = coalesce(nullif(hint, ''), 'Fix or remove the contact (or the template) and launch again.');
END $$;
COMMENT ON FUNCTION segment._campaign_error(text, bigint, text, text, text, text) IS
  'Internal: re-raise an error of a campaign''s mail for a contact, naming the campaign and the contact';

-- With ab_test, once decide_after has passed since the launch: the variant
-- with the best metric (ties: the first listed) goes to every waiting member
-- that is still eligible.  A variant none of whose mail is known delivered
-- yet (no worker report) is rated over its recipients, so opens and clicks
-- recorded from tracking links still decide.  Returns how many were queued.
CREATE FUNCTION segment._campaign_finish_ab(c segment.campaigns) RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  best    text;
  chosen  jsonb;
  w       record;
  why     text;
  queued  bigint := 0;
  e_state text;
  e_msg   text;
  e_detail text;
  e_hint  text;
BEGIN
  IF NOT c.options ? 'ab_test' OR c.status <> 'launched' OR c.winner IS NOT NULL
     OR segment.now() < segment._campaign_decide_at(c) THEN
    RETURN 0;
  END IF;
  SELECT rp.variant INTO best
    FROM segment.campaign_report(c.name) rp
    JOIN jsonb_array_elements(c.options -> 'variants') WITH ORDINALITY AS x(v, i) ON x.v ->> 'name' = rp.variant
   ORDER BY CASE c.options #>> '{ab_test,metric}'
              WHEN 'open_rate' THEN coalesce(rp.open_rate, rp.opened::float8 / nullif(rp.recipients, 0))
              WHEN 'conversion_rate' THEN coalesce(rp.conversion_rate, rp.converted::float8 / nullif(rp.recipients, 0))
              ELSE coalesce(rp.click_rate, rp.clicked::float8 / nullif(rp.recipients, 0)) END DESC NULLS LAST, x.i
   LIMIT 1;
  best := coalesce(best, c.options #>> '{variants,0,name}');
  SELECT x INTO chosen FROM jsonb_array_elements(c.options -> 'variants') x WHERE x ->> 'name' = best;
  UPDATE segment.campaigns SET winner = best, decided_at = segment.now() WHERE id = c.id;
  <<waiting>>
  BEGIN
  FOR w IN SELECT r.contact_id FROM segment.campaign_recipients r
            WHERE r.campaign_id = c.id AND r.outcome = 'waiting' ORDER BY r.contact_id FOR UPDATE LOOP
    why := segment._campaign_skip(c, w.contact_id);
    IF why IS NOT NULL THEN
      UPDATE segment.campaign_recipients SET outcome = why, decided_at = segment.now()
       WHERE campaign_id = c.id AND contact_id = w.contact_id;
    ELSE
      UPDATE segment.campaign_recipients
         SET outcome = 'queued', variant = best, decided_at = segment.now(),
             message_id = segment._campaign_send(c, w.contact_id, chosen)
       WHERE campaign_id = c.id AND contact_id = w.contact_id;
      queued := queued + 1;
    END IF;
  END LOOP;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT;
    PERFORM segment._campaign_error(c.name, w.contact_id, e_state, e_msg, e_detail, e_hint);
  END waiting;
  RETURN queued;
END $$;
COMMENT ON FUNCTION segment._campaign_finish_ab(segment.campaigns) IS
  'Internal: pick the A/B test winner when due and send it to the waiting members; returns how many were queued';

-- Enqueue every eligible member of the campaign's segment not yet decided for
-- (and, with ab_test, the winner once due).
CREATE FUNCTION segment.launch(campaign text) RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  c        segment.campaigns;
  o        jsonb;
  m        record;
  variant  jsonb;
  total_w  numeric;
  draw     float8;
  why      text;
  queued   bigint := 0;
  e_state  text;
  e_msg    text;
  e_detail text;
  e_hint   text;
BEGIN
  c := segment._campaign(campaign);
  -- One launch at a time per campaign; the unique index backs it up.
  PERFORM 1 FROM segment.campaigns x WHERE x.id = c.id FOR UPDATE;
  SELECT * INTO c FROM segment.campaigns x WHERE x.id = c.id;
  IF c.status IN ('paused', 'cancelled') THEN
    RAISE EXCEPTION 'campaign "%" is %', campaign, c.status
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = CASE c.status WHEN 'paused' THEN 'segment.resume() continues it.'
                                 ELSE 'A cancelled campaign cannot be launched again.' END;
  END IF;
  PERFORM segment._segment(c.segment);
  IF c.status = 'draft' THEN
    UPDATE segment.campaigns x SET status = 'launched', launched_at = segment.now(), own_clock = segment._own_clock()
     WHERE x.id = c.id
      RETURNING * INTO c;
  END IF;
  queued := segment._campaign_finish_ab(c);
  SELECT * INTO c FROM segment.campaigns x WHERE x.id = c.id;
  o := c.options;
  SELECT sum((x ->> 'weight')::numeric) INTO total_w FROM jsonb_array_elements(o -> 'variants') x;
  <<members>>
  BEGIN
  FOR m IN
    SELECT sm.id
      FROM segment.segment_members(c.segment) sm(id)
     WHERE NOT EXISTS (SELECT 1 FROM segment.campaign_recipients cr
                        WHERE cr.campaign_id = c.id AND cr.contact_id = sm.id)
     ORDER BY sm.id
  LOOP
    why := segment._campaign_skip(c, m.id);
    IF why IS NULL AND coalesce((o ->> 'holdout_pct')::float8, 0) > 0
       AND segment._campaign_draw(c.id, m.id, 'holdout') * 100 < (o ->> 'holdout_pct')::float8 THEN
      why := 'holdout';
    END IF;
    IF why IS NULL AND o ? 'ab_test' AND c.winner IS NULL
       AND segment._campaign_draw(c.id, m.id, 'test') * 100 >= (o #>> '{ab_test,test_pct}')::float8 THEN
      why := 'waiting';
    END IF;
    IF why IS NOT NULL THEN
      INSERT INTO segment.campaign_recipients (campaign_id, contact_id, outcome) VALUES (c.id, m.id, why);
      CONTINUE;
    END IF;
    variant := NULL;
    IF c.winner IS NOT NULL THEN
      SELECT x INTO variant FROM jsonb_array_elements(o -> 'variants') x WHERE x ->> 'name' = c.winner;
    ELSIF total_w IS NOT NULL THEN
      draw := segment._campaign_draw(c.id, m.id, 'variant') * total_w;
      FOR variant IN SELECT x FROM jsonb_array_elements(o -> 'variants') x LOOP
        draw := draw - (variant ->> 'weight')::float8;
        EXIT WHEN draw < 0;
      END LOOP;
    END IF;
    INSERT INTO segment.campaign_recipients (campaign_id, contact_id, outcome, variant, message_id)
      VALUES (c.id, m.id, 'queued', variant ->> 'name', segment._campaign_send(c, m.id, variant));
    queued := queued + 1;
  END LOOP;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT;
    PERFORM segment._campaign_error(c.name, m.id, e_state, e_msg, e_detail, e_hint);
  END members;
  RETURN queued;
END $$;
COMMENT ON FUNCTION segment.launch(text) IS
  'Enqueue every eligible member of the campaign''s segment not yet decided for (idempotent), and an A/B test''s winner once due; returns how many were queued now';

-- Send the winners of every A/B test that is due (the sending worker calls it
-- every 5 s; pg_cron can too).  A test launched on a session's own clock is
-- decided only by a session on its own clock too, or by its next launch: the
-- worker, on the server's clock, would otherwise decide it at once when that
-- clock is set in the past, before the test had any opens or clicks.
CREATE FUNCTION segment.run_campaigns() RETURNS TABLE (campaign text, winner text, queued bigint)
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  c segment.campaigns;
  n bigint;
BEGIN
  FOR c IN SELECT * FROM segment.campaigns x
            WHERE x.status = 'launched' AND x.options ? 'ab_test' AND x.winner IS NULL
              AND segment.now() >= segment._campaign_decide_at(x)
              -- Times of a session's own clock mean nothing on the server's.
              AND (NOT x.own_clock OR segment._own_clock())
            ORDER BY x.id FOR UPDATE SKIP LOCKED LOOP
    -- A campaign with a contact whose mail cannot be built (as run_flows
    -- tells) stays undecided and is tried again next time; the others go on.
    -- Any other error (settings, locks) fails the call.
    BEGIN
      n := segment._campaign_finish_ab(c);
    EXCEPTION
      WHEN OTHERS THEN
        IF SQLERRM NOT LIKE 'cannot build the message:%' AND SQLSTATE <> '54000' THEN
          RAISE;
        END IF;
        RAISE WARNING 'campaign "%": the A/B test could not be decided: %', c.name, SQLERRM;
        CONTINUE;
    END;
    RETURN QUERY SELECT c.name, (SELECT x.winner FROM segment.campaigns x WHERE x.id = c.id), n;
  END LOOP;
END $$;
COMMENT ON FUNCTION segment.run_campaigns() IS
  'Pick the winner of every A/B test whose decide_after has passed and send it to the rest of the audience';

-- Hold the campaign's waiting messages (queued, retry): the worker leaves them.
CREATE FUNCTION segment.pause(campaign text) RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  c segment.campaigns := segment._campaign(campaign);
  n bigint;
BEGIN
  IF c.status <> 'launched' THEN
    RAISE EXCEPTION 'campaign "%" is %, not launched', campaign, c.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE segment.campaigns SET status = 'paused' WHERE id = c.id;
  UPDATE segment.messages SET status = 'paused'
   WHERE campaign_id = c.id AND status IN ('queued', 'retry');
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
COMMENT ON FUNCTION segment.pause(text) IS
  'Pause a launched campaign: its waiting messages are held (status paused); returns how many';

CREATE FUNCTION segment.resume(campaign text) RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  c segment.campaigns := segment._campaign(campaign);
  n bigint;
BEGIN
  IF c.status <> 'paused' THEN
    RAISE EXCEPTION 'campaign "%" is %, not paused', campaign, c.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE segment.campaigns SET status = 'launched' WHERE id = c.id;
  -- Held retries go back as retries (attempts kept), the rest as queued.
  UPDATE segment.messages SET status = CASE WHEN attempts > 0 THEN 'retry' ELSE 'queued' END
   WHERE campaign_id = c.id AND status = 'paused';
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM segment.wake_worker();
  RETURN n;
END $$;
COMMENT ON FUNCTION segment.resume(text) IS
  'Resume a paused campaign: its held messages go back to the queue; returns how many';

CREATE FUNCTION segment.cancel(campaign text) RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  c segment.campaigns := segment._campaign(campaign);
  n bigint;
BEGIN
  IF c.status = 'cancelled' THEN
    RETURN 0;
  END IF;
  UPDATE segment.campaigns SET status = 'cancelled' WHERE id = c.id;
  UPDATE segment.messages SET status = 'cancelled'
   WHERE campaign_id = c.id AND status IN ('queued', 'retry', 'paused');
  GET DIAGNOSTICS n = ROW_COUNT;
  -- A cancelled campaign cannot be launched: its pg_cron job would only fail.
  -- Only a role that may use pg_cron can have scheduled it (and unschedule it).
  IF (SELECT has_schema_privilege(n.oid, 'USAGE') FROM pg_namespace n WHERE n.nspname = 'cron') THEN
    PERFORM segment.unschedule(campaign);
  END IF;
  RETURN n;
END $$;
COMMENT ON FUNCTION segment.cancel(text) IS
  'Cancel a campaign: messages not yet sent are cancelled (what is being sent now may still go out) and its pg_cron schedule removed; returns how many';

-- Launch on a schedule with pg_cron (job name segment-campaign-<name>).
CREATE FUNCTION segment.schedule(campaign text, cron text) RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  c segment.campaigns := segment._campaign(campaign);
  job bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
    RAISE EXCEPTION 'segment.schedule needs the pg_cron extension'
      USING ERRCODE = 'feature_not_supported',
            HINT = 'Add pg_cron to shared_preload_libraries and CREATE EXTENSION pg_cron in this database, or launch from your own scheduler with SELECT segment.launch(name).';
  END IF;
  IF c.status = 'cancelled' THEN
    RAISE EXCEPTION 'campaign "%" is cancelled', campaign USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  EXECUTE 'SELECT cron.schedule($1, $2, $3)'
    INTO job
    USING 'segment-campaign-' || c.name, cron, format('SELECT segment.launch(%L)', c.name);
  RETURN job;
END $$;
COMMENT ON FUNCTION segment.schedule(text, text) IS
  'Launch a campaign on a cron schedule with pg_cron (each run mails the segment''s new eligible members); returns the job id';

-- Stop launching a campaign on a schedule (the campaign itself goes on).
CREATE FUNCTION segment.unschedule(campaign text) RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  c segment.campaigns := segment._campaign(campaign);
  n bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
    RETURN false;                 -- nothing can have been scheduled
  END IF;
  EXECUTE 'SELECT count(cron.unschedule(j.jobid)) FROM cron.job j WHERE j.jobname = $1'
    INTO n USING 'segment-campaign-' || c.name;
  RETURN n > 0;
END $$;
COMMENT ON FUNCTION segment.unschedule(text) IS
  'Remove the pg_cron schedule segment.schedule() gave a campaign; true when there was one (false without pg_cron)';

CREATE VIEW segment.campaign_status AS
  SELECT c.name, c.status, c.segment, c.template, c.created_at, c.launched_at, c.winner,
         count(r.contact_id) FILTER (WHERE r.outcome = 'queued') AS queued,
         count(r.contact_id) FILTER (WHERE r.outcome = 'holdout') AS holdout,
         count(r.contact_id) FILTER (WHERE r.outcome = 'waiting') AS waiting,
         count(r.contact_id) FILTER (WHERE r.outcome IN ('capped', 'not_subscribed', 'suppressed')) AS skipped,
         (SELECT count(*) FROM segment.messages m WHERE m.campaign_id = c.id AND m.status = 'sent') AS sent,
         (SELECT count(*) FROM segment.messages m WHERE m.campaign_id = c.id AND m.status = 'failed') AS failed
    FROM segment.campaigns c
    LEFT JOIN segment.campaign_recipients r ON r.campaign_id = c.id
   GROUP BY c.id
   ORDER BY c.id;
COMMENT ON VIEW segment.campaign_status IS
  'Every campaign with its audience decisions (queued, holdout, skipped) and delivery (sent, failed)';
