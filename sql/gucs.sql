-- Every setting of the extension is visible, with its context; secrets only to superusers.
SELECT name, context, vartype, unit, boot_val
  FROM pg_settings WHERE name LIKE 'segment.%' ORDER BY name;
SHOW segment.database;

CREATE ROLE regress_segment_reader;
SET ROLE regress_segment_reader;
SELECT name FROM pg_settings WHERE name LIKE 'segment.%' ORDER BY name;
SHOW segment.smtp_url;
SHOW segment.smtp_password;
SHOW segment.secret;
SELECT current_setting('segment.secret');
RESET ROLE;
-- A superuser sees them.
SHOW segment.secret;
-- Worker settings change only in the configuration file (and reload).
SET segment.batch_size = 10;
SET segment.connections = 1000;
DROP ROLE regress_segment_reader;
