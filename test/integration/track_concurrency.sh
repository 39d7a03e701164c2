#!/usr/bin/env bash
# Many sessions tracking events for the same few contacts at once keep the
# per-contact aggregates exact (equal to a GROUP BY over the events), and
# concurrent deletes and updates recompute them correctly.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
name=track_concurrency
work=$(mktemp -d)
test/cluster stop $name >/dev/null 2>&1 || true
eval "$(test/cluster start $name)"
trap 'test/cluster stop $name; rm -rf "$work"' EXIT

psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION segment;
SELECT segment.upsert_contact('c' || g || '@example.com') FROM generate_series(1, 3) g;
SQL

cat > "$work/track.sql" <<'SQL'
\set c random(1, 3)
\set a random(1, 1000)
SELECT segment.track(:c::bigint, CASE WHEN :a % 3 = 0 THEN 'purchase' ELSE 'page_view' END,
                     '{}', CASE WHEN :a % 2 = 0 THEN :a / 10.0 END);
SQL
cat > "$work/mutate.sql" <<'SQL'
\set a random(1, 1000)
DELETE FROM segment.events WHERE id = (SELECT max(id) - :a FROM segment.events);
UPDATE segment.events SET amount = :a WHERE id = (SELECT max(id) - 2 * :a FROM segment.events);
SQL
# 6 tracking sessions and 2 deleting/updating sessions for 5 seconds, all on 3 contacts.
"$PGBIN/pgbench" -n -c 6 -j 2 -T 5 -f "$work/track.sql" >"$work/1.log" 2>&1 &
p1=$!
"$PGBIN/pgbench" -n -c 2 -j 1 -T 5 -f "$work/mutate.sql" >"$work/2.log" 2>&1 || { cat "$work/2.log"; exit 1; }
wait $p1 || { cat "$work/1.log"; exit 1; }
grep -h "failed transactions\|actually processed" "$work/1.log" "$work/2.log"

mismatches=$(psql -X -At <<'SQL'
SELECT count(*) FROM (
  SELECT type, contact_id, count(*) AS count, min(occurred_at) AS first_at, max(occurred_at) AS last_at,
         count(amount) AS amount_count, sum(amount) AS sum_amount, min(amount) AS min_amount, max(amount) AS max_amount
    FROM segment.events GROUP BY 1, 2) g
  FULL JOIN segment.event_stats s USING (type, contact_id)
 WHERE (g.*) IS DISTINCT FROM (s.type, s.contact_id, s.count, s.first_at, s.last_at, s.amount_count,
                               s.sum_amount, s.min_amount, s.max_amount);
SQL
)
events=$(psql -X -At -c 'SELECT count(*) FROM segment.events')
echo "events: $events, aggregate rows differing from GROUP BY: $mismatches"
[ "$events" -gt 1000 ] && [ "$mismatches" = 0 ]
