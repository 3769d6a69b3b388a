#!/usr/bin/env bash
# Installs what the tests need, starts the test services, and runs every check
# and test: formatting, clippy, then the whole workspace's tests.
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

SERVICES=(postgres moto)

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
service_moto() {
    if [[ -n "${LONGHAUL_TEST_AWS_ENDPOINT_URL:-}" ]]; then
        note "LONGHAUL_TEST_AWS_ENDPOINT_URL is set; using that endpoint as it is"
        return
    fi
    ensure_packages python3 python3-venv
    local venv="${LONGHAUL_CACHE_DIR:-$HOME/.cache/longhaul}/moto-venv"
    if ! "$venv/bin/python" -c 'import moto, sys; from importlib.metadata import version; v = tuple(int(p) for p in version("moto").split(".")[:3]); sys.exit(v < (5, 2, 5))' 2>/dev/null; then
        note "installing moto[server]>=5.2.5 into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5.2.5'
    fi
    local port log
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log=$(mktemp -t moto-server.XXXXXX.log)
    note "starting moto_server on 127.0.0.1:$port (log: $log; it will be stopped when this script exits)"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    local pid=$!
    at_exit "note 'stopping moto_server'; kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    export LONGHAUL_TEST_AWS_ENDPOINT_URL="http://127.0.0.1:$port"
    local waited=0
    until curl -sf -o /dev/null -X POST "$LONGHAUL_TEST_AWS_ENDPOINT_URL/moto-api/reset"; do
        kill -0 "$pid" 2>/dev/null || die "moto_server exited at start: $(tail -5 "$log")"
        ((waited++ < 60)) || die "moto_server did not answer on port $port within 30 s: $(tail -5 "$log")"
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------
# Steps

main() {
    heading "Installing what is missing"
    # poppler-utils: the report tests read PDFs back with `pdftotext`. The
    # video tests check films with ffprobe (from ffmpeg, in BUILD_PACKAGES).
    ensure_packages "${BUILD_PACKAGES[@]}" postgresql-client poppler-utils
    ensure_rust

    for service in "${SERVICES[@]}"; do
        heading "Test service: $service"
        "service_$service"
    done

    heading "Formatting: cargo fmt --all -- --check"
    cargo fmt --all -- --check

    heading "Lints: cargo clippy --workspace --all-targets --locked -- -D warnings"
    cargo clippy --workspace --all-targets --locked -- -D warnings

    if cargo nextest --version >/dev/null 2>&1; then
        heading "Tests: cargo nextest run --workspace --locked $*"
        cargo nextest run --workspace --locked "$@"
    else
        heading "Tests: cargo test --workspace --locked $*"
        note "(install cargo-nextest for faster, process-isolated runs)"
        cargo test --workspace --locked "$@"
    fi

    heading "All checks passed"
}

# Sourcing the script (to reuse or test its functions) runs nothing.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
