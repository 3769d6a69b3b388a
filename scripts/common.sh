# shellcheck shell=bash
# Helpers shared by scripts/quickstart.sh and scripts/test.sh. Sourced, not run.
#
# Everything here is idempotent: a package is installed only when missing, and
# the Rust toolchain only when `cargo` cannot be found.

# The packages every build needs. Scripts may append to this list before calling
# `ensure_packages`.
# shellcheck disable=SC2034 # used by the scripts that source this file
# The libav* dev packages (Debian's FFmpeg 5.1) and clang (for bindgen) build
# the `video` feature; the ffmpeg package brings the libx264 encoder's runtime
# and, for the tests, ffprobe.
BUILD_PACKAGES=(build-essential pkg-config libssl-dev curl ca-certificates
    clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
    libswresample-dev libavfilter-dev ffmpeg)

# Bold headings when a person is watching, plain text in CI logs.
if [[ -t 1 ]]; then
    _bold=$'\033[1m'
    _reset=$'\033[0m'
else
    _bold=''
    _reset=''
fi

# A step's heading, with the time since the first script of the run started
# (scripts that another runs, such as hygiene.sh, inherit its start), so
# that a log shows where the time went.
LONGHAUL_RUN_STARTED="${LONGHAUL_RUN_STARTED:-$(date +%s)}"
export LONGHAUL_RUN_STARTED
heading() {
    local elapsed=$(($(date +%s) - LONGHAUL_RUN_STARTED))
    printf '\n%s==> [%dm%02ds] %s%s\n' "$_bold" $((elapsed / 60)) $((elapsed % 60)) "$*" "$_reset"
}

note() {
    printf '    %s\n' "$*"
}

die() {
    printf '\nerror: %s\n' "$*" >&2
    exit 1
}

# The repository root, whatever the caller's working directory.
repo_root() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd
}

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "'$*' needs root: run this script as root, or install sudo"
    fi
}

package_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Installs, with apt, those of the given packages that are missing.
ensure_packages() {
    local missing=() package
    for package in "$@"; do
        package_installed "$package" || missing+=("$package")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        note "already installed: $*"
        return
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get: this script expects Debian or Ubuntu"
    note "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Makes `cargo`, `rustfmt` and `clippy` available, installing the stable
# toolchain with rustup when there is no cargo at all.
ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
        # Installed by an earlier run, but this shell has not picked it up.
        # shellcheck disable=SC1091
        source "$HOME/.cargo/env"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        note "installing the stable Rust toolchain with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
            sh -s -- -y --profile minimal --default-toolchain stable --component rustfmt,clippy
        # shellcheck disable=SC1091
        source "$HOME/.cargo/env"
    fi
    if command -v rustup >/dev/null 2>&1; then
        # A toolchain installed some other way may lack the components that
        # the checks need; rustup adds them only when missing.
        cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
        cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
    fi
    note "$(cargo --version)"
}

# Where cargo puts build output: CARGO_TARGET_DIR if set, else ./target.
target_dir() {
    printf '%s\n' "${CARGO_TARGET_DIR:-target}"
}

# Cleanup hooks, run in reverse order when the script exits for any reason.
# A service that a script starts registers its own stop here, right after
# starting, so that only what the script started is ever stopped.
_exit_hooks=()

at_exit() {
    _exit_hooks+=("$*")
}

_run_exit_hooks() {
    local status=$? i
    trap - EXIT
    for ((i = ${#_exit_hooks[@]} - 1; i >= 0; i--)); do
        eval "${_exit_hooks[i]}" || true
    done
    exit "$status"
}

trap _run_exit_hooks EXIT
# Without these, an interrupted script would exit without running its hooks.
trap 'exit 130' INT
trap 'exit 143' TERM
