-- segment: signed tokens for links in mail, and one-click unsubscribe.

CREATE FUNCTION segment.sign_token(purpose text, payload text, expires_at timestamptz) RETURNS text
  AS 'MODULE_PATHNAME', 'segment_sign_token'
  LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION segment.sign_token(text, text, timestamptz) IS
  'A URL-safe token carrying payload for purpose, signed with HMAC-SHA256(segment.secret), valid until expires_at';

CREATE FUNCTION segment.verify_token(purpose text, token text) RETURNS text
  AS 'MODULE_PATHNAME', 'segment_verify_token'
  LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION segment.verify_token(text, text) IS
  'The payload of a token made by sign_token for the same purpose; an error when forged, malformed or expired';

-- The per-contact unsubscribe link put in List-Unsubscribe and templates
-- ({{unsubscribe_url}}).  NULL when segment.unsubscribe_url is not configured.
-- _unsubscribe_link makes it for a contact the caller already holds (the
-- render context's row, a queued message's contact); unsubscribe_url, the
-- public function, first checks that the contact exists: a link for an id
-- that names no contact would lead to an error page when clicked.
-- SECURITY DEFINER: the application and editor roles build links without the
-- right to sign arbitrary tokens themselves.
CREATE FUNCTION segment._unsubscribe_link(contact_id bigint, campaign text DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, segment, pg_temp AS $$
  SELECT CASE WHEN coalesce(current_setting('segment.unsubscribe_url'), '') = '' OR contact_id IS NULL THEN NULL
         ELSE current_setting('segment.unsubscribe_url')
              || CASE WHEN strpos(current_setting('segment.unsubscribe_url'), '?') > 0 THEN '&' ELSE '?' END
              || 'token='
              || segment.sign_token('unsubscribe', contact_id::text || ':' || coalesce(campaign, ''),
                                    segment.now() + interval '1 year')
         END
$$;
COMMENT ON FUNCTION segment._unsubscribe_link(bigint, text) IS
  'unsubscribe_url without the check that the contact exists (internal: render context, worker)';

CREATE FUNCTION segment.unsubscribe_url(contact_id bigint, campaign text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, segment, pg_temp AS $$
BEGIN
  IF contact_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM segment.contacts c WHERE c.id = unsubscribe_url.contact_id) THEN
    RAISE EXCEPTION 'contact % does not exist', contact_id
      USING ERRCODE = 'undefined_object',
            HINT = 'Create it first with segment.upsert_contact(email).';
  END IF;
  RETURN segment._unsubscribe_link(contact_id, campaign);
END
$$;
COMMENT ON FUNCTION segment.unsubscribe_url(bigint, text) IS
  'The signed one-click unsubscribe link of a contact (valid one year), or NULL when segment.unsubscribe_url is not set';

-- One-click unsubscribe (RFC 8058): the endpoint behind segment.unsubscribe_url
-- calls this with the token.  Idempotent; bounced and complained contacts keep
-- their status.  A link from a campaign's mail also records an unsubscribe
-- event on that message (once), so the campaign's report counts it.  Returns
-- the contact id.
-- SECURITY DEFINER: the endpoint runs as segment_app, which cannot verify tokens itself.
CREATE FUNCTION segment.unsubscribe(token text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, segment, pg_temp AS $$
DECLARE
  payload text := segment.verify_token('unsubscribe', token);
  cid bigint := split_part(payload, ':', 1)::bigint;
  campaign text := substr(payload, length(split_part(payload, ':', 1)) + 2);
  m segment.messages;
BEGIN
  IF token IS NULL THEN
    RAISE EXCEPTION 'token must not be null' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  UPDATE segment.contacts c SET status = 'unsubscribed'
   WHERE c.id = cid AND c.status IN ('subscribed', 'pending');
  IF NOT EXISTS (SELECT 1 FROM segment.contacts c WHERE c.id = cid) THEN
    RAISE EXCEPTION 'contact % does not exist', cid
      USING ERRCODE = 'undefined_object', DETAIL = 'The contact was deleted after the link was sent.';
  END IF;
  SELECT x.* INTO m
    FROM segment.campaigns g
    JOIN segment.campaign_recipients r ON r.campaign_id = g.id AND r.contact_id = cid
    JOIN segment.messages x ON x.id = r.message_id
   WHERE g.name = campaign;
  IF FOUND AND NOT EXISTS (SELECT 1 FROM segment.message_events e WHERE e.message_id = m.id AND e.kind = 'unsubscribe') THEN
    PERFORM segment.record(m.message_id, 'unsubscribe', '{"via": "link"}');
  END IF;
  RETURN cid;
END
$$;
COMMENT ON FUNCTION segment.unsubscribe(text) IS
  'Unsubscribe the contact named by a signed unsubscribe token; idempotent; returns the contact id';
