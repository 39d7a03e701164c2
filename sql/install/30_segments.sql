-- segment: segments and their members, tags, lifecycle stages.
-- The rule compiler reads segment_members, contact_tags and contact_stages.

CREATE TABLE segment.segments (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name         text NOT NULL UNIQUE,
  mode         text NOT NULL DEFAULT 'dynamic' CHECK (mode IN ('dynamic', 'scheduled', 'static')),
  created_at   timestamptz NOT NULL DEFAULT segment.now(),
  refreshed_at timestamptz
);
COMMENT ON TABLE segment.segments IS 'Named segments: dynamic, scheduled or static';

CREATE TABLE segment.segment_members (
  segment_id bigint NOT NULL REFERENCES segment.segments (id) ON DELETE CASCADE,
  contact_id bigint NOT NULL REFERENCES segment.contacts (id) ON DELETE CASCADE,
  since      timestamptz NOT NULL DEFAULT segment.now(),
  PRIMARY KEY (segment_id, contact_id)
);
CREATE INDEX segment_members_contact ON segment.segment_members (contact_id);
COMMENT ON TABLE segment.segment_members IS 'Current members of each segment';

CREATE TABLE segment.contact_tags (
  contact_id bigint NOT NULL REFERENCES segment.contacts (id) ON DELETE CASCADE,
  tag        text NOT NULL,
  source     text NOT NULL DEFAULT 'manual' CHECK (source IN ('manual', 'rule', 'flow')),
  tagged_at  timestamptz NOT NULL DEFAULT segment.now(),
  expires_at timestamptz,
  PRIMARY KEY (contact_id, tag)
);
CREATE INDEX contact_tags_tag ON segment.contact_tags (tag, contact_id);
COMMENT ON TABLE segment.contact_tags IS 'Tags on contacts; a tag past expires_at no longer counts';

CREATE TABLE segment.stages (
  name       text PRIMARY KEY,
  position   integer NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT segment.now()
);
COMMENT ON TABLE segment.stages IS 'Lifecycle stages; a contact is in the highest-position stage whose rule holds';

CREATE TABLE segment.contact_stages (
  contact_id bigint PRIMARY KEY REFERENCES segment.contacts (id) ON DELETE CASCADE,
  stage      text NOT NULL REFERENCES segment.stages (name) ON UPDATE CASCADE ON DELETE CASCADE,
  since      timestamptz NOT NULL DEFAULT segment.now()
);
CREATE INDEX contact_stages_stage ON segment.contact_stages (stage);
COMMENT ON TABLE segment.contact_stages IS 'Current lifecycle stage of each contact that has one';

-- ---------------------------------------------------------------------------
-- The change feed: every membership, tag and stage change, in commit order.
-- ---------------------------------------------------------------------------

-- One row per change.  id grows monotonically; xid is the writing transaction,
-- so a consumer can read exactly the committed prefix (see doc/segments.md,
-- "Consuming the change feed").  No foreign key to contacts: the feed is an
-- append-only log and stays cheap to write.
CREATE TABLE segment.changes (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  at         timestamptz NOT NULL DEFAULT segment.now(),
  contact_id bigint NOT NULL,
  kind       text NOT NULL
             CHECK (kind IN ('segment_enter', 'segment_exit', 'tag_add', 'tag_remove', 'stage_change')),
  name       text,
  previous   text,
  source     text CHECK (source IN ('manual', 'rule', 'flow', 'expiry')),
  CONSTRAINT changes_name CHECK (name IS NOT NULL OR kind = 'stage_change')
);
CREATE INDEX changes_contact ON segment.changes (contact_id, id);
CREATE INDEX changes_kind_name ON segment.changes (kind, name, id);
COMMENT ON TABLE segment.changes IS
  'Change feed of segment membership, tags and lifecycle stages (one row per change, id increasing)';
COMMENT ON COLUMN segment.changes.xid IS 'Writing transaction: consumers read rows whose xid is below pg_snapshot_xmin(pg_current_snapshot())';
COMMENT ON COLUMN segment.changes.name IS 'The segment, the tag, or the new stage (NULL when a contact leaves every stage)';
COMMENT ON COLUMN segment.changes.previous IS 'stage_change: the stage left (NULL when the contact had none)';
COMMENT ON COLUMN segment.changes.source IS 'What made the change: manual (a function call), rule (maintenance), flow, expiry (tag expired)';

CREATE VIEW segment.segment_history AS
  SELECT id, at, contact_id, name AS segment,
         CASE kind WHEN 'segment_enter' THEN 'entered' ELSE 'exited' END AS action, source
    FROM segment.changes
   WHERE kind IN ('segment_enter', 'segment_exit');
COMMENT ON VIEW segment.segment_history IS 'Segment entries and exits, with time';

CREATE VIEW segment.tag_history AS
  SELECT id, at, contact_id, name AS tag,
         CASE kind WHEN 'tag_add' THEN 'added' ELSE 'removed' END AS action, source
    FROM segment.changes
   WHERE kind IN ('tag_add', 'tag_remove');
COMMENT ON VIEW segment.tag_history IS 'Tags added to and removed from contacts, with time and source';

CREATE VIEW segment.stage_history AS
  SELECT id, at, contact_id, previous AS from_stage, name AS to_stage
    FROM segment.changes
   WHERE kind = 'stage_change';
COMMENT ON VIEW segment.stage_history IS 'Lifecycle stage transitions, with time';

-- ---------------------------------------------------------------------------
-- Tags
-- ---------------------------------------------------------------------------

-- Raise the error for a contact id that does not exist.
CREATE FUNCTION segment._check_contact(contact_id bigint) RETURNS void
  LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
  IF contact_id IS NULL OR NOT EXISTS (SELECT 1 FROM segment.contacts c WHERE c.id = contact_id) THEN
    RAISE EXCEPTION 'contact % does not exist', coalesce(contact_id::text, 'NULL')
      USING ERRCODE = 'foreign_key_violation',
            HINT = 'Create the contact first with segment.upsert_contact.';
  END IF;
END $$;
COMMENT ON FUNCTION segment._check_contact(bigint) IS 'Internal: error unless the contact exists';

-- Raise the error for an empty or NULL tag name.
CREATE FUNCTION segment._check_tag(tag text) RETURNS void
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  IF tag IS NULL OR btrim(tag) = '' THEN
    RAISE EXCEPTION 'tag must not be empty'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'A tag is a non-empty name such as ''VIP''.';
  END IF;
END $$;
COMMENT ON FUNCTION segment._check_tag(text) IS 'Internal: error unless the tag name is non-empty';

CREATE FUNCTION segment.tag(contact_id bigint, tag text, expires_at timestamptz DEFAULT NULL,
                            source text DEFAULT 'manual')
  RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  cur record;
  t   timestamptz := segment.now();
BEGIN
  PERFORM segment._check_contact(contact_id);
  PERFORM segment._check_tag(tag);
  IF source IS NULL OR source NOT IN ('manual', 'flow') THEN
    RAISE EXCEPTION 'invalid tag source "%"', source
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use manual or flow; rule tags come from segment.create_tag_rule.';
  END IF;
  IF expires_at IS NOT NULL AND expires_at <= t THEN
    RAISE EXCEPTION 'expires_at must be in the future'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('expires_at is %s, the clock says %s.', expires_at, t);
  END IF;
  LOOP
    SELECT ct.source, ct.expires_at INTO cur
      FROM segment.contact_tags ct
     WHERE ct.contact_id = tag.contact_id AND ct.tag = tag.tag
       FOR UPDATE;
    IF NOT FOUND THEN
      INSERT INTO segment.contact_tags AS ct (contact_id, tag, source, tagged_at, expires_at)
        VALUES (tag.contact_id, tag.tag, tag.source, t, tag.expires_at)
        ON CONFLICT ON CONSTRAINT contact_tags_pkey DO NOTHING;
      IF FOUND THEN
        INSERT INTO segment.changes (contact_id, kind, name, source)
          VALUES (tag.contact_id, 'tag_add', tag.tag, tag.source);
        RETURN true;
      END IF;
      CONTINUE;                     -- inserted concurrently: take the update path
    END IF;
    UPDATE segment.contact_tags ct
       SET source = tag.source, expires_at = tag.expires_at,
           tagged_at = CASE WHEN cur.expires_at <= t THEN t ELSE ct.tagged_at END
     WHERE ct.contact_id = tag.contact_id AND ct.tag = tag.tag;
    IF cur.expires_at <= t THEN     -- it had expired: it comes back
      INSERT INTO segment.changes (contact_id, kind, name, source)
        VALUES (tag.contact_id, 'tag_add', tag.tag, tag.source);
      RETURN true;
    END IF;
    RETURN false;
  END LOOP;
END $$;
COMMENT ON FUNCTION segment.tag(bigint, text, timestamptz, text) IS
  'Tag a contact (optionally until expires_at); true when the tag is new. Re-tagging sets the new expiry';

CREATE FUNCTION segment.tags(contact_id bigint) RETURNS text[]
  LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(ct.tag ORDER BY ct.tag), '{}')
    FROM segment.contact_tags ct
   WHERE ct.contact_id = tags.contact_id
     AND (ct.expires_at IS NULL OR ct.expires_at > segment.now())
$$;
COMMENT ON FUNCTION segment.tags(bigint) IS 'The contact''s unexpired tags, sorted';

CREATE VIEW segment.tag_counts AS
  SELECT tag, count(*) AS contacts,
         count(*) FILTER (WHERE source = 'rule') AS by_rule
    FROM segment.contact_tags
   WHERE expires_at IS NULL OR expires_at > segment.now()
   GROUP BY tag;
COMMENT ON VIEW segment.tag_counts IS 'Each tag in use with the number of contacts carrying it (unexpired)';

CREATE FUNCTION segment.untag(contact_id bigint, tag text) RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  gone record;
BEGIN
  PERFORM segment._check_contact(contact_id);
  PERFORM segment._check_tag(tag);
  DELETE FROM segment.contact_tags ct
   WHERE ct.contact_id = untag.contact_id AND ct.tag = untag.tag
  RETURNING ct.source, ct.expires_at INTO gone;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  IF gone.expires_at IS NOT NULL AND gone.expires_at <= segment.now() THEN
    RETURN false;                   -- it had already expired: nothing visible changed
  END IF;
  INSERT INTO segment.changes (contact_id, kind, name, source)
    VALUES (untag.contact_id, 'tag_remove', untag.tag, 'manual');
  RETURN true;
END $$;
COMMENT ON FUNCTION segment.untag(bigint, text) IS
  'Remove a tag from a contact; true when it had the (unexpired) tag';
