#!/usr/bin/env bash
# A one-minute tour of queuectl on a private, throw-away store.
#
# Makes (or reuses) .venv, installs this checkout into it, then enqueues a few real jobs (one
# that succeeds, one that fails once and succeeds on retry, one that always fails and ends in
# the dead-letter queue, one killed by its timeout, a high-priority one, a delayed one and a
# batch read from stdin), runs workers until every job has settled, and shows the results.
#
# Nothing outside this folder and a temporary folder is touched: the demo store lives in the
# temporary folder (QUEUECTL_DB), which is removed at the end unless KEEP_DEMO=1 is set.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
ROOT=$(pwd)

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD="" PLAIN=""; fi
say() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$PLAIN"; }

# Print a command the way you would type it, then run it.
show_cmd() {
  local out="\$" arg
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
      out+=" $arg"
    else
      out+=" '${arg//\'/\'\\\'\'}'"
    fi
  done
  printf '%s\n' "$out"
}
q() {
  show_cmd queuectl "$@"
  "$QUEUECTL" "$@"
}

# -- 1. a virtual environment with this checkout installed ------------------------------------

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PY="$ROOT/$VENV/bin/python"
QUEUECTL="$ROOT/$VENV/bin/queuectl"

# Install when queuectl is missing from the venv, comes from somewhere else, or the project's
# metadata changed since it was installed (run_tests.sh keeps its own stamp for the same check).
want=$("$PY" -c 'import hashlib, sys
print(hashlib.sha256(b"".join(open(n, "rb").read() for n in sys.argv[1:])).hexdigest())' \
  pyproject.toml setup.py requirements.txt)
installed_here() {
  # -I: ignore the current folder and PYTHON* variables, so we see what is really installed.
  "$PY" -I -c 'import os, sys, dotenv, queuectl.cli
sys.exit(os.path.dirname(os.path.abspath(queuectl.__file__)) != os.path.abspath(sys.argv[1]))' \
    "$ROOT/queuectl" 2>/dev/null && [ -x "$QUEUECTL" ]
}
stamp_ok() {
  local stamp
  for stamp in "$VENV/.queuectl-installed" "$VENV/.queuectl-demo-installed"; do
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
  done
  return 1
}
if installed_here && stamp_ok; then
  say "queuectl is already installed in $VENV"
else
  # Editable, like run_tests.sh, so the two scripts never undo each other's installation.
  say "installing queuectl from this checkout into $VENV"
  "$PY" -m pip install --quiet --disable-pip-version-check -e .
  echo "$want" > "$VENV/.queuectl-demo-installed"
fi
"$QUEUECTL" --version

# -- 2. a private store in a temporary folder -------------------------------------------------

DEMO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/queuectl-demo.XXXXXX")
export QUEUECTL_DB="$DEMO_DIR/demo.db"
# Settings from your environment must not change the demo (QUEUECTL_DB excepted).
while IFS= read -r name; do
  [ "$name" = QUEUECTL_DB ] || unset "$name"
done < <(compgen -e | grep '^QUEUECTL_' || true)
# Run from the demo folder, so that no .env file of yours is read.
cd "$DEMO_DIR"

WORKERS_PID=""
cleanup() {
  if [ -n "$WORKERS_PID" ] && kill -0 "$WORKERS_PID" 2>/dev/null; then
    kill -TERM "$WORKERS_PID" 2>/dev/null || true
    wait "$WORKERS_PID" 2>/dev/null || true
  fi
  cd /
  if [ "${KEEP_DEMO:-0}" = 1 ]; then
    echo "the demo store is kept: export QUEUECTL_DB=$QUEUECTL_DB"
  else
    rm -rf "$DEMO_DIR"
  fi
}
trap cleanup EXIT

say "a private store for the demo"
echo "QUEUECTL_DB=$QUEUECTL_DB"
# Short retry delays, so the whole demo takes seconds: retry k waits 1.5**k seconds.
q config set backoff-base 1.5
q config list

# -- 3. jobs ----------------------------------------------------------------------------------

say "enqueueing jobs"
q enqueue '{"id":"hello","command":"echo hello from queuectl"}'
# QUEUECTL_ATTEMPT is 1 on the first run, 2 on the second...: this one fails once, then works.
q enqueue '{"id":"flaky","command":"echo attempt $QUEUECTL_ATTEMPT; test $QUEUECTL_ATTEMPT -ge 2"}'
q enqueue '{"id":"doomed","command":"echo cannot reach the server >&2; exit 3","max_retries":2}'
q enqueue --id sleepy --command 'sleep 30' --timeout 1 --max-retries 0
q enqueue --id urgent --command 'echo I jumped the queue' --priority 10
q enqueue --id later --command 'echo I waited 3 seconds' --delay 3
say "a batch from stdin, one JSON spec a line (ids are generated)"
batch='{"command":"echo batch item 1","queue":"batch"}
{"command":"echo batch item 2","queue":"batch"}
{"command":"echo batch item 3","queue":"batch","priority":1}'
printf '%s\n' "$batch"
show_cmd queuectl enqueue -
printf '%s\n' "$batch" | "$QUEUECTL" enqueue -

q list

# -- 4. workers -------------------------------------------------------------------------------

say "a burst run: 3 workers take every job that is ready now, then exit"
echo "(urgent has the highest priority, so it starts first; worker lines go to stderr)"
q worker start --count 3 --burst

say "what the burst run left behind"
echo "(flaky and doomed wait for their retry, later for its start time: burst workers do not wait)"
q status

unsettled() {
  "$QUEUECTL" status --json | "$PY" -c 'import json, sys
jobs = json.load(sys.stdin)["jobs"]
print(jobs["pending"] + jobs["failed"] + jobs["processing"])'
}

say "a worker pool in the background until every job has settled"
echo "\$ queuectl worker start --count 3 > workers.log 2>&1 &"
"$QUEUECTL" worker start --count 3 > "$DEMO_DIR/workers.log" 2>&1 &
WORKERS_PID=$!
sleep 1
q status
deadline=$((SECONDS + 60))
while :; do
  left=$(unsettled)
  [ "$left" = 0 ] && break
  echo "  jobs still to settle: $left"
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "jobs did not settle within 60 s; worker output:" >&2
    cat "$DEMO_DIR/workers.log" >&2
    exit 1
  fi
  sleep 1
done
echo "  every job has settled"
q worker stop --timeout 30
wait "$WORKERS_PID"
WORKERS_PID=""
echo "what the pool printed (stderr of 'queuectl worker start'):"
sed 's/^/  /' "$DEMO_DIR/workers.log"

# -- 5. results -------------------------------------------------------------------------------

say "results"
q status
q list
q dlq list
say "the output of every run of flaky (a header per run on stderr, the output on stdout)"
q logs flaky
say "the dead job, with its run history"
q show doomed
say "the job killed by its timeout"
q show sleepy --json

# -- 6. summary -------------------------------------------------------------------------------

say "summary"
"$QUEUECTL" list --limit 0 --json > "$DEMO_DIR/jobs.json"
"$PY" - "$DEMO_DIR/jobs.json" <<'EOF'
import json
import sys

with open(sys.argv[1]) as handle:
    jobs = {job["id"]: job for job in json.load(handle)}
expected = {"hello": "completed", "flaky": "completed", "urgent": "completed",
            "later": "completed", "doomed": "dead", "sleepy": "dead"}
problems = [f"{job_id} is {jobs[job_id]['state']}, expected {state}"
            for job_id, state in expected.items() if jobs[job_id]["state"] != state]
batch = [job for job in jobs.values() if job["queue"] == "batch"]
problems += [f"batch job {job['id']} is {job['state']}" for job in batch
             if job["state"] != "completed"]
print(f"- hello, urgent, later and {len(batch)} batch jobs completed on their first run")
print(f"- flaky failed once, then completed on attempt {jobs['flaky']['attempts']}")
print(f"- doomed ran {jobs['doomed']['attempts']} times (max_retries 2), then went to the"
      " dead-letter queue")
print(f"- sleepy was killed by its timeout: {jobs['sleepy']['last_error']}")
if problems:
    print("UNEXPECTED: " + "; ".join(problems))
    sys.exit(1)
print("demo finished: every job ended as expected")
EOF
if [ "${KEEP_DEMO:-0}" = 1 ]; then
  cat <<EOF

Try next, on this demo store, which is kept:
  . $VENV/bin/activate          # puts queuectl on your PATH
  export QUEUECTL_DB=$QUEUECTL_DB
  queuectl dlq retry doomed     # back to pending with attempts 0; run the workers again
  queuectl show flaky           # run history of the retried job
EOF
else
  echo
  echo "This demo store is removed now; KEEP_DEMO=1 ./run_demo.sh keeps it to try more on it."
fi
cat <<EOF
On your own queue: . $VENV/bin/activate, then see QUICKSTART.md; without QUEUECTL_DB the
store is in your user folder (queuectl status prints where).
EOF
