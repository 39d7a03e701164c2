#!/usr/bin/env bash
# SMTP faults against postfix's smtp-sink on 127.0.0.1: 4xx and 5xx replies at
# each stage (MAIL, RCPT, DATA, end of data), 421 and disconnects, a server that
# is down and then comes up (the queue holds, then drains), and a server that
# stalls (replies time out after segment.smtp_timeout; SIGTERM stops the worker
# at once even while libcurl waits on it).
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
. test/integration/smtp_helpers.bash
name=smtp_faults
work=$(mktemp -d)
trap 'stop_servers; test/cluster stop $name; rm -rf "$work"' EXIT

test/cluster stop $name >/dev/null 2>&1 || true
eval "$(test/cluster start $name -c "segment.from_address='Shop <news@shop.example>'" \
  -c "segment.retry_delay=1" -c "segment.max_attempts=2" -c "segment.smtp_timeout=2" \
  -c "segment.connections=2")"
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION segment" >/dev/null

failures=0
ok() {  # ok DESCRIPTION SQL-returning-t
  if [ "$(q "$2")" = t ]; then echo "ok - $1"
  else echo "FAILED - $1"; failures=$((failures + 1))
    q "SELECT id, rcpt_to, status, attempts, last_code, last_response FROM segment.messages ORDER BY id DESC LIMIT 5"
    q "SELECT status, count(*), sum(attempts) FROM segment.messages GROUP BY status ORDER BY status"
  fi
}

# scenario TAG N: queue N messages to new contacts TAG-i@example.com; prints their id range.
scenario() {
  q "SELECT min(m), max(m) FROM (SELECT segment.enqueue(segment.upsert_contact('$1-' || g || '@example.com'),
       'Fault test $1', NULL, 'Hello') AS m FROM generate_series(1, $2) g) s" | tr '|' ' '
}
# settle FIRST LAST: wait until the messages reached a final status.
settle() {
  wait_sql "SELECT bool_and(status IN ('sent', 'failed')) FROM segment.messages WHERE id BETWEEN $1 AND $2" "${3:-30}"
}

# 4xx and 5xx at each stage, with the outcome each must have.
run_reply_case() {  # TAG "smtp-sink options" then checks via the caller
  local tag=$1; shift
  start_sink sink "$@"
  set_conf segment.smtp_url "smtp://127.0.0.1:$sink"
  read -r first last < <(scenario "$tag" 3)
  settle "$first" "$last"
  range="id BETWEEN $first AND $last"
}

run_reply_case rcpt4xx -r RCPT
ok "450 to RCPT: retried, failed after max_attempts" \
  "SELECT bool_and(status = 'failed' AND attempts = 2 AND last_code = 450) FROM segment.messages WHERE $range"
ok "450 to RCPT: the contacts keep their status, nothing suppressed" \
  "SELECT bool_and(c.status = 'pending' AND NOT segment.is_suppressed(c.email)) FROM segment.messages m JOIN segment.contacts c ON c.id = m.contact_id WHERE m.$range"

run_reply_case rcpt5xx -f RCPT
ok "500 to RCPT: failed at once, a hard bounce" \
  "SELECT bool_and(status = 'failed' AND attempts = 1 AND last_code = 500) FROM segment.messages WHERE $range"
ok "500 to RCPT: contacts bounced and suppressed" \
  "SELECT bool_and(c.status = 'bounced' AND segment.is_suppressed(c.email)) FROM segment.messages m JOIN segment.contacts c ON c.id = m.contact_id WHERE m.$range"

run_reply_case mail5xx -f MAIL
ok "500 to MAIL FROM: failed at once, not a bounce" \
  "SELECT bool_and(m.status = 'failed' AND m.attempts = 1 AND c.status = 'pending' AND NOT segment.is_suppressed(c.email)) FROM segment.messages m JOIN segment.contacts c ON c.id = m.contact_id WHERE m.$range"

run_reply_case data4xx -r DATA
ok "450 to DATA: retried, failed after max_attempts" \
  "SELECT bool_and(status = 'failed' AND attempts = 2 AND last_code = 450) FROM segment.messages WHERE $range"

run_reply_case dot5xx -f .
ok "500 after the data: failed, not a bounce" \
  "SELECT bool_and(m.status = 'failed' AND m.attempts = 1 AND m.last_code = 500 AND c.status = 'pending') FROM segment.messages m JOIN segment.contacts c ON c.id = m.contact_id WHERE m.$range"

run_reply_case dot550 -f . -B "550 5.1.1 Recipient address rejected: mailbox unknown"
ok "550 after the data: a hard bounce" \
  "SELECT bool_and(m.status = 'failed' AND m.last_code = 550 AND c.status = 'bounced' AND segment.is_suppressed(c.email)) FROM segment.messages m JOIN segment.contacts c ON c.id = m.contact_id WHERE m.$range"

run_reply_case dot4xx -r .
ok "450 after the data: retried" \
  "SELECT bool_and(status = 'failed' AND attempts = 2 AND last_code = 450) FROM segment.messages WHERE $range"

run_reply_case quit421 -Q RCPT
ok "421 and disconnect at RCPT: retried" \
  "SELECT bool_and(status = 'failed' AND attempts = 2 AND last_code = 421) FROM segment.messages WHERE $range"

run_reply_case dropdata -q .
ok "disconnect after the data, before the reply: retried as a connection error" \
  "SELECT bool_and(status = 'failed' AND attempts = 2 AND last_code IS NULL AND last_response <> '') FROM segment.messages WHERE $range"

# smtp-sink -A: 354 to DATA, then 550 and close while the body is being sent.
# Depending on timing the client either sees the connection break mid-DATA (no
# reply read: a connection error, retried) or reads the 550 first (final), on
# any attempt.
run_reply_case abortdata -A 0
ok "connection dropped mid-DATA: retried as a connection error, or the 550 taken as final" \
  "SELECT bool_and(status = 'failed' AND ((attempts = 2 AND last_code IS NULL AND last_response LIKE 'Send failure%')
                                          OR last_code = 550)) FROM segment.messages WHERE $range"

# Down, then up: nothing listens; the queue holds, then drains once a server comes.
downport=$(free_port $(( ${SEGMENT_PORT:-54400} + 300 + RANDOM % 100 )))
set_conf segment.max_attempts 8
set_conf segment.smtp_url "smtp://127.0.0.1:$downport"
down_since=$(date +%s)
read -r first last < <(scenario down 40)
wait_sql "SELECT detail LIKE 'SMTP server unavailable%' FROM segment.worker_status()" 10
sleep 2
# Waited for, not looked at once: on a loaded machine the look can fall between
# the worker's passes (helpers saw it fail at load 7-11).
wait_sql "SELECT state = 'sending' AND detail LIKE 'SMTP server unavailable (%Couldn''t connect%' FROM segment.worker_status()" 10 || true
ok "server down: worker_status says so" \
  "SELECT state = 'sending' AND detail LIKE 'SMTP server unavailable (%Couldn''t connect%' FROM segment.worker_status()"
# A look can fall while the worker holds a batch for its next try ('sending'):
# in flight, neither lost nor failed.  Few attempts: while the server is down
# a probe spends at most one attempt per connection (2 here), not one per
# queued message, and probes come about once per retry_delay (1 s here), more
# often while new mail wakes the worker (a fresh CI machine saw 11 in 3 s).  So
# at most 10, or six per second the server has been down when that is more; an
# attempt per queued message per probe (40 a probe) stays far above.
down_secs=$(( $(date +%s) - down_since + 1 ))
ok "server down: nothing lost, nothing failed, few attempts spent" \
  "SELECT count(*) = 40 AND bool_and(status IN ('queued', 'retry', 'sending')) AND sum(attempts) <= greatest(10, 6 * $down_secs) FROM segment.messages WHERE id BETWEEN $first AND $last"
echo "server down ${down_secs} s: $(q "SELECT sum(attempts) FROM segment.messages WHERE id BETWEEN $first AND $last") attempts spent"
setsid /usr/sbin/smtp-sink -u nobody "127.0.0.1:$downport" 256 &
SMTP_PIDS+=($!)
settle "$first" "$last" 60
ok "server up: the queue drains, every message sent" \
  "SELECT bool_and(status = 'sent') FROM segment.messages WHERE id BETWEEN $first AND $last"
set_conf segment.max_attempts 2

# A server that stalls before replying to the end of data (libcurl waits for
# that reply in a blocking call): the reply times out after smtp_timeout (2 s).
start_sink sink -W .:3600
set_conf segment.smtp_url "smtp://127.0.0.1:$sink"
read -r first last < <(scenario stall 1)
# Waited for rather than looked at once: with retry_delay = 1 s the row is
# claimed for its second attempt about a second after the first is recorded,
# and on a loaded machine the look can come later than that.
if wait_sql "SELECT status = 'retry' AND attempts = 1 AND last_response LIKE '%timeout%'
               FROM segment.messages WHERE id = $first" 20; then
  echo "ok - stalled end-of-data reply: times out and is retried"
else
  echo "FAILED - stalled end-of-data reply: times out and is retried"; failures=$((failures + 1))
fi

# SIGTERM to the worker once message $1 is in flight (waiting up to $2 s for that):
# it must stop within a second.  $3 names the situation in the output.
sigterm_stops_promptly() {
  wait_sql "SELECT status = 'sending' FROM segment.messages WHERE id = $1" "$2"
  sleep 0.5
  local pid t0 ms
  pid=$(q "SELECT pid FROM segment.worker_status()")
  t0=$(date +%s%N)
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "worker stopped ${ms} ms after SIGTERM while $3"
  if [ "$ms" -lt 1000 ]; then echo "ok - SIGTERM stops the worker within a second ($3)"
  else echo "FAILED - SIGTERM took ${ms} ms ($3)"; failures=$((failures + 1)); fi
}

# SIGTERM while the worker waits on the stalled server: it stops within a second.
sigterm_stops_promptly "$first" 20 "waiting on a stalled server"

# The same while stalled at RCPT (waiting in the multi loop), and the restarted
# worker puts the message it had in flight back in the queue.
start_sink sink2 -W RCPT:3600
set_conf segment.smtp_url "smtp://127.0.0.1:$sink2"
read -r first last < <(scenario stallrcpt 1)
sigterm_stops_promptly "$first" 30 "stalled at RCPT"
set_conf segment.smtp_url "smtp://127.0.0.1:$downport"
wait_sql "SELECT status = 'sent' FROM segment.messages WHERE id = $first" 30
ok "the new worker requeues what was in flight and sends it" \
  "SELECT status = 'sent' FROM segment.messages WHERE id = $first"
if grep -q "requeued 1 message(s) left in flight by a previous worker" "$(test/cluster log $name)"; then
  echo "ok - the requeue is logged"
else echo "FAILED - the requeue is not logged"; failures=$((failures + 1)); fi

ok "no message left in sending" "SELECT count(*) = 0 FROM segment.messages WHERE status = 'sending'"
[ $failures = 0 ]
