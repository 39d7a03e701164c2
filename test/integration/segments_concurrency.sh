#!/usr/bin/env bash
# Parallel sessions writing events, profile changes and tags for the same few
# contacts at once: afterwards every dynamic segment equals segment.members(rule),
# every tag rule and the lifecycle stages agree with their rules, and the change
# feed replays to the current membership.  The clock is fixed (clock_override via
# ALTER SYSTEM) so time-relative rules cannot drift during the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
name=segments_concurrency
work=$(mktemp -d)
chmod 755 "$work"
test/cluster stop $name >/dev/null 2>&1 || true
eval "$(test/cluster start $name)"
trap 'test/cluster stop $name; rm -rf "$work"' EXIT

psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
ALTER SYSTEM SET segment.clock_override = '2030-01-01 00:00:00+00';
SELECT pg_reload_conf();
SQL
sleep 0.5
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION segment;
SELECT segment.define_field('country', 'text');
SELECT segment.upsert_contact('c' || g || '@example.com', jsonb_build_object('country', 'FR'))
  FROM generate_series(1, 8) g;
SELECT segment.install_default_stages();
SELECT segment.create_segment('buyers', 'did purchase');
SELECT segment.create_segment('two_buyers', 'count(purchase) >= 2');
SELECT segment.create_segment('carts', 'did cart_add and not did purchase');
SELECT segment.create_segment('recent_big', 'sum(purchase.amount) within 30 days > 100');
SELECT segment.create_segment('germans', 'country = ''DE''');
SELECT segment.create_segment('german_buyers', 'in segment ''germans'' and in segment ''buyers''');
SELECT segment.create_tag_rule('whale', 'sum(purchase.amount) > 300 or in segment ''german_buyers''');
SELECT segment.create_segment('whales_not_vip', 'tagged ''whale'' and not tagged ''vip''');
SELECT segment.create_segment('loyal_or_repeat', 'stage in (''repeat_buyer'', ''loyal_customer'')');
SQL

cat > "$work/track.sql" <<'SQL'
\set c random(1, 8)
\set t random(1, 10)
SELECT segment.track(:c::bigint, CASE WHEN :t <= 3 THEN 'purchase' WHEN :t <= 6 THEN 'cart_add' ELSE 'page_view' END,
                     '{}', CASE WHEN :t <= 3 THEN :t * 20 END,
                     '2030-01-01'::timestamptz - (:t || ' days')::interval);
SQL
cat > "$work/profile.sql" <<'SQL'
\set c random(1, 8)
\set t random(1, 2)
SELECT segment.upsert_contact('c' || :c || '@example.com',
                              jsonb_build_object('country', CASE WHEN :t = 1 THEN 'DE' ELSE 'FR' END));
SQL
cat > "$work/tags.sql" <<'SQL'
\set c random(1, 8)
\set t random(1, 3)
SELECT CASE WHEN :t = 1 THEN segment.untag(:c, 'vip') ELSE segment.tag(:c, 'vip') END;
SQL
cat > "$work/delete.sql" <<'SQL'
\set c random(1, 8)
DELETE FROM segment.events WHERE id = (SELECT max(id) FROM segment.events WHERE contact_id = :c);
SQL
pids=()
"$PGBIN/pgbench" -n -c 4 -j 2 -T 6 -f "$work/track.sql" >"$work/1.log" 2>&1 & pids+=($!)
"$PGBIN/pgbench" -n -c 1 -T 6 -f "$work/profile.sql" >"$work/2.log" 2>&1 & pids+=($!)
"$PGBIN/pgbench" -n -c 1 -T 6 -f "$work/tags.sql" >"$work/3.log" 2>&1 & pids+=($!)
"$PGBIN/pgbench" -n -c 1 -T 6 -f "$work/delete.sql" >"$work/4.log" 2>&1 & pids+=($!)
fail=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "pgbench $((i + 1)) failed:"; cat "$work/$((i + 1)).log"; fail=1; }
done
[ $fail = 0 ] || exit 1
grep -h "number of transactions actually processed" "$work"/*.log

result=$(psql -X -At -v ON_ERROR_STOP=1 <<'SQL'
SELECT 'segment ' || s.name
  FROM segment.segments s
 WHERE s.mode = 'dynamic'
   AND EXISTS ((SELECT segment.members(s.rule) EXCEPT SELECT segment.segment_members(s.name))
               UNION ALL (SELECT segment.segment_members(s.name) EXCEPT SELECT segment.members(s.rule)))
UNION ALL
SELECT 'tag rule ' || r.tag
  FROM segment.tag_rules r
 WHERE EXISTS (SELECT segment.members(r.rule)
               EXCEPT SELECT t.contact_id FROM segment.contact_tags t WHERE t.tag = r.tag)
    OR EXISTS (SELECT t.contact_id FROM segment.contact_tags t WHERE t.tag = r.tag AND t.source = 'rule'
               EXCEPT SELECT segment.members(r.rule))
UNION ALL
SELECT 'stage of contact ' || c.id
  FROM segment.contacts c LEFT JOIN segment.contact_stages cs ON cs.contact_id = c.id
 WHERE cs.stage IS DISTINCT FROM (SELECT st.name FROM segment.stages st
                                   WHERE segment.matches(c.id, st.rule) ORDER BY st.position DESC LIMIT 1)
UNION ALL
SELECT 'feed ' || coalesce(last.name, cur.name) || ' ' || coalesce(last.contact_id, cur.contact_id)
  FROM (SELECT DISTINCT ON (name, contact_id) name, contact_id, kind
          FROM segment.changes WHERE kind IN ('segment_enter', 'segment_exit')
         ORDER BY name, contact_id, id DESC) last
  FULL JOIN (SELECT s.name, m.contact_id FROM segment.segment_members m
               JOIN segment.segments s ON s.id = m.segment_id) cur USING (name, contact_id)
 WHERE (last.kind = 'segment_enter') IS DISTINCT FROM (cur.contact_id IS NOT NULL);
SQL
)
changes=$(psql -X -At -c "SELECT count(*) FROM segment.changes")
events=$(psql -X -At -c "SELECT count(*) FROM segment.events")
echo "events: $events, changes recorded: $changes"
if [ -n "$result" ]; then echo "out of step:"; echo "$result"; exit 1; fi
[ "$changes" -gt 50 ] && [ "$events" -gt 100 ]
echo "every maintained rule equals its definition"
