"""The product under test: a regular (non-editable) `pip install .` of this checkout in
benchmarks/.venv-bench, reused while the source is unchanged.

Why not the development venv: its editable install goes through an import finder on every
start-up, and with PYTHONDONTWRITEBYTECODE=1 nothing under queuectl/ is ever compiled to .pyc,
so CLI start-up there says little about what users get from `pip install queuectl`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_DIR = ROOT / "benchmarks" / ".venv-bench"
STAMP = VENV_DIR / ".queuectl-source-hash"
# Files that decide what gets installed; README.md is needed by the build, not hashed.
BUILD_FILES = ("pyproject.toml", "setup.py", "requirements.txt")
# Bumping this forces a rebuild when the way we build changes.
RECIPE = "3"


@dataclass(frozen=True)
class BenchVenv:
    python: Path
    queuectl: Path
    has_psycopg: bool
    source_hash: str
    rebuilt: bool


def source_files() -> list[Path]:
    files = [ROOT / name for name in BUILD_FILES if (ROOT / name).exists()]
    files += sorted((ROOT / "queuectl").rglob("*.py"))
    return files


def source_hash() -> str:
    digest = hashlib.sha256(f"{RECIPE} {sys.version}".encode())
    for path in source_files():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def ensure(log) -> BenchVenv:
    """Create or refresh the bench venv; returns where its python and queuectl are."""
    want = source_hash()
    lock_path = Path(tempfile.gettempdir()) / "queuectl-bench-venv.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two harness runs must not pip-install at once
        rebuilt = False
        python = VENV_DIR / "bin" / "python"
        if not python.exists():
            log(f"creating {VENV_DIR.relative_to(ROOT)} (once)")
            shutil.rmtree(VENV_DIR, ignore_errors=True)
            _run([sys.executable, "-m", "venv", str(VENV_DIR)])
            # A setuptools that builds wheels without the `wheel` package, so later installs
            # need no build isolation (and no network).
            _pip(python, "install", "setuptools>=70.1")
        have = STAMP.read_text().strip() if STAMP.exists() else ""
        if have != want:
            log("installing this checkout into the bench venv (pip install ., not editable)")
            _install(python)
            STAMP.write_text(want + "\n")
            rebuilt = True
    has_psycopg = any(VENV_DIR.glob("lib/python*/site-packages/psycopg/__init__.py"))
    return BenchVenv(python, VENV_DIR / "bin" / "queuectl", has_psycopg, want, rebuilt)


def _install(python: Path) -> None:
    # Build from a copy: an in-tree build would leave build/ and egg-info in the checkout
    # while someone may be editing it.
    with tempfile.TemporaryDirectory(prefix="queuectl-bench-src-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(ROOT / "queuectl", copy / "queuectl", ignore=_ignore_caches)
        for name in (*BUILD_FILES, "README.md", "LICENSE"):
            if (ROOT / name).exists():
                shutil.copy2(ROOT / name, copy / name)
        # A local folder is always rebuilt and reinstalled; its dependencies only when missing.
        # psycopg too, so that a stray PostgreSQL import on the SQLite path costs what it would
        # cost a user who has it installed; the web extra for the dashboard's figure (watch).
        try:
            _pip(python, "install", "--no-build-isolation", f"{copy}[postgres,web]")
        except RuntimeError as exc:
            print(f"benchmarks: psycopg not installed in the bench venv: {exc}", file=sys.stderr)
            _pip(python, "install", "--no-build-isolation", str(copy))


def _ignore_caches(folder: str, names: list[str]) -> list[str]:
    return [name for name in names if name == "__pycache__" or name.endswith(".pyc")]


def _pip(python: Path, *args: str) -> None:
    _run([str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args])


def _run(command: list[str]) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(command[:4])} … failed:\n{tail}")
