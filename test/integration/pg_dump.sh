#!/usr/bin/env bash
# pg_dump of a database with the extension runs without a warning (no
# privilege of the extension's objects that pg_dump 15 cannot record), and its
# output restores into a fresh database: the extension comes back whole.  The
# rows of the extension's tables are not in the dump (doc/operations.md,
# "Backups").
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
name=pg_dump
test/cluster stop $name >/dev/null 2>&1 || true
eval "$(test/cluster start $name)"
trap 'test/cluster stop $name' EXIT

psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION segment;
SELECT segment.upsert_contact('ann@example.com');
SELECT segment.create_segment('everyone', 'status = ''pending''');
SQL
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; test/cluster stop $name' EXIT
"$PGBIN/pg_dump" -f "$tmp/dump.sql" 2>"$tmp/stderr"
if [ -s "$tmp/stderr" ]; then
  echo "pg_dump wrote to stderr:"; head -5 "$tmp/stderr"; exit 1
fi
grep -q '^CREATE EXTENSION IF NOT EXISTS segment' "$tmp/dump.sql"
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE DATABASE restored' >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d restored -f "$tmp/dump.sql" >/dev/null 2>"$tmp/restore"
if grep -q ERROR "$tmp/restore"; then
  echo "restore failed:"; head -5 "$tmp/restore"; exit 1
fi
got=$(psql -X -At -d restored -c "SELECT count(*) FROM pg_proc WHERE pronamespace = 'segment'::regnamespace")
want=$(psql -X -At -c "SELECT count(*) FROM pg_proc WHERE pronamespace = 'segment'::regnamespace")
echo "functions: $want in the source, $got restored"
[ "$got" = "$want" ]
echo "contacts restored: $(psql -X -At -d restored -c 'SELECT count(*) FROM segment.contacts')"
