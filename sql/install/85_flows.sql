-- segment: triggered flows — a mail (and tag actions) when something happens to
-- a contact: an event, a profile field change, entering or leaving a segment, a
-- lifecycle stage, a tag (doc/flows.md).  segment.run_flows() (the sending
-- worker every 5 s, or pg_cron) turns what happened into runs and sends the
-- runs that are due.

CREATE TABLE segment.flows (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name         text NOT NULL UNIQUE CONSTRAINT flows_name_check CHECK (btrim(name) <> ''),
  trigger_kind text NOT NULL
               CHECK (trigger_kind IN ('event', 'field', 'segment_enter', 'segment_exit', 'stage', 'tag')),
  trigger_name text NOT NULL,
  template     text NOT NULL,
  options      jsonb NOT NULL DEFAULT '{}',
  active       boolean NOT NULL DEFAULT true,
  created_at   timestamptz NOT NULL DEFAULT segment.now(),
  -- Where this flow is in segment.changes: rows are read in (xid, id) order, and
  -- only from finished transactions, so none is skipped or read twice.
  cursor_xid   xid8 NOT NULL DEFAULT pg_current_xact_id(),
  cursor_id    bigint NOT NULL DEFAULT 0,
  own_clock    boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE segment.flows IS
  'Triggered flows: trigger (event:, field:, segment_enter:, segment_exit:, stage:, tag:), template and options';
COMMENT ON COLUMN segment.flows.own_clock IS
  'Created in a session with a segment.clock_override of its own (SET): its due runs are sent only by such sessions, not by the worker or pg_cron on the server''s clock';

-- Events and field changes that flows wait for, captured by triggers that exist
-- only while such flows do (segment.track pays nothing otherwise).
CREATE TABLE segment.flow_inbox (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  kind       text NOT NULL CHECK (kind IN ('event', 'field')),
  name       text NOT NULL,
  contact_id bigint NOT NULL,
  at         timestamptz NOT NULL DEFAULT segment.now()
);
-- A contact's rows, for forget: the inbox can hold a backlog when run_flows
-- is not running, and its rows live until run_flows reads them.
CREATE INDEX flow_inbox_contact ON segment.flow_inbox (contact_id);
COMMENT ON TABLE segment.flow_inbox IS
  'Internal: events and profile field changes waiting for segment.run_flows (only kinds some flow listens to)';

-- One row per time a flow fired for a contact: waiting until due_at, then sent,
-- cancelled by the unless rule, or skipped.
CREATE TABLE segment.flow_runs (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  flow_id      bigint NOT NULL REFERENCES segment.flows (id) ON DELETE CASCADE,
  contact_id   bigint NOT NULL REFERENCES segment.contacts (id) ON DELETE CASCADE,
  triggered_at timestamptz NOT NULL,
  due_at       timestamptz NOT NULL,
  status       text NOT NULL DEFAULT 'waiting'
               CHECK (status IN ('waiting', 'sent', 'cancelled', 'skipped')),
  detail       text,
  message_id   bigint,
  done_at      timestamptz
);
CREATE INDEX flow_runs_due ON segment.flow_runs (due_at, id) WHERE status = 'waiting';
-- Contact first: once_per (flow and contact) and a contact's runs alike
-- (export_contact, and the cascade when a contact is deleted).
CREATE INDEX flow_runs_contact ON segment.flow_runs (contact_id, flow_id, triggered_at);
COMMENT ON TABLE segment.flow_runs IS
  'Each firing of a flow for a contact: waiting (until due_at), sent, cancelled (unless held) or skipped (and why)';

-- Capture triggers (statement level, transition tables): events of the types
-- event flows listen to, changes of the fields field flows listen to.
CREATE FUNCTION segment._flow_events_capture() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO segment.flow_inbox (kind, name, contact_id, at)
    SELECT 'event', n.type, n.contact_id, n.occurred_at
      FROM new_events n
     WHERE n.type IN (SELECT f.trigger_name FROM segment.flows f WHERE f.trigger_kind = 'event' AND f.active);
  RETURN NULL;
END $$;
COMMENT ON FUNCTION segment._flow_events_capture() IS 'Internal: events that event flows listen to, into the flow inbox';

CREATE FUNCTION segment._flow_fields_capture() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO segment.flow_inbox (kind, name, contact_id)
    SELECT 'field', f.trigger_name, n.id
      FROM new_contacts n JOIN old_contacts o ON o.id = n.id
      JOIN (SELECT DISTINCT trigger_name FROM segment.flows WHERE trigger_kind = 'field' AND active) f ON true
     WHERE coalesce(to_jsonb(n) -> f.trigger_name, n.attrs -> f.trigger_name)
           IS DISTINCT FROM coalesce(to_jsonb(o) -> f.trigger_name, o.attrs -> f.trigger_name);
  RETURN NULL;
END $$;
COMMENT ON FUNCTION segment._flow_fields_capture() IS 'Internal: profile field changes that field flows listen to, into the flow inbox';

-- Create or drop the capture triggers so they exist exactly while active flows need them.
-- SECURITY DEFINER: editors define flows but do not own the tables.
CREATE FUNCTION segment._flow_sync_triggers() RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, segment, pg_temp AS $$
DECLARE
  want_events boolean := EXISTS (SELECT 1 FROM segment.flows WHERE trigger_kind = 'event' AND active);
  want_fields boolean := EXISTS (SELECT 1 FROM segment.flows WHERE trigger_kind = 'field' AND active);
  have_events boolean := EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'segment.events'::regclass
                                   AND tgname = 'events_60_flows');
  have_fields boolean := EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'segment.contacts'::regclass
                                   AND tgname = 'contacts_60_flows');
BEGIN
  IF want_events AND NOT have_events THEN
    CREATE TRIGGER events_60_flows AFTER INSERT ON segment.events
      REFERENCING NEW TABLE AS new_events
      FOR EACH STATEMENT EXECUTE FUNCTION segment._flow_events_capture();
  ELSIF have_events AND NOT want_events THEN
    DROP TRIGGER events_60_flows ON segment.events;
  END IF;
  IF want_fields AND NOT have_fields THEN
    CREATE TRIGGER contacts_60_flows AFTER UPDATE ON segment.contacts
      REFERENCING OLD TABLE AS old_contacts NEW TABLE AS new_contacts
      FOR EACH STATEMENT EXECUTE FUNCTION segment._flow_fields_capture();
  ELSIF have_fields AND NOT want_fields THEN
    DROP TRIGGER contacts_60_flows ON segment.contacts;
  END IF;
END $$;
COMMENT ON FUNCTION segment._flow_sync_triggers() IS
  'Internal: the inbox capture triggers exist exactly while active event / field flows do';

-- The flow row of a name, or the error for an unknown one.
CREATE FUNCTION segment._flow(name text) RETURNS segment.flows
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  f segment.flows;
BEGIN
  SELECT * INTO f FROM segment.flows x WHERE x.name = _flow.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'flow "%" does not exist', name
      USING ERRCODE = 'undefined_object', HINT = 'segment.create_flow() creates it.';
  END IF;
  RETURN f;
END $$;
COMMENT ON FUNCTION segment._flow(text) IS 'Internal: the flow of that name, or an error';

CREATE FUNCTION segment.create_flow(name text, trigger text, template text, options jsonb DEFAULT '{}')
  RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  kind  text := split_part(trigger, ':', 1);
  tname text := substr(trigger, length(split_part(trigger, ':', 1)) + 2);
  o     jsonb := coalesce(options, '{}');
  k     text;
  fid   bigint;
BEGIN
  IF name IS NULL OR btrim(name) = '' THEN
    RAISE EXCEPTION 'flow name must not be empty' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF trigger IS NULL OR strpos(trigger, ':') = 0 OR btrim(tname) = ''
     OR kind NOT IN ('event', 'field', 'segment_enter', 'segment_exit', 'stage', 'tag') THEN
    RAISE EXCEPTION 'invalid flow trigger "%"', coalesce(trigger, 'NULL')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A trigger is event:<type>, field:<name>, segment_enter:<segment>, segment_exit:<segment>, stage:<stage> or tag:<tag>.';
  END IF;
  IF kind IN ('segment_enter', 'segment_exit') THEN
    PERFORM segment._segment(tname);
  ELSIF kind = 'stage' AND NOT EXISTS (SELECT 1 FROM segment.stages s WHERE s.name = tname) THEN
    RAISE EXCEPTION 'stage "%" does not exist', tname
      USING ERRCODE = 'undefined_object', HINT = 'segment.define_stage() or segment.install_default_stages() defines it.';
  ELSIF kind = 'event' AND tname !~ '^[a-z_][a-z0-9_]*$' THEN
    RAISE EXCEPTION 'invalid event type "%"', tname
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Event types are lower-case identifiers such as purchase or cart_add.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM segment.templates t WHERE t.name = create_flow.template) THEN
    RAISE EXCEPTION 'template "%" does not exist', template
      USING ERRCODE = 'undefined_object', HINT = 'segment.create_template() creates it.';
  END IF;
  IF jsonb_typeof(o) <> 'object' THEN
    RAISE EXCEPTION 'flow options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR k IN SELECT jsonb_object_keys(o) LOOP
    IF k NOT IN ('delay', 'unless', 'once_per', 'tag_add', 'tag_remove', 'from', 'reply_to', 'unsubscribe_mailto') THEN
      RAISE EXCEPTION 'unknown flow option "%"', k
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Options are delay, unless, once_per, tag_add, tag_remove, from, reply_to and unsubscribe_mailto.';
    END IF;
  END LOOP;
  PERFORM segment._check_sender_options(o);
  IF o ? 'delay' THEN PERFORM segment._interval_option(o -> 'delay', 'delay'); END IF;
  IF o ? 'once_per' AND o ->> 'once_per' IS DISTINCT FROM 'ever' THEN
    PERFORM segment._interval_option(o -> 'once_per', 'once_per');
  END IF;
  IF o ? 'unless' THEN
    IF jsonb_typeof(o -> 'unless') <> 'string' THEN
      RAISE EXCEPTION 'option unless must be a rule as a string' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    o := jsonb_set(o, '{unless}', to_jsonb(((o ->> 'unless')::segment.rule)::text));  -- checked, canonical
  END IF;
  FOREACH k IN ARRAY ARRAY['tag_add', 'tag_remove'] LOOP
    IF o ? k AND (jsonb_typeof(o -> k) <> 'string' OR btrim(o ->> k) = '') THEN
      RAISE EXCEPTION 'option % must be a tag name', k USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  IF EXISTS (SELECT 1 FROM segment.flows f WHERE f.name = create_flow.name) THEN
    RAISE EXCEPTION 'flow "%" already exists', name USING ERRCODE = 'duplicate_object', HINT = 'Pick another name.';
  END IF;
  INSERT INTO segment.flows (name, trigger_kind, trigger_name, template, options, cursor_id, own_clock)
    VALUES (name, kind, tname, template, o, (SELECT coalesce(max(c.id), 0) FROM segment.changes c WHERE c.xid = pg_current_xact_id()),
            segment._own_clock())
    RETURNING id INTO fid;
  PERFORM segment._flow_sync_triggers();
  RETURN fid;
END $$;
COMMENT ON FUNCTION segment.create_flow(text, text, text, jsonb) IS
  'Create a triggered flow (event:, field:, segment_enter:, segment_exit:, stage:, tag:) mailing a template, with delay, unless, once_per and tag actions';

CREATE FUNCTION segment.drop_flow(name text) RETURNS void
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM segment._flow(name);
  DELETE FROM segment.flows f WHERE f.name = drop_flow.name;
  PERFORM segment._flow_sync_triggers();
END $$;
COMMENT ON FUNCTION segment.drop_flow(text) IS 'Drop a flow and its runs (waiting runs are not sent)';

-- A flow's tag actions for a contact: tag_add (source flow), then tag_remove.
CREATE FUNCTION segment._flow_tag_actions(contact_id bigint, options jsonb) RETURNS void
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF options ? 'tag_add' THEN
    PERFORM segment.tag(contact_id, options ->> 'tag_add', NULL, 'flow');
  END IF;
  IF options ? 'tag_remove' THEN
    PERFORM segment.untag(contact_id, options ->> 'tag_remove');
  END IF;
END $$;
COMMENT ON FUNCTION segment._flow_tag_actions(bigint, jsonb) IS
  'Internal: apply a flow''s tag_add / tag_remove options to a contact';

-- Turn what happened into runs, then carry out the runs that are due.  Returns
-- one row per outcome kind with its count.  Schedule it with pg_cron every minute.
CREATE FUNCTION segment.run_flows() RETURNS TABLE (outcome text, runs bigint)
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  horizon xid8 := pg_snapshot_xmin(pg_current_snapshot());
  now_    timestamptz := segment.now();
  mine    boolean := segment._own_clock();
  f       segment.flows;
  r       record;
  t       record;
  last    record;
  tracked record;
  why     text;
  mid     bigint;
  started int := 0;
  skipped int := 0;
  sent    int := 0;
  held    int := 0;
BEGIN
  -- 1. New triggers.  Change-feed flows read segment.changes past their cursor,
  --    in (xid, id) order, from transactions finished before this one began.
  FOR f IN SELECT * FROM segment.flows WHERE active ORDER BY id FOR UPDATE LOOP
    IF f.trigger_kind IN ('segment_enter', 'segment_exit', 'stage', 'tag') THEN
      last := NULL;
      FOR t IN
        SELECT c.xid, c.id, c.contact_id, c.at
          FROM segment.changes c
         WHERE c.xid < horizon AND (c.xid, c.id) > (f.cursor_xid, f.cursor_id)
           AND c.kind = CASE f.trigger_kind WHEN 'stage' THEN 'stage_change' WHEN 'tag' THEN 'tag_add'
                                            ELSE f.trigger_kind END
           AND c.name = f.trigger_name
         ORDER BY c.xid, c.id
      LOOP
        INSERT INTO segment.flow_runs (flow_id, contact_id, triggered_at, due_at)
          SELECT f.id, t.contact_id, t.at, t.at + coalesce((f.options ->> 'delay')::interval, interval '0')
           WHERE EXISTS (SELECT 1 FROM segment.contacts x WHERE x.id = t.contact_id);
        last := t;
      END LOOP;
      -- The cursor moves past every finished row, matching or not.
      UPDATE segment.flows x
         SET (cursor_xid, cursor_id) = (SELECT c.xid, c.id FROM segment.changes c
                                         WHERE c.xid < horizon AND (c.xid, c.id) > (f.cursor_xid, f.cursor_id)
                                         ORDER BY c.xid DESC, c.id DESC LIMIT 1)
       WHERE x.id = f.id
         AND EXISTS (SELECT 1 FROM segment.changes c
                      WHERE c.xid < horizon AND (c.xid, c.id) > (f.cursor_xid, f.cursor_id));
    END IF;
  END LOOP;
  --    Inbox flows (events, fields): every finished inbox row starts a run of
  --    each active flow listening to it, and leaves the inbox.
  WITH taken AS (
    DELETE FROM segment.flow_inbox i
     WHERE i.id IN (SELECT i2.id FROM segment.flow_inbox i2 WHERE i2.xid < horizon FOR UPDATE SKIP LOCKED)
    RETURNING i.kind, i.name, i.contact_id, i.at)
  INSERT INTO segment.flow_runs (flow_id, contact_id, triggered_at, due_at)
    SELECT fl.id, tk.contact_id, tk.at, tk.at + coalesce((fl.options ->> 'delay')::interval, interval '0')
      FROM taken tk
      JOIN segment.flows fl ON fl.active AND fl.trigger_kind = tk.kind AND fl.trigger_name = tk.name
      JOIN segment.contacts x ON x.id = tk.contact_id
     WHERE tk.at >= fl.created_at;             -- a backfill of old events starts nothing
  -- 2. Due runs, oldest first.
  FOR r IN
    SELECT fr.id, fr.flow_id, fr.contact_id, fr.triggered_at, fl.name, fl.template, fl.options,
           fl.trigger_kind, fl.trigger_name
      FROM segment.flow_runs fr JOIN segment.flows fl ON fl.id = fr.flow_id
     WHERE fr.status = 'waiting' AND fr.due_at <= now_ AND fl.active
       -- a flow made on a session's own clock is timed by such sessions only
       AND (NOT fl.own_clock OR mine)
     ORDER BY fr.due_at, fr.id
       FOR UPDATE OF fr SKIP LOCKED
  LOOP
    started := started + 1;
    -- once_per: not again for this contact within the window (or ever).
    IF r.options ? 'once_per' AND EXISTS (
         SELECT 1 FROM segment.flow_runs p
          WHERE p.flow_id = r.flow_id AND p.contact_id = r.contact_id AND p.status = 'sent'
            AND (r.options ->> 'once_per' = 'ever'
                 OR p.triggered_at > r.triggered_at - (r.options ->> 'once_per')::interval)) THEN
      UPDATE segment.flow_runs SET status = 'skipped', detail = 'once_per', done_at = now_ WHERE id = r.id;
      skipped := skipped + 1;
      CONTINUE;
    END IF;
    IF r.options ? 'unless' AND segment.matches(r.contact_id, (r.options ->> 'unless')::segment.rule) THEN
      UPDATE segment.flow_runs SET status = 'cancelled', detail = 'unless: ' || (r.options ->> 'unless'),
                                   done_at = now_ WHERE id = r.id;
      held := held + 1;
      CONTINUE;
    END IF;
    SELECT CASE WHEN c.status <> 'subscribed' THEN 'contact is ' || c.status
                WHEN segment.is_suppressed(c.email) THEN 'address is suppressed' END
      INTO why FROM segment.contacts c WHERE c.id = r.contact_id;
    IF why IS NOT NULL THEN
      -- No mail without consent, but the flow did fire: its tags still move.
      PERFORM segment._flow_tag_actions(r.contact_id, r.options);
      UPDATE segment.flow_runs SET status = 'skipped', done_at = now_, detail = why WHERE id = r.id;
      skipped := skipped + 1;
      CONTINUE;
    END IF;
    -- One contact's mail that cannot be built (a line break in its name,
    -- refused in a header; a template recursing on its data) skips that run,
    -- not every flow's runs behind it.  Anything else (settings such as
    -- segment.from_address missing, locks) fails the call: the runs wait.
    BEGIN
      SELECT * INTO t FROM segment.render_for(r.template, r.contact_id,
                                               jsonb_build_object('flow', r.name, 'campaign', r.name));
      tracked := segment._tracked_html(t.html, r.options ->> 'from');
      mid := segment.enqueue(r.contact_id, t.subject, coalesce(tracked.html_out, t.html), t.text,
                             jsonb_strip_nulls(jsonb_build_object('kind', 'marketing', 'flow_id', r.flow_id,
                                                                  'template', r.template, 'campaign', r.name,
                                                                  'message_id', tracked.message_id,
                                                                  'from', r.options -> 'from',
                                                                  'reply_to', r.options -> 'reply_to',
                                                                  'unsubscribe_mailto', r.options -> 'unsubscribe_mailto')));
      PERFORM segment._flow_tag_actions(r.contact_id, r.options);
    EXCEPTION
      WHEN OTHERS THEN
        IF SQLERRM NOT LIKE 'cannot build the message:%' AND SQLSTATE <> '54000' THEN
          RAISE;
        END IF;
        UPDATE segment.flow_runs SET status = 'skipped', done_at = now_, detail = 'error: ' || SQLERRM WHERE id = r.id;
        RAISE WARNING 'flow "%": run % for contact % skipped: %', r.name, r.id, r.contact_id, SQLERRM;
        skipped := skipped + 1;
        CONTINUE;
    END;
    UPDATE segment.flow_runs SET status = 'sent', message_id = mid, done_at = now_ WHERE id = r.id;
    sent := sent + 1;
  END LOOP;
  RETURN QUERY VALUES ('sent', sent::bigint), ('cancelled', held::bigint), ('skipped', skipped::bigint),
                      ('waiting', (SELECT count(*) FROM segment.flow_runs w WHERE w.status = 'waiting'));
END $$;
COMMENT ON FUNCTION segment.run_flows() IS
  'Start flow runs for what happened since the last call, then send the due ones (unless / once_per checked); the sending worker calls it every 5 s';

CREATE FUNCTION segment.pause_flow(name text) RETURNS void
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM segment._flow(name);
  UPDATE segment.flows f SET active = false WHERE f.name = pause_flow.name;
  PERFORM segment._flow_sync_triggers();
END $$;
COMMENT ON FUNCTION segment.pause_flow(text) IS
  'Pause a flow: nothing new starts and waiting runs wait; triggers meanwhile are not caught up on resume';

CREATE FUNCTION segment.resume_flow(name text) RETURNS void
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM segment._flow(name);
  UPDATE segment.flows f
     SET active = true, cursor_xid = pg_current_xact_id(),
         cursor_id = (SELECT coalesce(max(c.id), 0) FROM segment.changes c WHERE c.xid = pg_current_xact_id())
   WHERE f.name = resume_flow.name AND NOT f.active;
  PERFORM segment._flow_sync_triggers();
END $$;
COMMENT ON FUNCTION segment.resume_flow(text) IS 'Resume a paused flow from now on; its waiting runs go on';

CREATE VIEW segment.flow_status AS
  SELECT f.name, f.trigger_kind || ':' || f.trigger_name AS trigger, f.template, f.active,
         count(r.id) FILTER (WHERE r.status = 'waiting') AS waiting,
         count(r.id) FILTER (WHERE r.status = 'sent') AS sent,
         count(r.id) FILTER (WHERE r.status = 'cancelled') AS cancelled,
         count(r.id) FILTER (WHERE r.status = 'skipped') AS skipped
    FROM segment.flows f LEFT JOIN segment.flow_runs r ON r.flow_id = f.id
   GROUP BY f.id
   ORDER BY f.id;
COMMENT ON VIEW segment.flow_status IS 'Every flow with its trigger and its runs by status';

-- Who mails with a template or to a segment: the flows and the campaigns not
-- cancelled that would fail (or, for a flow, stop every due run of
-- run_flows) once it is dropped.  NULL when nobody.
CREATE FUNCTION segment._mail_users(kind text, name text) RETURNS text
  LANGUAGE sql STABLE AS $$
  SELECT string_agg(u, ', ' ORDER BY u) FROM (
    SELECT format('campaign "%s"', c.name) AS u
      FROM segment.campaigns c
     WHERE c.status <> 'cancelled'
       AND CASE _mail_users.kind WHEN 'template' THEN c.template = _mail_users.name
                                                 OR c.options -> 'variants' @> jsonb_build_array(jsonb_build_object('template', _mail_users.name))
                                 ELSE c.segment = _mail_users.name END
    UNION ALL
    SELECT format('flow "%s"', f.name)
      FROM segment.flows f
     WHERE CASE _mail_users.kind WHEN 'template' THEN f.template = _mail_users.name
                                 ELSE (f.trigger_kind IN ('segment_enter', 'segment_exit') AND f.trigger_name = _mail_users.name)
                                      OR segment.rule_dependencies((f.options ->> 'unless')::segment.rule) -> 'segments' ? _mail_users.name END
  ) x
$$;
COMMENT ON FUNCTION segment._mail_users(text, text) IS
  'Internal: the campaigns (not cancelled) and flows that use a template or a segment (kind template or segment), NULL when none';
