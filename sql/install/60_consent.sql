-- segment: consent (subscribe with double opt-in, confirm) and the rights of the
-- person (export everything held on them, erase them).  doc/consent.md.

-- The confirmation link of a double opt-in: segment.confirm_url + ?token=...,
-- valid 7 days.  The token names the contact, a hash of the address it was
-- sent to (an address changed since does not confirm) and the consent source.
-- SECURITY DEFINER: callers of subscribe need not hold the right to sign tokens.
CREATE FUNCTION segment._confirm_link(contact_id bigint, email text, source text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, segment, pg_temp AS $$
DECLARE
  base text := coalesce(current_setting('segment.confirm_url', true), '');
BEGIN
  IF base = '' THEN
    RAISE EXCEPTION 'segment.confirm_url is not set'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'A double opt-in mails a confirmation link to the endpoint that calls segment.confirm(token).',
            HINT = 'Set it, e.g. ALTER SYSTEM SET segment.confirm_url = ''https://shop.example/confirm'' and SELECT pg_reload_conf(); or subscribe with double_opt_in => false.';
  END IF;
  RETURN base || CASE WHEN strpos(base, '?') > 0 THEN '&' ELSE '?' END || 'token='
         || segment.sign_token('confirm',
                               contact_id::text || ':' || left(encode(segment.address_hash(email), 'hex'), 16)
                               || ':' || source,
                               segment.now() + interval '7 days');
END $$;
COMMENT ON FUNCTION segment._confirm_link(bigint, text, text) IS
  'Internal: the signed double opt-in confirmation link of a contact (valid 7 days)';

-- Subscribe an address (a signup form, an import with consent).  With double
-- opt-in the contact stays pending and gets a confirmation mail (the stored
-- template confirm_subscription when there is one, else a built-in one, with
-- {{confirm_url}}); without, it is subscribed at once.  Returns the contact id.
CREATE FUNCTION segment.subscribe(email text, source text, double_opt_in boolean DEFAULT true)
  RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  cid    bigint;
  c      segment.contacts;
  link   text;
  ctx    jsonb;
BEGIN
  IF email IS NULL THEN
    RAISE EXCEPTION 'email must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF source IS NULL OR btrim(source) = '' THEN
    RAISE EXCEPTION 'consent source must not be empty'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Say where the consent was given, e.g. ''signup_form'' or ''checkout''.';
  END IF;
  IF double_opt_in IS NULL THEN
    RAISE EXCEPTION 'double_opt_in must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  cid := segment.upsert_contact(email);
  SELECT * INTO c FROM segment.contacts WHERE id = cid FOR UPDATE;
  IF c.status IN ('bounced', 'complained') THEN
    RAISE EXCEPTION 'contact % cannot be subscribed: its status is %', cid, c.status
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = format('Address "%s" hard-bounced or complained; it is never mailed again.', c.email),
            HINT = 'Only the address owner can lift this: set the status and call segment.unsuppress(address) when they ask.';
  END IF;
  IF segment.is_suppressed(c.email) THEN
    RAISE EXCEPTION 'contact % cannot be subscribed: address "%" is suppressed', cid, c.email
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'segment.unsuppress(address) removes it from the suppression list.';
  END IF;
  IF c.status = 'subscribed' THEN
    RETURN cid;                      -- consent already given: nothing to do, no mail
  END IF;
  IF NOT double_opt_in THEN
    UPDATE segment.contacts
       SET status = 'subscribed', consent_at = segment.now(), consent_source = source
     WHERE id = cid;
    RETURN cid;
  END IF;
  -- Double opt-in: pending until the link is followed (again, if the form is sent twice).
  IF c.status <> 'pending' THEN
    UPDATE segment.contacts SET status = 'pending' WHERE id = cid;
  END IF;
  link := segment._confirm_link(cid, c.email, source);
  IF EXISTS (SELECT 1 FROM segment.templates t WHERE t.name = 'confirm_subscription') THEN
    PERFORM segment.send(cid, 'confirm_subscription', jsonb_build_object('confirm_url', link));
  ELSE
    ctx := segment.contact_context(cid, jsonb_build_object('confirm_url', link));
    PERFORM segment.enqueue(cid,
      'Please confirm your subscription',
      segment.render('<p>Hi {{ first_name | default: "there" }},</p>'
                     '<p>please confirm that you want to receive our emails:</p>'
                     '<p><a href="{{ confirm_url }}">Yes, subscribe me</a></p>'
                     '<p>If you did not ask for this, ignore this email and you will not hear from us again.</p>',
                     ctx),
      segment.render(E'Hi {{ first_name | default: "there" }},\n\n'
                     || E'please confirm that you want to receive our emails:\n\n{{{ confirm_url }}}\n\n'
                     || E'If you did not ask for this, ignore this email and you will not hear from us again.\n',
                     ctx),
      '{"kind": "transactional", "template": "confirm_subscription"}');
  END IF;
  RETURN cid;
END $$;
COMMENT ON FUNCTION segment.subscribe(text, text, boolean) IS
  'Record consent for an address: subscribed at once, or (double opt-in, the default) pending with a confirmation mail; returns the contact id';

-- The endpoint behind segment.confirm_url calls this with the token.
-- SECURITY DEFINER: the endpoint runs as segment_app, which cannot verify tokens itself.
CREATE FUNCTION segment.confirm(token text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, segment, pg_temp AS $$
DECLARE
  payload text := segment.verify_token('confirm', token);
  cid     bigint := split_part(payload, ':', 1)::bigint;
  hash    text := split_part(payload, ':', 2);
  source  text := substr(payload, length(split_part(payload, ':', 1)) + length(hash) + 3);
  c       segment.contacts;
BEGIN
  IF token IS NULL THEN
    RAISE EXCEPTION 'token must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT * INTO c FROM segment.contacts WHERE id = cid FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'contact % does not exist', cid
      USING ERRCODE = 'undefined_object', DETAIL = 'The contact was deleted after the confirmation mail was sent.';
  END IF;
  IF left(encode(segment.address_hash(c.email), 'hex'), 16) <> hash THEN
    RAISE EXCEPTION 'the address of contact % changed after the confirmation mail was sent', cid
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Subscribe the new address with segment.subscribe: it gets its own confirmation mail.';
  END IF;
  IF c.status IN ('bounced', 'complained') THEN
    RAISE EXCEPTION 'contact % cannot be subscribed: its status is %', cid, c.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  -- subscribe() leaves the contact pending when it mails the link, so an
  -- unsubscribed contact unsubscribed after that: an old link (or a mail
  -- scanner following it) must not take the unsubscribe back.
  IF c.status = 'unsubscribed' THEN
    RAISE EXCEPTION 'contact % unsubscribed after the confirmation mail was sent', cid
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'To subscribe again, call segment.subscribe: it mails a new confirmation link.';
  END IF;
  IF c.status <> 'subscribed' THEN
    UPDATE segment.contacts
       SET status = 'subscribed', consent_at = segment.now(), consent_source = source
     WHERE id = cid;
  END IF;
  RETURN cid;
END $$;
COMMENT ON FUNCTION segment.confirm(text) IS
  'Confirm a double opt-in from its signed token: the contact becomes subscribed (consent time and source recorded); idempotent; returns the contact id';

-- Everything held on a person, as one document (right of access, GDPR art. 15):
-- every table row that names the contact, whole, with its columns as keys.
CREATE FUNCTION segment.export_contact(contact_id bigint) RETURNS jsonb
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  c segment.contacts;
BEGIN
  PERFORM segment._check_contact(contact_id);
  SELECT * INTO c FROM segment.contacts x WHERE x.id = contact_id;
  RETURN jsonb_build_object(
    'contact', to_jsonb(c),
    'events', coalesce((SELECT jsonb_agg(to_jsonb(e) - 'contact_id' ORDER BY e.occurred_at, e.id)
                          FROM segment.events e WHERE e.contact_id = export_contact.contact_id), '[]'),
    'event_stats', coalesce((SELECT jsonb_agg(to_jsonb(s) - 'contact_id' ORDER BY s.type)
                               FROM segment.event_stats s WHERE s.contact_id = export_contact.contact_id), '[]'),
    'tags', coalesce((SELECT jsonb_agg(to_jsonb(t) - 'contact_id' ORDER BY t.tag)
                        FROM segment.contact_tags t WHERE t.contact_id = export_contact.contact_id), '[]'),
    'segments', coalesce((SELECT jsonb_agg(jsonb_build_object('segment', g.name) || (to_jsonb(m) - 'contact_id' - 'segment_id')
                                           ORDER BY g.name)
                            FROM segment.segment_members m JOIN segment.segments g ON g.id = m.segment_id
                           WHERE m.contact_id = export_contact.contact_id), '[]'),
    'stage', (SELECT to_jsonb(s) - 'contact_id' FROM segment.contact_stages s
               WHERE s.contact_id = export_contact.contact_id),
    'history', coalesce((SELECT jsonb_agg(to_jsonb(h) - 'contact_id' ORDER BY h.id)
                           FROM segment.changes h WHERE h.contact_id = export_contact.contact_id), '[]'),
    'campaigns', coalesce((SELECT jsonb_agg(jsonb_build_object('campaign', g.name) || (to_jsonb(r) - 'contact_id' - 'campaign_id')
                                            ORDER BY r.campaign_id)
                             FROM segment.campaign_recipients r JOIN segment.campaigns g ON g.id = r.campaign_id
                            WHERE r.contact_id = export_contact.contact_id), '[]'),
    -- The contact's messages, and those to its address left by a deleted contact.
    'messages', coalesce((SELECT jsonb_agg(to_jsonb(m) - 'contact_id' ORDER BY m.id)
                            FROM (SELECT * FROM segment.messages m1 WHERE m1.contact_id = export_contact.contact_id
                                  UNION ALL
                                  SELECT * FROM segment.messages m2 WHERE m2.contact_id IS NULL AND m2.rcpt_to = c.email) m), '[]'),
    'flows', coalesce((SELECT jsonb_agg(jsonb_build_object('flow', f.name) || (to_jsonb(r) - 'contact_id' - 'flow_id')
                                        ORDER BY r.id)
                         FROM segment.flow_runs r JOIN segment.flows f ON f.id = r.flow_id
                        WHERE r.contact_id = export_contact.contact_id), '[]'),
    'message_events', coalesce((SELECT jsonb_agg(to_jsonb(e) - 'contact_id' ORDER BY e.id)
                                  FROM segment.message_events e
                                 WHERE e.contact_id = export_contact.contact_id), '[]'),
    'suppression', (SELECT to_jsonb(s) - 'address_hash' FROM segment.suppressions s
                     WHERE s.address_hash = segment.address_hash(c.email)));
END $$;
COMMENT ON FUNCTION segment.export_contact(bigint) IS
  'Everything held on a contact as one jsonb document: profile, events, aggregates, tags, segments, stage, history, campaign decisions, flow runs, messages, suppression';

-- Erase a person (right to erasure, GDPR art. 17): the profile and everything
-- that hangs on it (events, aggregates, tags, memberships, stage, history,
-- flow runs and what waits for run_flows), every message to them, queued or
-- sent (theirs, and those to their address that a deleted contact left); what
-- stays is a suppression entry
-- keyed by the SHA-256 of the address, without the address, so an import of the
-- same address later is never mailed.  A message the worker is sending at this
-- moment may still go out.
CREATE FUNCTION segment.forget(contact_id bigint) RETURNS void
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  addr text;
BEGIN
  PERFORM segment._check_contact(contact_id);
  SELECT c.email INTO addr FROM segment.contacts c WHERE c.id = contact_id FOR UPDATE;
  INSERT INTO segment.suppressions AS s (address_hash, address, reason)
    VALUES (segment.address_hash(addr), NULL, 'forgotten')
    ON CONFLICT (address_hash) DO UPDATE SET address = NULL, detail = NULL;
  DELETE FROM segment.messages m WHERE m.contact_id = forget.contact_id;
  DELETE FROM segment.messages m WHERE m.contact_id IS NULL AND m.rcpt_to = addr;
  DELETE FROM segment.contacts c WHERE c.id = forget.contact_id;
  -- The change feed has no foreign key (it outlives contacts); last, so that
  -- rows written while the contact's memberships went are gone too.
  DELETE FROM segment.changes h WHERE h.contact_id = forget.contact_id;
  -- Events and field changes not yet read by run_flows (no foreign key either).
  DELETE FROM segment.flow_inbox i WHERE i.contact_id = forget.contact_id;
END $$;
COMMENT ON FUNCTION segment.forget(bigint) IS
  'Erase a contact and everything held on them (events, tags, memberships, history, flow runs, messages); keeps only a hashed suppression entry';
