#!/usr/bin/env bash
# The worker's connection settings against aiosmtpd on 127.0.0.1: SMTP AUTH
# from segment.smtp_username/password (a wrong password holds the queue and
# says so), STARTTLS on smtp:// and TLS on smtps:// with the certificate
# verified (a self-signed one is refused unless segment.smtp_ca_file names
# it), and segment.max_rate.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
. test/integration/smtp_helpers.bash
name=smtp_settings
work=$(mktemp -d)
chmod 755 "$work"
trap 'stop_servers; test/cluster stop $name; rm -rf "$work"' EXIT

# A self-signed certificate for 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" -days 1 2>/dev/null
chmod 644 "$work/key.pem" "$work/cert.pem"

start_capture auth_port "$work/auth" --auth mailer:s3cret
test/cluster stop $name >/dev/null 2>&1 || true
eval "$(test/cluster start $name -c "segment.from_address='Shop <news@shop.example>'" \
  -c "segment.smtp_url='smtp://127.0.0.1:$auth_port'" -c "segment.smtp_username='mailer'" \
  -c "segment.smtp_password='s3cret'" -c "segment.retry_delay=1")"
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION segment" -c "SELECT segment.upsert_contact('ann@example.com')" >/dev/null

failures=0
pass() { echo "ok - $1"; }
fail() { echo "FAILED - $1"; failures=$((failures + 1)); }
send() { q "SELECT segment.enqueue(1, '$1', NULL, 'Hello')"; }
status() { q "SELECT status FROM segment.messages WHERE id = $1"; }

# AUTH with the configured user and password.
m=$(send auth-ok)
wait_sql "SELECT status = 'sent' FROM segment.messages WHERE id = $m" 20
if grep -q '^AUTH mailer$' "$work"/auth/*.env; then pass "AUTH with smtp_username and smtp_password"; else fail "no AUTH seen"; fi

# A wrong password: the server refuses AUTH, the worker holds the queue and says why.
set_conf segment.smtp_password wrong
m=$(send auth-bad)
wait_sql "SELECT detail LIKE 'SMTP server unavailable (535%' FROM segment.worker_status()" 20 \
  && pass "a refused AUTH shows in worker_status: $(q "SELECT detail FROM segment.worker_status()")" \
  || fail "worker_status: $(q "SELECT detail FROM segment.worker_status()")"
[ "$(status "$m")" != sent ] && [ "$(status "$m")" != failed ] && pass "the message waits ($(status "$m"))" || fail "status $(status "$m")"
set_conf segment.smtp_password s3cret
wait_sql "SELECT status = 'sent' FROM segment.messages WHERE id = $m" 30 && pass "with the right password it goes out"
ok_pw=$(psql -X -At -c "CREATE ROLE plain_reader" -c "SET ROLE plain_reader" -c "SHOW segment.smtp_password" 2>&1 || true)
case "$ok_pw" in *"must be superuser"*|*"permission denied"*|*"privileges of pg_read_all_settings"*) pass "smtp_password is hidden from other roles";; *) fail "smtp_password shown: $ok_pw";; esac

# STARTTLS on smtp://: a self-signed certificate is refused (verification is on) ...
start_capture st_port "$work/starttls" --starttls "$work/cert.pem" "$work/key.pem"
set_conf segment.smtp_username ""
set_conf segment.smtp_url "smtp://127.0.0.1:$st_port"
m=$(send starttls)
wait_sql "SELECT detail LIKE 'SMTP server unavailable (%certificate%' FROM segment.worker_status()" 20 \
  && pass "STARTTLS: an unverifiable certificate is refused: $(q "SELECT detail FROM segment.worker_status()")" \
  || fail "STARTTLS: $(q "SELECT detail FROM segment.worker_status()")"
[ -z "$(ls "$work"/starttls/*.eml 2>/dev/null)" ] && pass "nothing was sent in clear text" || fail "a message went through"
# ... and accepted once segment.smtp_ca_file names it.
set_conf segment.smtp_ca_file "$work/cert.pem"
wait_sql "SELECT status = 'sent' FROM segment.messages WHERE id = $m" 30 && pass "STARTTLS with the CA file: sent"

# smtps://: TLS from the first byte, verified the same way.
start_capture tls_port "$work/tls" --tls "$work/cert.pem" "$work/key.pem"
set_conf segment.smtp_url "smtps://127.0.0.1:$tls_port"
m=$(send smtps)
wait_sql "SELECT status = 'sent' FROM segment.messages WHERE id = $m" 30 && pass "smtps:// with the CA file: sent"
set_conf segment.smtp_ca_file ""
m=$(send smtps-unverified)
wait_sql "SELECT detail LIKE 'SMTP server unavailable (%certificate%' FROM segment.worker_status()" 20 \
  && pass "smtps://: an unverifiable certificate is refused" || fail "smtps: $(q "SELECT detail FROM segment.worker_status()")"

# segment.max_rate: 30 messages at 20 per second take at least 1.45 s.
start_capture fast_port "$work/fast"
set_conf segment.smtp_url "smtp://127.0.0.1:$fast_port"
wait_sql "SELECT status = 'sent' FROM segment.messages WHERE id = $m" 30
set_conf segment.max_rate 20
sleep 0.5
t0=$(date +%s%N)
q "SELECT count(segment.enqueue(1, 'rate ' || g, NULL, 'Hello')) FROM generate_series(1, 30) g" >/dev/null
wait_sql "SELECT count(*) = 30 FROM segment.messages WHERE subject LIKE 'rate %' AND status = 'sent'" 30
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "30 messages at max_rate 20/s took $ms ms"
[ "$ms" -ge 1450 ] && pass "max_rate is respected" || fail "max_rate: 30 messages in $ms ms"
[ $failures = 0 ]
