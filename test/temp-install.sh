#!/usr/bin/env bash
# Build a private, relocatable copy of the PostgreSQL 15 server with this extension
# installed into it (what PostgreSQL's own "make check" calls a temp install), so
# tests, the demo and the benchmarks never depend on or change the system install.
# The server finds its share and lib directories relative to its binary.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/test/lib.sh"

rm -rf "$SEGMENT_INSTALL"
mkdir -p "$SEGMENT_INSTALL/usr/lib/postgresql" "$SEGMENT_INSTALL/usr/share/postgresql"
cp -a "$(pg_config --pkglibdir)/.." "$SEGMENT_INSTALL/usr/lib/postgresql/15"
cp -a "$(pg_config --sharedir)" "$SEGMENT_INSTALL/usr/share/postgresql/15"
make -s -C "$here" install DESTDIR="$SEGMENT_INSTALL" >/dev/null
chmod -R a+rX "$SEGMENT_INSTALL"
echo "temp install: $SEGMENT_INSTALL"
