-- Signed tokens and one-click unsubscribe.
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET segment.clock_override = '2026-06-01 12:00:00+00';
SELECT segment.upsert_contact('ann@example.com') AS ann \gset
UPDATE segment.contacts SET status = 'subscribed';

-- Without a base URL there is no unsubscribe link.
SELECT segment.unsubscribe_url(:ann) IS NULL AS no_link;
SET segment.unsubscribe_url = 'https://shop.example/unsubscribe';
-- A base URL without a secret: links cannot be signed.
SELECT segment.unsubscribe_url(:ann);
SET segment.secret = 'short';
SELECT segment.unsubscribe_url(:ann);
SET segment.secret = 'a-long-enough-test-secret';

-- Links are deterministic for a given time, contact and campaign.
SELECT segment.unsubscribe_url(:ann, 'spring-sale');
SELECT segment.unsubscribe_url(:ann, 'spring-sale') = segment.unsubscribe_url(:ann, 'spring-sale') AS stable;
-- An id that names no contact is an error, not a link that fails when clicked.
SELECT segment.unsubscribe_url(:ann + 1000, 'spring-sale');
SET segment.unsubscribe_url = 'https://shop.example/u?list=news';
SELECT segment.unsubscribe_url(:ann);
SELECT split_part(segment.unsubscribe_url(:ann, 'spring-sale'), 'token=', 2) AS token \gset

-- Unsubscribing: idempotent, returns the contact.
SELECT segment.unsubscribe(:'token') = :ann AS unsubscribed;
SELECT status FROM segment.contacts;
SELECT segment.unsubscribe(:'token') = :ann AS again;
-- Bounced contacts stay bounced.
UPDATE segment.contacts SET status = 'bounced';
SELECT segment.unsubscribe(:'token') = :ann AS still_ok;
SELECT status FROM segment.contacts;

-- The application role builds links and unsubscribes, though it cannot sign tokens itself.
CREATE ROLE regress_token_app IN ROLE segment_app;
SET ROLE regress_token_app;
SELECT segment.unsubscribe_url(:ann, 'spring-sale') = 'https://shop.example/u?list=news&token=' || :'token' AS app_link;
SELECT segment.unsubscribe(:'token') = :ann AS app_unsubscribes;
SELECT segment.sign_token('unsubscribe', '1:', now());
RESET ROLE;
DROP ROLE regress_token_app;

-- Forged, tampered, foreign and expired tokens are refused.
SELECT segment.unsubscribe(NULL);
SELECT segment.unsubscribe('garbage');
SELECT segment.unsubscribe(:'token' || 'A');
SELECT segment.unsubscribe(overlay(:'token' placing 'B' from 3 for 1));
-- Only the canonical encoding verifies: of the 64 characters that can end the signature
-- or the payload part, one does (the token's own), though others decode to the same bits.
CREATE FUNCTION pg_temp.verifies(t text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM segment.verify_token('unsubscribe', t);
  RETURN true;
EXCEPTION WHEN invalid_parameter_value THEN
  RETURN false;
END $$;
SELECT count(*) FILTER (WHERE pg_temp.verifies(left(:'token', -1) || c)) AS signature_endings,
       count(*) FILTER (WHERE pg_temp.verifies(overlay(:'token' placing c from strpos(:'token', '.') - 1 for 1))) AS payload_endings
  FROM regexp_split_to_table('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', '') c;
SELECT segment.unsubscribe(segment.sign_token('confirm', :ann || ':', '2027-01-01'));
SELECT segment.verify_token('confirm', segment.sign_token('confirm', 'payload', '2027-01-01'));
SELECT segment.verify_token('confirm', segment.sign_token('confirm', 'payload', '2026-05-31'));
SET segment.clock_override = '2027-06-02 12:00:00+00';
SELECT segment.unsubscribe(:'token');
SET segment.secret = 'another-long-enough-secret';
SET segment.clock_override = '2026-06-01 12:00:00+00';
SELECT segment.unsubscribe(:'token');

-- A deleted contact.
SET segment.secret = 'a-long-enough-test-secret';
DELETE FROM segment.contacts;
SELECT segment.unsubscribe(:'token');
DROP EXTENSION segment;
