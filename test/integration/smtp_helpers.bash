# Helpers for the SMTP integration tests (sourced; not a test itself).
# Servers started here are stopped by stop_servers (call it from the EXIT trap).

SMTP_PIDS=()

# start_capture VAR DIR [smtp_capture.py options]: an aiosmtpd server saving every
# message in DIR; its port is stored in VAR.
start_capture() {
  local var=$1 dir=$2; shift 2
  local _p; _p=$(free_port $(( ${SEGMENT_PORT:-54400} + 60 + RANDOM % 200 )))
  rm -rf "$dir"; mkdir -p "$dir"
  setsid "$SYSPY" test/integration/smtp_capture.py "$_p" "$dir" "$@" >"$dir.log" 2>&1 &
  SMTP_PIDS+=($!)
  WAIT_SECONDS=20 wait_for test -e "$dir/ready" || { cat "$dir.log"; return 1; }
  printf -v "$var" "%s" "$_p"
}

# start_sink VAR [smtp-sink options]: postfix's smtp-sink on a free port (stored in VAR).
start_sink() {
  local var=$1; shift
  local _p; _p=$(free_port $(( ${SEGMENT_PORT:-54400} + 60 + RANDOM % 200 )))
  setsid /usr/sbin/smtp-sink -u nobody "$@" "127.0.0.1:$_p" 256 &
  SMTP_PIDS+=($!)
  WAIT_SECONDS=10 wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$_p"
  printf -v "$var" "%s" "$_p"
}

# stop_pid PID: stop one server started here.
stop_pid() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null || true; }

stop_servers() {
  local p
  for p in "${SMTP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# q SQL: one value from the cluster in PG* (unaligned, no headers).
q() { psql -X -At -v ON_ERROR_STOP=1 -c "$1"; }

# wait_sql SQL [SECONDS]: wait until the SQL returns t.
wait_sql() {
  local n=$(( ${2:-30} * 10 ))
  while [ $n -gt 0 ]; do
    [ "$(psql -X -At -c "$1" 2>/dev/null)" = t ] && return 0
    sleep 0.1; n=$((n - 1))
  done
  echo "timed out waiting for: $1" >&2
  return 1
}

# set_conf KEY VALUE: ALTER SYSTEM + reload (the worker rereads it at once).
set_conf() {
  psql -X -q -v ON_ERROR_STOP=1 -c "ALTER SYSTEM SET $1 = '$2'" -c "SELECT pg_reload_conf()" >/dev/null
}
