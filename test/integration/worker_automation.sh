#!/usr/bin/env bash
# The sending worker moves flows and decides A/B tests on its own (every few
# seconds, segment.run_flows() and segment.run_campaigns()): with no pg_cron
# job and no call by hand, a tracked event's flow mail is queued, and once the
# test's decide_after has passed (time moved with clock_override by ALTER
# SYSTEM, seen by the worker) the winner goes to the rest of the audience.
# No SMTP server: the mail only has to reach the queue.  Bounded: 30 s a wait.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
. test/integration/smtp_helpers.bash
name=worker_automation
test/cluster stop $name >/dev/null 2>&1 || true
eval "$(test/cluster start $name -c "segment.from_address='Shop <news@shop.example>'" \
          -c "segment.unsubscribe_url='https://shop.example/unsubscribe'" \
          -c "segment.secret='a-long-enough-test-secret'" \
          -c "segment.clock_override='2026-06-01 12:00:00+00'")"
trap 'test/cluster stop $name' EXIT

psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION segment;
SELECT segment.upsert_contact('c' || i || '@example.com', '{"country": "DE"}') FROM generate_series(1, 40) i;
UPDATE segment.contacts SET status = 'subscribed';
SELECT segment.create_segment('germany', 'attrs.country = ''DE''');
SELECT segment.create_template('welcome', 'Welcome', '<p>Welcome</p>');
SELECT segment.create_template('a', 'Offer A', '<p>A</p>');
SELECT segment.create_template('b', 'Offer B', '<p>B</p>');
SELECT segment.create_flow('welcome', 'event:signup', 'welcome');
SELECT segment.track(1, 'signup');
SELECT segment.create_campaign('ab', 'germany', 'a',
  '{"variants": [{"name": "A"}, {"name": "B", "template": "b"}],
    "ab_test": {"test_pct": 50, "metric": "click_rate", "decide_after": "1 hour"}}');
SELECT segment.launch('ab');
SELECT segment.record(m.message_id, 'click') FROM segment.messages m WHERE m.variant = 'B';
SQL

wait_sql "SELECT EXISTS (SELECT 1 FROM segment.messages m JOIN segment.flows f ON f.id = m.flow_id WHERE f.name = 'welcome' AND m.contact_id = 1)" 30
echo "flow mail queued by the worker: $(psql -X -At -c "SELECT sent FROM segment.flow_status WHERE name = 'welcome'") run sent"

# Too early: the test is not decided.
sleep 6
early=$(psql -X -At -c "SELECT coalesce(winner, '-') || ' ' || waiting FROM segment.campaign_status WHERE name = 'ab'")
echo "before decide_after: winner waiting = $early"
[ "${early%% *}" = "-" ] && [ "${early##* }" -gt 0 ]

set_conf segment.clock_override '2026-06-01 13:01:00+00'
wait_sql "SELECT winner IS NOT NULL AND waiting = 0 FROM segment.campaign_status WHERE name = 'ab'" 30
psql -X -c "SELECT name, winner, queued, waiting FROM segment.campaign_status"
[ "$(psql -X -At -c "SELECT winner FROM segment.campaign_status WHERE name = 'ab'")" = B ]
[ "$(psql -X -At -c "SELECT count(*) FROM segment.campaign_recipients r JOIN segment.campaigns c ON c.id = r.campaign_id WHERE c.name = 'ab' AND r.outcome = 'queued'")" = 40 ]
