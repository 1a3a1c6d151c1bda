#!/usr/bin/env bash
# The whole test suite in one command: makes (or reuses) .venv, installs the project with its
# test and postgres extras, makes sure the local PostgreSQL server is up, then runs ruff and
# pytest in parallel. Extra arguments go to pytest, e.g. ./run_tests.sh -k worker
set -euo pipefail
cd "$(dirname "$0")"

# System tools of the network-partition and browser tests (tests/netkit.py): they build network namespaces
# with `ip`, forward to PostgreSQL with socat and drop packets silently with iptables. Installed
# only when missing and only as root (apt-get update once, then only what is absent); without
# them those tests skip and say why.
need=()
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# The dashboard's browser tests drive Debian's chromium with Playwright (Playwright's own
# browser download cannot work here).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing ${need[*]} (network-partition tests)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" \
    || echo "!! WARNING: could not install ${need[*]}: partition or browser tests will be SKIPPED" >&2
fi

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when the project's metadata changed.
stamp="$VENV/.queuectl-installed"
want=$(cat pyproject.toml setup.py requirements.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== installing queuectl with its test, postgres and web extras"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test,postgres,web]'
  echo "$want" > "$stamp"
fi

# PostgreSQL: start this machine's server if it is installed but down. The tests skip the
# PostgreSQL backend (and say so loudly) only when no server can be reached.
export QUEUECTL_TEST_PG=${QUEUECTL_TEST_PG:-postgresql://postgres@127.0.0.1:5432/postgres}
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "== starting the local PostgreSQL server"
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
fi
if ! { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; }; then
  echo "!! WARNING: no PostgreSQL server reachable: PostgreSQL tests will be SKIPPED" >&2
fi

echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .

echo "== pytest"
exec "$VENV/bin/python" -m pytest -n "${QUEUECTL_TEST_WORKERS:-4}" "$@"
