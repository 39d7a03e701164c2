#!/usr/bin/env bash
# The worker's pipeline: many small batches (batch_size 7) over 3 connections,
# each driven by a thread of its own while the previous batch's outcomes are
# recorded and the next batch claimed.  A mix of accepted, rejected (550) and
# deferred (451) recipients checks that every outcome lands on its own row:
# each sent row carries the server's reply to *its* message (the capture
# server numbers its replies, and the numbered file holds that row's
# Message-ID), every accepted message arrived exactly once, bounces and
# retries hit exactly the rows of those recipients.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
. test/integration/smtp_helpers.bash
name=smtp_pipeline
N=150
work=$(mktemp -d)
chmod 755 "$work"
trap 'stop_servers; test/cluster stop $name; rm -rf "$work"' EXIT

# Contacts 1..N are c<i>@example.com: every 13th is rejected, every 11th
# (not also a 13th) deferred.
rejects=(); tempfails=()
for i in $(seq 1 $N); do
  if [ $((i % 13)) = 0 ]; then rejects+=(--reject-rcpt "c$i@example.com")
  elif [ $((i % 11)) = 0 ]; then tempfails+=(--tempfail-rcpt "c$i@example.com"); fi
done
n_reject=$((${#rejects[@]} / 2))
n_tempfail=$((${#tempfails[@]} / 2))
n_sent=$((N - n_reject - n_tempfail))
start_capture port "$work/mail" "${rejects[@]}" "${tempfails[@]}"
test/cluster stop $name >/dev/null 2>&1 || true
eval "$(test/cluster start $name -c "segment.smtp_url='smtp://127.0.0.1:$port'" \
  -c "segment.from_address='Shop <news@shop.example>'" -c "segment.batch_size=7" \
  -c "segment.connections=3" -c "segment.retry_delay=3600" -c "segment.max_attempts=5")"

psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION segment;
INSERT INTO segment.contacts (email) SELECT 'c' || g || '@example.com' FROM generate_series(1, $N) g;
BEGIN;
SELECT count(segment.enqueue(id, 'Pipeline ' || id, NULL, 'Message for contact ' || id))
  FROM segment.contacts;
COMMIT;
SQL
wait_sql "SELECT count(*) = 0 FROM segment.messages WHERE status IN ('queued', 'sending')" 120
q "SELECT status, last_code, count(*) FROM segment.messages GROUP BY 1, 2 ORDER BY 1, 2"
sleep 0.5   # the capture server renames each file once written

# Each captured message: its number (from the file name) and its Message-ID.
for f in "$work"/mail/*.eml; do
  n=$(basename "$f" .eml)
  printf '%s\t%s\n' "$n" "$(grep -a -m1 '^Message-ID: <' "$f" | sed 's/^Message-ID: <\(.*\)>\r\{0,1\}$/\1/')"
done > "$work/captured.tsv"
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE TABLE captured (n text, message_id text)" \
  -c "\\copy captured FROM '$work/captured.tsv'" \
  -c "CREATE VIEW mc AS SELECT m.*, c.email, substr(c.email, 2, strpos(c.email, '@') - 2)::int AS k, c.status AS contact_status
        FROM segment.messages m JOIN segment.contacts c ON c.id = m.contact_id"

failures=0
check() {  # check DESCRIPTION SQL-returning-t
  if [ "$(q "$2")" = t ]; then echo "ok - $1"; else echo "FAILED - $1"; failures=$((failures + 1)); fi
}
check "$n_sent sent, $n_reject failed, $n_tempfail waiting for a retry" \
  "SELECT count(*) FILTER (WHERE status = 'sent') = $n_sent AND count(*) FILTER (WHERE status = 'failed') = $n_reject
      AND count(*) FILTER (WHERE status = 'retry') = $n_tempfail AND count(*) = $N FROM segment.messages"
check "exactly the rejected recipients failed with 550 and bounced" \
  "SELECT bool_and((status = 'failed') = (k % 13 = 0)
               AND (status <> 'failed' OR (last_code = 550 AND last_response LIKE '550 5.1.1 <' || email || '>%'
                                            AND contact_status = 'bounced'))) AND count(*) = $N FROM mc"
check "exactly the deferred recipients wait for a retry, after one attempt with their own 451" \
  "SELECT bool_and((status = 'retry') = (k % 13 <> 0 AND k % 11 = 0)
               AND (status <> 'retry' OR (attempts = 1 AND last_code = 451
                                           AND last_response LIKE '451 4.3.0 <' || email || '>%'))) FROM mc"
check "every accepted message arrived exactly once" \
  "SELECT count(*) = $n_sent AND count(DISTINCT message_id) = $n_sent FROM captured"
check "each sent row carries the server's reply to its own message" \
  "SELECT count(*) = $n_sent FROM segment.messages m JOIN captured k ON k.message_id = m.message_id
    WHERE m.status = 'sent' AND m.attempts = 1 AND m.last_code = 250
      AND m.last_response = '250 2.0.0 Ok: queued as ' || k.n"
check "no row left leased" \
  "SELECT count(*) = 0 FROM segment.messages WHERE status = 'sending' OR lease_until IS NOT NULL"
[ $failures = 0 ]
