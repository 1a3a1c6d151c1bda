"""What goes into the store's named statements and comes out of them, the same for every
backend: parameters built from specs, claims and outcomes; objects built from rows.

Pure functions (store/operations.py and the backends call them), so that a statement of either
dialect is given exactly the same values.
"""

# No `from __future__ import annotations` (see store/__init__.py): imported by `enqueue`.

import os
from collections.abc import Sequence

from ..errors import DuplicateJob
from ..models import (
    Claim,
    JobSpec,
    JobState,
    Run,
    RunResult,
    log_file_name,
    next_state,
)


def distinct_ids(specs: Sequence[JobSpec]) -> list[str]:
    """The ids of a batch to add; DuplicateJob (nothing written) if one is there twice."""
    ids = [spec.id for spec in specs]
    seen: set[str] = set()
    for job_id in ids:
        if job_id in seen:
            raise DuplicateJob(job_id)
        seen.add(job_id)
    return ids


def new_job_row(spec: JobSpec, now: float) -> dict:
    """The INSERT_JOB parameters of a new job: `waiting` when it has dependencies (add settles
    that in the same transaction), else `pending`; due at its run_at or `delay` after `now`."""
    env = after = None
    if spec.env or spec.after:
        import json  # only jobs that have them pay for it

        env = json.dumps(spec.env, ensure_ascii=False) if spec.env else None
        after = json.dumps(list(spec.after), ensure_ascii=False) if spec.after else None
    return {
        "id": spec.id,
        "command": spec.command,
        "state": JobState.WAITING.value if spec.after else JobState.PENDING.value,
        "max_retries": spec.max_retries,
        "priority": spec.priority,
        "queue": spec.queue,
        "run_at": spec.run_at if spec.run_at is not None else now + spec.delay,
        "timeout": spec.timeout,
        "now": now,
        "unique_key": spec.unique_key,
        "cwd": spec.cwd,
        "env_vars": env,
        "after_ids": after,
    }


def claim_fence(claim: Claim, **values) -> dict:
    """Statement parameters naming a claim, for the fenced statements of every backend:
    they act only while this worker still holds this attempt through this (open) run."""
    return {
        "job": claim.job.id,
        "worker": claim.worker_id,
        "attempt": claim.attempt,
        "run_id": claim.run_id,
        **values,
    }


def outcome_params(claim: Claim, result: RunResult, retry_delay: float | None) -> dict:
    """The parameters of the statements that record a run's outcome (FINISH_JOB, CLOSE_RUN):
    the job's next state, and `delay` until it is due again, None to keep its run_at."""
    state, delay = next_state(result, retry_delay)
    return claim_fence(
        claim,
        state=state.value,
        delay=delay if state is JobState.FAILED else None,
        exit_code=result.exit_code,
        error=result.error,
        outcome=result.outcome.value,
        tail=result.output_tail,
        seconds=result.seconds,
    )


def run_from_row(row: Sequence, job_id: str, log_dir: str) -> Run:
    """A run from a SELECT_RUNS row, with the path its log has on the host that ran it."""
    return Run(*row, log_path=os.path.join(log_dir, log_file_name(job_id, row[0], row[2])))


def lost_error(worker_id: str) -> str:
    """Why a run was given up by the rescuer (its run's error and its job's last_error)."""
    return f"lost: worker {worker_id} stopped heartbeating and its lease expired"
