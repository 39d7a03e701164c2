-- segment: core objects — roles, the clock, the worker's SQL surface.
-- (The install script is the concatenation of sql/install/*.sql in name order.)

\echo Use "CREATE EXTENSION segment" to load this file. \quit

-- The schema is a member of the extension, so DROP EXTENSION removes it.  (The
-- control file names pg_catalog, as pg_cron does: every object below is
-- schema-qualified with segment.)
CREATE SCHEMA segment;
COMMENT ON SCHEMA segment IS 'segment: email segmentation and personalization engine';

-- Roles are cluster-wide: create them once, keep them across DROP EXTENSION.
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'segment_admin') THEN
    CREATE ROLE segment_admin NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'segment_editor') THEN
    CREATE ROLE segment_editor NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'segment_app') THEN
    CREATE ROLE segment_app NOLOGIN;
  END IF;
END
$roles$;

CREATE FUNCTION segment.now() RETURNS timestamptz
  AS 'MODULE_PATHNAME', 'segment_now'
  LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION segment.now() IS
  'The one clock of segment: now(), or segment.clock_override when a superuser set it';

CREATE FUNCTION segment.wake_worker() RETURNS void
  AS 'MODULE_PATHNAME', 'segment_wake_worker'
  LANGUAGE C VOLATILE;
COMMENT ON FUNCTION segment.wake_worker() IS
  'Wake the sending worker when the current transaction commits';

CREATE FUNCTION segment.worker_status(
    OUT state text, OUT detail text, OUT pid integer, OUT launcher_pid integer,
    OUT started_at timestamptz, OUT state_since timestamptz,
    OUT sent bigint, OUT failed bigint, OUT retried bigint)
  RETURNS record
  AS 'MODULE_PATHNAME', 'segment_worker_status'
  LANGUAGE C VOLATILE;
COMMENT ON FUNCTION segment.worker_status() IS
  'What the sending worker is doing now, with counters since it started';

-- Wake the worker so it notices the extension at once instead of at its next poll.
SELECT segment.wake_worker();
