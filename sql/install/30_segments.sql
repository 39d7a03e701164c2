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
