#!/usr/bin/env bash
# segment.refresh() scheduled with pg_cron, exactly as doc/segments.md shows: time
# moves (clock_override via ALTER SYSTEM, seen by pg_cron's job too), nothing is
# written, and the next scheduled run takes the contact out of the time-relative
# segment and records the exit.  pg_cron 1.4 schedules by the minute: bounded wait
# of 150 s.  A campaign scheduled with segment.schedule is launched by the same pg_cron;
# unschedule and cancel remove its job (cancel by a role without pg_cron rights works too).
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
name=segments_cron
test/cluster stop $name >/dev/null 2>&1 || true
eval "$(test/cluster start $name -c cron.use_background_workers=on)"
trap 'test/cluster stop $name' EXIT

psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
ALTER SYSTEM SET segment.clock_override = '2030-01-01 00:00:00+00';
SELECT pg_reload_conf();
SQL
sleep 0.5
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION segment;
CREATE EXTENSION pg_cron;
SELECT segment.upsert_contact('ann@example.com');
SELECT segment.track(1, 'purchase', '{}', 10, '2029-12-20');
SELECT segment.create_segment('active', 'did purchase within 30 days');
SQL
before=$(psql -X -At -c "SELECT count(*) FROM segment.segment_members('active')")
echo "members of active before: $before"
[ "$before" = 1 ]

# Time moves on, no write happens; the scheduled refresh notices.
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
ALTER SYSTEM SET segment.clock_override = '2030-01-25 00:00:00+00';
SELECT pg_reload_conf();
SELECT cron.schedule('segment-refresh', '* * * * *', 'SELECT segment.refresh()');
-- A campaign launched by pg_cron through segment.schedule, as doc/campaigns.md shows.
ALTER SYSTEM SET segment.from_address = 'Shop <news@shop.example>';
ALTER SYSTEM SET segment.unsubscribe_url = 'https://shop.example/unsubscribe';
ALTER SYSTEM SET segment.secret = 'a-long-enough-test-secret';
SELECT pg_reload_conf();
UPDATE segment.contacts SET status = 'subscribed';
SELECT segment.create_segment('everyone', 'true');
SELECT segment.create_template('news', 'News', '<p>News</p>');
SELECT segment.create_campaign('weekly', 'everyone', 'news');
SELECT segment.schedule('weekly', '* * * * *');
SQL
for i in $(seq 1 150); do
  n=$(psql -X -At -c "SELECT count(*) FROM segment.segment_members('active')")
  q=$(psql -X -At -c "SELECT count(*) FROM segment.messages WHERE campaign_id IS NOT NULL")
  [ "$n" = 0 ] && [ "$q" = 1 ] && break
  sleep 1
done
psql -X -c "SELECT status, command, return_message FROM cron.job_run_details ORDER BY runid"
[ "$n" = 0 ] || { echo "the scheduled refresh did not run within 150 s"; exit 1; }
exits=$(psql -X -At -c "SELECT count(*) FROM segment.segment_history WHERE segment = 'active' AND action = 'exited' AND at = '2030-01-25 00:00:00+00'")
ok=$(psql -X -At -c "SELECT count(*) FROM cron.job_run_details WHERE status = 'succeeded' AND command = 'SELECT segment.refresh()'")
echo "exits recorded at the new time: $exits, successful scheduled runs: $ok"
[ "$exits" = 1 ] && [ "$ok" -ge 1 ]
launched=$(psql -X -At -c "SELECT count(*) FROM cron.job_run_details WHERE status = 'succeeded' AND command = 'SELECT segment.launch(''weekly'')'")
status=$(psql -X -At -c "SELECT status || ' ' || queued FROM segment.campaign_status WHERE name = 'weekly'")
echo "scheduled campaign: $launched successful launches, campaign $status, campaign messages $q"
[ "$launched" -ge 1 ] && [ "$status" = "launched 1" ] && [ "$q" = 1 ]

# segment.unschedule removes a campaign's job; segment.cancel does too (a
# cancelled campaign cannot be launched, its job would only fail).
jobs=$(psql -X -At -q -v ON_ERROR_STOP=1 <<'SQL'
SELECT segment.create_campaign('monthly', 'everyone', 'news') > 0;
SELECT segment.schedule('monthly', '0 9 1 * *') > 0;
SELECT segment.unschedule('monthly'), segment.unschedule('monthly');
SELECT segment.cancel('weekly') >= 0;
SELECT count(*) FROM cron.job WHERE jobname LIKE 'segment-campaign-%';
-- An editor without rights on pg_cron's schema can still cancel.
CREATE ROLE cron_test_editor IN ROLE segment_editor;
SET ROLE cron_test_editor;
SELECT segment.create_campaign('by_editor', 'everyone', 'news') > 0;
SELECT segment.cancel('by_editor');
RESET ROLE;
SQL
)
echo "unschedule and cancel: $(echo $jobs)"
[ "$(echo $jobs)" = "t t t|f t 0 t 0" ]
