# Shared settings for the project's shell tools (sourced, not run).
# SEGMENT_INSTALL: the private server install made by test/temp-install.sh, one per checkout.
SEGMENT_ROOT=${SEGMENT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
_segment_tag=$(printf '%s' "$SEGMENT_ROOT" | md5sum | cut -c1-8)
SEGMENT_INSTALL=${SEGMENT_INSTALL:-/tmp/segment-install-$_segment_tag}
PGBIN=$SEGMENT_INSTALL/usr/lib/postgresql/15/bin
SYSPY=/usr/bin/python3
export SEGMENT_ROOT SEGMENT_INSTALL PGBIN SYSPY

# cluster_dir NAME: where the throwaway cluster NAME of this checkout lives.
cluster_dir() { printf '/tmp/segment-cluster-%s-%s' "$_segment_tag" "${1:-main}"; }

# free_port BASE: the first TCP port at or above BASE that no socket uses, listening
# or not (ports from 32768 up are also handed out to outgoing connections).
free_port() {
  local p=$1
  while ss -tanH "sport = :$p" 2>/dev/null | grep -q . || [ -e "/tmp/.s.PGSQL.$p.lock" ]; do p=$((p + 1)); done
  printf '%s' "$p"
}

# wait_for CMD...: run CMD every 0.1 s until it succeeds, for at most $WAIT_SECONDS (default 30).
wait_for() {
  local n=$(( ${WAIT_SECONDS:-30} * 10 ))
  while [ $n -gt 0 ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; n=$((n - 1)); done
  return 1
}

# server_env: words to put before the server's start command (one per line, for mapfile).
# A segment.so built with SANITIZE=1 brings the ASan/UBSan runtimes in when the server
# loads it (preloading libasan into Debian's postgres deadlocks in glibc's gettext lock,
# see doc/reliability.md), so ASan must accept not being first in the library list; keep
# running after leaks (PostgreSQL frees by memory context, not by free()) and stop the
# process at the first error.  ASan's longjmp interceptors are then inactive, so a small
# preloaded shim (test/asan_longjmp.c) tells it when PostgreSQL's error longjmp unwinds
# the stack.  Reports go to the server log; sanitizer_reports finds them.
server_env() {
  sanitized_build || return 0
  local shim=$SEGMENT_INSTALL/usr/lib/postgresql/15/lib/segment_asan_longjmp.so
  [ -f "$shim" ] || gcc -shared -fPIC -O1 -Wall -o "$shim" "$SEGMENT_ROOT/test/asan_longjmp.c" -ldl >&2 || return 1
  chmod a+r "$shim"
  printf '%s\n' env "LD_PRELOAD=$shim" \
    "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0:abort_on_error=1" \
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
}

# sanitized_build: whether the private install's segment.so was built with SANITIZE=1.
sanitized_build() {
  readelf -d "$SEGMENT_INSTALL/usr/lib/postgresql/15/lib/segment.so" 2>/dev/null | grep -q 'libasan'
}

# sanitizer_reports LOG NAME: keep a server log holding an ASan/UBSan report in
# test/results/sanitizer/ (test/run fails when that directory is not empty).
sanitizer_reports() {
  grep -qE 'runtime error:|ERROR: AddressSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer' "$1" 2>/dev/null || return 0
  mkdir -p "$SEGMENT_ROOT/test/results/sanitizer"
  cp "$1" "$SEGMENT_ROOT/test/results/sanitizer/$2-server.log"
}
