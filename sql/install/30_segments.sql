-- segment: segments and their members, tags, lifecycle stages.
-- The rule compiler reads segment_members, contact_tags and contact_stages.

CREATE TABLE segment.segments (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name         text NOT NULL UNIQUE,
  mode         text NOT NULL DEFAULT 'dynamic' CHECK (mode IN ('dynamic', 'scheduled', 'static')),
  created_at   timestamptz NOT NULL DEFAULT segment.now(),
  refreshed_at timestamptz,
  rule         segment.rule,
  deps         jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE segment.segments IS 'Named segments: dynamic, scheduled or static';
COMMENT ON COLUMN segment.segments.rule IS
  'The rule (NULL only for static segments; for them, the rule their first members came from, if any)';
COMMENT ON COLUMN segment.segments.deps IS 'segment.rule_dependencies(rule), as indexed in segment.dependency_index';

CREATE TABLE segment.segment_members (
  segment_id bigint NOT NULL REFERENCES segment.segments (id) ON DELETE CASCADE,
  contact_id bigint NOT NULL REFERENCES segment.contacts (id) ON DELETE CASCADE,
  since      timestamptz NOT NULL DEFAULT segment.now(),
  -- Contact first: "the segments of this contact" is one index-only scan
  -- (incremental maintenance reads it for every contact it re-evaluates), and
  -- the contact's new membership goes into the same index page.
  PRIMARY KEY (contact_id, segment_id)
);
-- The members of a segment, as an index-only scan.  Keyed by segment_id alone
-- (contact_id only carried along): a new member's entry lands at the end of its
-- segment's entries (equal keys are in heap order), not at a random place
-- among them.
CREATE INDEX segment_members_segment ON segment.segment_members (segment_id) INCLUDE (contact_id);
COMMENT ON TABLE segment.segment_members IS 'Current members of each segment';

CREATE TABLE segment.contact_tags (
  contact_id bigint NOT NULL REFERENCES segment.contacts (id) ON DELETE CASCADE,
  tag        text NOT NULL,
  source     text NOT NULL DEFAULT 'manual' CHECK (source IN ('manual', 'rule', 'flow')),
  tagged_at  timestamptz NOT NULL DEFAULT segment.now(),
  expires_at timestamptz,
  -- A rule tag that a manual (or flow) tag with an expiry holds too: that
  -- expiry, so the tag stays until then when the rule stops holding.
  manual_expires_at timestamptz,
  PRIMARY KEY (contact_id, tag),
  CONSTRAINT contact_tags_manual_expiry CHECK (manual_expires_at IS NULL OR source = 'rule')
);
-- The contacts with a tag: on tag alone, so a new tag row's entry lands at the
-- end of that tag's entries (see segment_members_segment), and equal tags are
-- stored once (deduplication).
CREATE INDEX contact_tags_tag ON segment.contact_tags (tag);
COMMENT ON TABLE segment.contact_tags IS 'Tags on contacts; a tag past expires_at no longer counts';
COMMENT ON COLUMN segment.contact_tags.manual_expires_at IS
  'Rule tags only: a manual tag with this expiry holds the tag too; when the rule stops holding before then, the tag stays as a manual tag until then';

CREATE TABLE segment.stages (
  name       text PRIMARY KEY,
  position   integer NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT segment.now(),
  rule       segment.rule,
  deps       jsonb NOT NULL DEFAULT '{}',
  refreshed_at timestamptz
);
COMMENT ON TABLE segment.stages IS 'Lifecycle stages; a contact is in the highest-position stage whose rule holds';
COMMENT ON COLUMN segment.stages.rule IS 'The rule that puts a contact in this stage (a stage without one never holds)';

CREATE TABLE segment.contact_stages (
  contact_id bigint PRIMARY KEY REFERENCES segment.contacts (id) ON DELETE CASCADE,
  stage      text NOT NULL REFERENCES segment.stages (name) ON UPDATE CASCADE ON DELETE CASCADE,
  since      timestamptz NOT NULL DEFAULT segment.now()
);
CREATE INDEX contact_stages_stage ON segment.contact_stages (stage);
COMMENT ON TABLE segment.contact_stages IS 'Current lifecycle stage of each contact that has one';

CREATE TABLE segment.tag_rules (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tag          text NOT NULL UNIQUE,
  rule         segment.rule NOT NULL,
  deps         jsonb NOT NULL DEFAULT '{}',
  created_at   timestamptz NOT NULL DEFAULT segment.now(),
  refreshed_at timestamptz
);
COMMENT ON TABLE segment.tag_rules IS 'Tag rules: the tag is on every contact for whom the rule holds (source rule)';

-- The dependency index: which maintained rule (a dynamic or scheduled segment, a
-- tag rule, a stage) depends on which event type, field, tag, segment, on the
-- stages, or on time.  Built when rules are created; read by the maintenance
-- triggers (through a per-backend cache) and by drop and cycle checks.
CREATE TABLE segment.dependency_index (
  key_kind  text NOT NULL CHECK (key_kind IN ('event', 'field', 'tag', 'segment', 'stage', 'time')),
  key       text NOT NULL,
  node_kind text NOT NULL CHECK (node_kind IN ('segment', 'tag_rule', 'stage')),
  node_name text NOT NULL,
  PRIMARY KEY (key_kind, key, node_kind, node_name)
);
CREATE INDEX dependency_index_node ON segment.dependency_index (node_kind, node_name);
COMMENT ON TABLE segment.dependency_index IS
  'Which maintained rule depends on which event type, field, tag, segment, the stages, or time';

-- ---------------------------------------------------------------------------
-- The change feed: every membership, tag and stage change, in commit order.
-- ---------------------------------------------------------------------------

-- One row per change.  id grows monotonically; xid is the writing transaction,
-- so a consumer can read exactly the committed prefix (see doc/segments.md,
-- "Consuming the change feed").  No foreign key to contacts: the feed is an
-- append-only log and stays cheap to write.
CREATE TABLE segment.changes (
  id         bigint GENERATED ALWAYS AS IDENTITY,
  xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  at         timestamptz NOT NULL DEFAULT segment.now(),
  contact_id bigint NOT NULL,
  kind       text NOT NULL
             CHECK (kind IN ('segment_enter', 'segment_exit', 'tag_add', 'tag_remove', 'stage_change')),
  name       text,
  previous   text,
  source     text CHECK (source IN ('manual', 'rule', 'flow', 'expiry')),
  CONSTRAINT changes_name CHECK (name IS NOT NULL OR kind = 'stage_change'),
  -- The order a consumer reads the feed in (see below): each new row lands at
  -- the right edge of this index, so it costs little to keep.
  PRIMARY KEY (xid, id)
);
-- A contact's history (timelines, export_contact, forget).  There is no index
-- by segment or tag name: every change would pay a descent into one more large
-- index; history of one segment is read by a scan, or consumed in feed order.
CREATE INDEX changes_contact ON segment.changes (contact_id);
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

CREATE FUNCTION segment.tag(contact_id bigint, tag text, expires_at timestamptz, source text)
  RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  cur  record;
  t    timestamptz := segment.now();
  -- An expiring tag that the tag rule holds stays a rule tag: the expiry ends
  -- only the manual hold (manual_expires_at), not the tag.
  held boolean := false;
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
  IF expires_at IS NOT NULL THEN
    SELECT coalesce(segment.matches(tag.contact_id, r.rule), false) INTO held
      FROM segment.tag_rules r WHERE r.tag = tag.tag;
    held := coalesce(held, false);
  END IF;
  LOOP
    SELECT ct.source, ct.expires_at INTO cur
      FROM segment.contact_tags ct
     WHERE ct.contact_id = tag.contact_id AND ct.tag = tag.tag
       FOR UPDATE;
    IF NOT FOUND THEN
      INSERT INTO segment.contact_tags AS ct (contact_id, tag, source, tagged_at, expires_at, manual_expires_at)
        VALUES (tag.contact_id, tag.tag, CASE WHEN held THEN 'rule' ELSE tag.source END, t,
                CASE WHEN held THEN NULL ELSE tag.expires_at END,
                CASE WHEN held THEN tag.expires_at END)
        ON CONFLICT ON CONSTRAINT contact_tags_pkey DO NOTHING;
      IF FOUND THEN
        INSERT INTO segment.changes (contact_id, kind, name, source)
          VALUES (tag.contact_id, 'tag_add', tag.tag, tag.source);
        RETURN true;
      END IF;
      CONTINUE;                     -- inserted concurrently: take the update path
    END IF;
    UPDATE segment.contact_tags ct
       SET source = CASE WHEN held THEN 'rule' ELSE tag.source END,
           expires_at = CASE WHEN held THEN NULL ELSE tag.expires_at END,
           manual_expires_at = CASE WHEN held THEN tag.expires_at END,
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
  'Tag a contact (until expires_at when not null) as source manual or flow; true when the tag is new. Re-tagging sets the new expiry; a tag rule that holds keeps the tag past it';

-- design.md's signature exactly: a manual tag.  (A separate function rather
-- than a default on source, so segment.tag(bigint, text, timestamptz) exists.)
CREATE FUNCTION segment.tag(contact_id bigint, tag text, expires_at timestamptz DEFAULT NULL)
  RETURNS boolean
  LANGUAGE sql VOLATILE AS $$
  SELECT segment.tag(contact_id, tag, expires_at, 'manual')
$$;
COMMENT ON FUNCTION segment.tag(bigint, text, timestamptz) IS
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
  held boolean;
BEGIN
  PERFORM segment._check_contact(contact_id);
  PERFORM segment._check_tag(tag);
  -- A tag rule that holds keeps the tag: it only stops being manual.
  SELECT segment.matches(untag.contact_id, r.rule) INTO held
    FROM segment.tag_rules r WHERE r.tag = untag.tag;
  IF held THEN
    UPDATE segment.contact_tags ct SET source = 'rule', expires_at = NULL, manual_expires_at = NULL
     WHERE ct.contact_id = untag.contact_id AND ct.tag = untag.tag
       AND (ct.source <> 'rule' OR ct.manual_expires_at IS NOT NULL);
    RETURN false;
  END IF;
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
  'Remove a tag from a contact; true when it had the (unexpired) tag. A tag rule that holds keeps the tag';

-- A tag rule stops holding these (contact, tag) pairs: each rule tag goes,
-- with its tag_remove, unless a manual tag with an expiry held it too; then it
-- stays, as that manual tag, until its expiry.  Used by the maintenance
-- (src/maintain_apply.c), _recompute_all and drop_tag_rule.
CREATE FUNCTION segment._release_rule_tags(contact_ids bigint[], tags text[]) RETURNS void
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  t timestamptz := segment.now();
BEGIN
  WITH u AS (SELECT * FROM unnest(contact_ids, tags) AS u(c, g)),
       kept AS (UPDATE segment.contact_tags ct
                   SET source = 'manual', expires_at = ct.manual_expires_at, manual_expires_at = NULL
                  FROM u
                 WHERE ct.contact_id = u.c AND ct.tag = u.g AND ct.source = 'rule'
                   AND ct.manual_expires_at > t),
       del AS (DELETE FROM segment.contact_tags ct USING u
                WHERE ct.contact_id = u.c AND ct.tag = u.g AND ct.source = 'rule'
                  AND (ct.manual_expires_at IS NULL OR ct.manual_expires_at <= t)
               RETURNING ct.contact_id, ct.tag)
  INSERT INTO segment.changes (contact_id, kind, name, source)
    SELECT del.contact_id, 'tag_remove', del.tag, 'rule' FROM del ORDER BY del.contact_id, del.tag;
END $$;
COMMENT ON FUNCTION segment._release_rule_tags(bigint[], text[]) IS
  'Internal: a tag rule stopped holding these tags; each goes (recorded) unless a manual tag with an unexpired expiry held it too, which it becomes';

-- ---------------------------------------------------------------------------
-- Incremental maintenance (C: src/maintain_*.c)
-- ---------------------------------------------------------------------------

CREATE FUNCTION segment._maintain(keys text[], contact_ids bigint[]) RETURNS void
  AS 'MODULE_PATHNAME', 'segment_maintain'
  LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION segment._maintain(text[], bigint[]) IS
  'Internal: re-evaluate the maintained rules named by keys (e:type, f:field, t:tag, s:segment, g, *, n:<node>) for these contacts';

CREATE FUNCTION segment._rules_changed() RETURNS void
  AS 'MODULE_PATHNAME', 'segment_rules_changed'
  LANGUAGE C VOLATILE;
COMMENT ON FUNCTION segment._rules_changed() IS
  'Internal: the maintained rules changed; every backend reloads its rule graph (this one now, others at commit)';

CREATE FUNCTION segment._lock_all() RETURNS void
  AS 'MODULE_PATHNAME', 'segment_lock_all'
  LANGUAGE C VOLATILE;
COMMENT ON FUNCTION segment._lock_all() IS
  'Internal: hold off all incremental maintenance until the end of the transaction';

CREATE FUNCTION segment._events_trigger() RETURNS trigger
  AS 'MODULE_PATHNAME', 'segment_events_trigger' LANGUAGE C;
COMMENT ON FUNCTION segment._events_trigger() IS
  'Trigger: re-evaluate the rules that depend on the event types written, for the contacts written';
CREATE FUNCTION segment._contacts_trigger() RETURNS trigger
  AS 'MODULE_PATHNAME', 'segment_contacts_trigger' LANGUAGE C;
COMMENT ON FUNCTION segment._contacts_trigger() IS
  'Trigger: evaluate new contacts against every rule, changed ones against the rules on the changed fields';
CREATE FUNCTION segment._contact_tags_trigger() RETURNS trigger
  AS 'MODULE_PATHNAME', 'segment_contact_tags_trigger' LANGUAGE C;
COMMENT ON FUNCTION segment._contact_tags_trigger() IS
  'Trigger: re-evaluate the rules naming the tags written, for those contacts';

-- Statement-level, after the contacts area's own triggers (events_10_*, which keep
-- event_stats current): same-event triggers fire in name order.
CREATE TRIGGER events_50_segments_insert AFTER INSERT ON segment.events
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION segment._events_trigger();
CREATE TRIGGER events_50_segments_update AFTER UPDATE ON segment.events
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION segment._events_trigger();
CREATE TRIGGER events_50_segments_delete AFTER DELETE ON segment.events
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION segment._events_trigger();
CREATE TRIGGER contacts_50_segments_insert AFTER INSERT ON segment.contacts
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION segment._contacts_trigger();
CREATE TRIGGER contacts_50_segments_update AFTER UPDATE ON segment.contacts
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION segment._contacts_trigger();
CREATE TRIGGER contact_tags_50_segments_insert AFTER INSERT ON segment.contact_tags
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION segment._contact_tags_trigger();
CREATE TRIGGER contact_tags_50_segments_update AFTER UPDATE ON segment.contact_tags
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION segment._contact_tags_trigger();
CREATE TRIGGER contact_tags_50_segments_delete AFTER DELETE ON segment.contact_tags
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION segment._contact_tags_trigger();

-- A segment leaves (or changes its id) only under the maintenance lock: drop_segment
-- takes it, and so does a plain DELETE, UPDATE or TRUNCATE of segment.segments.
-- Maintenance holds the lock in share mode while it writes, so the memberships it
-- writes need not lock their segment's row as the foreign key's check would
-- (src/maintain_write.c): no segment can go before the writing transaction ends.
CREATE FUNCTION segment._segments_guard() RETURNS trigger
  AS 'MODULE_PATHNAME', 'segment_segments_guard' LANGUAGE C;
COMMENT ON FUNCTION segment._segments_guard() IS
  'Trigger: a segment is deleted or its id changed only under the maintenance lock; rule graphs are reloaded';
CREATE TRIGGER segments_10_guard BEFORE DELETE OR UPDATE OF id OR TRUNCATE ON segment.segments
  FOR EACH STATEMENT EXECUTE FUNCTION segment._segments_guard();

-- How a node is named in messages.
CREATE FUNCTION segment._node_label(node_kind text, node_name text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE node_kind WHEN 'segment' THEN format('segment "%s"', node_name)
                        WHEN 'tag_rule' THEN format('tag rule "%s"', node_name)
                        ELSE 'the lifecycle stages' END
$$;
COMMENT ON FUNCTION segment._node_label(text, text) IS 'Internal: a maintained rule as named in messages';

-- The rows of the dependency index of one rule.
CREATE FUNCTION segment._dependency_rows(deps jsonb) RETURNS TABLE (key_kind text, key text)
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT 'event', jsonb_array_elements_text(coalesce(deps -> 'events', '[]'))
  UNION SELECT 'field', jsonb_array_elements_text(coalesce(deps -> 'fields', '[]'))
  UNION SELECT 'tag', jsonb_array_elements_text(coalesce(deps -> 'tags', '[]'))
  UNION SELECT 'segment', jsonb_array_elements_text(coalesce(deps -> 'segments', '[]'))
  UNION SELECT 'stage', '' WHERE coalesce((deps ->> 'stages')::boolean, false)
  UNION SELECT 'time', '' WHERE coalesce((deps ->> 'time')::boolean, false)
$$;
COMMENT ON FUNCTION segment._dependency_rows(jsonb) IS
  'Internal: segment.rule_dependencies output as (key_kind, key) rows of the dependency index';

-- Error unless every segment the rule refers to exists.
CREATE FUNCTION segment._check_references(deps jsonb) RETURNS void
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  missing text;
BEGIN
  SELECT r.name INTO missing
    FROM jsonb_array_elements_text(coalesce(deps -> 'segments', '[]')) AS r(name)
   WHERE NOT EXISTS (SELECT 1 FROM segment.segments s WHERE s.name = r.name)
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'segment "%" does not exist', missing
      USING ERRCODE = 'undefined_object',
            DETAIL = 'The rule refers to it with in segment.',
            HINT = 'Create that segment first.';
  END IF;
END $$;
COMMENT ON FUNCTION segment._check_references(jsonb) IS 'Internal: error unless the segments a rule refers to exist';

-- Error if the maintained rules now form a cycle through the given node.
CREATE FUNCTION segment._check_cycle(node_kind text, node_name text) RETURNS void
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  start_kind text := CASE WHEN node_kind = 'stage' THEN 'stages' ELSE node_kind END;
  start_name text := CASE WHEN node_kind = 'stage' THEN '' ELSE node_name END;
  cycle text[];
BEGIN
  WITH RECURSIVE deps AS (
    SELECT CASE WHEN d.node_kind = 'stage' THEN 'stages' ELSE d.node_kind END AS kind,
           CASE WHEN d.node_kind = 'stage' THEN '' ELSE d.node_name END AS name,
           d.key_kind, d.key
      FROM segment.dependency_index d
  ), edges AS (
    SELECT DISTINCT d.kind, d.name, p.kind AS pkind, p.name AS pname
      FROM deps d
      JOIN LATERAL (
        SELECT 'segment'::text AS kind, s.name FROM segment.segments s
         WHERE d.key_kind = 'segment' AND s.name = d.key AND s.mode <> 'static'
        UNION ALL
        SELECT 'tag_rule', r.tag FROM segment.tag_rules r WHERE d.key_kind = 'tag' AND r.tag = d.key
        UNION ALL
        SELECT 'stages', '' WHERE d.key_kind = 'stage' AND EXISTS (SELECT 1 FROM segment.stages)
      ) p ON true
  ), walk AS (
    SELECT e.pkind AS kind, e.pname AS name,
           ARRAY[segment._node_label(start_kind, start_name), segment._node_label(e.pkind, e.pname)] AS path
      FROM edges e WHERE e.kind = start_kind AND e.name = start_name
    UNION ALL
    SELECT e.pkind, e.pname, w.path || segment._node_label(e.pkind, e.pname)
      FROM walk w JOIN edges e ON e.kind = w.kind AND e.name = w.name
     WHERE NOT (w.kind = start_kind AND w.name = start_name)
       AND segment._node_label(e.pkind, e.pname) <> ALL (w.path[2:])
  )
  SELECT path INTO cycle FROM walk WHERE kind = start_kind AND name = start_name
   ORDER BY cardinality(path) LIMIT 1;
  IF cycle IS NOT NULL THEN
    RAISE EXCEPTION 'rules form a cycle: %', array_to_string(cycle, ' -> ')
      USING ERRCODE = 'invalid_object_definition',
            DETAIL = 'Each of these refers to the next through in segment, tagged or stage.',
            HINT = 'A rule cannot depend on itself; remove one of the references.';
  END IF;
END $$;
COMMENT ON FUNCTION segment._check_cycle(text, text) IS
  'Internal: error naming the cycle if the maintained rules now form one through this rule';

-- (Re)index one maintained rule and check it makes no cycle.
CREATE FUNCTION segment._index_rule(node_kind text, node_name text, deps jsonb) RETURNS void
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  DELETE FROM segment.dependency_index d
   WHERE d.node_kind = _index_rule.node_kind AND d.node_name = _index_rule.node_name;
  IF deps IS NOT NULL THEN
    INSERT INTO segment.dependency_index (key_kind, key, node_kind, node_name)
      SELECT r.key_kind, r.key, _index_rule.node_kind, _index_rule.node_name
        FROM segment._dependency_rows(deps) r;
    PERFORM segment._check_cycle(node_kind, node_name);
  END IF;
  PERFORM segment._rules_changed();
END $$;
COMMENT ON FUNCTION segment._index_rule(text, text, jsonb) IS
  'Internal: replace the dependency index rows of one maintained rule (NULL deps: remove) and check for cycles';

-- Bulk inserts of whole-rule recomputation (C: src/maintain_bulk.c): the rows
-- go in as COPY puts them, the foreign keys checked (and the referenced rows
-- locked) by one query per referenced table instead of one per row.
CREATE FUNCTION segment._insert_members(segment_id bigint, contact_ids bigint[], since timestamptz)
  RETURNS void
  AS 'MODULE_PATHNAME', 'segment_insert_members'
  LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION segment._insert_members(bigint, bigint[], timestamptz) IS
  'Internal: add contacts (increasing ids, not yet members) to a segment in bulk; no change rows';
CREATE FUNCTION segment._insert_stages(contact_ids bigint[], stages text[], since timestamptz)
  RETURNS void
  AS 'MODULE_PATHNAME', 'segment_insert_stages'
  LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION segment._insert_stages(bigint[], text[], timestamptz) IS
  'Internal: give contacts (increasing ids, without a stage) their stage in bulk; no change rows';

-- Bring one maintained rule up to date for every contact, set-wise: the rule's
-- members now (segment.members: the rule compiler's statements, the speed of
-- hand-written SQL) against the stored membership, rule tags or stages (for
-- the stages: each contact's highest-position stage whose members it is in).
-- Only the differences are written, each with its change row, in contact
-- order; then the rules downstream are re-evaluated for the contacts that
-- changed (tags: by the contact_tags trigger).  The result is what the
-- incremental evaluation of every contact (_maintain with n:<node>) gives,
-- without evaluating contacts one by one.
--
-- The comparison and the writes must see a state no maintenance run changes
-- in between, so they run under the global maintenance lock (locked: the
-- caller holds it).  Without it, a first comparison decides: a few
-- differences (at most 64, the most a maintenance run locks one by one) go
-- through _maintain, which locks just those contacts and evaluates them
-- afresh, as writes do; more take the lock and compare again.
CREATE FUNCTION segment._recompute_all(node_kind text, node_name text, locked boolean DEFAULT false)
  RETURNS void
  LANGUAGE plpgsql VOLATILE
  -- the diff joins and sorts the whole base; as segment.members
  SET work_mem = '64MB'
  AS $$
DECLARE
  r       segment.rule;
  sid     bigint;
  ins_ids bigint[];
  del_ids bigint[];
  olds    text[];
  news    text[];
  first_ids bigint[];
  first_stages text[];
  t       timestamptz := segment.now();
BEGIN
  IF node_kind = 'segment' THEN
    SELECT s.id, s.rule INTO sid, r FROM segment.segments s WHERE s.name = node_name;
  ELSIF node_kind = 'tag_rule' THEN
    SELECT tr.rule INTO r FROM segment.tag_rules tr WHERE tr.tag = node_name;
  END IF;
  LOOP
    -- The differences: ins_ids and del_ids (segments: enter, exit; tags: add,
    -- remove), for the stages ins_ids with news and olds.
    IF node_kind = 'segment' THEN
      SELECT array_agg(w.id ORDER BY w.id) FILTER (WHERE m.contact_id IS NULL),
             array_agg(m.contact_id ORDER BY m.contact_id) FILTER (WHERE w.id IS NULL)
        INTO ins_ids, del_ids
        FROM segment.members(r) AS w(id)
        FULL JOIN (SELECT mm.contact_id FROM segment.segment_members mm WHERE mm.segment_id = sid) m
          ON m.contact_id = w.id
       WHERE w.id IS NULL OR m.contact_id IS NULL;
    ELSIF node_kind = 'tag_rule' THEN
      -- A tag held by hand for good stays as it is; one with an expiry is taken
      -- over (its expiry kept in manual_expires_at when it has not passed).
      SELECT array_agg(w.id ORDER BY w.id)
               FILTER (WHERE w.id IS NOT NULL
                         AND (ct.contact_id IS NULL OR (ct.source <> 'rule' AND ct.expires_at IS NOT NULL))),
             array_agg(ct.contact_id ORDER BY ct.contact_id) FILTER (WHERE w.id IS NULL AND ct.source = 'rule')
        INTO ins_ids, del_ids
        FROM segment.members(r) AS w(id)
        FULL JOIN (SELECT x.contact_id, x.source, x.expires_at FROM segment.contact_tags x WHERE x.tag = node_name) ct
          ON ct.contact_id = w.id
       WHERE w.id IS NOT NULL OR ct.source = 'rule';
    ELSE
      -- Each contact's stage: the highest position among the stages whose members it is in.
      SELECT array_agg(d.id ORDER BY d.id), array_agg(d.new ORDER BY d.id), array_agg(d.old ORDER BY d.id)
        INTO ins_ids, news, olds
        FROM (SELECT coalesce(w.id, cs.contact_id) AS id, w.stage AS new, cs.stage AS old
                FROM (SELECT DISTINCT ON (m.id) m.id, st.name AS stage
                        FROM segment.stages st, segment.members(st.rule) AS m(id)
                       WHERE st.rule IS NOT NULL
                       ORDER BY m.id, st.position DESC) w
                FULL JOIN segment.contact_stages cs ON cs.contact_id = w.id
               WHERE w.stage IS DISTINCT FROM cs.stage) d;
    END IF;
    EXIT WHEN locked;
    IF coalesce(cardinality(ins_ids), 0) + coalesce(cardinality(del_ids), 0) <= 64 THEN
      IF ins_ids IS NOT NULL OR del_ids IS NOT NULL THEN
        PERFORM segment._maintain(ARRAY['n:' || CASE node_kind WHEN 'segment' THEN 's:' || node_name
                                                               WHEN 'tag_rule' THEN 't:' || node_name
                                                               ELSE 'g' END],
                                  coalesce(ins_ids, '{}') || coalesce(del_ids, '{}'));
      END IF;
      RETURN;
    END IF;
    PERFORM segment._lock_all();
    locked := true;
  END LOOP;

  IF node_kind = 'segment' THEN
    PERFORM segment._insert_members(sid, coalesce(ins_ids, '{}'), t);
    WITH del AS (DELETE FROM segment.segment_members m
                  WHERE m.segment_id = sid AND m.contact_id = ANY (del_ids))
    INSERT INTO segment.changes (contact_id, kind, name, source)
      SELECT x.c, x.kind, node_name, 'rule'
        FROM (SELECT i AS c, 'segment_enter' AS kind, 1 AS o FROM unnest(ins_ids) AS i
              UNION ALL
              SELECT d, 'segment_exit', 2 FROM unnest(del_ids) AS d) x
       ORDER BY x.o, x.c;
    IF EXISTS (SELECT 1 FROM segment.dependency_index d
                WHERE d.key_kind = 'segment' AND d.key = _recompute_all.node_name) THEN
      PERFORM segment._maintain(ARRAY['s:' || node_name], coalesce(ins_ids, '{}') || coalesce(del_ids, '{}'));
    END IF;
  ELSIF node_kind = 'tag_rule' THEN
    -- The contact_tags trigger re-evaluates the rules naming the tag for these contacts.
    -- An unexpired manual tag taken over is no change: it was on the contact.
    WITH up AS (INSERT INTO segment.contact_tags AS ct (contact_id, tag, source, tagged_at, expires_at)
                  SELECT i, node_name, 'rule', t, NULL FROM unnest(ins_ids) AS i
                ON CONFLICT (contact_id, tag) DO UPDATE
                   SET source = 'rule', expires_at = NULL,
                       tagged_at = CASE WHEN ct.expires_at <= t THEN t ELSE ct.tagged_at END,
                       manual_expires_at = CASE WHEN ct.expires_at > t THEN ct.expires_at END
                 WHERE ct.expires_at IS NOT NULL
                RETURNING ct.contact_id, ct.manual_expires_at)
    INSERT INTO segment.changes (contact_id, kind, name, source)
      SELECT up.contact_id, 'tag_add', node_name, 'rule' FROM up
       WHERE up.manual_expires_at IS NULL ORDER BY up.contact_id;
    PERFORM segment._release_rule_tags(del_ids, array_fill(node_name, ARRAY[coalesce(cardinality(del_ids), 0)]));
  ELSE
    -- Contacts without a stage so far: in bulk; the others updated or deleted.
    SELECT array_agg(u.c ORDER BY u.c), array_agg(u.st ORDER BY u.c) INTO first_ids, first_stages
      FROM unnest(ins_ids, news, olds) AS u(c, st, old) WHERE u.old IS NULL;
    PERFORM segment._insert_stages(coalesce(first_ids, '{}'), coalesce(first_stages, '{}'), t);
    WITH u AS (SELECT * FROM unnest(ins_ids, news, olds) AS u(c, st, old)),
         del AS (DELETE FROM segment.contact_stages cs USING u
                  WHERE u.st IS NULL AND cs.contact_id = u.c),
         upd AS (UPDATE segment.contact_stages cs SET stage = u.st, since = t FROM u
                  WHERE u.st IS NOT NULL AND u.old IS NOT NULL AND cs.contact_id = u.c)
    INSERT INTO segment.changes (contact_id, kind, name, previous, source)
      SELECT u.c, 'stage_change', u.st, u.old, 'rule' FROM u ORDER BY u.c;
    IF EXISTS (SELECT 1 FROM segment.dependency_index d WHERE d.key_kind = 'stage') THEN
      PERFORM segment._maintain(ARRAY['g'], coalesce(ins_ids, '{}'));
    END IF;
  END IF;
END $$;
COMMENT ON FUNCTION segment._recompute_all(text, text, boolean) IS
  'Internal: bring one maintained rule up to date for every contact, set-wise (only the differences written, with change rows); locked: the caller holds the global maintenance lock';

-- The time offset of a relative time of the rule's JSON form (rules.md):
-- {"ago": d} is -d, {"from_now": d} is +d, {"now": true} is 0; NULL for an
-- absolute date or timestamp.
CREATE FUNCTION segment._time_offset(t jsonb) RETURNS interval
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN t ? 'ago' THEN -((t -> 'ago' ->> 'amount') || ' ' || (t -> 'ago' ->> 'unit'))::interval
              WHEN t ? 'from_now' THEN ((t -> 'from_now' ->> 'amount') || ' ' || (t -> 'from_now' ->> 'unit'))::interval
              WHEN t ? 'now' THEN interval '0'
         END
$$;
COMMENT ON FUNCTION segment._time_offset(jsonb) IS
  'Internal: offset from now of a relative time in a rule''s JSON form (NULL when absolute)';

-- The "window edges" of a rule between two refreshes: a query listing every
-- contact for whom a time-relative part of the rule can have changed value
-- between t0 and t1 without any write (an event of the window's type, or a
-- timestamp column, crossing now + offset), '' when the rule does not move
-- with the clock, NULL when its shape is not understood (then everything is
-- re-evaluated).  Writes in between are maintained when they happen.
CREATE FUNCTION segment._edge_sql(node jsonb, t0 timestamptz, t1 timestamptz) RETURNS text
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  parts   text[] := '{}';
  sub     text;
  x       jsonb;
  ev      text;
  o       interval;
  times   jsonb := '[]';
BEGIN
  IF node ? 'and' OR node ? 'or' THEN
    FOR x IN SELECT jsonb_array_elements(coalesce(node -> 'and', node -> 'or')) LOOP
      sub := segment._edge_sql(x, t0, t1);
      IF sub IS NULL THEN
        RETURN NULL;
      END IF;
      IF sub <> '' THEN
        parts := parts || sub;
      END IF;
    END LOOP;
    RETURN array_to_string(parts, ' UNION ');
  END IF;
  IF node ? 'not' THEN
    RETURN segment._edge_sql(node -> 'not', t0, t1);
  END IF;
  -- An atom with no relative time in it does not move with the clock.
  IF node::text !~ '"(ago|from_now|now|within)"' THEN
    RETURN '';
  END IF;
  -- The relative times of the atom: its window, or the value it compares with.
  IF node ? 'within' THEN
    times := times || jsonb_build_array(jsonb_build_object('ago', node -> 'within'));
  END IF;
  IF node ? 'since' THEN
    times := times || jsonb_build_array(node -> 'since');
  END IF;
  IF node ? 'between' THEN
    times := times || (node -> 'between');
  END IF;
  IF node ? 'value' THEN
    times := times || jsonb_build_array(node -> 'value');
  END IF;
  IF node ? 'values' THEN
    times := times || (node -> 'values');
  END IF;
  ev := coalesce(node ->> 'did', node ->> 'did_not', node ->> 'count', node ->> 'sum', node ->> 'avg',
                 node ->> 'min', node ->> 'max', node ->> 'last');
  IF ev IS NOT NULL THEN
    IF node ? 'where' AND (node -> 'where')::text ~ '"(ago|from_now|now|within)"' THEN
      RETURN NULL;                  -- a property compared with a relative time
    END IF;
    FOR x IN SELECT jsonb_array_elements(times) LOOP
      o := segment._time_offset(x);
      CONTINUE WHEN o IS NULL;
      parts := parts || format('SELECT e.contact_id FROM segment.events e WHERE e.type = %L'
                               ' AND e.occurred_at BETWEEN %L::timestamptz AND %L::timestamptz',
                               ev, t0 + o, t1 + o);
    END LOOP;
  ELSIF node ->> 'field' IN ('created_at', 'updated_at', 'consent_at') THEN
    FOR x IN SELECT jsonb_array_elements(times) LOOP
      o := segment._time_offset(x);
      CONTINUE WHEN o IS NULL;
      parts := parts || format('SELECT c.id FROM segment.contacts c WHERE c.%I BETWEEN %L::timestamptz AND %L::timestamptz',
                               node ->> 'field', t0 + o, t1 + o);
    END LOOP;
  ELSE
    RETURN NULL;                    -- a custom date field, or a shape not known here
  END IF;
  IF cardinality(parts) = 0 THEN
    RETURN NULL;
  END IF;
  RETURN array_to_string(parts, ' UNION ');
END $$;
COMMENT ON FUNCTION segment._edge_sql(jsonb, timestamptz, timestamptz) IS
  'Internal: query of the contacts for whom a rule can have changed with the clock alone between t0 and t1 (NULL: unknown)';

-- The contacts a refresh must re-evaluate for one dynamic rule, from its window
-- edges since its last refresh; NULL when that cannot be told (first refresh,
-- clock moved back, a rule shape _edge_sql does not know).  The last refresh
-- time is taken an hour early: a writer that started before it and committed
-- after it evaluated its contacts at its own, earlier time.
CREATE FUNCTION segment._edge_candidates(node_kind text, node_name text) RETURNS bigint[]
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  t0     timestamptz;
  t1     timestamptz := segment.now();
  rules  segment.rule[];
  r      segment.rule;
  sub    text;
  parts  text[] := '{}';
  result bigint[];
BEGIN
  IF node_kind = 'segment' THEN
    SELECT s.refreshed_at, ARRAY[s.rule] INTO t0, rules
      FROM segment.segments s WHERE s.name = node_name AND s.mode = 'dynamic';
  ELSIF node_kind = 'tag_rule' THEN
    SELECT tr.refreshed_at, ARRAY[tr.rule] INTO t0, rules
      FROM segment.tag_rules tr WHERE tr.tag = node_name;
  ELSE
    SELECT CASE WHEN bool_and(st.refreshed_at IS NOT NULL) THEN min(st.refreshed_at) END,
           array_agg(st.rule)
      INTO t0, rules FROM segment.stages st WHERE st.rule IS NOT NULL;
  END IF;
  IF t0 IS NULL OR t1 < t0 THEN
    RETURN NULL;
  END IF;
  FOREACH r IN ARRAY rules LOOP
    sub := segment._edge_sql(segment.rule_to_jsonb(r), t0 - interval '1 hour', t1);
    IF sub IS NULL THEN
      RETURN NULL;
    END IF;
    IF sub <> '' THEN
      parts := parts || sub;
    END IF;
  END LOOP;
  IF cardinality(parts) = 0 THEN
    RETURN '{}';
  END IF;
  EXECUTE 'SELECT array_agg(DISTINCT x.id) FROM (' || array_to_string(parts, ' UNION ') || ') AS x(id)'
    INTO result;
  RETURN coalesce(result, '{}');
END $$;
COMMENT ON FUNCTION segment._edge_candidates(text, text) IS
  'Internal: contacts whose time-relative rule may have changed since its last refresh (NULL: re-evaluate all)';

-- Bring one maintained rule up to date for every contact.
CREATE FUNCTION segment._recompute(node_kind text, node_name text, by_edges boolean DEFAULT false,
                                  locked boolean DEFAULT false)
  RETURNS void
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  ids bigint[];
BEGIN
  IF by_edges THEN
    ids := segment._edge_candidates(node_kind, node_name);
    IF cardinality(ids) > 15000 THEN
      -- Many contacts at the window edges: comparing the whole rule set-wise
      -- costs less than evaluating each of them (doc/performance.md).
      PERFORM segment._lock_all();
      locked := true;
      ids := NULL;
    END IF;
  END IF;
  IF ids IS NULL THEN
    PERFORM segment._recompute_all(node_kind, node_name, locked);
  ELSIF cardinality(ids) > 0 THEN
    PERFORM segment._maintain(ARRAY['n:' || CASE node_kind WHEN 'segment' THEN 's:' || node_name
                                                           WHEN 'tag_rule' THEN 't:' || node_name
                                                           ELSE 'g' END],
                              ids);
  END IF;
  IF node_kind = 'stage' THEN
    UPDATE segment.stages SET refreshed_at = segment.now();
  END IF;
END $$;
COMMENT ON FUNCTION segment._recompute(text, text, boolean, boolean) IS
  'Internal: re-evaluate one maintained rule for the contacts whose state may be out of date (by_edges: only those near a window edge; locked: the caller holds the global maintenance lock)';

-- ---------------------------------------------------------------------------
-- Segments
-- ---------------------------------------------------------------------------

-- The segment row of a name, or the error for an unknown one.
CREATE FUNCTION segment._segment(name text) RETURNS segment.segments
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  s segment.segments;
BEGIN
  SELECT * INTO s FROM segment.segments g WHERE g.name = _segment.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'segment "%" does not exist', name
      USING ERRCODE = 'undefined_object',
            HINT = 'The segments are listed in segment.segment_sizes.';
  END IF;
  RETURN s;
END $$;
COMMENT ON FUNCTION segment._segment(text) IS 'Internal: the segment of that name, or an error';

CREATE FUNCTION segment._check_mode(mode text) RETURNS void
  LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF mode IS NULL OR mode NOT IN ('dynamic', 'scheduled', 'static') THEN
    RAISE EXCEPTION 'invalid segment mode "%"', coalesce(mode, 'NULL')
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use dynamic (kept current on every write), scheduled (by segment.refresh) or static (by hand).';
  END IF;
END $$;
COMMENT ON FUNCTION segment._check_mode(text) IS 'Internal: error unless mode is dynamic, scheduled or static';

CREATE FUNCTION segment.create_segment(name text, rule segment.rule, mode text DEFAULT 'dynamic')
  RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  sid  bigint;
  deps jsonb;
  ids  bigint[];
BEGIN
  IF name IS NULL OR btrim(name) = '' THEN
    RAISE EXCEPTION 'segment name must not be empty' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM segment._check_mode(mode);
  IF rule IS NULL AND mode <> 'static' THEN
    RAISE EXCEPTION 'a % segment needs a rule', mode
      USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Only a static segment can start without a rule (and empty).';
  END IF;
  PERFORM segment._lock_all();
  IF EXISTS (SELECT 1 FROM segment.segments s WHERE s.name = create_segment.name) THEN
    RAISE EXCEPTION 'segment "%" already exists', name
      USING ERRCODE = 'duplicate_object',
            HINT = 'Pick another name, or change it with segment.update_segment.';
  END IF;
  deps := CASE WHEN rule IS NULL THEN '{}' ELSE segment.rule_dependencies(rule) END;
  PERFORM segment._check_references(deps);
  INSERT INTO segment.segments (name, mode, rule, deps, refreshed_at)
    VALUES (name, mode, rule, deps, segment.now())
    RETURNING id INTO sid;
  IF mode <> 'static' THEN
    PERFORM segment._index_rule('segment', name, deps);
  END IF;
  -- First members, in bulk: nothing depends on a new segment yet, so no cascade.
  IF rule IS NOT NULL THEN
    SELECT coalesce(array_agg(m ORDER BY m), '{}') INTO ids FROM segment.members(rule) m;
    PERFORM segment._insert_members(sid, ids, segment.now());
    INSERT INTO segment.changes (contact_id, kind, name, source)
      SELECT i, 'segment_enter', create_segment.name,
             CASE WHEN mode = 'static' THEN 'manual' ELSE 'rule' END
        FROM unnest(ids) AS i ORDER BY i;
  END IF;
  RETURN sid;
END $$;
COMMENT ON FUNCTION segment.create_segment(text, segment.rule, text) IS
  'Create a segment (dynamic, scheduled or static) and compute its members; returns its id';

CREATE FUNCTION segment.update_segment(name text, rule segment.rule, mode text DEFAULT NULL)
  RETURNS TABLE (segment text, entered bigint, exited bigint)
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  s        segment.segments;
  new_mode text;
  new_rule segment.rule;
  new_deps jsonb;
BEGIN
  PERFORM segment._lock_all();
  s := segment._segment(name);
  new_mode := coalesce(mode, s.mode);
  PERFORM segment._check_mode(new_mode);
  new_rule := coalesce(rule, s.rule);
  IF new_rule IS NULL AND new_mode <> 'static' THEN
    RAISE EXCEPTION 'a % segment needs a rule', new_mode
      USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Give the rule in the call.';
  END IF;
  new_deps := CASE WHEN new_rule IS NULL THEN '{}' ELSE segment.rule_dependencies(new_rule) END;
  PERFORM segment._check_references(new_deps);
  UPDATE segment.segments g SET rule = new_rule, deps = new_deps, mode = new_mode
   WHERE g.id = s.id;
  PERFORM segment._index_rule('segment', name, CASE WHEN new_mode = 'static' THEN NULL ELSE new_deps END);
  IF new_mode = 'static' THEN
    RETURN QUERY SELECT name, 0::bigint, 0::bigint;   -- members stay as they are
  ELSE
    RETURN QUERY SELECT * FROM segment.refresh(name);
  END IF;
END $$;
COMMENT ON FUNCTION segment.update_segment(text, segment.rule, text) IS
  'Change the rule (and/or mode) of a segment; members are recomputed at once, entries and exits recorded';

-- The error of dropping a segment or stage that a stored rule still names: a
-- segment's (whatever its mode: a static segment keeps the rule it was made
-- from), a tag rule's, a stage's or a flow's unless rule.  Such a rule would
-- no longer be valid (its text would not parse; a flow would fail at send time).
CREATE FUNCTION segment._refuse_drop(kind text, name text) RETURNS void
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  users text;
BEGIN
  SELECT string_agg(DISTINCT u.label, ', ') INTO users
    FROM (SELECT segment._node_label('segment', g.name) AS label, g.rule FROM segment.segments g
          UNION ALL
          SELECT segment._node_label('tag_rule', r.tag), r.rule FROM segment.tag_rules r
          UNION ALL
          SELECT segment._node_label('stage', st.name), st.rule FROM segment.stages st
          UNION ALL
          SELECT format('flow "%s"', f.name), (f.options ->> 'unless')::segment.rule
            FROM segment.flows f WHERE f.options ? 'unless') u
   WHERE u.rule IS NOT NULL
     AND CASE kind
           WHEN 'segment' THEN segment.rule_dependencies(u.rule) -> 'segments' ? name
           ELSE jsonb_path_exists(segment.rule_to_jsonb(u.rule),
                                  'lax $.**.stage ? (@.value == $n || @.values == $n)',
                                  jsonb_build_object('n', name))
         END;
  IF users IS NOT NULL THEN
    RAISE EXCEPTION 'cannot drop % "%" because other rules use it', kind, name
      USING ERRCODE = 'dependent_objects_still_exist',
            DETAIL = format('Used by %s (%s).', users,
                            format(CASE kind WHEN 'segment' THEN 'in segment %L' ELSE 'stage %L' END, name)),
            HINT = 'Change or drop those rules first.';
  END IF;
END $$;
COMMENT ON FUNCTION segment._refuse_drop(text, text) IS
  'Internal: the error of dropping a segment or stage (kind) that a stored rule still names';

CREATE FUNCTION segment.drop_segment(name text) RETURNS void
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  s     segment.segments;
  users text;
BEGIN
  PERFORM segment._lock_all();
  s := segment._segment(name);
  PERFORM segment._refuse_drop('segment', name);
  users := segment._mail_users('segment', name);
  IF users IS NOT NULL THEN
    RAISE EXCEPTION 'cannot drop segment "%" because it is used by %', name, users
      USING ERRCODE = 'dependent_objects_still_exist',
            HINT = 'Cancel those campaigns (segment.cancel) and drop those flows (segment.drop_flow) first.';
  END IF;
  PERFORM segment._index_rule('segment', name, NULL);
  DELETE FROM segment.segments g WHERE g.id = s.id;   -- members go with it
END $$;
COMMENT ON FUNCTION segment.drop_segment(text) IS
  'Drop a segment and its members (no exits are recorded); refused while other rules, a flow or a campaign not cancelled use it';

CREATE FUNCTION segment.in_segment(contact_id bigint, name text) RETURNS boolean
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  sid bigint;
BEGIN
  SELECT s.id INTO sid FROM segment.segments s WHERE s.name = in_segment.name;
  IF NOT FOUND THEN
    PERFORM segment._segment(name);
  END IF;
  RETURN EXISTS (SELECT 1 FROM segment.segment_members m
                  WHERE m.segment_id = sid AND m.contact_id = in_segment.contact_id);
END $$;
COMMENT ON FUNCTION segment.in_segment(bigint, text) IS 'Is the contact a member of the segment now?';

CREATE FUNCTION segment.segment_members(name text) RETURNS SETOF bigint
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  s segment.segments := segment._segment(name);
BEGIN
  RETURN QUERY SELECT m.contact_id FROM segment.segment_members m
                WHERE m.segment_id = s.id ORDER BY m.contact_id;
END $$;
COMMENT ON FUNCTION segment.segment_members(text) IS 'The contacts in the segment now, by id';

-- The static segment of a name, or the error for any other.
CREATE FUNCTION segment._static_segment(name text, action text) RETURNS segment.segments
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  s segment.segments := segment._segment(name);
BEGIN
  IF s.mode <> 'static' THEN
    RAISE EXCEPTION 'segment "%" is %', name, s.mode
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = format('Only static segments take %s; the rule decides the members of a %s segment.', action, s.mode),
            HINT = 'Change the rule with segment.update_segment, or use a static segment.';
  END IF;
  RETURN s;
END $$;
COMMENT ON FUNCTION segment._static_segment(text, text) IS 'Internal: the static segment of that name, or an error';

CREATE FUNCTION segment.add_to_segment(name text, contact_id bigint) RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  s segment.segments := segment._static_segment(name, 'members by hand');
BEGIN
  PERFORM segment._check_contact(contact_id);
  INSERT INTO segment.segment_members (segment_id, contact_id, since)
    VALUES (s.id, contact_id, segment.now())
    ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO segment.changes (contact_id, kind, name, source)
    VALUES (contact_id, 'segment_enter', name, 'manual');
  PERFORM segment._maintain(ARRAY['s:' || name], ARRAY[contact_id]);
  RETURN true;
END $$;
COMMENT ON FUNCTION segment.add_to_segment(text, bigint) IS
  'Add a contact to a static segment; true when it was not a member';

CREATE FUNCTION segment.remove_from_segment(name text, contact_id bigint) RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  s segment.segments := segment._static_segment(name, 'members by hand');
BEGIN
  PERFORM segment._check_contact(contact_id);
  DELETE FROM segment.segment_members m
   WHERE m.segment_id = s.id AND m.contact_id = remove_from_segment.contact_id;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO segment.changes (contact_id, kind, name, source)
    VALUES (contact_id, 'segment_exit', name, 'manual');
  PERFORM segment._maintain(ARRAY['s:' || name], ARRAY[contact_id]);
  RETURN true;
END $$;
COMMENT ON FUNCTION segment.remove_from_segment(text, bigint) IS
  'Remove a contact from a static segment; true when it was a member';

CREATE VIEW segment.segment_sizes AS
  SELECT s.name AS segment, s.mode,
         (SELECT count(*) FROM segment.segment_members m WHERE m.segment_id = s.id) AS members,
         s.rule, s.created_at, s.refreshed_at
    FROM segment.segments s;
COMMENT ON VIEW segment.segment_sizes IS 'Every segment with its mode, current number of members and rule';

-- ---------------------------------------------------------------------------
-- Tag rules
-- ---------------------------------------------------------------------------

CREATE FUNCTION segment.create_tag_rule(tag text, rule segment.rule) RETURNS bigint
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  rid  bigint;
  deps jsonb;
BEGIN
  PERFORM segment._check_tag(tag);
  IF rule IS NULL THEN
    RAISE EXCEPTION 'a tag rule needs a rule' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  PERFORM segment._lock_all();
  IF EXISTS (SELECT 1 FROM segment.tag_rules r WHERE r.tag = create_tag_rule.tag) THEN
    RAISE EXCEPTION 'tag rule for "%" already exists', tag
      USING ERRCODE = 'duplicate_object',
            HINT = 'A tag has at most one rule: drop it with segment.drop_tag_rule first.';
  END IF;
  deps := segment.rule_dependencies(rule);
  PERFORM segment._check_references(deps);
  INSERT INTO segment.tag_rules (tag, rule, deps, refreshed_at)
    VALUES (tag, rule, deps, segment.now()) RETURNING id INTO rid;
  PERFORM segment._index_rule('tag_rule', tag, deps);
  PERFORM segment._recompute('tag_rule', tag, false, true);
  RETURN rid;
END $$;
COMMENT ON FUNCTION segment.create_tag_rule(text, segment.rule) IS
  'Keep the tag on every contact for whom the rule holds (source rule); returns the rule id';

CREATE FUNCTION segment.drop_tag_rule(tag text) RETURNS void
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM segment._lock_all();
  IF NOT EXISTS (SELECT 1 FROM segment.tag_rules r WHERE r.tag = drop_tag_rule.tag) THEN
    RAISE EXCEPTION 'tag rule for "%" does not exist', tag
      USING ERRCODE = 'undefined_object',
            HINT = 'The tag rules are listed in segment.tag_rules.';
  END IF;
  PERFORM segment._index_rule('tag_rule', tag, NULL);
  DELETE FROM segment.tag_rules r WHERE r.tag = drop_tag_rule.tag;
  -- The tags the rule held go with it (manual ones stay, so do those a manual
  -- tag with an expiry held too, until that expiry).
  PERFORM segment._release_rule_tags(array_agg(ct.contact_id), array_agg(ct.tag))
     FROM segment.contact_tags ct
    WHERE ct.tag = drop_tag_rule.tag AND ct.source = 'rule';
END $$;
COMMENT ON FUNCTION segment.drop_tag_rule(text) IS
  'Drop a tag rule; the tags it held are removed (manual tags of that name stay)';

-- ---------------------------------------------------------------------------
-- Lifecycle stages
-- ---------------------------------------------------------------------------

CREATE FUNCTION segment.define_stage(name text, "position" integer, rule segment.rule) RETURNS void
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  deps  jsonb;
  other text;
BEGIN
  IF name IS NULL OR btrim(name) = '' THEN
    RAISE EXCEPTION 'stage name must not be empty' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF "position" IS NULL OR rule IS NULL THEN
    RAISE EXCEPTION 'a stage needs a position and a rule' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  PERFORM segment._lock_all();
  IF EXISTS (SELECT 1 FROM segment.stages st WHERE st.name = define_stage.name) THEN
    RAISE EXCEPTION 'stage "%" already exists', name
      USING ERRCODE = 'duplicate_object',
            HINT = 'Drop it with segment.drop_stage first.';
  END IF;
  SELECT st.name INTO other FROM segment.stages st WHERE st.position = define_stage."position";
  IF FOUND THEN
    RAISE EXCEPTION 'stage position % is already taken by stage "%"', "position", other
      USING ERRCODE = 'duplicate_object',
            HINT = 'Each stage has its own position; the highest position whose rule holds wins.';
  END IF;
  deps := segment.rule_dependencies(rule);
  PERFORM segment._check_references(deps);
  INSERT INTO segment.stages (name, position, rule, deps) VALUES (name, "position", rule, deps);
  PERFORM segment._index_rule('stage', name, deps);
  PERFORM segment._recompute('stage', NULL, false, true);
END $$;
COMMENT ON FUNCTION segment.define_stage(text, integer, segment.rule) IS
  'Define a lifecycle stage: a contact is in the highest-position stage whose rule holds';

CREATE FUNCTION segment.drop_stage(name text) RETURNS void
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  ids   bigint[];
  start bigint;
BEGIN
  PERFORM segment._lock_all();
  IF NOT EXISTS (SELECT 1 FROM segment.stages st WHERE st.name = drop_stage.name) THEN
    RAISE EXCEPTION 'stage "%" does not exist', name
      USING ERRCODE = 'undefined_object',
            HINT = 'The stages are listed in segment.stage_counts.';
  END IF;
  PERFORM segment._refuse_drop('stage', name);
  SELECT coalesce(array_agg(cs.contact_id), '{}') INTO ids
    FROM segment.contact_stages cs WHERE cs.stage = drop_stage.name;
  SELECT coalesce(max(ch.id), 0) INTO start FROM segment.changes ch WHERE ch.xid = pg_current_xact_id();
  PERFORM segment._index_rule('stage', name, NULL);
  DELETE FROM segment.stages st WHERE st.name = drop_stage.name;   -- its contacts lose it
  IF cardinality(ids) > 0 THEN
    PERFORM segment._maintain(ARRAY['n:g'], ids);                 -- they fall to the next stage
    UPDATE segment.changes ch SET previous = drop_stage.name
     WHERE ch.id > start AND ch.kind = 'stage_change' AND ch.contact_id = ANY (ids)
       AND ch.previous IS NULL AND ch.xid = pg_current_xact_id();
    INSERT INTO segment.changes (contact_id, kind, name, previous, source)
      SELECT i, 'stage_change', NULL, drop_stage.name, 'rule'
        FROM unnest(ids) AS i
       WHERE NOT EXISTS (SELECT 1 FROM segment.contact_stages cs WHERE cs.contact_id = i)
       ORDER BY i;
  END IF;
END $$;
COMMENT ON FUNCTION segment.drop_stage(text) IS
  'Drop a lifecycle stage; its contacts move to the next stage whose rule holds (transitions recorded); refused while other rules name it';

CREATE FUNCTION segment.stage(contact_id bigint) RETURNS text
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  st text;
BEGIN
  SELECT cs.stage INTO st FROM segment.contact_stages cs WHERE cs.contact_id = stage.contact_id;
  IF NOT FOUND THEN
    PERFORM segment._check_contact(contact_id);
  END IF;
  RETURN st;
END $$;
COMMENT ON FUNCTION segment.stage(bigint) IS 'The contact''s lifecycle stage now (NULL when no stage rule holds)';

CREATE VIEW segment.stage_counts AS
  SELECT st.name AS stage, st.position,
         (SELECT count(*) FROM segment.contact_stages cs WHERE cs.stage = st.name) AS contacts,
         st.rule
    FROM segment.stages st;
COMMENT ON VIEW segment.stage_counts IS 'Every lifecycle stage with its position, number of contacts and rule';

-- The five default stages of design.md §4, in the rule language (doc/segments.md).
CREATE FUNCTION segment.install_default_stages() RETURNS void
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  s record;
BEGIN
  -- A default stage already defined as here is kept as it is, so a second call
  -- changes nothing; any other stage of that name or position is an error
  -- (define_stage's), so a customised stage is never overwritten.
  FOR s IN SELECT * FROM (VALUES
      ('lead', 10, 'not did purchase'),
      ('new_customer', 20,
       'did purchase within 30 days and not did purchase between date ''1970-01-01'' and 30 days ago'),
      ('repeat_buyer', 30, 'count(purchase) >= 2'),
      ('loyal_customer', 40, 'count(purchase) within 180 days >= 4 and sum(purchase.amount) >= 500'),
      ('lapsed', 50, 'did purchase and not did purchase within 180 days')) AS v(name, pos, rule) LOOP
    CONTINUE WHEN EXISTS (SELECT 1 FROM segment.stages g
                           WHERE g.name = s.name AND g.position = s.pos
                             AND g.rule::text = s.rule::segment.rule::text);
    PERFORM segment.define_stage(s.name, s.pos, s.rule::segment.rule);
  END LOOP;
END $$;
COMMENT ON FUNCTION segment.install_default_stages() IS
  'Define the stages lead, new_customer, repeat_buyer, loyal_customer and lapsed (see doc/segments.md); those already defined so are kept';

-- ---------------------------------------------------------------------------
-- Refresh: what changes without any write (time, expiry) and scheduled segments
-- ---------------------------------------------------------------------------

CREATE FUNCTION segment.refresh(name text DEFAULT NULL)
  RETURNS TABLE (segment text, entered bigint, exited bigint)
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  start   bigint;
  me      xid8 := pg_current_xact_id();
  s       segment.segments;
  targets text[];
  n       record;
  ids     bigint[];
  tags    text[];
  staged  boolean := false;
BEGIN
  SELECT coalesce(max(c.id), 0) INTO start FROM segment.changes c WHERE c.xid = me;
  IF name IS NOT NULL THEN
    s := segment._segment(name);
    IF s.mode = 'static' THEN
      RAISE EXCEPTION 'segment "%" is static', name
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = 'A static segment has no rule to refresh from.',
              HINT = 'Add and remove its members with segment.add_to_segment and segment.remove_from_segment.';
    END IF;
    targets := ARRAY[name];
    PERFORM segment._recompute('segment', name);
  ELSE
    -- Expired tags: delete them (the tag trigger re-evaluates the rules naming them) ...
    WITH gone AS (
      DELETE FROM segment.contact_tags ct WHERE ct.expires_at <= segment.now()
      RETURNING ct.contact_id, ct.tag),
    logged AS (
      INSERT INTO segment.changes (contact_id, kind, name, source)
        SELECT g.contact_id, 'tag_remove', g.tag, 'expiry' FROM gone g)
    SELECT array_agg(g.contact_id), array_agg(g.tag) INTO ids, tags FROM gone g;
    -- ... and give a tag rule that still holds the tag back.
    FOR n IN SELECT r.tag, array_agg(u.c) AS ids
               FROM unnest(ids, tags) AS u(c, t) JOIN segment.tag_rules r ON r.tag = u.t
              GROUP BY r.tag LOOP
      PERFORM segment._maintain(ARRAY['n:t:' || n.tag], n.ids);
    END LOOP;
    -- Rules on time, and scheduled segments.
    FOR n IN SELECT DISTINCT d.node_kind, d.node_name FROM segment.dependency_index d
              WHERE d.key_kind = 'time'
             UNION
             SELECT 'segment', g.name FROM segment.segments g WHERE g.mode = 'scheduled'
             ORDER BY 1, 2 LOOP
      IF n.node_kind = 'stage' THEN
        CONTINUE WHEN staged;
        staged := true;
        PERFORM segment._recompute('stage', NULL, true);
      ELSE
        IF n.node_kind = 'segment' THEN
          targets := targets || n.node_name;
        END IF;
        PERFORM segment._recompute(n.node_kind, n.node_name, true);
      END IF;
    END LOOP;
  END IF;
  UPDATE segment.segments g SET refreshed_at = segment.now() WHERE g.name = ANY (targets);
  UPDATE segment.tag_rules r SET refreshed_at = segment.now()
   WHERE name IS NULL AND r.tag IN (SELECT d.node_name FROM segment.dependency_index d
                                     WHERE d.key_kind = 'time' AND d.node_kind = 'tag_rule');
  RETURN QUERY
    SELECT g.name,
           count(*) FILTER (WHERE c.kind = 'segment_enter'),
           count(*) FILTER (WHERE c.kind = 'segment_exit')
      FROM segment.segments g
      LEFT JOIN segment.changes c
        ON c.name = g.name AND c.id > start AND c.xid = me
       AND c.kind IN ('segment_enter', 'segment_exit')
     WHERE g.name = ANY (targets) OR c.id IS NOT NULL
     GROUP BY g.name
     ORDER BY g.name;
END $$;
COMMENT ON FUNCTION segment.refresh(text) IS
  'Re-evaluate what changes without writes: expired tags, time-relative rules, scheduled segments (or one segment); returns entries and exits per segment';
