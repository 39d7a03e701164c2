-- A short tour of segment, run by "make demo" against a throwaway cluster.
\pset footer off
\echo
\echo '-- 1. Install the extension into the application database'
CREATE EXTENSION segment;
SELECT extname, extversion FROM pg_extension WHERE extname = 'segment';

\echo '-- 2. One clock for every time-relative decision: segment.now(), movable by a superuser'
SET segment.clock_override = '2026-12-01 09:00:00+00';
SELECT segment.now() AS "segment.now()";
RESET segment.clock_override;

\echo '-- 3. The sending worker runs inside PostgreSQL'
DO $$ BEGIN
  FOR i IN 1..100 LOOP
    EXIT WHEN (SELECT pid FROM segment.worker_status()) IS NOT NULL;
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT state, detail, pid IS NOT NULL AS running FROM segment.worker_status();
SELECT backend_type, datname FROM pg_stat_activity WHERE backend_type LIKE 'segment%' ORDER BY 1;
