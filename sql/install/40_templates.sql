-- segment: templates — the segment.template type, rendering, stored templates
-- (subject, html and text parts) and the contact context they render against.

CREATE FUNCTION segment.template_valid(template text, what text DEFAULT NULL) RETURNS boolean
  AS 'MODULE_PATHNAME', 'segment_template_valid'
  LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.template_valid(text, text) IS
  'True when the text is a valid template; otherwise raises "invalid template at line L, column C: ..." (22P02). what names the template in the error context';

-- A domain rather than a base type: it casts to text implicitly, so every text
-- function accepts it, and its CHECK raises the parse error with line and column.
CREATE DOMAIN segment.template AS text
  CONSTRAINT template_syntax CHECK (segment.template_valid(VALUE));
COMMENT ON DOMAIN segment.template IS
  'A Mustache template (with helpers and filters), validated when cast or stored';

CREATE FUNCTION segment.render(template text, context jsonb, partials jsonb DEFAULT '{}')
  RETURNS text
  AS 'MODULE_PATHNAME', 'segment_render'
  LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.render(text, jsonb, jsonb) IS
  'Render a template over a jsonb document, HTML-escaping values; partials is an object name -> template text';

CREATE FUNCTION segment.render_stored(template text, context jsonb, part text DEFAULT 'html')
  RETURNS text
  AS 'MODULE_PATHNAME', 'segment_render_stored'
  LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.render_stored(text, jsonb, text) IS
  'Render a template as one part of an email (subject, html or text): partials are the same part of stored templates; only html escapes values; the subject stays on one line';

CREATE FUNCTION segment.html_to_text(html text) RETURNS text
  AS 'MODULE_PATHNAME', 'segment_html_to_text'
  LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION segment.html_to_text(text) IS
  'Plain text from HTML: tags stripped, links as "text (url)", entities decoded, white space collapsed, {{tags}} kept';

CREATE TABLE segment.templates (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name         text NOT NULL UNIQUE
               CONSTRAINT templates_name_check CHECK (name ~ '^[^[:space:]{}]+$'),
  subject      segment.template NOT NULL,
  html         segment.template NOT NULL,
  text         segment.template NOT NULL,
  text_derived boolean NOT NULL DEFAULT false,
  created_at   timestamptz NOT NULL DEFAULT segment.now(),
  updated_at   timestamptz NOT NULL DEFAULT segment.now()
);
COMMENT ON TABLE segment.templates IS
  'Email templates by name: subject, html and text parts (text derived from html unless given); other templates include them as partials';

CREATE FUNCTION segment.create_template(name text, subject text, html text, text text DEFAULT NULL)
  RETURNS bigint
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, segment, pg_temp
AS $$
DECLARE
  tname ALIAS FOR $1;
  new_id bigint;
BEGIN
  IF tname IS NULL OR $2 IS NULL OR $3 IS NULL THEN
    RAISE EXCEPTION 'template name, subject and html must not be null'
      USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF tname !~ '^[^[:space:]{}]+$' THEN
    RAISE EXCEPTION 'invalid template name: %', quote_literal(tname)
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'Partials name templates in tags such as {{> footer}}, so a name has no white space and no braces.',
            HINT = 'Use a name such as ''spring_sale''.';
  END IF;
  IF EXISTS (SELECT 1 FROM segment.templates t WHERE t.name = tname) THEN
    RAISE EXCEPTION 'template "%" already exists', tname
      USING ERRCODE = 'unique_violation',
            HINT = 'Use segment.update_template() to change it, or segment.drop_template() first.';
  END IF;
  PERFORM segment.template_valid($2, format('subject of template "%s"', tname));
  PERFORM segment.template_valid($3, format('html part of template "%s"', tname));
  IF $4 IS NOT NULL THEN
    PERFORM segment.template_valid($4, format('text part of template "%s"', tname));
  END IF;
  INSERT INTO segment.templates (name, subject, html, text, text_derived)
  VALUES (tname, $2, $3, coalesce($4, segment.html_to_text($3)), $4 IS NULL)
  RETURNING id INTO new_id;
  RETURN new_id;
END
$$;
COMMENT ON FUNCTION segment.create_template(text, text, text, text) IS
  'Store a template (every part validated; text derived from html when null); an existing name is an error (23505)';

CREATE FUNCTION segment.update_template(name text, subject text DEFAULT NULL, html text DEFAULT NULL,
                                        text text DEFAULT NULL)
  RETURNS bigint
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, segment, pg_temp
AS $$
DECLARE
  tname ALIAS FOR $1;
  t segment.templates;
BEGIN
  SELECT * INTO t FROM segment.templates tp WHERE tp.name = tname FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'template "%" does not exist', tname
      USING ERRCODE = 'undefined_object', HINT = 'segment.create_template() creates it.';
  END IF;
  IF $2 IS NOT NULL THEN
    PERFORM segment.template_valid($2, format('subject of template "%s"', tname));
  END IF;
  IF $3 IS NOT NULL THEN
    PERFORM segment.template_valid($3, format('html part of template "%s"', tname));
  END IF;
  IF $4 IS NOT NULL THEN
    PERFORM segment.template_valid($4, format('text part of template "%s"', tname));
  END IF;
  UPDATE segment.templates tp
     SET subject = coalesce($2, tp.subject),
         html = coalesce($3, tp.html),
         text = CASE WHEN $4 IS NOT NULL THEN $4
                     WHEN tp.text_derived AND $3 IS NOT NULL THEN segment.html_to_text($3)
                     ELSE tp.text END,
         text_derived = CASE WHEN $4 IS NOT NULL THEN false ELSE tp.text_derived END,
         updated_at = segment.now()
   WHERE tp.id = t.id;
  RETURN t.id;
END
$$;
COMMENT ON FUNCTION segment.update_template(text, text, text, text) IS
  'Change the given parts of a stored template (a derived text part follows a new html part)';

CREATE FUNCTION segment.drop_template(name text) RETURNS void
  LANGUAGE plpgsql VOLATILE
  SET search_path = pg_catalog, segment, pg_temp
AS $$
DECLARE
  users text := segment._mail_users('template', $1);
BEGIN
  IF users IS NOT NULL THEN
    RAISE EXCEPTION 'cannot drop template "%" because it is used by %', $1, users
      USING ERRCODE = 'dependent_objects_still_exist',
            HINT = 'Cancel those campaigns (segment.cancel) and drop those flows (segment.drop_flow) first, or change the template with segment.update_template().';
  END IF;
  DELETE FROM segment.templates t WHERE t.name = $1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'template "%" does not exist', $1 USING ERRCODE = 'undefined_object';
  END IF;
END
$$;
COMMENT ON FUNCTION segment.drop_template(text) IS
  'Delete a stored template; refused while a flow or a campaign not cancelled uses it';

-- extra merged over a context, and kept whole under the key extra too, so a
-- template can write {{coupon}} as well as {{extra.coupon}}.
CREATE FUNCTION segment._with_extra(ctx jsonb, extra jsonb) RETURNS jsonb
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT ctx || jsonb_build_object('extra', coalesce(extra, '{}'::jsonb)) || coalesce(extra, '{}'::jsonb)
$$;
COMMENT ON FUNCTION segment._with_extra(jsonb, jsonb) IS
  'Internal: ctx with extra merged on top and also under the key extra';

-- The data a template sees for one contact, built in one query: the contact's
-- columns, its attrs keys at top level (a column wins over an attrs key of the
-- same name), tags, segments, stage, purchase aggregates, the signed unsubscribe
-- link (for extra->>'campaign'), and extra (_with_extra).
--
-- SECURITY DEFINER: the signed unsubscribe link needs segment.sign_token, which
-- only segment_admin may call; the application and editor roles that render
-- mail get the link of a contact they may already read, and nothing else.
CREATE FUNCTION segment.contact_context(contact_id bigint, extra jsonb DEFAULT '{}')
  RETURNS jsonb
  LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
  SET search_path = pg_catalog, segment, pg_temp
AS $$
DECLARE
  ctx jsonb;
BEGIN
  -- Merged over an object, an array or a scalar would make the whole context
  -- that value: every {{field}} of the mail would render empty.
  IF jsonb_typeof($2) IS DISTINCT FROM 'object' AND $2 IS NOT NULL THEN
    RAISE EXCEPTION 'extra must be a JSON object, not %', jsonb_typeof($2)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass the values the template uses by name, e.g. {"order": "A-17"}.';
  END IF;
  SELECT c.attrs || to_jsonb(c) || jsonb_build_object(
           'tags', coalesce(tg.names, '[]'::jsonb),
           'tag', coalesce(tg.map, '{}'::jsonb),
           'segments', coalesce(sg.map, '{}'::jsonb),
           'stage', st.stage,
           'lifetime_value', coalesce(ps.sum_amount, 0),
           'orders_count', coalesce(ps.count, 0),
           'last_purchase', ps.last_at,
           'unsubscribe_url', segment._unsubscribe_link(c.id, $2 ->> 'campaign'))
    INTO ctx
    FROM segment.contacts c
    LEFT JOIN LATERAL (
      SELECT jsonb_agg(t.tag ORDER BY t.tag) AS names, jsonb_object_agg(t.tag, true) AS map
        FROM segment.contact_tags t
       WHERE t.contact_id = c.id AND (t.expires_at IS NULL OR t.expires_at > segment.now())
    ) tg ON true
    LEFT JOIN LATERAL (
      SELECT jsonb_object_agg(s.name, true) AS map
        FROM segment.segment_members m JOIN segment.segments s ON s.id = m.segment_id
       WHERE m.contact_id = c.id
    ) sg ON true
    LEFT JOIN segment.contact_stages st ON st.contact_id = c.id
    LEFT JOIN segment.event_stats ps ON ps.type = 'purchase' AND ps.contact_id = c.id
   WHERE c.id = $1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'contact % does not exist', $1 USING ERRCODE = 'undefined_object';
  END IF;
  RETURN segment._with_extra(ctx, $2);
END
$$;
COMMENT ON FUNCTION segment.contact_context(bigint, jsonb) IS
  'The jsonb a template renders against for a contact: columns, attrs keys, tags, tag, segments, stage, lifetime_value, orders_count, last_purchase, unsubscribe_url, then extra (merged, and whole under the key extra)';

-- What preview shows when no contact is given.
CREATE FUNCTION segment.sample_context() RETURNS jsonb
  LANGUAGE sql STABLE PARALLEL SAFE
  SET search_path = pg_catalog, segment, pg_temp
AS $$
  SELECT jsonb_build_object(
    'id', 0, 'email', 'alex.sample@example.com', 'first_name', 'Alex', 'last_name', 'Sample',
    'locale', 'en', 'time_zone', 'UTC', 'attrs', '{}'::jsonb, 'status', 'subscribed',
    'consent_at', segment.now(), 'consent_source', 'sample',
    'created_at', segment.now(), 'updated_at', segment.now(),
    'tags', '[]'::jsonb, 'tag', '{}'::jsonb, 'segments', '{}'::jsonb, 'stage', NULL,
    'lifetime_value', 0, 'orders_count', 0, 'last_purchase', NULL,
    -- the link's shape, with a token no unsubscribe accepts
    'unsubscribe_url', nullif(current_setting('segment.unsubscribe_url'), '')
                       || CASE WHEN strpos(current_setting('segment.unsubscribe_url'), '?') > 0 THEN '&' ELSE '?' END
                       || 'token=preview')
$$;
COMMENT ON FUNCTION segment.sample_context() IS
  'A made-up contact context (Alex Sample) for previews without a real contact; its unsubscribe_url has the configured shape and an invalid token';

-- A rendered text part derived from HTML, tidied: at most one blank line in a
-- row (a section left out can leave two breaks where one was meant) and none at
-- the start or end.
CREATE FUNCTION segment._tidy_text(t text) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT btrim(regexp_replace(t, E'\n{3,}', E'\n\n', 'g'), E'\n')
$$;
COMMENT ON FUNCTION segment._tidy_text(text) IS
  'Internal: a rendered derived text part with runs of blank lines collapsed and outer line breaks trimmed';

CREATE FUNCTION segment.render_for(template_name text, contact_id bigint, extra jsonb DEFAULT '{}')
  RETURNS TABLE (subject text, html text, text text)
  LANGUAGE plpgsql STABLE PARALLEL SAFE
  SET search_path = pg_catalog, segment, pg_temp
AS $$
DECLARE
  t record;
  ctx jsonb;
BEGIN
  SELECT tp.subject AS s, tp.html AS h, tp.text AS x, tp.text_derived AS d INTO t
    FROM segment.templates tp WHERE tp.name = $1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'template "%" does not exist', $1
      USING ERRCODE = 'undefined_object', HINT = 'segment.create_template() creates it.';
  END IF;
  ctx := segment._with_recommendations(segment.contact_context($2, $3), $2, t.s, t.h, t.x);
  RETURN QUERY SELECT segment.render_stored(t.s, ctx, 'subject'),
                      segment.render_stored(t.h, ctx, 'html'),
                      CASE WHEN t.d THEN segment._tidy_text(segment.render_stored(t.x, ctx, 'text'))
                           ELSE segment.render_stored(t.x, ctx, 'text') END;
END
$$;
COMMENT ON FUNCTION segment.render_for(text, bigint, jsonb) IS
  'Render a stored template (subject, html, text) for a contact, extra merged over the contact context';

CREATE FUNCTION segment.preview(template_name text, contact_id bigint DEFAULT NULL, extra jsonb DEFAULT '{}')
  RETURNS TABLE (subject text, html text, text text)
  LANGUAGE plpgsql STABLE PARALLEL SAFE
  SET search_path = pg_catalog, segment, pg_temp
AS $$
BEGIN
  IF $2 IS NOT NULL THEN
    RETURN QUERY SELECT * FROM segment.render_for($1, $2, $3);
    RETURN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM segment.templates tp WHERE tp.name = $1) THEN
    RAISE EXCEPTION 'template "%" does not exist', $1
      USING ERRCODE = 'undefined_object', HINT = 'segment.create_template() creates it.';
  END IF;
  RETURN QUERY
    SELECT segment.render_stored(tp.subject, c.ctx, 'subject'),
           segment.render_stored(tp.html, c.ctx, 'html'),
           CASE WHEN tp.text_derived THEN segment._tidy_text(segment.render_stored(tp.text, c.ctx, 'text'))
                ELSE segment.render_stored(tp.text, c.ctx, 'text') END
      FROM segment.templates tp,
           LATERAL (SELECT segment._with_recommendations(segment._with_extra(segment.sample_context(), $3),
                                                         NULL, tp.subject, tp.html, tp.text) AS ctx) c
     WHERE tp.name = $1;
END
$$;
COMMENT ON FUNCTION segment.preview(text, bigint, jsonb) IS
  'A stored template rendered for a contact, or for the sample contact when contact_id is null, extra merged on top';

CREATE FUNCTION segment.preview_draft(subject_template text, html_template text,
                                      text_template text DEFAULT NULL,
                                      contact_id bigint DEFAULT NULL, extra jsonb DEFAULT '{}')
  RETURNS TABLE (subject text, html text, text text)
  LANGUAGE plpgsql STABLE PARALLEL SAFE
  SET search_path = pg_catalog, segment, pg_temp
AS $$
DECLARE
  ctx jsonb;
BEGIN
  PERFORM segment.template_valid($1, 'subject of the draft');
  PERFORM segment.template_valid($2, 'html part of the draft');
  IF $3 IS NOT NULL THEN
    PERFORM segment.template_valid($3, 'text part of the draft');
  END IF;
  IF $4 IS NULL THEN
    ctx := segment._with_extra(segment.sample_context(), $5);
  ELSE
    ctx := segment.contact_context($4, $5);
  END IF;
  ctx := segment._with_recommendations(ctx, $4, $1, $2, coalesce($3, ''));
  RETURN QUERY SELECT segment.render_stored($1, ctx, 'subject'),
                      segment.render_stored($2, ctx, 'html'),
                      CASE WHEN $3 IS NULL THEN segment._tidy_text(segment.render_stored(segment.html_to_text($2), ctx, 'text'))
                           ELSE segment.render_stored($3, ctx, 'text') END;
END
$$;
COMMENT ON FUNCTION segment.preview_draft(text, text, text, bigint, jsonb) IS
  'A draft (not yet stored) rendered for a contact or the sample contact, with stored templates as partials';
