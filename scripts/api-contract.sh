#!/usr/bin/env bash
# Checks that the server keeps the contract its OpenAPI document states:
# starts `longhaul up` on a fresh data dir, then runs Schemathesis with every
# check against /openapi.json, once with a token of each role (user, admin,
# platform). Any finding fails the run.
#
#   bash scripts/api-contract.sh
#
# scripts/schemathesis.toml lists the few operations whose rules no JSON
# Schema can state. scripts/test.sh runs this after the tests. Environment:
#   LONGHAUL_SCHEMATHESIS_SEED      the fuzzer's seed (default 1, so that CI is
#                                   repeatable; try others to search wider)
#   LONGHAUL_SCHEMATHESIS_EXAMPLES  generated cases per operation and phase (default 10)
#   LONGHAUL_BIN                    the longhaul binary (default: cargo build's)
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$(repo_root)"

# Bump with care: a newer Schemathesis may check more, which is the point,
# but then the findings it brings are fixed in the same change.
SCHEMATHESIS_VERSION=4.32.5

ensure_schemathesis() {
    ensure_packages python3 python3-venv
    local venv="${LONGHAUL_CACHE_DIR:-$HOME/.cache/longhaul}/schemathesis-venv"
    if [[ "$("$venv/bin/st" --version 2>/dev/null)" != "st, version $SCHEMATHESIS_VERSION" ]]; then
        note "installing schemathesis==$SCHEMATHESIS_VERSION into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
    fi
    ST="$venv/bin/st"
}

longhaul_binary() {
    if [[ -n "${LONGHAUL_BIN:-}" ]]; then
        printf '%s\n' "$LONGHAUL_BIN"
        return
    fi
    cargo build --locked --quiet --bin longhaul
    local target
    target=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    printf '%s\n' "$target/debug/longhaul"
}

# One Schemathesis run with a role's token; its output also goes to $3.
run_as() {
    local url=$1 token=$2 log=$3
    "$ST" --config-file scripts/schemathesis.toml run "$url/openapi.json" \
        --checks all \
        --header "Authorization: Bearer $token" \
        --phases examples,coverage,fuzzing \
        --max-examples "${LONGHAUL_SCHEMATHESIS_EXAMPLES:-10}" \
        --seed "${LONGHAUL_SCHEMATHESIS_SEED:-1}" \
        --workers 2 \
        --request-timeout 30 \
        --no-color 2>&1 | tee "$log"
    return "${PIPESTATUS[0]}"
}

main() {
    heading "API contract: schemathesis $SCHEMATHESIS_VERSION, every check, a token per role"
    ensure_schemathesis
    local bin work port url pid waited
    bin=$(longhaul_binary)
    work=$(mktemp -d -t longhaul-contract.XXXXXX)
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    url="http://127.0.0.1:$port"

    # Limits are answered with 429 and are in the document, but a fuzzer
    # hitting them would stop checking anything else.
    env LONGHAUL_DATA_DIR="$work/data" \
        LONGHAUL_DATABASE_URL= LONGHAUL_QUEUE= LONGHAUL_OBJECT_STORE= \
        LONGHAUL_RATE_LIMIT_JOBS_PER_USER=0 LONGHAUL_RATE_LIMIT_JOBS_PER_TENANT=0 \
        LONGHAUL_RATE_LIMIT_WRITES_PER_USER=0 LONGHAUL_RATE_LIMIT_WRITES_PER_TENANT=0 \
        LONGHAUL_MAX_STREAMS_PER_USER=0 LONGHAUL_MAX_MEDIA_PER_USER=0 LONGHAUL_MAX_MAIL_ACCOUNTS_PER_USER=0 \
        LONGHAUL_LOG_FORMAT=text \
        "$bin" up --listen "127.0.0.1:$port" >"$work/up.log" 2>&1 &
    pid=$!
    # shellcheck disable=SC2064 # expand now: these are this run's
    trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf '$work'" EXIT

    waited=0
    until curl -fsS "$url/readyz" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || die "longhaul up exited at start: $(tail -n 30 "$work/up.log")"
        ((waited++ < 120)) || die "longhaul up was not ready on $url within 60 s: $(tail -n 30 "$work/up.log")"
        sleep 0.5
    done

    local role token failed=()
    for role in user admin platform; do
        token=$("$bin" token --data-dir "$work/data" --tenant acme --user "contract-$role" --role "$role" --ttl-hours 2)
        heading "schemathesis as $role"
        if run_as "$url" "$token" "$work/$role.log"; then
            continue
        fi
        # Schemathesis itself sometimes crashes while it builds test cases
        # (CPython's "AST constructor recursion depth mismatch", seen on
        # different operations from run to run): that is not a finding about
        # the API, and a second run gets past it. Anything else fails.
        if grep -q 'AST constructor recursion depth mismatch' "$work/$role.log" &&
            ! grep -Eq '^=+ FAILURES =+$' "$work/$role.log"; then
            note "schemathesis crashed inside its own generator (no finding); running as $role again"
            run_as "$url" "$token" "$work/$role.log" || failed+=("$role")
        else
            failed+=("$role")
        fi
    done

    if ! kill -0 "$pid" 2>/dev/null; then
        die "longhaul up died during the run: $(tail -n 30 "$work/up.log")"
    fi
    if grep -Eq '\b(panicked|ERROR)\b' "$work/up.log"; then
        note "the server logged errors during the run (the first 20):"
        grep -E -m 20 '\b(panicked|ERROR)\b' "$work/up.log" || true
    fi
    ((${#failed[@]} == 0)) || die "the server and its OpenAPI document disagree (as: ${failed[*]}); see the findings above"
    note "no findings"
}

main "$@"
