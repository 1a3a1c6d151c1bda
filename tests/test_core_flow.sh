#!/usr/bin/env bash
# The core flow end to end through the `queuectl` found on PATH (SPEC §10): enqueue a job that
# succeeds and one that fails, run a worker pool, see the failing job retried once and then
# dead, list it in the dead-letter queue, fix its cause and retry it from there, check the
# counts in `status`, and stop the pool. Works on a throw-away store of its own (a mktemp
# folder, removed at the end whatever happens); exits non-zero at the first step that fails,
# saying which. The last line is `core flow: ok`.
#
#   PATH=/path/to/venv/bin:$PATH bash tests/test_core_flow.sh
#
# tests/test_core_flow.ps1 is its PowerShell twin.

set -euo pipefail

fail() {
    echo "core flow FAILED: $*" >&2
    if [[ -n "${work:-}" && -f "$work/workers.log" ]]; then
        echo "--- worker pool output ---" >&2
        cat "$work/workers.log" >&2
    fi
    exit 1
}

command -v queuectl >/dev/null || fail "no queuectl on PATH"

work=$(mktemp -d "${TMPDIR:-/tmp}/queuectl-core-flow.XXXXXX")
pool=""
cleanup() {
    if [[ -n "$pool" ]] && kill -0 "$pool" 2>/dev/null; then
        kill -TERM "$pool" 2>/dev/null || true
        wait "$pool" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# This store and nothing else: no QUEUECTL_* setting of the caller's, no .env of theirs.
while IFS='=' read -r name _; do
    [[ "$name" == QUEUECTL_* ]] && unset "$name"
done < <(env)
export QUEUECTL_DB="$work/queue.db"
cd "$work"

step() { echo "== $*"; }

# expect DESCRIPTION PATTERN TEXT: fail unless TEXT has a line matching the extended regex.
expect() {
    grep -Eq -- "$2" <<<"$3" || fail "$1: no line matching /$2/ in:
$3"
}

step "settings: retries come quickly (backoff 0.2 s), idle workers look often"
queuectl config set backoff-base 0.2 >/dev/null || fail "config set backoff-base"
queuectl config set poll-interval 0.1 >/dev/null || fail "config set poll-interval"
expect "config get" '^0\.2$' "$(queuectl config get backoff-base)"

step "enqueue a job that succeeds and one that fails until it is fixed"
ok_id=$(queuectl enqueue '{"id": "ok-job", "command": "echo core flow ok"}') ||
    fail "enqueue ok-job"
[[ "$ok_id" == "ok-job" ]] || fail "enqueue printed '$ok_id', not ok-job"
bad_id=$(queuectl enqueue --id bad-job --command "test -e '$work/fixed'" --max-retries 1) ||
    fail "enqueue bad-job"
[[ "$bad_id" == "bad-job" ]] || fail "enqueue printed '$bad_id', not bad-job"
expect "status before the workers" '^  pending +2$' "$(queuectl status)"

step "worker start --count 2, in the background"
queuectl worker start --count 2 >"$work/workers.log" 2>&1 &
pool=$!

step "wait: ok-job completes, bad-job runs twice and ends dead (exit 3)"
set +e
waited=$(queuectl wait ok-job bad-job --timeout 60 2>&1)
code=$?
set -e
[[ $code -eq 3 ]] || fail "wait exited $code, not 3 (a job ended dead): $waited"
expect "wait's report" '^bad-job: dead' "$waited"
shown=$(queuectl show bad-job) || fail "show bad-job"
expect "bad-job's state" '^state: +dead$' "$shown"
expect "bad-job's attempts" '^attempts: +2$' "$shown"
expect "ok-job's state" '^state: +completed$' "$(queuectl show ok-job)"
expect "ok-job's output" '^core flow ok$' "$(queuectl logs ok-job 2>/dev/null)"

step "dlq list shows it"
expect "dlq list" '^bad-job ' "$(queuectl dlq list)"

step "fix the cause, dlq retry, and it completes"
touch "$work/fixed"
expect "dlq retry" '^bad-job: dead -> pending$' "$(queuectl dlq retry bad-job)"
queuectl wait bad-job --timeout 60 || fail "wait for the retried bad-job"
expect "bad-job after its retry" '^state: +completed$' "$(queuectl show bad-job)"
[[ -z "$(queuectl dlq list 2>/dev/null)" ]] || fail "the dead-letter queue is not empty"

step "status counts both jobs completed, and lists the two workers"
status=$(queuectl status) || fail "status"
expect "status store" "^store: $work/queue.db\$" "$status"
expect "status completed" '^  completed +2$' "$status"
expect "status dead" '^  dead +0$' "$status"
expect "status workers" '^workers: 2$' "$status"

step "worker stop: the pool exits 0"
queuectl worker stop --timeout 30 || fail "worker stop"
pool_code=0
wait "$pool" || pool_code=$?
pool=""
[[ $pool_code -eq 0 ]] || fail "worker start exited $pool_code"
expect "status after the stop" '^workers: 0$' "$(queuectl status)"

echo "core flow: ok"
