#!/usr/bin/env bash
# pg_dump saves every row of the extension and a restore the documented way
# (doc/operations.md, "Backups": session_replication_role = replica, one
# transaction) gives back an equal database, in plain and custom format:
#   - pg_dump writes nothing to stderr;
#   - every table and identity sequence of the extension is registered;
#   - every segment.* table is equal row for row, every sequence value too;
#   - the derived state is right: members of dynamic segments, event_stats,
#     rule tags, stages;
#   - new writes continue the ids and are maintained; run_flows neither resends
#     nor skips; tokens issued before the dump still verify;
#   - the worker, given the restored database, sends the queued mail and not
#     the mail already sent;
# and a restore the plain way (triggers on) fails with the guard's error first.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
. test/integration/smtp_helpers.bash
name=pg_dump
test/cluster stop $name >/dev/null 2>&1 || true
settings=(-c "segment.from_address='Shop <news@shop.example>'"
          -c "segment.unsubscribe_url='https://shop.example/unsubscribe'"
          -c "segment.tracking_url='https://shop.example/t'" -c "segment.confirm_url='https://shop.example/confirm'"
          -c "segment.secret='a-long-enough-test-secret'")
test/cluster stop ${name}_new >/dev/null 2>&1 || true
eval "$(test/cluster start $name "${settings[@]}")"
# The restores go into a second, new cluster (the secret carried over in its
# settings), whose transaction ids are below the source's.
newenv=$(test/cluster start ${name}_new "${settings[@]}")
onnew() { ( eval "$newenv"; "$@" ); }
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'stop_servers; rm -rf "$tmp"; test/cluster stop ${name}_new; test/cluster stop $name' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The source database: every area of the extension.  Not segment.database, so
# the worker leaves it alone and it stays as the dump saw it.
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE DATABASE src' >/dev/null
# Transaction ids of the source well above those of the new cluster.
for i in $(seq 2000); do echo 'SELECT pg_current_xact_id();'; done | psql -X -q -d src >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d src >/dev/null <<'SQL'
CREATE EXTENSION segment;
SELECT segment.define_field('country', 'text');
SELECT segment.define_field('plan', 'enum', ARRAY['free', 'pro']);
SELECT segment.upsert_contact('c' || i || '@example.com',
         jsonb_build_object('country', CASE WHEN i % 2 = 0 THEN 'DE' ELSE 'FR' END,
                            'plan', CASE WHEN i % 3 = 0 THEN 'pro' ELSE 'free' END, 'shoe_size', 40 + i),
         'First' || i, 'Last' || i, 'de', 'Europe/Berlin')
  FROM generate_series(1, 12) i;
UPDATE segment.contacts SET status = 'subscribed' WHERE id <= 10;
SELECT segment.install_default_stages();
SELECT segment.create_segment('germany', 'country = ''DE''');
SELECT segment.create_segment('buyers', 'did purchase');
SELECT segment.create_segment('big_spenders', 'sum(purchase.amount) > 100', 'scheduled');
SELECT segment.create_segment('handpicked', 'plan = ''pro''', 'static');
SELECT segment.add_to_segment('handpicked', 1);
SELECT segment.create_tag_rule('buyer', 'did purchase');
SELECT segment.tag(1, 'VIP');
SELECT segment.tag(2, 'trial', now() + interval '7 days');
SELECT segment.create_segment('vips', 'tagged ''VIP'' or tagged ''buyer''');
SELECT segment.track(i, 'purchase', jsonb_build_object('product_id', 'p' || i, 'category', 'golf'),
                     50 * i, now() - (i * 10 || ' days')::interval)
  FROM generate_series(1, 6) i;
SELECT segment.track(i, 'page_view', '{"url": "/"}') FROM generate_series(1, 12) i;
-- events partitioned by month (the dump holds the partitions, the restore
-- attaches them to a partitioned segment.events again), more events after.
SELECT segment.partition_events('month', 1);
SELECT segment.untag(1, 'VIP');
SELECT segment.refresh('big_spenders');
SELECT segment.create_template('footer', 'footer', '<p>Bye {{first_name}}</p>');
SELECT segment.create_template('news', 'News for {{first_name | default: "you"}}', '<p>Hi</p>{{> footer}}');
SELECT segment.create_campaign('spring', 'germany', 'news');
SELECT segment.launch('spring');
-- What the worker records when it has sent a message.
UPDATE segment.messages SET status = 'sent', attempts = 1, sent_at = now()
 WHERE id IN (SELECT id FROM segment.messages ORDER BY id LIMIT 2);
SELECT segment.record(message_id, 'delivered') FROM segment.messages WHERE status = 'sent';
SELECT segment.record(message_id, 'open') FROM segment.messages WHERE status = 'sent';
SELECT segment.create_flow('welcome', 'event:signup', 'news', '{"delay": "1 hour"}');
SELECT segment.create_flow('hello', 'segment_enter:buyers', 'news');
SELECT segment.track(5, 'signup');
SELECT segment.track(7, 'purchase', '{}', 5);
SELECT segment.subscribe('new@example.com', 'form');
SELECT segment.unsubscribe(substring(segment.unsubscribe_url(4, 'spring') FROM 'token=(.*)$'));
SELECT segment.forget(12);
SELECT segment.run_flows();
-- Work waiting for run_flows in the dump: an inbox row (signup) and a change
-- (contact 9 enters buyers).
SELECT segment.track(8, 'signup');
SELECT segment.track(9, 'purchase', '{}', 1);
SQL
# q1 DATABASE SQL: one value; src is in the source cluster, the rest in the new one.
q1() {
  if [ "$1" = src ]; then psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"
  else onnew psql -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; fi
}
echo "source: $(q1 src "SELECT count(*) FROM segment.contacts") contacts, $(q1 src "SELECT count(*) FROM segment.events") events, $(q1 src "SELECT count(*) FROM segment.messages") messages, $(q1 src "SELECT count(*) FROM segment.changes") changes"

# Every table and sequence of the extension is configuration data (95_dump.sql);
# the partitioned segment.events has no rows of its own, its partitions are
# ordinary tables.
missing=$(q1 src "SELECT string_agg(c.oid::regclass::text, ', ')
  FROM pg_depend d JOIN pg_class c ON c.oid = d.objid JOIN pg_extension e ON e.oid = d.refobjid
 WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND e.extname = 'segment'
   AND c.relkind IN ('r', 'S') AND c.oid <> ALL (e.extconfig)")
[ -z "$missing" ] || fail "not registered with pg_extension_config_dump: $missing"

# Tokens made before the dump.
unsub=$(q1 src "SELECT segment.unsubscribe_url(6, 'spring')")
unsub_token=${unsub##*token=}
confirm_token=$(q1 src "SELECT segment._confirm_link(id, email, 'form') FROM segment.contacts WHERE email = 'new@example.com'")
confirm_token=${confirm_token##*token=}
click_token=$(q1 src "SELECT segment.track_url(message_id, 'https://shop.example/golf') FROM segment.messages WHERE status = 'sent' ORDER BY id LIMIT 1")
click_token=${click_token##*t=}

for fmt in p c; do
  "$PGBIN/pg_dump" -d src -F$fmt -f "$tmp/dump.$fmt" 2>"$tmp/stderr"
  if [ -s "$tmp/stderr" ]; then
    echo "pg_dump -F$fmt wrote to stderr:"; head -5 "$tmp/stderr"; exit 1
  fi
done
grep -q '^CREATE EXTENSION IF NOT EXISTS segment' "$tmp/dump.p"

# The documented restores.
restore() {  # restore FORMAT DATABASE [client options...], in the new cluster
  local fmt=$1 db=$2; shift 2
  onnew psql -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" >/dev/null
  if [ "$fmt" = p ]; then
    onnew psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d "$db" -f "$tmp/dump.p" "$@" >/dev/null 2>"$tmp/restore.$db"
  else
    onnew "$PGBIN/pg_restore" --single-transaction --exit-on-error -d "$db" "$@" "$tmp/dump.c" 2>"$tmp/restore.$db"
  fi
}
PGOPTIONS='-c session_replication_role=replica' restore p plain || { cat "$tmp/restore.plain"; fail "plain restore"; }
PGOPTIONS='-c session_replication_role=replica' restore c custom || { cat "$tmp/restore.custom"; fail "custom restore"; }
for db in plain custom; do
  [ ! -s "$tmp/restore.$db" ] || { cat "$tmp/restore.$db"; fail "restore into $db wrote to stderr"; }
done

# Row for row, every table; every sequence's value.  The transaction ids of the
# change feed are renumbered for the new cluster (95_dump.sql): what they mean
# is checked below, by what run_flows does.
tables=$(q1 src "SELECT string_agg(c.oid::regclass::text, ' ' ORDER BY c.relname) FROM pg_class c
                  WHERE c.relnamespace = 'segment'::regnamespace AND c.relkind IN ('r', 'p')")
digest() {  # digest DATABASE: one line per table and sequence
  local t
  for t in $tables; do
    printf '%s %s\n' "$t" "$(q1 "$1" "SELECT count(*) || ' ' || md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), ''))
                                 FROM (SELECT to_jsonb(t) - 'xid' - 'cursor_xid' - 'cursor_id' AS r FROM $t t) x")"
  done
  q1 "$1" "SELECT sequencename || ' ' || coalesce(last_value, 0) FROM pg_sequences WHERE schemaname = 'segment' ORDER BY 1"
}
digest src > "$tmp/src.digest"
for db in plain custom; do
  digest $db > "$tmp/$db.digest"
  diff "$tmp/src.digest" "$tmp/$db.digest" || fail "$db differs from the source"
done
echo "restored equal to the source: $(wc -l < "$tmp/src.digest") tables and sequences, plain and custom format"
empty=$(grep ' 0 d41d8cd98f00b204e9800998ecf8427e$' "$tmp/src.digest" | cut -d' ' -f1 | tr '\n' ' ' || true)
echo "empty tables in the source: ${empty:-none}"

# What the worker has to do after a restore.
max_message=$(q1 src "SELECT max(id) FROM segment.messages")
queued_ids=$(q1 src "SELECT string_agg(message_id, ' ' ORDER BY id) FROM segment.messages WHERE status = 'queued'")
sent_ids=$(q1 src "SELECT string_agg(message_id, ' ' ORDER BY id) FROM segment.messages WHERE status = 'sent'")

# The derived state of the restored database is what its rows give.
check_derived() {
  local db=$1 bad
  bad=$(q1 $db "SELECT count(*) FROM segment.segments s
                 WHERE s.mode = 'dynamic' AND EXISTS (
                   (SELECT m FROM segment.members(s.rule) m EXCEPT SELECT contact_id FROM segment.segment_members WHERE segment_id = s.id)
                   UNION ALL
                   (SELECT contact_id FROM segment.segment_members WHERE segment_id = s.id EXCEPT SELECT m FROM segment.members(s.rule) m))")
  [ "$bad" = 0 ] || fail "$db: $bad dynamic segments whose members differ from members(rule)"
  bad=$(q1 $db "SELECT count(*) FROM (
                  (SELECT type, contact_id, count(*), min(occurred_at), max(occurred_at), count(amount), sum(amount), min(amount), max(amount)
                     FROM segment.events GROUP BY 1, 2
                   EXCEPT SELECT type, contact_id, count, first_at, last_at, amount_count, sum_amount, min_amount, max_amount FROM segment.event_stats)
                  UNION ALL
                  (SELECT type, contact_id, count, first_at, last_at, amount_count, sum_amount, min_amount, max_amount FROM segment.event_stats
                   EXCEPT SELECT type, contact_id, count(*), min(occurred_at), max(occurred_at), count(amount), sum(amount), min(amount), max(amount)
                     FROM segment.events GROUP BY 1, 2)) x")
  [ "$bad" = 0 ] || fail "$db: $bad event_stats rows differ from the events"
  bad=$(q1 $db "SELECT count(*) FROM segment.tag_rules r WHERE EXISTS (
                  (SELECT m FROM segment.members(r.rule) m EXCEPT SELECT contact_id FROM segment.contact_tags WHERE tag = r.tag)
                  UNION ALL
                  (SELECT contact_id FROM segment.contact_tags WHERE tag = r.tag AND source = 'rule' EXCEPT SELECT m FROM segment.members(r.rule) m))")
  [ "$bad" = 0 ] || fail "$db: $bad tag rules whose tags differ from members(rule)"
  bad=$(q1 $db "SELECT count(*) FROM segment.contacts c
                 WHERE segment.stage(c.id) IS DISTINCT FROM
                       (SELECT s.name FROM segment.stages s WHERE segment.matches(c.id, s.rule) ORDER BY s.position DESC LIMIT 1)")
  [ "$bad" = 0 ] || fail "$db: $bad contacts whose stage is not the highest stage whose rule holds"
}
for db in src plain custom; do check_derived $db; done
echo "derived state right: members(rule), event_stats, rule tags, stages"

# The change feed goes on where the dump left it: run_flows starts the runs
# waiting at the dump (an inbox row, a change), as it does in the source, and
# nothing else.  Writes after the restore continue the ids and are maintained;
# tokens made before the dump verify.
flow_runs_new() {  # flow_runs_new DATABASE SQL: run SQL, print the runs it started
  local before; before=$(q1 $1 "SELECT coalesce(max(id), 0) FROM segment.flow_runs")
  q1 $1 "$2" >/dev/null
  q1 $1 "SELECT coalesce(string_agg(f.name || ':' || r.contact_id, ',' ORDER BY f.name, r.contact_id), '-')
           FROM segment.flow_runs r JOIN segment.flows f ON f.id = r.flow_id WHERE r.id > $before"
}
for db in src plain custom; do
  got=$(flow_runs_new $db "SELECT segment.run_flows()")
  [ "$got" = "hello:9,welcome:8" ] || fail "$db: the first run_flows started '$got'"
  got=$(flow_runs_new $db "SELECT segment.run_flows()")
  [ "$got" = "-" ] || fail "$db: the second run_flows started '$got'"
  if [ $db = src ]; then continue; fi
  max_contact=$(q1 src "SELECT max(id) FROM segment.contacts")
  max_event=$(q1 src "SELECT max(id) FROM segment.events")
  max_change=$(q1 src "SELECT max(id) FROM segment.changes")
  new_id=$(q1 $db "SELECT segment.upsert_contact('late@example.com')")
  [ "$new_id" -gt "$max_contact" ] || fail "$db: new contact id $new_id does not follow $max_contact"
  ev=$(q1 $db "SELECT segment.track($new_id, 'purchase', '{}', 500)")
  [ "$ev" -gt "$max_event" ] || fail "$db: new event id $ev does not follow $max_event"
  [ "$(q1 $db "SELECT min(id) > $max_change FROM segment.changes WHERE contact_id = $new_id")" = t ] || fail "$db: change feed ids collide"
  [ "$(q1 $db "SELECT segment.in_segment($new_id, 'buyers') AND 'buyer' = ANY (segment.tags($new_id)) AND segment.stage($new_id) IS NOT NULL")" = t ] \
    || fail "$db: the new contact's purchase was not maintained"
  q1 $db "SELECT segment.track($new_id, 'signup')" >/dev/null
  got=$(flow_runs_new $db "SELECT segment.run_flows()")
  [ "$got" = "hello:$new_id,welcome:$new_id" ] || fail "$db: run_flows after the restore made '$got'"
  check_derived $db
  [ "$(q1 $db "SELECT segment.unsubscribe('$unsub_token')")" = 6 ] || fail "$db: unsubscribe token"
  [ "$(q1 $db "SELECT segment.confirm('$confirm_token') = id FROM segment.contacts WHERE email = 'new@example.com'")" = t ] || fail "$db: confirmation token"
  [ "$(q1 $db "SELECT segment.resolve_click('$click_token')")" = https://shop.example/golf ] || fail "$db: click token"
done
echo "after the restore: ids continue, maintenance and flows go on, tokens verify"

# The worker, given a restored database, sends the mail queued at the dump
# and none of the mail sent before it (Message-IDs: what was queued, what was
# sent).  segmentdb, the database of the new cluster's worker, is still empty.
PGOPTIONS='-c session_replication_role=replica' onnew psql -X -q -v ON_ERROR_STOP=1 --single-transaction \
  -d segmentdb -f "$tmp/dump.p" >/dev/null
start_capture port "$tmp/mail"
onnew set_conf segment.smtp_url "smtp://127.0.0.1:$port"
onnew wait_sql "SELECT count(*) = 0 FROM segment.messages WHERE id <= $max_message AND status IN ('queued', 'sending')" 30
got_ids=$(grep -h -i '^Message-ID:' "$tmp"/mail/*.eml | tr -d '\r<>' | sed 's/^[^:]*: *//' | sort | tr '\n' ' ')
for id in $queued_ids; do
  case " $got_ids " in *" $id "*) ;; *) fail "the worker did not send $id, queued at the dump";; esac
done
for id in $sent_ids; do
  case " $got_ids " in *" $id "*) fail "the worker sent $id again";; esac
done
echo "worker after the restore: sent the $(wc -w <<<"$queued_ids") queued messages, none of the $(wc -w <<<"$sent_ids") sent ones"
onnew set_conf segment.smtp_url ""

# The plain way, triggers on: the guard's error comes first, and nothing is maintained.
wrong_error='ERROR:  a dump of extension "segment" must be restored with session_replication_role = replica'
onnew psql -X -q -c 'CREATE DATABASE wrong_plain' >/dev/null
onnew psql -X -q -d wrong_plain -f "$tmp/dump.p" >/dev/null 2>"$tmp/wrong_plain" || true
first=$(grep -m1 ERROR "$tmp/wrong_plain" | sed 's/^psql:[^ ]* //')
[ "$first" = "$wrong_error" ] || { cat "$tmp/wrong_plain"; fail "plain restore with triggers on: first error '$first'"; }
grep -q "^HINT:  Restore as a superuser" "$tmp/wrong_plain" || fail "no hint"
[ "$(q1 wrong_plain "SELECT count(*) FROM segment.contacts")/$(q1 wrong_plain "SELECT count(*) FROM segment.segment_members")" = 0/0 ] \
  || fail "plain restore with triggers on loaded contacts"
echo "psql -f with triggers on: $(grep -c "^psql:.*$wrong_error" "$tmp/wrong_plain") refusals, no contacts"
onnew psql -X -q -c 'CREATE DATABASE wrong_custom' >/dev/null
if onnew "$PGBIN/pg_restore" --single-transaction --exit-on-error -d wrong_custom "$tmp/dump.c" 2>"$tmp/wrong_custom"; then
  fail "pg_restore with triggers on succeeded"
fi
grep -q "$wrong_error" "$tmp/wrong_custom" || { cat "$tmp/wrong_custom"; fail "pg_restore with triggers on: not the guard's error"; }
[ "$(q1 wrong_custom "SELECT count(*) FROM pg_extension WHERE extname = 'segment'")" = 0 ] || fail "pg_restore --single-transaction left the extension"
echo "pg_restore --single-transaction with triggers on: refused, nothing restored"
