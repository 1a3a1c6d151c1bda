"""Where the stores under test live: files in the scratch folder, or databases of their own
(queuectl_bench_*) on a PostgreSQL server, never the server's `postgres` database."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from queuectl.store import open_store

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_PREFIX = "queuectl_bench_"


def pg_admin_url() -> str:
    return os.environ.get("QUEUECTL_BENCH_PG") or DEFAULT_PG_URL


def pg_unavailable(url: str) -> str | None:
    """Why the PostgreSQL backend cannot be measured, or None if a server answers."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed in this venv"
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no server answers at {url}: {' '.join(str(exc).split())[:120]}"
    return None


class SqliteBackend:
    name = "sqlite"

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "sqlite"
        self.root.mkdir()

    def new_target(self, label: str) -> str:
        """A fresh store, created empty, in a folder of its own (its logs/ beside it)."""
        folder = self.root / label
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        target = str(folder / "queue.db")
        open_store(target).close()
        return target

    def drop(self, target: str) -> None:
        shutil.rmtree(Path(target).parent, ignore_errors=True)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class PostgresBackend:
    name = "postgres"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: set[str] = set()

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(statement)

    def describe(self) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        return f"PostgreSQL {version} at {self.admin_url}, databases {DB_PREFIX}*"

    def new_target(self, label: str) -> str:
        name = DB_PREFIX + re.sub(r"[^a-z0-9_]", "_", label.lower())
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{name}"')
        self.created.add(name)
        # CREATE DATABASE writes the whole template through the WAL; flush it now rather
        # than during whatever is timed next.
        with contextlib.suppress(Exception):
            self._admin("CHECKPOINT")
        parts = urlsplit(self.admin_url)
        target = urlunsplit(parts._replace(path="/" + name))
        open_store(target).close()
        return target

    def drop(self, target: str) -> None:
        name = urlsplit(target).path.lstrip("/")
        if name.startswith(DB_PREFIX):
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.created.discard(name)

    def cleanup(self) -> None:
        for name in sorted(self.created):
            try:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # cleanup goes on with the others
                print(f"benchmarks: could not drop database {name}: {exc}")
        self.created.clear()
