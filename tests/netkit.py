"""Real network failures for tests: a network namespace per test, reaching PostgreSQL through
a veth pair and a forwarder, whose packets can be dropped silently (a partition: no answer,
no reset) and let through again.

    with namespace(PG_URL) as ns:
        url = ns.url(pg_url)                  # the same database, seen from inside
        ns.run([sys.executable, "-m", "queuectl", "status"], env={..., "QUEUECTL_DB": url})
        ns.partition()                        # iptables DROP, both ways
        ns.heal()

Layout, for namespace qc-<pid>-<k> and subnet index N (unique among live namespaces of every
process: chosen under a file lock from the addresses in use):

    root namespace                                 qc-<pid>-<k>
    socat TCP-LISTEN:15432,bind=10.213.N.1  <-veth->  10.213.N.2  (processes run here)
      -> TCP:<PostgreSQL host>:<port>

Needs root, `ip`, `iptables` and `socat` (run_tests.sh installs the last two when missing).
Without root or `ip` the tests skip, saying why; a missing iptables or socat fails them, with
the command that installs it. Teardown always kills what ran inside, the forwarder, and
removes the namespace and the veth pair; namespaces of earlier runs whose process is gone
(a crash, a kill -9) are removed when the next one is made.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

PREFIX = "qc-"
SUBNET = "10.213"  # 10.213.N.0/30 per namespace, N in 0..255
FORWARD_PORT = 15432  # on each namespace's own host-side address, so never in use twice
STATE = Path("/run/queuectl-netkit")  # a lock file and one pid file per forwarder
IPTABLES_CANDIDATES = ("iptables", "iptables-nft", "iptables-legacy")
_counter = iter(range(1_000_000))
_iptables: str | None = None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespace tests need root (ip netns add, iptables)"
    if shutil.which("ip") is None:
        return "network namespace tests need `ip` (iproute2)"
    return None


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(
            f"{tool} is not installed: ./run_tests.sh installs it as root "
            f"(apt-get install -y {tool}); the network partition tests need it"
        )


def _owner_alive(name: str) -> bool:
    """Whether the process that made namespace qc-<pid>-<k> still runs."""
    try:
        pid = int(name[len(PREFIX) :].split("-", 1)[0])
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_forwarder(name: str) -> None:
    pid_file = STATE / f"{name}.socat"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text())
        # Only our socat: the pid may have been reused since a crash.
        if b"socat" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        pid_file.unlink()


def _kill_inside(name: str) -> None:
    """Kill every process still running in the namespace (it lives on while they do)."""
    result = _ip("netns", "pids", name, check=False)
    for word in result.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(word), signal.SIGKILL)


def _remove(name: str, host_link: str | None) -> None:
    _kill_forwarder(name)
    _kill_inside(name)
    _ip("netns", "del", name, check=False)
    if host_link is not None:  # normally gone with its peer; not if the peer never moved
        _ip("link", "del", host_link, check=False)


def clean_stale() -> None:
    """Remove namespaces (with their forwarder and veth) left by runs that are gone."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX) and not _owner_alive(name):
            _remove(name, None)


def _free_subnet() -> int:
    used = _ip("-o", "-4", "addr", "show").stdout
    for index in range(256):
        if f" {SUBNET}.{index}." not in used:
            return index
    raise RuntimeError(f"no free {SUBNET}.N.0/30 subnet: stale test namespaces?")


def _pick_iptables(name: str, link: str) -> str:
    """The iptables backend that works inside a namespace here (nft or legacy), probed once
    by adding and deleting a harmless rule."""
    global _iptables
    if _iptables is None:
        for candidate in IPTABLES_CANDIDATES:
            if shutil.which(candidate) is None:
                continue
            rule = ["OUTPUT", "-o", link, "-j", "ACCEPT"]
            added = _ip("netns", "exec", name, candidate, "-A", *rule, check=False)
            if added.returncode == 0:
                _ip("netns", "exec", name, candidate, "-D", *rule, check=False)
                _iptables = candidate
                break
        else:
            pytest.fail(f"no working iptables in a network namespace (tried {IPTABLES_CANDIDATES})")
    return _iptables


class Namespace:
    """One test's namespace; see the module docstring."""

    def __init__(self, name: str, index: int, target: tuple[str, int]) -> None:
        self.name = name
        self.host_ip = f"{SUBNET}.{index}.1"
        self.inside_ip = f"{SUBNET}.{index}.2"
        self.host_link = f"qc{index}h"
        self.inside_link = f"qc{index}n"
        self.port = FORWARD_PORT
        self.target = target  # where the forwarder connects: the PostgreSQL server
        self.partitioned = False

    def url(self, url: str) -> str:
        """A PostgreSQL URL for the same database, through this namespace's forwarder."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" if userinfo else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}{self.host_ip}:{self.port}"))

    def command(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: list[str], env: dict | None = None, timeout: float = 60, **kwargs):
        """Run argv inside, to its end; stdout and stderr captured as text."""
        return run_in(self, argv, env, timeout=timeout, **kwargs)

    def popen(self, argv: list[str], env: dict | None = None, **kwargs) -> subprocess.Popen:
        """Start argv inside; teardown kills it if it is still running."""
        return subprocess.Popen(self.command(argv), env=env, **kwargs)

    def _iptables(self, action: str) -> None:
        tool = _pick_iptables(self.name, self.inside_link)
        for rule in (["OUTPUT", "-o", self.inside_link], ["INPUT", "-i", self.inside_link]):
            _ip("netns", "exec", self.name, tool, action, *rule, "-j", "DROP")

    def partition(self) -> None:
        """Drop every packet in and out of the namespace, silently: no reset, no ICMP."""
        if not self.partitioned:
            self._iptables("-A")
            self.partitioned = True

    def heal(self) -> None:
        if self.partitioned:
            self._iptables("-D")
            self.partitioned = False


def run_in(ns: Namespace, argv: list[str], env: dict | None = None, timeout: float = 60, **kw):
    """`ip netns exec NS argv`, to its end; stdout and stderr captured as text."""
    return subprocess.run(
        ns.command(argv), env=env, capture_output=True, text=True, timeout=timeout, **kw
    )


def partition(ns: Namespace) -> None:
    ns.partition()


def heal(ns: Namespace) -> None:
    ns.heal()


def _wait_listening(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def namespace(pg_url: str) -> Iterator[Namespace]:
    """A namespace whose processes reach the PostgreSQL server of `pg_url` through a
    forwarder; skipped (with the reason) where namespaces cannot be made."""
    why = unavailable()
    if why is not None:
        pytest.skip(why)
    _require("iptables")
    _require("socat")
    parsed = urlsplit(pg_url)
    target = (parsed.hostname or "127.0.0.1", parsed.port or 5432)
    STATE.mkdir(parents=True, exist_ok=True)
    name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
    ns = None
    try:
        # One allocation at a time across xdist workers: the subnet is taken once its
        # host-side address is set, which the next allocator sees.
        with open(STATE / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            clean_stale()
            index = _free_subnet()
            ns = Namespace(name, index, target)
            made = _ip("netns", "add", name, check=False)
            if made.returncode != 0:
                pytest.skip(f"cannot make a network namespace here: {made.stderr.strip()}")
            _ip("link", "add", ns.host_link, "type", "veth", "peer", "name", ns.inside_link)
            _ip("link", "set", ns.inside_link, "netns", name)
            _ip("addr", "add", f"{ns.host_ip}/30", "dev", ns.host_link)
            _ip("link", "set", ns.host_link, "up")
        _ip("netns", "exec", name, "ip", "addr", "add", f"{ns.inside_ip}/30", "dev", ns.inside_link)
        _ip("netns", "exec", name, "ip", "link", "set", ns.inside_link, "up")
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        socat = subprocess.Popen(
            [
                "socat",
                f"TCP-LISTEN:{ns.port},bind={ns.host_ip},fork,reuseaddr",
                f"TCP:{target[0]}:{target[1]}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its forks (one per connection) die with its group
        )
        (STATE / f"{name}.socat").write_text(str(socat.pid))
        _wait_listening(ns.host_ip, ns.port)
        yield ns
    finally:
        _remove(name, ns.host_link if ns is not None else None)
