#!/usr/bin/env bash
# The worker delivers RFC-correct mail to a real SMTP server (aiosmtpd on
# 127.0.0.1): every captured message is parsed back with Python's email package
# and checked (headers, encoded-words, parts, bodies, Message-ID, List-Unsubscribe
# on marketing mail only).  Also: a 550 to RCPT is a hard bounce (contact
# bounced, address suppressed), a 451 is retried then given up, the worker
# follows a new smtp_url on reload, waits without one, and waits while the
# extension is dropped.  Prints the enqueue-to-accepted latency of an idle worker.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
. test/integration/smtp_helpers.bash
name=smtp_deliver
work=$(mktemp -d)
chmod 755 "$work"
trap 'cp "$(test/cluster log $name)" "$work/../smtp_deliver-server.log" 2>/dev/null; stop_servers; test/cluster stop $name; rm -rf "$work"' EXIT

start_capture port "$work/mail" --reject-rcpt gone@example.com --tempfail-rcpt busy@example.com
test/cluster stop $name >/dev/null 2>&1 || true
eval "$(test/cluster start $name -c "segment.smtp_url='smtp://127.0.0.1:$port'" \
  -c "segment.from_address='Shop Ünïcode <news@shop.example>'" \
  -c "segment.unsubscribe_url='https://shop.example/unsubscribe'" -c "segment.secret='s3cret-for-the-smtp-test'" \
  -c "segment.retry_delay=1" -c "segment.max_attempts=2")"

echo "cluster up ($(date +%T))"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION segment;
SELECT segment.upsert_contact('ann@example.com', first_name => 'Ann-Sophie', last_name => 'Müller-Lüdenscheidt');
UPDATE segment.contacts SET status = 'subscribed' WHERE email = 'ann@example.com';
SELECT segment.upsert_contact('bob@example.com');
SELECT segment.upsert_contact('gone@example.com');
SELECT segment.upsert_contact('busy@example.com');
SELECT segment.create_template('receipt',
  'Your receipt {{order}} — danke schön, {{first_name | default: "friend"}}',
  '<p>Order <b>{{order}}</b>: 3 × Äpfel = 9,00 €</p>',
  'Order {{order}}: 3 x Äpfel = 9,00 €');
SQL
id() { q "SELECT id FROM segment.contacts WHERE email = '$1'"; }
ann=$(id ann@example.com); bob=$(id bob@example.com)

# Transactional mail to a pending contact; marketing mail with every header.
m_bob=$(q "SELECT segment.send($bob, 'receipt', '{\"order\": \"A-1\"}')")
long_subject=$(printf 'Frühlingsangebote für Sie: %.0s' 1 2 3 4 5 6)"日本語のテキスト 😀 end"
long_line=$(printf 'Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich = %.0s' $(seq 1 20))
m_ann=$(psql -X -At -v ON_ERROR_STOP=1 -v subj="$long_subject" -v line="$long_line" <<SQL
SELECT segment.enqueue($ann, :'subj', '<html><body><p>' || :'line' || '</p></body></html>',
  :'line' || E'\nsecond line  \n.leading dot\n',
  '{"kind": "marketing", "campaign": "spring", "reply_to": "Support Team <help@shop.example>",
    "unsubscribe_mailto": "mailto:unsubscribe@shop.example?subject=unsubscribe",
    "headers": {"X-Campaign": "spring-2026", "X-Mailer-Note": "Grüße"}}');
SQL
)
m_gone=$(q "SELECT segment.send($(id gone@example.com), 'receipt', '{\"order\": \"G-1\"}')")
m_busy=$(q "SELECT segment.send($(id busy@example.com), 'receipt', '{\"order\": \"B-1\"}')")

echo "queued ($(date +%T))"
wait_sql "SELECT count(*) = 4 FROM segment.messages WHERE status IN ('sent', 'failed')" 60
q "SELECT id, status, attempts, last_code, last_response FROM segment.messages ORDER BY id"

check() {  # check DESCRIPTION SQL-returning-t
  if [ "$(q "$2")" = t ]; then echo "ok - $1 ($(date +%T))"; else echo "FAILED - $1"; q "$2"; exit 1; fi
}
check "transactional and marketing mail sent" \
  "SELECT bool_and(status = 'sent' AND last_code = 250 AND sent_at IS NOT NULL AND attempts = 1) FROM segment.messages WHERE id IN ($m_bob, $m_ann)"
check "550 to RCPT: failed, contact bounced, address suppressed" \
  "SELECT m.status = 'failed' AND m.last_code = 550 AND m.last_response LIKE '550 5.1.1%' AND c.status = 'bounced'
          AND segment.is_suppressed('gone@example.com')
     FROM segment.messages m JOIN segment.contacts c ON c.id = m.contact_id WHERE m.id = $m_gone"
check "the bounce is in the suppression list with its reply" \
  "SELECT reason = 'bounce' AND detail LIKE '550 %User unknown' FROM segment.suppressions WHERE address = 'gone@example.com'"
check "451 to RCPT: retried, then failed after max_attempts (2)" \
  "SELECT status = 'failed' AND attempts = 2 AND last_code = 451 FROM segment.messages WHERE id = $m_busy"
check "worker_status counts sent, failed and retried" \
  "SELECT state = 'idle' AND sent = 2 AND failed = 2 AND retried = 1 FROM segment.worker_status()"
if psql -X -q -c "SELECT segment.send($(id gone@example.com), 'receipt')" 2>"$work/err"; then
  echo "FAILED - a bounced contact was mailed again"; exit 1
fi
if grep -q 'its status is bounced' "$work/err"; then echo "ok - a bounced contact gets no more mail"
else cat "$work/err"; exit 1; fi

# Parse every captured message back.
q "SELECT message_id FROM segment.messages WHERE id = $m_bob" > "$work/bob.id"
q "SELECT message_id FROM segment.messages WHERE id = $m_ann" > "$work/ann.id"
LONG_SUBJECT="$long_subject" LONG_LINE="$long_line" "$SYSPY" - "$work" <<'PY'
import email, email.policy, email.utils, glob, os, re, sys
work = sys.argv[1]
msgs = {}
raw = {}
for f in sorted(glob.glob(work + '/mail/*.eml')):
    data = open(f, 'rb').read()
    env = open(f[:-4] + '.env').read().split('\n')
    m = email.message_from_bytes(data, policy=email.policy.default)
    to = m['To'].addresses[0].addr_spec
    msgs[to] = (m, env)
    raw[to] = data
failures = 0
def ok(cond, what):
    global failures
    print(('ok - ' if cond else 'FAILED - ') + what)
    if not cond:
        failures += 1

ok(sorted(msgs) == ['ann@example.com', 'bob@example.com'], 'exactly the two accepted messages were captured: %s' % sorted(msgs))
for to, data in raw.items():
    lines = data.split(b'\r\n')
    ok(all(len(l) <= 998 for l in lines), to + ': every line within 998 octets')
    ok(b'\n' not in data.replace(b'\r\n', b''), to + ': CRLF line ends only')
    head = data.split(b'\r\n\r\n', 1)[0].split(b'\r\n')
    ok(all(len(l) <= 76 for l in head if b'=?UTF-8?' in l), to + ': header lines with encoded-words within 76')
    words = re.findall(rb'=\?UTF-8\?B\?[^?]*\?=', data.split(b'\r\n\r\n', 1)[0])
    ok(all(len(w) <= 75 for w in words), to + ': encoded-words within 75 characters')
    ok(all(email.header.decode_header(w.decode())[0][0].decode('utf-8') is not None for w in words),
       to + ': every encoded-word is whole UTF-8 on its own')

m, env = msgs['bob@example.com']
ok(env[0] == 'news@shop.example' and env[1] == 'bob@example.com', 'bob: envelope MAIL FROM and RCPT TO')
ok(m['From'].addresses[0].display_name == 'Shop Ünïcode', 'bob: From display name decodes: %r' % m['From'].addresses[0].display_name)
ok(m['From'].addresses[0].addr_spec == 'news@shop.example', 'bob: From address')
ok(m['Subject'] == 'Your receipt A-1 — danke schön, friend', 'bob: Subject decodes: %r' % m['Subject'])
ok(m['Message-ID'] == '<%s>' % open(work + '/bob.id').read().strip(), 'bob: Message-ID is the queued one')
ok(email.utils.parsedate_to_datetime(m['Date']) is not None, 'bob: Date parses')
ok(m['MIME-Version'] == '1.0', 'bob: MIME-Version')
ok(m['List-Unsubscribe'] is None and m['List-Unsubscribe-Post'] is None, 'bob: transactional mail has no List-Unsubscribe')
ok(m.get_content_type() == 'multipart/alternative', 'bob: multipart/alternative')
parts = list(m.iter_parts())
ok([p.get_content_type() for p in parts] == ['text/plain', 'text/html'], 'bob: text part then html part')
ok(all(p.get_content_charset() == 'utf-8' and p['Content-Transfer-Encoding'] == 'quoted-printable' for p in parts),
   'bob: parts are UTF-8 quoted-printable')
ok(parts[0].get_content() == 'Order A-1: 3 x Äpfel = 9,00 €', 'bob: text body: %r' % parts[0].get_content())
ok(parts[1].get_content() == '<p>Order <b>A-1</b>: 3 × Äpfel = 9,00 €</p>', 'bob: html body: %r' % parts[1].get_content())

m, env = msgs['ann@example.com']
ok(m['To'].addresses[0].display_name == 'Ann-Sophie Müller-Lüdenscheidt', 'ann: To display name decodes')
ok(m['Subject'] == os.environ['LONG_SUBJECT'], 'ann: long mixed-script subject decodes exactly')
ok(m['Reply-To'].addresses[0].display_name == 'Support Team' and m['Reply-To'].addresses[0].addr_spec == 'help@shop.example', 'ann: Reply-To')
ok(m['X-Campaign'] == 'spring-2026' and m['X-Mailer-Note'] == 'Grüße', 'ann: custom headers')
lu = m['List-Unsubscribe']
ok(lu is not None and re.fullmatch(r'<mailto:unsubscribe@shop\.example\?subject=unsubscribe>, <https://shop\.example/unsubscribe\?token=[A-Za-z0-9_.-]+>', str(lu)) is not None,
   'ann: List-Unsubscribe has mailto and the signed https link: %r' % str(lu))
ok(m['List-Unsubscribe-Post'] == 'List-Unsubscribe=One-Click', 'ann: List-Unsubscribe-Post one-click')
ok(m['Message-ID'] == '<%s>' % open(work + '/ann.id').read().strip(), 'ann: Message-ID is the queued one')
parts = list(m.iter_parts())
line = os.environ['LONG_LINE']
# Python keeps the CRLF of decoded lines; compare with LF.
ok(parts[0].get_content().replace('\r\n', '\n') == line + '\nsecond line  \n.leading dot\n',
   'ann: long text line, trailing blanks and a leading dot survive: %r' % parts[0].get_content()[-60:])
ok(parts[1].get_content() == '<html><body><p>' + line + '</p></body></html>', 'ann: long html line survives')
sys.exit(1 if failures else 0)
PY

# The signed link unsubscribes Ann.
token=$("$SYSPY" -c "
import email, email.policy, glob, re
for f in glob.glob('$work/mail/*.eml'):
    m = email.message_from_bytes(open(f, 'rb').read(), policy=email.policy.default)
    if m['List-Unsubscribe']: print(re.search(r'token=([A-Za-z0-9_.-]+)', str(m['List-Unsubscribe'])).group(1))")
check "the List-Unsubscribe token names the contact" "SELECT segment.unsubscribe('$token') = $ann"
check "and unsubscribes it" "SELECT status = 'unsubscribed' FROM segment.contacts WHERE id = $ann"

# Latency on an idle worker, as an application with an open session sees it:
# from the commit of segment.send() until the row reads 'sent' (the server has
# accepted it and the worker recorded that).  Printed, not asserted.
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
SET client_min_messages = notice;
DO $$
DECLARE
  m bigint;
  t0 timestamptz;
  st text;
  lat float8[] := '{}';
BEGIN
  FOR i IN 1..20 LOOP
    PERFORM pg_sleep(0.2);            -- let the worker go idle
    m := segment.send((SELECT id FROM segment.contacts WHERE email = 'bob@example.com'), 'receipt',
                      jsonb_build_object('order', 'L-' || i));
    COMMIT;
    t0 := clock_timestamp();
    LOOP
      SELECT status INTO st FROM segment.messages WHERE id = m;
      EXIT WHEN st = 'sent';
      IF clock_timestamp() - t0 > interval '10 s' THEN
        RAISE EXCEPTION 'message % not sent after 10 s (status %)', m, st;
      END IF;
      PERFORM pg_sleep(0.0005);
    END LOOP;
    lat := lat || extract(epoch FROM clock_timestamp() - t0) * 1000;
    COMMIT;
  END LOOP;
  RAISE NOTICE 'latency commit of send() to sent on an idle worker: median % ms, min % ms, max % ms (n=20)',
    (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::numeric, 1) FROM unnest(lat) x),
    (SELECT round(min(x)::numeric, 1) FROM unnest(lat) x), (SELECT round(max(x)::numeric, 1) FROM unnest(lat) x);
END
$$;
SQL

# A new smtp_url is followed on reload.
start_capture port2 "$work/mail2"
set_conf segment.smtp_url "smtp://127.0.0.1:$port2"
m=$(q "SELECT segment.send($bob, 'receipt', '{\"order\": \"R-1\"}')")
wait_sql "SELECT status = 'sent' FROM segment.messages WHERE id = $m" 20
mid=$(q "SELECT message_id FROM segment.messages WHERE id = $m")
if grep -q "Message-ID: <$mid>" "$work"/mail2/*.eml; then echo "ok - after a reload the worker sends to the new smtp_url"
else echo "FAILED - the message did not reach the new smtp_url"; exit 1; fi

# Without smtp_url the worker waits and says so; mail queues up meanwhile.
set_conf segment.smtp_url ""
wait_sql "SELECT state = 'waiting for smtp_url' FROM segment.worker_status()" 10
m=$(q "SELECT segment.send($bob, 'receipt', '{\"order\": \"W-1\"}')")
sleep 1
check "without smtp_url a message stays queued" "SELECT status = 'queued' FROM segment.messages WHERE id = $m"
set_conf segment.smtp_url "smtp://127.0.0.1:$port2"
wait_sql "SELECT status = 'sent' FROM segment.messages WHERE id = $m" 20
echo "ok - queued mail goes out once smtp_url is set"

# With the extension dropped, the worker waits for it (no error loop).
q "DROP EXTENSION segment" >/dev/null
wait_sql "SELECT query = 'waiting for CREATE EXTENSION segment' FROM pg_stat_activity WHERE backend_type = 'segment worker'" 10
echo "ok - with the extension dropped the worker waits (pg_stat_activity says so)"
errors=$(grep -c "segment worker.*ERROR" "$(test/cluster log $name)" || true)
if [ "$errors" = 0 ]; then echo "ok - no worker errors in the server log"
else grep "segment worker.*ERROR" "$(test/cluster log $name)"; exit 1; fi
q "CREATE EXTENSION segment" >/dev/null
wait_sql "SELECT state IN ('idle', 'sending') FROM segment.worker_status()" 10
echo "ok - the worker resumes after CREATE EXTENSION"
