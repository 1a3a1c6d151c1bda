"""The Prometheus exposition of SPEC §9, shared by `GET /metrics` and `queuectl metrics`.

Everything is read from the store at scrape time, through queue.py: gauges from the jobs and
workers as they are now, and the two run metrics from the store's cumulative tables (run_counts
and run_durations, kept by the trigger that closes each run), so that they only grow across
restarts, hosts and `prune`. prometheus_client formats and escapes (a custom collector on a
registry of its own per scrape); labels are only queue names, job states, run outcomes, the
version and the backend: never a job id, a command or an error's text.

Needs the `web` extra (prometheus_client): this module is imported only by `queuectl metrics`
and the web server, never on `enqueue`'s path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .. import __version__
from ..models import STATES

if TYPE_CHECKING:
    from ..queue import Queue
    from ..store import WorkerInfo
    from ..store.queue_settings import QueueInfo, RunCount
    from ..store.run_stats import RunDurations


class Snapshot(NamedTuple):
    """What one scrape reads from the store."""

    queues: Sequence[QueueInfo]
    workers: Sequence[WorkerInfo]
    run_counts: Sequence[RunCount]
    run_durations: Sequence[RunDurations]
    version: str
    backend: str


def snapshot(queue: Queue) -> Snapshot:
    """Read everything the exposition shows, now. Live workers are those `status` lists."""
    lease = queue.settings()["lease-seconds"]
    return Snapshot(
        queues=queue.queues(),
        workers=queue.live_workers(lease),
        run_counts=queue.run_counts(),
        run_durations=queue.run_durations(),
        version=__version__,
        backend=queue.backend,
    )


def bound_text(bound: float) -> str:
    """A bucket's `le` label as Prometheus writes it ("+Inf", "0.1", "60.0")."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class QueuectlCollector(Collector):
    """The metric families of one snapshot, in SPEC §9's order."""

    def __init__(self, data: Snapshot) -> None:
        self.data = data

    def collect(self) -> Iterator[Metric]:
        """Yield every family; a family with no sample yet (no queue, no run) is still
        declared, so that its HELP and TYPE are there from the first scrape."""
        data = self.data
        jobs = GaugeMetricFamily(
            "queuectl_jobs", "Jobs in the store by queue and state.", labels=["queue", "state"]
        )
        age = GaugeMetricFamily(
            "queuectl_queue_oldest_ready_age_seconds",
            "Seconds since the queue's oldest due pending job became due (0: none is due).",
            labels=["queue"],
        )
        paused = GaugeMetricFamily(
            "queuectl_queue_paused", "1 if the queue is paused, else 0.", labels=["queue"]
        )
        for info in data.queues:
            for state in STATES:
                jobs.add_metric([info.name, state], info.jobs.get(state, 0))
            age.add_metric([info.name], info.oldest_ready_age or 0.0)
            paused.add_metric([info.name], 1 if info.paused else 0)
        yield jobs
        yield age
        yield paused
        yield GaugeMetricFamily(
            "queuectl_workers", "Live workers, on every host.", value=len(data.workers)
        )
        yield GaugeMetricFamily(
            "queuectl_workers_busy",
            "Live workers running a job now.",
            value=sum(1 for worker in data.workers if worker.current_job is not None),
        )
        # CounterMetricFamily takes the name without `_total` and writes its samples with it.
        runs = CounterMetricFamily(
            "queuectl_job_runs",
            "Runs ended, by queue and outcome (SPEC §2: exited, not_started, timed_out, killed, "
            "canceled, lost); kept across restarts and prune.",
            labels=["queue", "outcome"],
        )
        nonzero = CounterMetricFamily(
            "queuectl_job_runs_exit_nonzero",
            "Runs whose command exited with a non-zero code (of the `exited` runs), by queue; "
            "kept across restarts and prune.",
            labels=["queue"],
        )
        by_outcome: dict[tuple[str, str], int] = {}
        failed: dict[str, int] = {}
        for count in data.run_counts:
            # The store tells an exit with code 0 (`completed`) from another (`failed`); both
            # are the outcome `exited`, which is what the label says.
            outcome = "exited" if count.outcome in ("completed", "failed") else count.outcome
            by_outcome[count.queue, outcome] = (
                by_outcome.get((count.queue, outcome), 0) + count.runs
            )
            if count.outcome == "failed":
                failed[count.queue] = failed.get(count.queue, 0) + count.runs
            else:
                failed.setdefault(count.queue, 0)
        for (queue_name, outcome), total in sorted(by_outcome.items()):
            runs.add_metric([queue_name, outcome], total)
        for queue_name, total in sorted(failed.items()):
            nonzero.add_metric([queue_name], total)
        yield runs
        yield nonzero
        durations = HistogramMetricFamily(
            "queuectl_job_run_duration_seconds",
            "Run time of ended runs by queue (command start to end); kept across restarts "
            "and prune.",
            labels=["queue"],
        )
        for histogram in data.run_durations:
            buckets = [(bound_text(bound), count) for bound, count in histogram.buckets]
            durations.add_metric([histogram.queue], buckets, histogram.seconds)
        yield durations
        info = GaugeMetricFamily(
            "queuectl_build_info",
            "Always 1: the queuectl version and the store's backend as labels.",
            labels=["version", "backend"],
        )
        info.add_metric([data.version, data.backend], 1)
        yield info


def exposition(data: Snapshot) -> bytes:
    """The Prometheus text exposition of one snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueuectlCollector(data))
    return generate_latest(registry)


def render(queue: Queue) -> tuple[bytes, str]:
    """The exposition of the store behind `queue`, read now: (body, Content-Type header)."""
    return exposition(snapshot(queue)), CONTENT_TYPE_LATEST
