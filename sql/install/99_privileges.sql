-- segment: privileges.  Nothing is granted to PUBLIC.  Three roles:
--   segment_admin   everything;
--   segment_editor  segments, tags, stages, fields, templates, campaigns, flows and reports;
--   segment_app     contacts, events, tags, sending, consent, tracking, membership questions.
-- Functions run with the caller's rights, so the roles get the table rights the
-- triggers behind those functions need.  This file runs last and adapts to
-- whatever functions the areas above define.

GRANT USAGE ON SCHEMA segment TO segment_admin, segment_editor, segment_app;

DO $grants$
DECLARE
  f record;
  -- Key material and bulk maintenance: admin only.  Not what the functions of
  -- the other roles call on their behalf: recompute_event_stats (the trigger
  -- behind every delete of events, so forget) and wake_worker (resume).
  admin_only constant text[] := ARRAY['sign_token', 'verify_token', 'rebuild_event_stats'];
  -- Definitions and reports: admin and editor, not the application.
  definitions constant text[] := ARRAY[
    'define_field', 'create_segment', 'drop_segment', 'update_segment', 'update_segment_rule',
    'create_tag_rule', 'drop_tag_rule', 'define_stage', 'drop_stage', 'install_default_stages',
    'create_template', 'drop_template', 'update_template',
    'create_campaign', 'launch', 'pause', 'resume', 'cancel', 'schedule', 'unschedule',
    'create_flow', 'drop_flow', 'pause_flow', 'resume_flow',
    'campaign_report', 'segment_engagement'];
  -- Writing contacts and events, sending, the endpoints of links in mail, and a
  -- person's data as a whole (export, erasure): admin and the application, not
  -- editors.  (What editors run calls none of them, or calls them as definer.)
  application constant text[] := ARRAY[
    'upsert_contact', 'track', 'send', 'subscribe', 'confirm', 'unsubscribe', 'record', 'resolve_click',
    'export_contact', 'forget'];
BEGIN
  FOR f IN SELECT p.oid::regprocedure AS sig, p.proname
             FROM pg_proc p WHERE p.pronamespace = 'segment'::regnamespace
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.sig);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO segment_admin', f.sig);
    IF NOT f.proname = ANY (admin_only) THEN
      IF NOT f.proname = ANY (application) THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO segment_editor', f.sig);
      END IF;
      IF NOT f.proname = ANY (definitions) THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO segment_app', f.sig);
      END IF;
    END IF;
  END LOOP;
END
$grants$;

REVOKE ALL ON ALL TABLES IN SCHEMA segment FROM PUBLIC;
GRANT ALL ON ALL TABLES IN SCHEMA segment TO segment_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA segment TO segment_editor, segment_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA segment TO segment_admin, segment_editor, segment_app;
-- The restore guard's one row stays as CREATE EXTENSION made it (95_dump.sql).
REVOKE ALL ON segment._restore_guard FROM segment_editor, segment_app;
