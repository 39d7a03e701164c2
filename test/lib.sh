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

# free_port BASE: the first TCP port at or above BASE that nothing listens on.
free_port() {
  local p=$1
  while ss -ltnH "sport = :$p" 2>/dev/null | grep -q . || [ -e "/tmp/.s.PGSQL.$p.lock" ]; do p=$((p + 1)); done
  printf '%s' "$p"
}

# wait_for CMD...: run CMD every 0.1 s until it succeeds, for at most $WAIT_SECONDS (default 30).
wait_for() {
  local n=$(( ${WAIT_SECONDS:-30} * 10 ))
  while [ $n -gt 0 ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; n=$((n - 1)); done
  return 1
}
