-- Tags: tag, untag, tags, expiry, the change feed.
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET segment.clock_override = '2030-01-01 00:00:00+00';

INSERT INTO segment.contacts (id, email) VALUES (1, 'ann@example.com'), (2, 'bob@example.com');

SELECT segment.tag(1, 'VIP');                 -- new: true
SELECT segment.tag(1, 'VIP');                 -- already there: false
SELECT segment.tag(1, 'newsletter');
SELECT segment.tag(2, 'trial', '2030-01-08');  -- expires in a week
SELECT segment.tags(1), segment.tags(2);
SELECT tag, contacts, by_rule FROM segment.tag_counts ORDER BY tag;

-- The tag expires on its own: it never counts after expires_at.
SET segment.clock_override = '2030-01-08 00:00:00+00';
SELECT segment.tags(2);
SELECT tag, contacts FROM segment.tag_counts ORDER BY tag;
-- Tagging again brings it back (a new tag_add) with the new expiry.
SELECT segment.tag(2, 'trial', '2030-02-01');
SELECT segment.tags(2);
-- Re-tagging an unexpired tag only moves its expiry; NULL makes it permanent.
SELECT segment.tag(2, 'trial');
SELECT tag, source, expires_at FROM segment.contact_tags WHERE contact_id = 2;

SELECT segment.untag(1, 'VIP');               -- true
SELECT segment.untag(1, 'VIP');               -- not there any more: false
SELECT segment.tags(1);

SELECT id, at, contact_id, tag, action, source FROM segment.tag_history ORDER BY id;
SELECT kind, count(*) FROM segment.changes GROUP BY kind ORDER BY kind;

-- Errors.
SELECT segment.tag(99, 'VIP');
SELECT segment.tag(1, '');
SELECT segment.tag(1, NULL);
SELECT segment.tag(1, 'x', '2029-01-01');
SELECT segment.tag(1, 'x', NULL, 'rule');
SELECT segment.untag(99, 'VIP');
SELECT segment.untag(1, ' ');

RESET segment.clock_override;
DROP EXTENSION segment;
