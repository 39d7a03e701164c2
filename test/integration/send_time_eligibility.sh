#!/usr/bin/env bash
# Eligibility is checked again when the worker claims a message: marketing mail
# queued for a contact who has since unsubscribed, and any mail for a contact
# who has since bounced or complained, or whose address was suppressed, is
# cancelled instead of sent.  Mail for contacts still eligible goes out.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
. test/integration/smtp_helpers.bash
name=send_time_eligibility
work=$(mktemp -d /tmp/segment-$name.XXXXXX); chmod 755 "$work"
trap 'stop_servers; test/cluster stop $name; rm -rf "$work"' EXIT

start_capture port "$work/mail"
# No smtp_url yet: the worker waits while the queue fills and the contacts change.
test/cluster stop $name >/dev/null 2>&1 || true
eval "$(test/cluster start $name -c "segment.from_address='Shop <news@shop.example>'")"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION segment;
SELECT segment.upsert_contact(e) FROM unnest(ARRAY['stays@example.com', 'leaves@example.com',
  'bounces@example.com', 'suppressed@example.com', 'receipt@example.com']) e;
UPDATE segment.contacts SET status = 'subscribed';
SELECT segment.enqueue(c.id, 'News for ' || c.email, '<p>news</p>', 'news',
                       jsonb_build_object('kind', 'marketing', 'unsubscribe_url', 'https://shop.example/u'))
  FROM segment.contacts c WHERE c.email <> 'receipt@example.com';
SELECT segment.enqueue(c.id, 'Your receipt', '<p>receipt</p>', 'receipt', '{}')
  FROM segment.contacts c WHERE c.email IN ('receipt@example.com', 'bounces@example.com');
-- After the enqueue: one unsubscribes, one bounces elsewhere, one address is suppressed,
-- and the receipt's contact unsubscribes from marketing (transactional mail still goes).
UPDATE segment.contacts SET status = 'unsubscribed' WHERE email IN ('leaves@example.com', 'receipt@example.com');
UPDATE segment.contacts SET status = 'bounced' WHERE email = 'bounces@example.com';
SELECT segment.suppress('suppressed@example.com', 'manual');
SQL
set_conf segment.smtp_url "smtp://127.0.0.1:$port"
wait_sql "SELECT count(*) = 0 FROM segment.messages WHERE status IN ('queued', 'retry', 'sending')" 60

result=$(psql -X -At -F ' ' -c "SELECT rcpt_to, subject, status, coalesce(last_response, '') FROM segment.messages ORDER BY rcpt_to, subject")
echo "$result"
expected="bounces@example.com News for bounces@example.com cancelled cancelled at send time: contact is bounced
bounces@example.com Your receipt cancelled cancelled at send time: contact is bounced
leaves@example.com News for leaves@example.com cancelled cancelled at send time: contact is unsubscribed
receipt@example.com Your receipt sent 
stays@example.com News for stays@example.com sent 
suppressed@example.com News for suppressed@example.com cancelled cancelled at send time: address is suppressed"
# The SMTP server's reply text of sent messages varies; compare without it.
got=$(printf '%s\n' "$result" | sed -E 's/^(\S+ .* sent) .*/\1 /')
[ "$got" = "$expected" ] || { echo "unexpected outcome:"; diff <(echo "$expected") <(echo "$got"); exit 1; }
delivered=$(cat "$work"/mail/*.env 2>/dev/null | grep -v '^news@shop.example$' | sort | tr '\n' ' ')
echo "delivered to: $delivered"
[ "$delivered" = "receipt@example.com stays@example.com " ]
