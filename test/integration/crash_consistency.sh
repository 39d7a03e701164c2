#!/usr/bin/env bash
# Crash consistency beyond the worker (doc/reliability.md): an immediate shutdown
# (no checkpoint; WAL recovery at the next start) in the middle of a bulk
# segment.track load leaves the per-contact aggregates equal to a GROUP BY over
# the events, keeps only whole committed transactions, and the system keeps
# working afterwards.  Then the same for a crash in the middle of a large
# segment.refresh: membership is all or nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
name=crash_consistency
work=$(mktemp -d)
test/cluster stop $name >/dev/null 2>&1 || true
eval "$(test/cluster start $name)"
trap 'test/cluster stop $name; rm -rf "$work"' EXIT
export PATH="$PGBIN:$PATH"
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

q <<'SQL'
CREATE EXTENSION segment;
SELECT FROM (SELECT count(segment.upsert_contact('c' || g || '@example.com')) FROM generate_series(1, 400) g) s;
-- (type, contact) pairs whose aggregates differ from a GROUP BY over the events.
CREATE VIEW stats_drift AS
SELECT type, contact_id FROM (
  SELECT type, contact_id, count(*) AS count, min(occurred_at) AS first_at, max(occurred_at) AS last_at,
         count(amount) AS amount_count, sum(amount) AS sum_amount, min(amount) AS min_amount, max(amount) AS max_amount
    FROM segment.events GROUP BY 1, 2) g
  FULL JOIN segment.event_stats s USING (type, contact_id)
 WHERE (g.*) IS DISTINCT FROM (s.type, s.contact_id, s.count, s.first_at, s.last_at, s.amount_count,
                               s.sum_amount, s.min_amount, s.max_amount);
SQL

# Batches of 50 tracks per transaction, tagged with a batch number, from 2 clients.
cat > "$work/batch.sql" <<'SQL'
\set b random(1, 1000000000)
SELECT count(segment.track((g % 200) + 1, CASE WHEN g % 3 = 0 THEN 'purchase' ELSE 'page_view' END,
                           jsonb_build_object('batch', :b), CASE WHEN g % 2 = 0 THEN g / 7.0 END,
                           '2024-01-01'::timestamptz + (:b % 100000) * interval '1 minute'))
  FROM generate_series(1, 50) g;
SQL
pgbench -n -c 2 -j 2 -T 60 -f "$work/batch.sql" >"$work/pgbench.log" 2>&1 &
bench=$!
# One large transaction that cannot have committed when the crash comes, on other
# contacts (segment maintenance serialises writers per contact until commit).
psql -X -q -c "SELECT count(segment.track((g % 200) + 201, 'bulk', jsonb_build_object('batch', 'big'), g, '2024-02-01'))
                 FROM generate_series(1, 1000000) g" >"$work/big.log" 2>&1 &
big=$!

WAIT_SECONDS=60 wait_for sh -c "[ \$(psql -X -At -c 'SELECT count(*) FROM segment.events') -ge 5000 ]" \
  || fail "the load did not start"
before=$(q -c 'SELECT count(*) FROM segment.events')
test/cluster restart $name -m immediate
wait $bench || true
wait $big || true
grep -q "terminat\|server closed the connection\|connection to server" "$work/big.log" \
  || { cat "$work/big.log"; fail "the large transaction was not interrupted by the crash"; }

events=$(q -c 'SELECT count(*) FROM segment.events')
drift=$(q -c 'SELECT count(*) FROM stats_drift')
partial=$(q -c "SELECT count(*) FROM (SELECT properties->>'batch' FROM segment.events
                 GROUP BY 1 HAVING count(*) <> 50) b")
big_rows=$(q -c "SELECT count(*) FROM segment.events WHERE type = 'bulk'")
big_stats=$(q -c "SELECT count(*) FROM segment.event_stats WHERE type = 'bulk'")
echo "track load: $before events seen before the crash, $events after recovery;" \
     "aggregate rows differing from GROUP BY: $drift; partial batches: $partial;" \
     "rows of the interrupted transaction: $big_rows events, $big_stats aggregates"
[ "$events" -ge "$before" ] || fail "committed events were lost ($before before, $events after)"
[ "$drift" = 0 ] || fail "event_stats differ from the events after recovery"
[ "$partial" = 0 ] || fail "a batch was kept in part"
[ "$big_rows" = 0 ] && [ "$big_stats" = 0 ] || fail "rows of an uncommitted transaction survived"

# The system works after recovery: more tracking, aggregates still exact.
pgbench -n -c 2 -j 2 -t 20 -f "$work/batch.sql" >"$work/pgbench2.log" 2>&1 \
  || { cat "$work/pgbench2.log"; fail "tracking after recovery"; }
drift=$(q -c 'SELECT count(*) FROM stats_drift')
[ "$drift" = 0 ] || fail "event_stats differ from the events after tracking again"
echo "after recovery: 40 more batches tracked, aggregates exact"

# --- 2. An immediate shutdown in the middle of a large segment.refresh. -------
# A scheduled segment changes only by refresh; after a bulk profile change half
# of its members must leave and others enter.  The crash comes while the
# refresh transaction runs (in the refresh itself, or just after it, before the
# commit): afterwards membership is exactly what it was before -- never half
# -- a dynamic segment maintained by the bulk change equals members(rule), and
# the next refresh brings the scheduled one to members(rule).
q <<'SQL'
INSERT INTO segment.contacts (email, attrs)
SELECT 'r' || g || '@example.com', jsonb_build_object('n', g % 1000) FROM generate_series(1, 40000) g;
SELECT FROM segment.create_segment('big', 'attrs.n >= 500', 'scheduled');
SELECT FROM segment.create_segment('dyn', 'attrs.n >= 800');
UPDATE segment.contacts SET attrs = jsonb_build_object('n', ((attrs->>'n')::int + 250) % 1000)
 WHERE email LIKE 'r%@example.com';
CREATE TABLE big_before AS SELECT segment_members AS contact_id FROM segment.segment_members('big');
SQL
stale=$(q -c "SELECT count(*) FROM (SELECT segment.members('attrs.n >= 500') EXCEPT SELECT contact_id FROM big_before) d")
[ "$stale" -gt 5000 ] || fail "the scheduled segment should be stale before the refresh ($stale to enter)"
psql -X -q -c "BEGIN" -c "SELECT * FROM segment.refresh('big')" -c "SELECT pg_sleep(60)" -c "COMMIT" \
  >"$work/refresh.log" 2>&1 &
refresh=$!
WAIT_SECONDS=60 wait_for sh -c "psql -X -At -c \"SELECT 1 FROM pg_stat_activity
   WHERE state = 'active' AND (query LIKE '%segment.refresh%' OR query LIKE '%pg_sleep(60)%')
     AND now() - query_start > interval '0.3 s'\" | grep -q 1" || fail "the refresh did not start"
during=$(psql -X -At -c "SELECT CASE WHEN query LIKE '%refresh%' THEN 'during the refresh' ELSE 'after the refresh, before its commit' END
                           FROM pg_stat_activity WHERE query LIKE '%segment.refresh%' OR query LIKE '%pg_sleep(60)%' LIMIT 1")
test/cluster restart $name -m immediate
wait $refresh || true

differs=$(q -c "SELECT count(*) FROM ((SELECT segment_members FROM segment.segment_members('big') EXCEPT SELECT contact_id FROM big_before)
                                      UNION ALL (SELECT contact_id FROM big_before EXCEPT SELECT segment_members FROM segment.segment_members('big'))) d")
dyn=$(q -c "SELECT count(*) FROM ((SELECT segment_members FROM segment.segment_members('dyn') EXCEPT SELECT segment.members('attrs.n >= 800'))
                                 UNION ALL (SELECT segment.members('attrs.n >= 800') EXCEPT SELECT segment_members FROM segment.segment_members('dyn'))) d")
echo "refresh: crash $during; 'big' members differing from before the refresh: $differs; 'dyn' members differing from members(rule): $dyn"
[ "$differs" = 0 ] || fail "the interrupted refresh left part of its changes"
[ "$dyn" = 0 ] || fail "dynamic membership differs from members(rule) after recovery"
q -c "SELECT * FROM segment.refresh('big')" >/dev/null
after=$(q -c "SELECT count(*) FROM ((SELECT segment_members FROM segment.segment_members('big') EXCEPT SELECT segment.members('attrs.n >= 500'))
                                   UNION ALL (SELECT segment.members('attrs.n >= 500') EXCEPT SELECT segment_members FROM segment.segment_members('big'))) d")
size=$(q -c "SELECT count(*) FROM segment.segment_members('big')")
echo "after a new refresh: 'big' has $size members, differing from members(rule): $after"
[ "$after" = 0 ] || fail "refresh after recovery does not reach members(rule)"
