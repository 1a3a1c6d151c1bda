"""The dashboard's Starlette application (SPEC §9): its routes (pages.py, api.py), the guards
in front of them (security.py), and the queues they share (QueuePool).

    from queuectl.web.app import create_app
    app = create_app("jobs.db", token=None, read_only=False, host="127.0.0.1", port=8765)
"""

from __future__ import annotations

import queue as stdlib_queue
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from ..errors import QueueError, StoreError
from ..queue import Queue
from ..store import is_postgres, resolve_target, sqlite_path
from . import api, pages
from .security import Guard, SecurityMiddleware, allowed_hosts, is_every_interface

STATIC = Path(__file__).resolve().parent / "static"
T = TypeVar("T")


class QueuePool:
    """Queues over one store, each used by one thread at a time: routes run on a thread pool,
    and neither an SQLite connection nor a PostgreSQL one may serve two threads at once.
    A request borrows one (opened on demand) and gives it back; at most `keep` stay open."""

    def __init__(self, target: str | None, keep: int = 4) -> None:
        self.target = resolve_target(target)  # once: the store the dashboard started on
        # An SQLite file that disappears is a store that is gone, not one to create afresh
        # (opening creates a missing file): /healthz says 503 and pages say so.
        self._file = None if is_postgres(self.target) else Path(sqlite_path(self.target))
        self._opened = False  # until the first open, which makes a missing store as any command
        self._idle: stdlib_queue.LifoQueue[Queue] = stdlib_queue.LifoQueue()
        self._keep = keep

    def open(self, deadline: float | None = None) -> Queue:
        """A new queue over the dashboard's store; StoreError if its file is gone. The
        environment (.env included) was read once, when `web` started."""
        self._check_file()
        queue = Queue.open(self.target, deadline=deadline, dotenv=False)
        self._opened = True
        return queue

    def _check_file(self) -> None:
        # A pooled connection would go on reading a deleted file's old pages: look first.
        if self._opened and self._file is not None and not self._file.exists():
            raise StoreError(f"store {self._file} is gone: moved or deleted since `web` started")

    @contextmanager
    def borrow(self) -> Iterator[Queue]:
        """A queue for this thread alone until the block ends."""
        try:
            queue = self._idle.get_nowait()
        except stdlib_queue.Empty:
            queue = self.open()
        try:
            self._check_file()
            yield queue
        except StoreError:
            # The store went away under this queue: the next request opens a fresh one.
            queue.close()
            raise
        except BaseException:
            self._give_back(queue)  # an unknown job, a refused change: the queue is fine
            raise
        self._give_back(queue)

    def _give_back(self, queue: Queue) -> None:
        if self._idle.qsize() < self._keep:
            self._idle.put(queue)
        else:
            queue.close()

    async def probe(self, seconds: float) -> bool:
        """Whether the store answers a query within about `seconds` (on a connection of its
        own, so that a store gone silent holds up no pooled one)."""

        def ask() -> bool:
            try:
                with self.open(deadline=time.monotonic() + seconds) as queue:
                    queue.list_jobs(limit=1)
            except QueueError:
                return False
            return True

        return await run_in_threadpool(ask)

    async def call(self, work: Callable[[Queue], T]) -> T:
        """Run work(queue) on the thread pool with a queue of its own; its result."""

        def run() -> T:
            with self.borrow() as queue:
                return work(queue)

        return await run_in_threadpool(run)

    def close(self) -> None:
        """Close every idle queue (when the server stops)."""
        while True:
            try:
                self._idle.get_nowait().close()
            except stdlib_queue.Empty:
                return


def create_app(
    target: str | None,
    *,
    token: str | None,
    read_only: bool,
    host: str,
    port: int,
) -> Starlette:
    """The dashboard over the store TARGET names (the CLI's rules), served at host:port:
    with `token`, every request but /healthz, /login and /static needs it; with `read_only`,
    no form is shown and every change is refused (403)."""
    guard = Guard(
        token=token,
        allowed_hosts=allowed_hosts(host, port),
        port=port,
        every_interface=is_every_interface(host),
    )
    pool = QueuePool(target)
    routes = [
        *pages.routes,
        *api.routes,
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        pool.close()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, guard=guard)],
        exception_handlers=pages.exception_handlers,
        lifespan=lifespan,
    )
    app.state.guard = guard
    app.state.queues = pool
    app.state.read_only = read_only
    return app
