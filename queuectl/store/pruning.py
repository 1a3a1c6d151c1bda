"""Prune (SPEC §8, retention), written once for every backend: deleting finished jobs with their
runs, their dependency edges and their log files on this host, in short transactions; and the
compare-and-set that lets one worker of the whole store do a chore (the prune by `retention`)
at most once per interval.

Functions over an Operations object (store/operations.py), whose thin methods call them; the
statements are the backend's `admin_sql` module's, imported on first use, off `enqueue`'s path.

Why batches: on SQLite a transaction that deletes holds the store's only write lock, and every
claim waits behind it. Each batch is found by a read that takes no lock (the jobs_state index,
from where the last batch ended, so a prune walks each state's jobs once), then deleted in a
transaction of its own, at most PRUNE_BATCH jobs: a claim waits behind one such transaction at
most, never behind the whole prune. After each batch the backend tidies up (SQLite checkpoints
its WAL), so that a claim's commit never finds the WAL full of a prune's pages and copies them
into the store file itself. On PostgreSQL a prune takes no lock a claim needs (it
deletes finished jobs only, and skips any row someone else holds).

Dependencies (SPEC §7): a completed job may go while jobs still wait on others: they counted
it off when it completed, and a dependency that is gone counts as met. A dead or canceled job
that a `waiting` job still points at stays (that job is yet to be canceled through it: see
chaining.settle_stranded). A later `enqueue --after` naming a pruned job is told it does not
exist. Run counts (the metrics) are kept apart from the runs, and prune never touches them.
"""

# No `from __future__ import annotations` (see store/__init__.py).

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

from ..models import FINISHED_STATES, JobState, log_file_name
from .operations import RETRY, Operations, Transaction

# Most jobs one transaction deletes. Each deleted job dirties about one page of its own (its
# random id's place in the id index): on SQLite 500 a batch held the write lock for about 25 ms
# at a million jobs and 200 for a few, at the same total speed (benchmarks/figures/prune.py).
PRUNE_BATCH = 200


def prune_finished(
    store: Operations,
    older_than: float,
    states: Sequence[JobState],
    limit: int | None = None,
    dry_run: bool = False,
    on_batch: Callable[[Sequence[str]], object] | None = None,
    batch: int = PRUNE_BATCH,
) -> int:
    """Delete the finished jobs of `states` last changed at least `older_than` seconds ago
    (see Store.prune_finished); the number deleted, or with `dry_run` the number that would be."""
    states = list(dict.fromkeys(states))
    for state in states:
        if state not in FINISHED_STATES:
            raise ValueError(f"prune deletes finished jobs only, not {state.value} ones")
    if older_than < 0:
        raise ValueError(f"older_than must be at least 0, got {older_than}")
    sql = store.admin_sql
    # One cutoff for the whole prune, in the store's clock (the server's on PostgreSQL).
    cutoff = store._transaction(lambda tx: tx.time(), reads=True, single=True) - older_than
    if dry_run:
        return _count(store, sql, cutoff, states, limit)
    log_dir = os.fspath(store.log_dir)
    deleted = 0
    for state in states:
        after = 0  # seqs start at 1 on both backends
        while limit is None or deleted < limit:
            size = batch if limit is None else min(batch, limit - deleted)
            params = {"state": state.value, "cutoff": cutoff, "after": after, "limit": size}
            found = store._transaction(
                lambda tx, p=params: tx.execute(sql.SELECT_PRUNABLE, p).fetchall(),
                reads=True,
                single=True,
            )
            if not found:
                break
            after = max(row[0] for row in found)
            gone = _delete(store, sql, params, found)
            deleted += len(gone)
            _remove_logs(log_dir, found, gone)
            if on_batch is not None and on_batch([job_id for _seq, job_id in gone]) is False:
                return deleted
            if len({row[0] for row in found}) < size:
                break  # the last of this state
    return deleted


def _count(
    store: Operations, sql: Any, cutoff: float, states: Sequence[JobState], limit: int | None
) -> int:
    def count(tx: Transaction) -> int:
        total = 0
        for state in states:
            params = {"state": state.value, "cutoff": cutoff, "after": 0}
            total += tx.execute(sql.COUNT_PRUNABLE, params).fetchone()[0]
        return total

    total = store._transaction(count, reads=True)
    return total if limit is None else min(total, limit)


def _delete(store: Operations, sql: Any, params: dict, found: list) -> list[tuple[int, str]]:
    """Delete the jobs of one batch that are still prunable, in one transaction; (seq, id) of
    each deleted."""
    candidates = dict((row[0], row[1]) for row in found)
    params = {**params, "seqs": sql.seq_list(list(candidates))}

    def delete(tx: Transaction) -> list[tuple[int, str]]:
        return [tuple(row) for row in tx.execute(sql.DELETE_PRUNABLE, params).fetchall()]

    def landed(tx: Transaction) -> Any:
        # A COMMIT whose answer was lost: with none of the batch left, it landed (or another
        # prune took the rest); otherwise run it again, which deletes what is still prunable.
        if tx.execute(sql.SELECT_SEQS_LEFT, params).fetchone() is None:
            return list(candidates.items())
        return RETRY

    gone = store._transaction(delete, single=True, probe=landed)
    store._after_bulk_write()
    return gone


def _remove_logs(log_dir: str, found: list, gone: list[tuple[int, str]]) -> None:
    """Delete the log files that the runs of the deleted jobs left on this host (those of runs
    on other hosts are theirs; a missing file is fine)."""
    deleted = {seq for seq, _job_id in gone}
    for seq, job_id, run_id, worker_id in found:
        if seq not in deleted or run_id is None:
            continue
        name = log_file_name(job_id, run_id, worker_id)
        # Runs of jobs whose id starts with `-` once had the name without the leading `_`
        # (runlogs.open_run_log still reads it).
        names = (name, name[1:]) if name.startswith("_-") else (name,)
        for each in names:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(log_dir, each))


def claim_chore(store: Operations, name: str, every: float) -> bool:
    """Whether the caller is the one to do chore `name` now: True for at most one caller per
    `every` seconds in the whole store, whichever host it is on (see Store.claim_chore)."""
    sql = store.admin_sql

    def claim(tx: Transaction) -> bool:
        params = {"name": name, "every": every, "now": tx.now}
        return tx.execute(sql.CLAIM_CHORE, params).fetchone() is not None

    return store._transaction(claim, single=True)
