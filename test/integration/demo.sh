#!/usr/bin/env bash
# make demo's tour (demo/run) end to end, checked line by line: its whole output, with
# what depends on the machine or the wall clock (ports, the real send time, the
# Message-ID, the MIME boundary) masked, must equal test/integration/demo.expected.
# The tour pins segment.now() and seeds its data, so everything else is exact; the
# errors it shows on purpose are part of the expected output, any other error is a
# difference.  To accept an intended change of the tour:
#   bash test/integration/demo.sh --accept
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
expected=test/integration/demo.expected
out=$(mktemp /tmp/segment-demo-out.XXXXXX)
trap 'rm -f "$out" "$out.masked"' EXIT

rc=0
timeout 240 bash demo/run >"$out" 2>&1 || rc=$?
if [ $rc != 0 ]; then
  echo "demo/run exited with $rc; its output:"; cat "$out"; exit 1
fi

# Mask what differs from run to run (and nothing else); test/cluster retries a port
# taken meanwhile, and pg_ctl says so.
sed -E \
  -e '/^pg_ctl: could not start server$/d' -e '/^Examine the log output\.$/d' \
  -e '/^could not change directory to ".*": Permission denied$/d' \
  -e 's/port [0-9]+ \(database/port PORT (database/' \
  -e 's/127\.0\.0\.1:[0-9]+/127.0.0.1:PORT/' \
  -e 's/[0-9a-f]{32}@shop\.example/MESSAGE-ID@shop.example/g' \
  -e 's/=_segment_[0-9A-F]+/=_segment_BOUNDARY/' \
  -e 's/^Date: .*/Date: DATE/' \
  "$out" >"$out.masked"

if [ "${1:-}" = --accept ]; then
  cp "$out.masked" "$expected"; echo "demo: expected output updated ($expected)"; exit 0
fi
if ! diff -u "$expected" "$out.masked"; then
  echo "demo: the tour's output differs from $expected (see the diff above)"; exit 1
fi
echo "demo: $(grep -c . "$expected") lines as expected, $(grep -c '^psql:.*ERROR' "$expected") intended errors"
