#!/usr/bin/env bash
# Crash recovery of the sending worker: 20,000 queued messages; mid-drain the
# worker is killed with SIGKILL (the postmaster then restarts every backend),
# and later the whole cluster is stopped with an immediate shutdown and
# started again.  Afterwards: every message was delivered at least once (its
# Message-ID is in smtp-sink's dump), none is lost, duplicates are at most what
# can be in flight (two batches per crash: the one on the wire and the one sent
# before it, whose outcomes are recorded while the next goes out), and nothing
# is left in 'sending'.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
. test/integration/smtp_helpers.bash
name=smtp_crash
N=20000
BATCH=200
work=$(mktemp -d)
chmod 777 "$work"
trap 'stop_servers; test/cluster stop $name; rm -rf "$work"' EXIT

# smtp-sink appends every transaction to one dump file.
start_sink sink -D "$work/dump"
test/cluster stop $name >/dev/null 2>&1 || true
eval "$(test/cluster start $name -c "segment.from_address='Shop <news@shop.example>'" \
  -c "segment.batch_size=$BATCH" -c "segment.connections=4" -c "segment.lease_timeout=5")"

t_start=$SECONDS
psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION segment;
INSERT INTO segment.contacts (email) SELECT 'c' || g || '@example.com' FROM generate_series(1, $N) g;
-- About 4 KB of text each.
SELECT count(segment.enqueue(id, 'Crash test ' || id, NULL,
         'Message ' || id || E'\n' || repeat('Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod. ', 55)))
  FROM segment.contacts;
SQL
echo "queued $N messages in $((SECONDS - t_start)) s"
set_conf segment.smtp_url "smtp://127.0.0.1:$sink"

sent() { q "SELECT count(*) FROM segment.messages WHERE status = 'sent'"; }

# 1. SIGKILL the worker once a quarter has gone out.
wait_sql "SELECT count(*) >= $((N / 4)) FROM segment.messages WHERE status = 'sent'" 120
pid=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'segment worker'")
inflight1=$(q "SELECT count(*) FROM segment.messages WHERE status = 'sending'")
before=$(sent)
kill -9 "$pid"
echo "killed the worker (pid $pid) with $before sent, $inflight1 leased"
sleep 1
WAIT_SECONDS=60 wait_for psql -X -At -c "SELECT 1"
wait_sql "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'segment worker'" 60
echo "cluster recovered; worker back"

# 2. Immediate shutdown of the whole cluster once half has gone out.
wait_sql "SELECT count(*) >= $((N / 2)) FROM segment.messages WHERE status = 'sent'" 120
inflight2=$(q "SELECT count(*) FROM segment.messages WHERE status = 'sending'")
before=$(sent)
test/cluster restart $name -m immediate
echo "immediate restart with $before sent, $inflight2 leased"
WAIT_SECONDS=60 wait_for psql -X -At -c "SELECT 1"

# 3. Everything drains.
wait_sql "SELECT count(*) = $N FROM segment.messages WHERE status = 'sent'" 180
echo "drained in $((SECONDS - t_start)) s since queueing began"

q "SELECT status, count(*) FROM segment.messages GROUP BY 1"
q "SELECT message_id FROM segment.messages" | sort > "$work/queued.ids"
# smtp-sink may still be writing the last transaction.
sleep 1
grep -a '^Message-ID: <' "$work/dump" | sed 's/^Message-ID: <\(.*\)>\r\{0,1\}$/\1/' | sort > "$work/delivered.ids"
total=$(wc -l < "$work/delivered.ids")
unique=$(sort -u "$work/delivered.ids" | wc -l)
lost=$(comm -23 "$work/queued.ids" <(sort -u "$work/delivered.ids") | wc -l)
unknown=$(comm -13 "$work/queued.ids" <(sort -u "$work/delivered.ids") | wc -l)
dups=$((total - unique))
echo "delivered $total transactions: $unique distinct Message-IDs, $dups duplicates, $lost lost, $unknown unknown"

failures=0
check() { if [ "$2" = true ]; then echo "ok - $1"; else echo "FAILED - $1"; failures=$((failures + 1)); fi; }
check "every queued message was delivered at least once (none lost)" "$([ "$lost" = 0 ] && [ "$unique" = "$N" ] && echo true)"
check "nothing delivered that was not queued" "$([ "$unknown" = 0 ] && echo true)"
check "duplicates ($dups) at most what was in flight at the two crashes (2 x 2 x batch_size = $((4 * BATCH)))" \
  "$([ "$dups" -le $((4 * BATCH)) ] && echo true)"
check "nothing left in sending" "$([ "$(q "SELECT count(*) FROM segment.messages WHERE status <> 'sent'")" = 0 ] && echo true)"
check "the recovery was logged" \
  "$(grep -q 'requeued .* message(s) left in flight by a previous worker' "$(test/cluster log $name)" && echo true)"
echo "whole run: $((SECONDS - t_start)) s"
[ $failures = 0 ]
