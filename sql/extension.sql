-- The extension creates and drops cleanly; the clock and its override.
CREATE EXTENSION segment;
SELECT extname, extversion
  FROM pg_extension
 WHERE extname = 'segment';
-- Every member object lives in schema segment (none leaked into pg_catalog).
SELECT count(*) AS objects_outside_schema_segment
  FROM pg_depend d
  LEFT JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
  LEFT JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
  LEFT JOIN pg_type t ON d.classid = 'pg_type'::regclass AND t.oid = d.objid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'segment')
   AND coalesce(p.pronamespace, c.relnamespace, t.typnamespace) <> 'segment'::regnamespace;
SELECT rolname FROM pg_roles WHERE rolname LIKE 'segment\_%' ORDER BY 1;

-- segment.now() is now() unless overridden.
SELECT segment.now() = now() AS real_clock;
SET timezone = 'UTC';
SET segment.clock_override = '2030-01-01 09:30:00+00';
SELECT segment.now();
SELECT segment.now() = now() AS real_clock;
SET segment.clock_override = '2030-02-01';
SELECT segment.now();
-- Not a timestamp: refused, the old value stays.
SET segment.clock_override = 'next tuesday';
SHOW segment.clock_override;
RESET segment.clock_override;
SELECT segment.now() = now() AS real_clock;

-- Only superusers move the clock.
CREATE ROLE regress_segment_plain;
SET ROLE regress_segment_plain;
SET segment.clock_override = '2030-01-01';
RESET ROLE;

-- Unknown settings under the reserved prefix are refused.
SET segment.no_such_setting = 1;

DROP EXTENSION segment;
SELECT count(*) AS leftover_schemas FROM pg_namespace WHERE nspname = 'segment';
CREATE EXTENSION segment;
DROP EXTENSION segment;
DROP ROLE regress_segment_plain;
