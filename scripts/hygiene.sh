#!/usr/bin/env bash
# The tree's hygiene, run by scripts/test.sh after the lints:
#
#   1. No unused dependency: cargo-machete (pinned below) reads every crate's
#      manifest and sources; a dependency nothing uses fails the run.
#   2. A budget of duplicated code: the `duplicates` command (a tool of the
#      development machines, not of this repository) counts the pairs of
#      places that share six or more lines. Twins that must stay twins are
#      listed in ALLOWED_TWINS and not counted; the rest must stay within
#      DUPLICATES_BUDGET. On a machine without the command the check is
#      skipped, and says so.
#
#   bash scripts/hygiene.sh
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$(repo_root)"

MACHETE_VERSION=0.9.1

# The budget is a ratchet: the count of pairs when it was last lowered. Code
# that removes twins lowers it in the same commit; code that must add a twin
# raises it and says why in the commit. Issue 20 started from 245 pairs
# (239 counted) and aimed under 82. The row codec took it to 234; writing
# every domain store once over one SQL layer (store/sql) took it to 202;
# a claim request in place of five arguments, records read by `from_row!`,
# `Services::embedded`, the simulator's `steady` config and the tests'
# `Launcher::token`, one `NewReservation` and the lane pauses in
# `store/records.rs`, and a refresh shard's summary counting through
# `ShardTally` took it to 153. Most of what remains is not logic
# written twice: structs of the same field shapes (a record and its view, a
# row and its insert), the API handlers' annotate-extract-authorise-respond
# shape, the queue's two algorithms (PostgreSQL, SQLite) delegating the same
# port methods, Terraform resources of one shape, and tests' setup.
# Issue 21's events domain (its records and their views, its handlers'
# annotations, a port method beside its one implementation, the lake's IAM
# statements) raised it to 161, and its erase and retention kinds (each a
# `Kind` declared in its own file, as every kind is) to 164, and the three
# lake kinds' `run`, each taking its tenant's lake around its work, to 165:
# shapes, not logic written twice. Bulk imports raised it to 188: the
# upload routes' annotations and their authorise-read-respond shape (the
# spool-and-count loop they share with media's is one function,
# `routes/files.rs`), the `Upload` record and view beside `Media`'s, the
# `ImportStore` port's signatures beside their one implementation, a kind
# declared in its file, a test's setup: shapes again. The rows' checks,
# the streaming reader and the batched upsert are each written once.
# Travelers' notifications (issue 22) raised it to 212: the `/v1/me`
# handlers' annotations and their extract-scope-respond shape, the
# profile, device and notification records beside their views and the
# other domains' records, the `InboxStore` port's signatures beside their
# one implementation, a `string_enum!` beside mail's: shapes. The inbox's
# reads share one `notifications_of`, the wording of a change is one
# function per message, and the tests share their device. Zones (issue 22
# again) raised it to 217: the reservation's zones and the markup's
# offsets lengthen records (`Found`, `Reservation`, `ReservationFields`,
# `YearSummary`) whose runs of `pub x: Option<…>` lines now match other
# records', and the video's cards are a table in two languages. Placing a
# time, a city's zone and the year's bounds are each written once
# (`travel/zones.rs`), and the submitter's file language is one method.
DUPLICATES_BUDGET=217

# Pairs that are twins by design, as extended regular expressions over a row
# `Dn a:lines ~ b:lines`:
# - the two migration folders: one schema, written once per SQL dialect;
# - the staging and production Terraform roots: the same module, called
#   with each environment's values, as Terraform wants a root per state.
ALLOWED_TWINS=(
    'jobs/migrations/postgres/[^ ]+ ~ jobs/migrations/sqlite/'
    'jobs/migrations/sqlite/[^ ]+ ~ jobs/migrations/postgres/'
    'infra/terraform/envs/prod/[^ ]+ ~ infra/terraform/envs/staging/'
    'infra/terraform/envs/staging/[^ ]+ ~ infra/terraform/envs/prod/'
)

machete() {
    heading "Unused dependencies: cargo machete (cargo-machete $MACHETE_VERSION)"
    if [[ "$(cargo machete --version 2>/dev/null || true)" != *"$MACHETE_VERSION"* ]]; then
        note "installing cargo-machete $MACHETE_VERSION"
        cargo install cargo-machete --version "$MACHETE_VERSION" --locked --quiet
    fi
    cargo machete
}

duplicated() {
    heading "Duplicated code: duplicates (budget $DUPLICATES_BUDGET pairs)"
    if ! command -v duplicates >/dev/null 2>&1; then
        note "skipped: the \`duplicates\` command is not on this machine"
        return 0
    fi
    local report total allowed pattern counted
    report="$(duplicates --seconds 300 --most 200)"
    if grep -q '^incomplete:' <<<"$report"; then
        printf '%s\n' "$report" | grep '^incomplete:' >&2
        die "duplicates did not read the whole tree"
    fi
    total="$(head -n 1 <<<"$report" | grep -oE '^[0-9]+' || echo 0)"
    allowed=0
    for pattern in "${ALLOWED_TWINS[@]}"; do
        allowed=$((allowed + $(grep -cE "^D[0-9]+ $pattern" <<<"$report" || true)))
    done
    counted=$((total - allowed))
    note "$total pairs, $allowed of them twins by design: $counted counted"
    if ((counted > DUPLICATES_BUDGET)); then
        printf '%s\n' "$report" | head -n 40 >&2
        die "$counted pairs of duplicated code, over the budget of $DUPLICATES_BUDGET: make the new code share what it repeats (duplicates --change shows what your change wrote twice)"
    fi
}

machete
duplicated
