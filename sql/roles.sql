-- Roles: nothing for PUBLIC; admin, editor and app rights.
CREATE EXTENSION segment;
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET segment.from_address = 'Shop <news@shop.example>';
SET segment.unsubscribe_url = 'https://shop.example/unsubscribe';
SET segment.secret = 'a-long-enough-test-secret';
CREATE ROLE regress_nobody;
CREATE ROLE regress_app IN ROLE segment_app;
CREATE ROLE regress_editor IN ROLE segment_editor;

-- No function or table of the extension is usable by PUBLIC.
SELECT count(*) AS public_functions
  FROM pg_proc p
 WHERE p.pronamespace = 'segment'::regnamespace
   AND has_function_privilege('regress_nobody', p.oid, 'EXECUTE');
SELECT count(*) AS public_tables
  FROM pg_class c
 WHERE c.relnamespace = 'segment'::regnamespace AND c.relkind IN ('r', 'v', 'p')
   AND has_table_privilege('regress_nobody', c.oid, 'SELECT');
SET ROLE regress_nobody;
SELECT segment.now() IS NOT NULL;
RESET ROLE;

-- The application role tracks events; it cannot define fields or sign tokens.
SET ROLE regress_app;
SELECT segment.upsert_contact('app@example.com') > 0 AS created;
SELECT segment.track('app@example.com', 'purchase', '{}', 10) > 0 AS tracked;
SELECT count FROM segment.event_stats;
SELECT segment.define_field('tier', 'text');
SELECT segment.sign_token('x', 'y', now());
SELECT segment.rebuild_event_stats();
-- It erases a person: forget deletes their events, whose trigger recomputes the aggregates.
SELECT segment.upsert_contact('gone@example.com') AS gone \gset
SELECT segment.track(:gone, 'purchase', '{}', 5) > 0 AS tracked;
SELECT segment.forget(:gone);
SELECT count(*) AS left_behind FROM segment.events WHERE contact_id = :gone;
RESET ROLE;

-- The editor defines fields; it cannot sign tokens.
SET ROLE regress_editor;
SELECT segment.define_field('tier', 'text');
SELECT segment.sign_token('x', 'y', now());
-- It runs campaigns: launch, pause and resume (which wakes the worker); it cannot erase people.
SELECT segment.create_segment('app_buyers', 'did purchase') > 0 AS segment_created;
UPDATE segment.contacts SET status = 'subscribed';
SELECT segment.create_template('hello', 'Hello', '<p>Hello</p>') > 0 AS template_created;
SELECT segment.create_campaign('hello', 'app_buyers', 'hello') > 0 AS campaign_created;
SELECT segment.launch('hello') AS queued, segment.pause('hello') AS paused, segment.resume('hello') AS resumed;
SELECT segment.forget(segment.contact_id('app@example.com'));
SELECT variant, recipients FROM segment.campaign_report('hello');
-- Contacts, events and sending are the application's.
SELECT segment.upsert_contact('editor@example.com');
SELECT segment.track('app@example.com', 'purchase');
SELECT segment.send(segment.contact_id('app@example.com'), 'hello');
SELECT segment.subscribe('editor@example.com', 'form', false);
SELECT segment.record('x@shop.example', 'open');
RESET ROLE;
-- And reports are the editor's.
SET ROLE regress_app;
SELECT segment.campaign_report('hello');
SELECT segment.segment_engagement('app_buyers');
SELECT segment.create_campaign('app_campaign', 'app_buyers', 'hello');
RESET ROLE;

-- segment_admin may sign tokens; only a superuser sets the secret itself.
GRANT segment_admin TO regress_editor;
SET ROLE regress_editor;
SET segment.secret = 'x';
RESET ROLE;
SELECT has_function_privilege('segment_admin', 'segment.sign_token(text,text,timestamptz)', 'EXECUTE') AS admin_signs;

DROP EXTENSION segment;
DROP ROLE regress_nobody, regress_app, regress_editor;
