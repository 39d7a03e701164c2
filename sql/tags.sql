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

-- A manual expiry ends only the manual hold: while a tag rule holds the tag it
-- stays (as a rule tag, the manual expiry kept in manual_expires_at); when the
-- rule stops before that expiry, the tag stays until then (as a manual tag).
SET segment.clock_override = '2030-04-01 00:00:00+00';
INSERT INTO segment.contacts (id, email) VALUES (4, 'dee@example.com'), (5, 'eve@example.com');
SELECT segment.create_tag_rule('spender', 'did purchase');
SELECT segment.create_segment('spenders', 'tagged ''spender''');
SELECT max(id) AS mark FROM segment.changes \gset
SELECT segment.track(4, 'purchase') > 0 AS tracked;
SELECT segment.tag(4, 'spender', '2030-04-02');      -- the rule holds it: false
SELECT segment.tag(5, 'spender', '2030-04-02');      -- new: true
SELECT segment.track(5, 'purchase') > 0 AS tracked;  -- now the rule holds it too
SELECT contact_id, source, expires_at, manual_expires_at
  FROM segment.contact_tags WHERE tag = 'spender' ORDER BY 1;
SET segment.clock_override = '2030-04-03 00:00:00+00';
SELECT segment.tags(4) AS tags_4, segment.tags(5) AS tags_5;
SELECT c.id, segment.matches(c.id, 'tagged ''spender'''),
       c.id IN (SELECT segment.members('tagged ''spender''')) AS member
  FROM segment.contacts c WHERE c.id IN (4, 5) ORDER BY 1;
SELECT tag, contacts, by_rule FROM segment.tag_counts WHERE tag = 'spender';
SELECT * FROM segment.refresh();
SELECT segment.segment_members('spenders');
-- The rule stops while a manual tag with an expiry to come holds it: it stays.
SELECT segment.tag(4, 'spender', '2030-04-10');
DELETE FROM segment.events WHERE contact_id = 4;
SELECT contact_id, source, expires_at, manual_expires_at
  FROM segment.contact_tags WHERE tag = 'spender' ORDER BY 1;
SELECT segment.tags(4), segment.matches(4, 'tagged ''spender'''), segment.segment_members('spenders');
-- The rule stops after the manual expiry passed: the tag goes at once.
DELETE FROM segment.events WHERE contact_id = 5;
SELECT segment.tags(5), segment.segment_members('spenders');
-- ... and the manual one at its expiry.
SET segment.clock_override = '2030-04-11 00:00:00+00';
SELECT segment.tags(4);
SELECT * FROM segment.refresh();
SELECT segment.segment_members('spenders');
-- untag of a tag the rule holds: false, the tag stays, the manual hold is gone.
SELECT segment.track(4, 'purchase') > 0 AS tracked;
SELECT segment.tag(4, 'spender', '2030-05-01');
SELECT segment.untag(4, 'spender');
SELECT contact_id, source, expires_at, manual_expires_at FROM segment.contact_tags WHERE tag = 'spender';
-- Dropping the rule keeps what a manual tag with an expiry to come holds.
SELECT segment.tag(4, 'spender', '2030-05-01');
SELECT segment.drop_tag_rule('spender');
SELECT contact_id, source, expires_at, manual_expires_at FROM segment.contact_tags WHERE tag = 'spender';
SELECT id - :mark AS n, at, contact_id, tag, action, source
  FROM segment.tag_history WHERE id > :mark ORDER BY id;
-- The same when a rule is applied to many contacts at once (set-wise, also by
-- refresh for a rule on time): manual tags with an expiry are taken over, and
-- kept while their expiry is to come.
INSERT INTO segment.contacts (id, email)
  SELECT i, 'many' || i || '@example.com' FROM generate_series(100, 179) AS i;
SELECT bool_and(segment.tag(i, 'many', '2030-04-12')) AS all_new FROM generate_series(100, 179) AS i;
INSERT INTO segment.events (contact_id, type) SELECT i, 'signup' FROM generate_series(100, 179) AS i;
SELECT max(id) AS mark FROM segment.changes \gset
SELECT segment.create_tag_rule('many', 'did signup within 3 days') > 0 AS created;
SELECT source, count(*), min(manual_expires_at) FROM segment.contact_tags WHERE tag = 'many' GROUP BY 1;
SET segment.clock_override = '2030-04-13 00:00:00+00';
SELECT tag, contacts, by_rule FROM segment.tag_counts WHERE tag = 'many';
SELECT segment.tag(i, 'many', '2030-04-20') FROM generate_series(100, 101) AS i;
SET segment.clock_override = '2030-04-15 00:00:00+00';
SELECT * FROM segment.refresh();
SELECT source, count(*), min(expires_at) FROM segment.contact_tags WHERE tag = 'many' GROUP BY 1 ORDER BY 1;
SELECT action, source, count(*) FROM segment.tag_history WHERE id > :mark GROUP BY 1, 2 ORDER BY 1, 2;
SELECT segment.drop_tag_rule('many');

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
