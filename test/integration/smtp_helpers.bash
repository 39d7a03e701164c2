# Helpers for the SMTP integration tests (sourced; not a test itself).
# Servers started here are stopped by stop_servers (call it from the EXIT trap).

SMTP_PIDS=()

# _gone PID: the process has exited (a zombie not yet reaped counts as exited).
_gone() {
  local st; st=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null)
  [ -z "$st" ] || [ "$st" = Z ]
}
_ready_or_gone() { [ -e "$1" ] || _gone "$2"; }
# _listening_or_gone PORT PID: PID itself listens on PORT (not whoever else may), or has exited.
_listening_or_gone() { _gone "$2" || ss -ltnpH "sport = :$1" 2>/dev/null | grep -q "pid=$2,"; }

# start_capture VAR DIR [smtp_capture.py options]: an aiosmtpd server saving every
# message in DIR; its port is stored in VAR.  A port can be taken between
# free_port's look and the server's bind (an outgoing connection's ephemeral
# port, another cluster): then the server exits and another port is tried.
start_capture() {
  local var=$1 dir=$2; shift 2
  local _p _pid _try
  for _try in 1 2 3 4 5; do
    _p=$(free_port $(( ${SEGMENT_PORT:-54400} + 60 + RANDOM % 200 )))
    rm -rf "$dir"; mkdir -p "$dir"
    setsid "$SYSPY" test/integration/smtp_capture.py "$_p" "$dir" "$@" >"$dir.log" 2>&1 &
    _pid=$!
    WAIT_SECONDS=20 wait_for _ready_or_gone "$dir/ready" "$_pid" || true
    if [ -e "$dir/ready" ] && ! _gone "$_pid"; then
      SMTP_PIDS+=("$_pid"); printf -v "$var" "%s" "$_p"; return 0
    fi
    kill "$_pid" 2>/dev/null || true; wait "$_pid" 2>/dev/null || true
    grep -q 'address already in use' "$dir.log" || break
  done
  cat "$dir.log"; return 1
}

# start_sink VAR [smtp-sink options]: postfix's smtp-sink on a free port (stored
# in VAR); another port when the bind fails, as for start_capture.
start_sink() {
  local var=$1; shift
  local _p _pid _try
  for _try in 1 2 3 4 5; do
    _p=$(free_port $(( ${SEGMENT_PORT:-54400} + 60 + RANDOM % 200 )))
    setsid /usr/sbin/smtp-sink -u nobody "$@" "127.0.0.1:$_p" 256 &
    _pid=$!
    WAIT_SECONDS=10 wait_for _listening_or_gone "$_p" "$_pid" || true
    if ! _gone "$_pid" && _listening_or_gone "$_p" "$_pid"; then
      SMTP_PIDS+=("$_pid"); printf -v "$var" "%s" "$_p"; return 0
    fi
    kill "$_pid" 2>/dev/null || true; wait "$_pid" 2>/dev/null || true
  done
  echo "smtp-sink did not start" >&2; return 1
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
