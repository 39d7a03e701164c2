#!/usr/bin/env bash
# Property test of the rule language: random data and random rules with a fixed seed;
# matches() == members() == the per-contact condition for every contact and rule, count()
# agrees, and the jsonb and text round trips are exact (test/integration/rules_property.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh
test/cluster stop rules_property >/dev/null 2>&1 || true
eval "$(test/cluster start rules_property)"
trap 'test/cluster stop rules_property >/dev/null 2>&1 || true' EXIT
timeout 600 "$SYSPY" test/integration/rules_property.py
