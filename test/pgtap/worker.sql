-- The sending worker runs, shows in pg_stat_activity, waits for the extension in
-- segment.database, and comes back after pg_terminate_backend.
SET client_min_messages = warning;
SELECT plan(6);

CREATE FUNCTION pg_temp.worker_pid() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE p integer;
BEGIN
  FOR i IN 1..300 LOOP
    PERFORM pg_stat_clear_snapshot();
    SELECT pid INTO p FROM pg_stat_activity
     WHERE backend_type = 'segment worker' AND datname = current_setting('segment.database');
    IF p IS NOT NULL THEN RETURN p; END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
  RETURN NULL;
END $$;

CREATE FUNCTION pg_temp.launcher_pid() RETURNS integer LANGUAGE sql AS $$
  SELECT pid FROM pg_stat_activity WHERE backend_type = 'segment launcher' $$;

SELECT isnt(pg_temp.launcher_pid(), NULL, 'the launcher runs');
SELECT isnt(pg_temp.worker_pid(), NULL, 'the worker runs, connected to segment.database');

CREATE TEMP TABLE before AS SELECT pg_temp.worker_pid() AS pid;
SELECT ok(pg_terminate_backend((SELECT pid FROM before)), 'the worker can be terminated');

CREATE FUNCTION pg_temp.new_worker_pid(old integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE p integer;
BEGIN
  FOR i IN 1..300 LOOP
    p := pg_temp.worker_pid();
    IF p IS NOT NULL AND p <> old THEN RETURN p; END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
  RETURN NULL;
END $$;
SELECT isnt(pg_temp.new_worker_pid((SELECT pid FROM before)), NULL,
            'a new worker comes back after pg_terminate_backend');

-- The launcher survives a terminated launcher too: the postmaster restarts it.
CREATE TEMP TABLE old_launcher AS SELECT pg_temp.launcher_pid() AS pid;
SELECT ok(pg_terminate_backend((SELECT pid FROM old_launcher)), 'the launcher can be terminated');
CREATE FUNCTION pg_temp.new_launcher_pid(old integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE p integer;
BEGIN
  FOR i IN 1..150 LOOP
    PERFORM pg_stat_clear_snapshot();
    p := pg_temp.launcher_pid();
    IF p IS NOT NULL AND p <> old THEN RETURN p; END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
  RETURN NULL;
END $$;
SELECT isnt(pg_temp.new_launcher_pid((SELECT pid FROM old_launcher)), NULL,
            'the postmaster restarts the launcher');

SELECT * FROM finish();
