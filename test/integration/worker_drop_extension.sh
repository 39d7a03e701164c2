#!/usr/bin/env bash
# DROP EXTENSION while the sending worker is busy logs no worker error: for
# 20 s, create the extension, queue 40 messages to smtp-sink, let the worker
# send some of them (0, 0.1 or 0.2 s), and drop the extension again in a
# transaction that stays open for half a second, so drops land while the
# worker claims, records outcomes and runs its automations (every 5 s).
# Each of the worker's transactions holds the extension (a share lock on it),
# so it never meets a half-dropped schema; a pass the drop ends says so in a
# LOG line.  Then the worker waits for CREATE EXTENSION and sends again.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
. test/integration/smtp_helpers.bash
name=worker_drop_extension
trap 'stop_servers; test/cluster stop $name' EXIT
start_sink port
test/cluster stop $name >/dev/null 2>&1 || true
eval "$(test/cluster start $name -c "segment.smtp_url='smtp://127.0.0.1:$port'" \
          -c "segment.from_address='Shop <news@shop.example>'" -c "segment.batch_size=10")"
log=$(test/cluster log $name)

create() {
  psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION segment;
SELECT segment.upsert_contact('c' || i || '@example.com') FROM generate_series(1, 40) i;
SELECT segment.create_template('receipt', 'Receipt', '<p>Thanks</p>', 'Thanks');
SELECT segment.send(id, 'receipt') FROM segment.contacts;
SQL
}

rounds=0
end=$((SECONDS + 20))
while [ $SECONDS -lt $end ]; do
  create
  sleep "0.$((RANDOM % 3))"
  psql -X -q -v ON_ERROR_STOP=1 -c "BEGIN" -c "DROP EXTENSION segment" -c "SELECT pg_sleep(0.5)" -c "COMMIT" >/dev/null
  rounds=$((rounds + 1))
done
echo "$rounds drops; passes the drop ended: $(grep -c 'was dropped during a pass' "$log" || true)"

errors=$(grep -c "segment worker.*ERROR" "$log" || true)
if [ "$errors" = 0 ]; then echo "ok - no worker errors in the server log"
else grep -A3 "segment worker.*ERROR" "$log" | head -40; echo "FAILED - $errors worker error(s)"; exit 1; fi

wait_sql "SELECT query = 'waiting for CREATE EXTENSION segment' FROM pg_stat_activity WHERE backend_type = 'segment worker'" 15
echo "ok - the worker waits for the extension"
create
wait_sql "SELECT count(*) = 40 FROM segment.messages WHERE status = 'sent'" 30
echo "ok - after CREATE EXTENSION the worker sends all 40"
