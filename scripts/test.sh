#!/usr/bin/env bash
# Installs what the tests need, starts the test services, and runs every check
# and test: formatting, clippy, the whole workspace's tests, then the API
# contract (scripts/api-contract.sh).
#
#   bash scripts/test.sh [extra arguments for the test runner]
#
# Works from any directory, on a fresh Debian machine, as root or with sudo.
# Safe to run again: it installs only what is missing, reuses services that are
# already running, and stops on exit only the services it started itself.
#
# Adding a test service (moto, dovecot, …) is one function, `service_<name>`,
# that makes the service reachable, exports the variables the tests read, and
# registers its own stop with `at_exit` if it started it; then list the name in
# SERVICES below.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$(repo_root)"

SERVICES=(postgres moto dovecot lake_reader)

# ---------------------------------------------------------------------------
# Services

# PostgreSQL on 127.0.0.1:5432, user `postgres`, no password. Tests create a
# database of their own on it for every test and drop it afterwards.
service_postgres() {
    if [[ -n "${LONGHAUL_TEST_DATABASE_URL:-}" ]]; then
        note "LONGHAUL_TEST_DATABASE_URL is set; using that server as it is"
        return
    fi
    export LONGHAUL_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres

    if pg_isready -q -h 127.0.0.1 -p 5432; then
        note "PostgreSQL is already running on 127.0.0.1:5432; using it"
    else
        if ! package_installed postgresql; then
            ensure_packages postgresql
            postgres_trust_localhost
        fi
        local version
        version=$(postgres_version)
        if pg_isready -q -h 127.0.0.1 -p 5432; then
            # The package's install script may have started it already.
            note "PostgreSQL $version is running; reloading its configuration"
            as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        else
            note "starting PostgreSQL $version (it will be stopped when this script exits)"
            as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
            at_exit "note 'stopping PostgreSQL $version'; as_root pg_ctlcluster --skip-systemctl-redirect $version main stop"
        fi
        local waited=0
        until pg_isready -q -h 127.0.0.1 -p 5432; do
            ((waited++ < 30)) || die "PostgreSQL $version did not accept connections on 127.0.0.1:5432 within 30 s"
            sleep 1
        done
    fi

    psql "$LONGHAUL_TEST_DATABASE_URL" -qAtc 'SELECT 1' >/dev/null ||
        die "cannot connect to $LONGHAUL_TEST_DATABASE_URL without a password: allow 'trust' for 127.0.0.1 in pg_hba.conf, or set LONGHAUL_TEST_DATABASE_URL"
}

# The newest installed PostgreSQL major version, as Debian's layout names it.
postgres_version() {
    local version
    # shellcheck disable=SC2012 # version directories are plain numbers
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
    [[ -n "$version" && -d "/etc/postgresql/$version/main" ]] ||
        die "PostgreSQL is installed but there is no cluster at /etc/postgresql/<version>/main; create one with 'pg_createcluster <version> main'"
    printf '%s\n' "$version"
}

# Lets local TCP connections in as any user without a password. Only ever done
# to a cluster this script installed: a throwaway test database server.
postgres_trust_localhost() {
    local hba
    hba="/etc/postgresql/$(postgres_version)/main/pg_hba.conf"
    if as_root grep -Eq '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
        return
    fi
    note "allowing passwordless connections from 127.0.0.1 in $hba"
    # pg_hba.conf is first match wins, so the rule goes on top.
    as_root sed -i '1i host all all 127.0.0.1/32 trust  # added by longhaul scripts/test.sh' "$hba"
}

# A local AWS endpoint for the SQS, S3 and SNS tests:
# `moto_server` from PyPI, in a virtualenv kept between runs. Versions below
# 5.2.5 break aws-sdk-s3's multipart uploads. Tests reach it through
# LONGHAUL_TEST_AWS_ENDPOINT_URL and each makes buckets, queues and topics of
# its own (unique names), so they run in parallel; the server is reset once,
# before the tests, rather than between them, which would pull the ground from
# under tests still running.
# A venv of ours under the cache, named $1, holding the PyPI requirement $2;
# installed (or reinstalled) unless the Python check $3 passes in it. Prints
# its path.
python_venv() {
    local name=$1 requirement=$2 check=$3
    local venv="${LONGHAUL_CACHE_DIR:-$HOME/.cache/longhaul}/$name"
    ensure_packages python3 python3-venv >&2
    if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
        note "installing $requirement into $venv" >&2
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement" >&2
    fi
    printf '%s\n' "$venv"
}

service_moto() {
    if [[ -n "${LONGHAUL_TEST_AWS_ENDPOINT_URL:-}" ]]; then
        note "LONGHAUL_TEST_AWS_ENDPOINT_URL is set; using that endpoint as it is"
        return
    fi
    local venv
    venv=$(python_venv moto-venv 'moto[server]>=5.2.5' \
        'import moto, sys; from importlib.metadata import version; v = tuple(int(p) for p in version("moto").split(".")[:3]); sys.exit(v < (5, 2, 5))')
    local port log
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log=$(mktemp -t moto-server.XXXXXX.log)
    note "starting moto_server on 127.0.0.1:$port (log: $log; it will be stopped when this script exits)"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    local pid=$!
    # A test that reads what an SNS endpoint received starts a server of its
    # own: the shared one's /moto-api/data.json fails once other tests have
    # deleted buckets that held keys.
    export LONGHAUL_TEST_MOTO_SERVER="$venv/bin/moto_server"
    at_exit "note 'stopping moto_server'; kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    export LONGHAUL_TEST_AWS_ENDPOINT_URL="http://127.0.0.1:$port"
    local waited=0
    until curl -sf -o /dev/null -X POST "$LONGHAUL_TEST_AWS_ENDPOINT_URL/moto-api/reset"; do
        kill -0 "$pid" 2>/dev/null || die "moto_server exited at start: $(tail -5 "$log")"
        ((waited++ < 60)) || die "moto_server did not answer on port $port within 30 s: $(tail -5 "$log")"
        sleep 0.5
    done
}

# What reads the data lake back in the tests, as a warehouse would: pyarrow
# in a venv of its own. Not a server: the tests run
# `$LONGHAUL_TEST_PYTHON` on the Parquet files the exports wrote.
service_lake_reader() {
    if [[ -n "${LONGHAUL_TEST_PYTHON:-}" ]]; then
        note "LONGHAUL_TEST_PYTHON is set; reading the lake with $LONGHAUL_TEST_PYTHON"
        return
    fi
    local venv
    venv=$(python_venv lake-venv 'pyarrow>=17' 'import pyarrow.parquet')
    export LONGHAUL_TEST_PYTHON="$venv/bin/python"
}

# A real IMAP server for the mail tests: Debian's Dovecot, as an instance of
# our own with its configuration, sockets, state, log and mail all in a run
# directory made for this run, on a free port of 127.0.0.1, plain IMAP without
# TLS. A system Dovecot that the package's install script may have started (on
# port 143) is not ours and is left alone; nothing here uses systemd.
#
# Any username logs in with the password in LONGHAUL_TEST_IMAP_PASSWORD, and
# each username has a mailbox of its own (maildir:<run dir>/mail/<user>),
# empty at first, so every test logs in as a unique name and runs in parallel
# with the others. A wrong password fails at once (NO [AUTHENTICATIONFAILED]),
# without Dovecot's usual 2 s delay and per-IP penalty. APPEND takes messages
# of any size (no quota, no APPENDLIMIT).
#
# Running as root, Dovecot's master and every process it starts run as the
# unprivileged `dovecot` user (see dovecot_user); otherwise as the invoking
# user. That is a "rootless" Dovecot: one user for everything, no chroot.
service_dovecot() {
    if [[ -n "${LONGHAUL_TEST_IMAP_ADDR:-}" ]]; then
        note "LONGHAUL_TEST_IMAP_ADDR is set; using that server as it is"
        export LONGHAUL_TEST_IMAP_PASSWORD="${LONGHAUL_TEST_IMAP_PASSWORD:-longhaul-test}"
        return
    fi
    ensure_packages dovecot-core dovecot-imapd python3
    local version
    version=$(dovecot --version) || die "cannot run 'dovecot --version'"
    version=${version%% *}
    case "$version" in
        2.3.*) ;;
        *) die "Dovecot $version is installed, but this script configures only Dovecot 2.3 (Debian 12's); install that, or set LONGHAUL_TEST_IMAP_ADDR to a server of your own" ;;
    esac

    local user group uid gid
    user=$(dovecot_user)
    group=$(id -gn "$user")
    uid=$(id -u "$user")
    gid=$(id -g "$user")

    # Under /tmp rather than $TMPDIR or $XDG_RUNTIME_DIR: when we are root,
    # the dovecot user must be able to reach it (/run/user/0 is root's
    # only), and Dovecot's unix sockets need a short path (108 bytes at most).
    local run
    run=$(mktemp -d /tmp/longhaul-dovecot.XXXXXX)
    at_exit "rm -rf '$run' 2>/dev/null || { sleep 1; rm -rf '$run'; }"
    mkdir -p "$run/base" "$run/state" "$run/mail" "$run/home"
    [[ $EUID -ne 0 ]] || chown -R "$uid:$gid" "$run"

    # The greeting names the run directory, so that we wait for our own
    # server and not for another one that took the port first.
    local password=longhaul-test greeting_tag attempt=1 port pid waited greeting
    greeting_tag="longhaul $(basename "$run")"
    while :; do
        port=$(free_port_from 14300) ||
            die "no free port for Dovecot on 127.0.0.1 between 14300 and 14399"
        dovecot_config "$run" "$port" "$password" "$greeting_tag" "$user" "$group" "$uid" "$gid" >"$run/dovecot.conf"
        note "starting Dovecot $version on 127.0.0.1:$port as $user (run dir: $run; log: $run/dovecot.log; it will be stopped when this script exits)"
        # -F: in the foreground, so that $! is the master's pid. Its startup
        # errors go to stderr, before the log file takes over.
        if [[ $EUID -eq 0 ]]; then
            setpriv --reuid="$uid" --regid="$gid" --init-groups -- \
                dovecot -F -c "$run/dovecot.conf" >"$run/master.out" 2>&1 &
        else
            dovecot -F -c "$run/dovecot.conf" >"$run/master.out" 2>&1 &
        fi
        pid=$!
        # SIGTERM makes the master stop its processes before it exits itself.
        at_exit "kill $pid 2>/dev/null && note 'stopping Dovecot'; wait $pid 2>/dev/null"
        waited=0
        until greeting=$(imap_greeting 127.0.0.1 "$port") && [[ "$greeting" == "* OK "*"($greeting_tag)"* ]]; do
            if ! kill -0 "$pid" 2>/dev/null; then
                # Something else (another run of this script?) took the port
                # between our check and Dovecot's bind: take another.
                if grep -q 'Address already in use' "$run/master.out" && ((attempt++ < 5)); then
                    continue 2
                fi
                die "Dovecot exited at start: $(tail -n 20 "$run/master.out" "$run/dovecot.log" 2>/dev/null)"
            fi
            ((waited++ < 30)) ||
                die "Dovecot did not greet on 127.0.0.1:$port within 15 s: $(tail -n 20 "$run/master.out" "$run/dovecot.log" 2>/dev/null)"
            sleep 0.5
        done
        break
    done
    export LONGHAUL_TEST_IMAP_ADDR="127.0.0.1:$port"
    export LONGHAUL_TEST_IMAP_PASSWORD="$password"
}

# The first port from $1 (of the next hundred) that 127.0.0.1 can listen on.
# Take it from 14300, say: below the kernel's ephemeral range (32768 up), so
# no outgoing connection can be holding it.
free_port_from() {
    python3 - "$1" <<'PY'
import socket, sys
first = int(sys.argv[1])
for port in range(first, first + 100):
    with socket.socket() as s:
        # As servers do, so that connections of an earlier run still in
        # TIME_WAIT do not count; a listening socket still does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
else:
    sys.exit(1)
PY
}

# The user that our Dovecot runs as. Not root: Dovecot refuses to run its
# login processes (imap-login, which faces the network) as root, so a
# single-user Dovecot needs a user other than root. When we are root we use
# the `dovecot` system user, which the dovecot-core package creates, and drop
# to it with setpriv before starting the master. Then the master cannot
# setuid to anything else, so it runs every process as `dovecot`, which owns
# the run directory and the mail.
dovecot_user() {
    if [[ $EUID -eq 0 ]]; then
        id -u dovecot >/dev/null 2>&1 ||
            die "there is no 'dovecot' user (the dovecot-core package makes it) for the test IMAP server to run as"
        printf 'dovecot\n'
    else
        id -un
    fi
}

# The first line the IMAP server at $1:$2 sends, or a failure.
imap_greeting() {
    (
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        IFS= read -r -t 2 line <&3 || exit 1
        printf '%s\n' "${line%$'\r'}"
    ) 2>/dev/null
}

# Dovecot 2.3's configuration for the test IMAP server:
#   dovecot_config RUN_DIR PORT PASSWORD GREETING_TAG USER GROUP UID GID
dovecot_config() {
    local run=$1 port=$2 password=$3 greeting_tag=$4 user=$5 group=$6 uid=$7 gid=$8
    cat <<EOF
# Generated by longhaul's scripts/test.sh for one test run; removed at its end.
protocols = imap
listen = 127.0.0.1
base_dir = $run/base
state_dir = $run/state
log_path = $run/dovecot.log
instance_name = longhaul-dovecot-$port
login_greeting = Dovecot ready ($greeting_tag).

# One user for everything (a "rootless" Dovecot), and no chroot: only root
# may chroot.
default_internal_user = $user
default_internal_group = $group
default_login_user = $user
service anvil {
  chroot =
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}

# Plain IMAP: no TLS, passwords in the clear over the loopback.
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login

# Any username, one password. A wrong password would otherwise be answered
# after auth_failure_delay (2 s), and each failure would make every later
# login from 127.0.0.1 wait longer first (the per-IP penalty, up to 15 s). The "nodelay" field skips both, but Dovecot drops the fields of a
# passdb that fails, so a first passdb that checks nothing (noauthenticate)
# sets it, and the second checks the password.
auth_failure_delay = 0
auth_verbose = yes
passdb {
  driver = static
  args = noauthenticate nodelay=yes
}
passdb {
  driver = static
  args = password=$password
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$run/home/%u
}
first_valid_uid = $uid
last_valid_uid = $uid
first_valid_gid = $gid
last_valid_gid = $gid
mail_location = maildir:$run/mail/%u

# A test may hold several sessions as one user (the default is 10).
mail_max_userip_connections = 100

# Large messages: APPEND streams a literal into the mail file, so its size is
# bounded neither by imap_max_line_length (64 KiB, for command lines) nor by
# the imap process's memory limit; without the quota plugin there is no
# APPENDLIMIT. Tests append messages of tens of MiB.
EOF
}

# ---------------------------------------------------------------------------
# Steps

main() {
    heading "Installing what is missing"
    # poppler-utils: the report tests read PDFs back with `pdftotext`. The
    # video tests check films with ffprobe (from ffmpeg, in BUILD_PACKAGES).
    ensure_packages "${BUILD_PACKAGES[@]}" postgresql-client poppler-utils
    # The browser tests (tests/browser.rs) drive the dashboard in headless Chromium.
    ensure_packages chromium chromium-driver
    ensure_rust

    for service in "${SERVICES[@]}"; do
        heading "Test service: $service"
        "service_$service"
    done

    heading "Formatting: cargo fmt --all -- --check"
    cargo fmt --all -- --check

    heading "Lints: cargo clippy --workspace --all-targets --locked -- -D warnings"
    cargo clippy --workspace --all-targets --locked -- -D warnings

    # The OTLP exporter is off by default; lint it too, so that it cannot rot.
    heading "Lints with OTLP traces: cargo clippy -p longhaul -p longhaul-workers --all-targets --locked --features otlp -- -D warnings"
    cargo clippy -p longhaul -p longhaul-workers --all-targets --locked --features otlp -- -D warnings

    # No unused dependency, and duplicated code within its budget.
    bash scripts/hygiene.sh

    # Terraform, Kubernetes manifests and Dockerfiles, offline.
    heading "Infrastructure: bash infra/check.sh"
    bash infra/check.sh

    if cargo nextest --version >/dev/null 2>&1; then
        heading "Tests: cargo nextest run --workspace --locked $*"
        cargo nextest run --workspace --locked "$@"
    else
        heading "Tests: cargo test --workspace --locked $*"
        note "(install cargo-nextest for faster, process-isolated runs)"
        cargo test --workspace --locked "$@"
    fi

    # The server against its own OpenAPI document: Schemathesis, every
    # check, a token of each role; any finding fails.
    bash scripts/api-contract.sh

    heading "All checks passed"
}

# Sourcing the script (to reuse or test its functions) runs nothing.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
