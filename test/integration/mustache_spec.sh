#!/usr/bin/env bash
# The official Mustache spec v1.4.2 (test/spec/mustache/*.json) through
# segment.render() on a throwaway cluster: every core case must pass;
# inheritance and dynamic names are counted.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
test/cluster stop spec >/dev/null 2>&1 || true
eval "$(test/cluster start spec)"
trap 'test/cluster stop spec' EXIT
export PATH="$PGBIN:$PATH"
psql -X -q -c 'CREATE EXTENSION segment'
timeout 300 "$SYSPY" test/integration/mustache_spec.py "$@"
