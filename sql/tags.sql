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


-- Tag rules: the tag is on every contact for whom the rule holds (source rule).
SET segment.clock_override = '2030-03-01 00:00:00+00';
INSERT INTO segment.contacts (id, email) VALUES (3, 'cy@example.com');
SELECT segment.track(1, 'purchase', '{}', 120) > 0 AS tracked;
SELECT segment.create_tag_rule('big_buyer', 'sum(purchase.amount) >= 100');
SELECT segment.create_segment('big_buyers', 'tagged ''big_buyer''');
SELECT segment.segment_members('big_buyers');
SELECT segment.track(2, 'purchase', '{}', 60) > 0, segment.track(2, 'purchase', '{}', 60) > 0;
SELECT segment.tags(2), segment.segment_members('big_buyers');
SELECT tag, contacts, by_rule FROM segment.tag_counts WHERE tag = 'big_buyer';
-- untag cannot remove what a rule holds.
SELECT segment.untag(2, 'big_buyer');
SELECT segment.tags(2);
-- A manual tag of the same name is not removed by the rule.
SELECT segment.tag(1, 'big_buyer');            -- already there (by rule): now manual
SELECT segment.tag(3, 'big_buyer');            -- rule does not hold: manual
DELETE FROM segment.events WHERE contact_id IN (1, 2);
SELECT contact_id, source FROM segment.contact_tags WHERE tag = 'big_buyer' ORDER BY 1;
SELECT segment.segment_members('big_buyers');
-- untag of a manual tag while the rule holds turns it back into a rule tag.
SELECT segment.track(3, 'purchase', '{}', 500) > 0 AS tracked;
SELECT segment.untag(3, 'big_buyer');
SELECT contact_id, source FROM segment.contact_tags WHERE tag = 'big_buyer' ORDER BY 1;

-- Expired tags: gone at once for rules evaluated afterwards; refresh deletes them,
-- records the removal and takes the contact out of the segments that needed them.
SELECT segment.create_segment('trial_users', 'tagged ''trial''');
SELECT segment.tag(1, 'trial', '2030-03-02');
SELECT segment.segment_members('trial_users');
SET segment.clock_override = '2030-03-03 00:00:00+00';
SELECT segment.tags(1);
SELECT * FROM segment.refresh();
SELECT segment.segment_members('trial_users');
SELECT count(*) AS expired_rows_left FROM segment.contact_tags WHERE expires_at <= segment.now();

-- Dropping a tag rule removes the tags it held; manual ones stay.
SELECT segment.drop_tag_rule('big_buyer');
SELECT contact_id, source FROM segment.contact_tags WHERE tag = 'big_buyer' ORDER BY 1;
SELECT segment.segment_members('big_buyers');

SELECT id, at, contact_id, tag, action, source FROM segment.tag_history WHERE id > 5 ORDER BY id;

-- Tag-rule errors.
SELECT segment.create_tag_rule('vip', 'did purchase');
SELECT segment.create_tag_rule('vip', 'did purchase');
SELECT segment.create_tag_rule('', 'did purchase');
SELECT segment.drop_tag_rule('nope');
-- A cycle through a tag: the segment needs the tag, the tag rule needs the segment.
SELECT segment.create_segment('loop_seg', 'tagged ''loop''');
SELECT segment.create_tag_rule('loop', 'in segment ''loop_seg''');

-- The signature of design.md exists as such (a manual tag); the source is the
-- fourth argument of the other form.
SELECT to_regprocedure('segment.tag(bigint, text, timestamptz)') IS NOT NULL AS three_args,
       to_regprocedure('segment.tag(bigint, text, timestamptz, text)') IS NOT NULL AS four_args;
SELECT segment.tag(contact_id => 1, tag => 'named', expires_at => NULL), segment.tag(1, 'named', NULL, 'flow');
SELECT tag, source FROM segment.contact_tags WHERE contact_id = 1 AND tag = 'named';

RESET segment.clock_override;
DROP EXTENSION segment;
