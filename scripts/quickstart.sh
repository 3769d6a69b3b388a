#!/usr/bin/env bash
# Installs what longhaul needs, builds it, starts `longhaul up` on the embedded
# defaults (SQLite, local objects, the in-database queue) in the background,
# and runs `longhaul demo` against it. `up` keeps running afterwards.
#
#   bash scripts/quickstart.sh
#
# Works from any directory, on a fresh Debian machine, as root or with sudo.
# Respects LONGHAUL_DATA_DIR (default ./.longhaul, relative to the repository)
# and LONGHAUL_LISTEN (default 127.0.0.1:8080). Running it again reuses the
# `up` that an earlier run started.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$(repo_root)"

DATA_DIR="${LONGHAUL_DATA_DIR:-./.longhaul}"
LISTEN="${LONGHAUL_LISTEN:-127.0.0.1:8080}"
LOG_FILE="$DATA_DIR/up.log"
PID_FILE="$DATA_DIR/up.pid"
READY_TIMEOUT_SECS=60

# A URL to reach the listen address from this machine: a wildcard address is
# reached through loopback.
base_url() {
    local host="${LISTEN%:*}" port="${LISTEN##*:}"
    case "$host" in
        0.0.0.0 | '' | '*') host=127.0.0.1 ;;
        '[::]') host='[::1]' ;;
    esac
    printf 'http://%s:%s\n' "$host" "$port"
}
URL="$(base_url)"

# The pid of an `up` started by an earlier run that is still alive, if any.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid=$(<"$PID_FILE")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # The pid may have been reused by an unrelated process since.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'longhaul.* up' || return 1
    printf '%s\n' "$pid"
}

fail_with_log() {
    printf '\nerror: %s\n' "$*" >&2
    if [[ -f "$LOG_FILE" ]]; then
        printf '\nThe last lines of %s:\n' "$LOG_FILE" >&2
        tail -n 40 "$LOG_FILE" >&2
    fi
    exit 1
}

heading "Installing what is missing"
ensure_packages "${BUILD_PACKAGES[@]}"
ensure_rust

heading "Building: cargo build --release --locked"
cargo build --release --locked
BIN="$(target_dir)/release/longhaul"
[[ -x "$BIN" ]] || die "the build did not produce $BIN"

heading "Starting longhaul up ($URL, data in $DATA_DIR)"
mkdir -p "$DATA_DIR"
if pid=$(running_pid); then
    note "already running (pid $pid, from $PID_FILE); reusing it"
    note "it runs the binary it was started with: stop it and run this script again to use a new build"
else
    if curl -s -o /dev/null --max-time 2 "$URL/healthz"; then
        die "something else already listens on $LISTEN: stop it, or set LONGHAUL_LISTEN to another address"
    fi
    # setsid puts `up` in a session of its own, so that a Ctrl-C in this
    # terminal does not reach it; nohup keeps it alive when the terminal closes.
    setsid nohup "$BIN" up --data-dir "$DATA_DIR" --listen "$LISTEN" </dev/null >>"$LOG_FILE" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"
    note "started (pid $pid); logs in $LOG_FILE"
fi

heading "Waiting for $URL/readyz (up to ${READY_TIMEOUT_SECS} s)"
deadline=$((SECONDS + READY_TIMEOUT_SECS))
until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/readyz" || true)" == 200 ]]; do
    kill -0 "$pid" 2>/dev/null || fail_with_log "longhaul up (pid $pid) exited before it became ready"
    ((SECONDS < deadline)) || fail_with_log "longhaul up (pid $pid) was not ready within ${READY_TIMEOUT_SECS} s"
    sleep 1
done
note "ready"

heading "Running the demo: longhaul demo"
"$BIN" demo --url "$URL" --data-dir "$DATA_DIR"

heading "longhaul is running"
cat <<EOF
    The commands below run from the repository root: cd $PWD

    API:        $URL   (OpenAPI spec: $URL/openapi.json, dashboard: $URL/admin)
    Logs:       $LOG_FILE

    Get a token and call the API:
        TOKEN=\$($BIN token --data-dir $DATA_DIR --tenant T --user U --role admin)
        curl -H "Authorization: Bearer \$TOKEN" $URL/v1/jobs

    Submit a job and watch it:
        $BIN submit noop --payload '{"sleep_ms": 2000}' --wait --url $URL --token "\$TOKEN"

    Stop it:
        kill \$(cat $PID_FILE)
EOF
