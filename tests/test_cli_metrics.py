"""`queuectl metrics` (SPEC §9): the Prometheus exposition, read back with prometheus_client's
own parser, against each backend, after real workers ran real jobs.

The same exposition is what the web server serves at GET /metrics (queuectl.web.metrics.render).
"""

from __future__ import annotations

import math
import subprocess
import sys

from clikit import assert_error, assert_ok, enqueue, run_burst
from conftest import CLI, wait_for
from prometheus_client.parser import text_string_to_metric_families
from workerkit import DEADLINE, speed_up, wait_state

import queuectl
from queuectl.store.run_stats import RUN_DURATION_BOUNDS

STATES = ("waiting", "pending", "processing", "completed", "failed", "dead", "canceled")

# SPEC §9's families as the parser names them (a counter's without `_total`): type, and the
# labels of their samples (a histogram's buckets add `le`).
FAMILIES = {
    "queuectl_jobs": ("gauge", {"queue", "state"}),
    "queuectl_queue_oldest_ready_age_seconds": ("gauge", {"queue"}),
    "queuectl_queue_paused": ("gauge", {"queue"}),
    "queuectl_workers": ("gauge", set()),
    "queuectl_workers_busy": ("gauge", set()),
    "queuectl_job_runs": ("counter", {"queue", "outcome"}),
    # Not in SPEC §9's list: the `exited` runs whose code was not 0, for failure-rate alerts.
    "queuectl_job_runs_exit_nonzero": ("counter", {"queue"}),
    "queuectl_job_run_duration_seconds": ("histogram", {"queue"}),
    "queuectl_build_info": ("gauge", {"version", "backend"}),
}


class Scrape:
    """One `queuectl metrics` output, parsed."""

    def __init__(self, cli: CLI) -> None:
        self.text = assert_ok(cli("metrics"))
        self.families = {f.name: f for f in text_string_to_metric_families(self.text)}

    def values(self, sample: str, *labels: str) -> dict:
        """{label values, in the order given: value} of every sample called `sample`."""
        found = {}
        for family in self.families.values():
            for s in family.samples:
                if s.name == sample:
                    key = tuple(s.labels[name] for name in labels)
                    assert key not in found, (sample, key)
                    found[key] = s.value
        return found

    def value(self, sample: str) -> float:
        [value] = self.values(sample).values()
        return value

    def counters(self) -> dict:
        """Every value that must never go down: runs and the histogram's series."""
        runs = self.values("queuectl_job_runs_total", "queue", "outcome")
        name = "queuectl_job_run_duration_seconds"
        return {
            **{("runs", *key): v for key, v in runs.items()},
            **{
                ("bucket", *key): v
                for key, v in self.values(f"{name}_bucket", "queue", "le").items()
            },
            **{("count", *k): v for k, v in self.values(f"{name}_count", "queue").items()},
            **{("sum", *k): v for k, v in self.values(f"{name}_sum", "queue").items()},
        }

    def assert_histograms_sound(self) -> None:
        """Per queue: every bound, cumulative buckets, +Inf == _count == the queue's runs."""
        name = "queuectl_job_run_duration_seconds"
        buckets = self.values(f"{name}_bucket", "queue", "le")
        counts = self.values(f"{name}_count", "queue")
        runs = self.values("queuectl_job_runs_total", "queue", "outcome")
        assert {q for q, _ in runs} == {q for (q,) in counts}
        for (queue,), count in counts.items():
            series = [buckets[(queue, le_text(bound))] for bound in RUN_DURATION_BOUNDS]
            assert series == sorted(series), (queue, series)
            assert series[-1] == count == sum(v for (q, _), v in runs.items() if q == queue)


def le_text(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def backend(cli: CLI) -> str:
    return "postgresql" if cli.db.startswith("postgres") else "sqlite"


def test_an_empty_store_declares_every_family(cli):
    scrape = Scrape(cli)
    for name, (kind, _) in FAMILIES.items():
        assert scrape.families[name].type == kind, name
    assert set(scrape.families) == set(FAMILIES)
    assert scrape.value("queuectl_workers") == 0
    assert scrape.value("queuectl_workers_busy") == 0
    assert scrape.values("queuectl_build_info", "version", "backend") == {
        (queuectl.__version__, backend(cli)): 1.0
    }
    assert "_created" not in scrape.text


def test_values_for_a_known_store_after_real_workers(cli):
    for n in (1, 2):
        enqueue(cli, id=f"ok{n}", command="true", queue="fast")
    enqueue(cli, id="later", command="true", queue="fast", delay=3600)
    enqueue(cli, id="bad", command="exit 3", queue="fail", max_retries=1)
    enqueue(cli, id="slow", command="sleep 30", queue="slow", timeout=0.5, max_retries=0)
    assert_ok(cli("queue", "pause", "held"))
    enqueue(cli, id="held", command="true", queue="held")
    run_burst(cli)
    scrape = Scrape(cli)

    for name, (kind, labels) in FAMILIES.items():
        family = scrape.families[name]
        assert family.type == kind, name
        for sample in family.samples:
            extra = {"le"} if sample.name.endswith("_bucket") else set()
            assert set(sample.labels) == labels | extra, sample
    assert "queuectl_job_runs_total{" in scrape.text  # the sample's name, exactly
    assert "_created" not in scrape.text

    jobs = scrape.values("queuectl_jobs", "queue", "state")
    wanted = {
        "fast": {"completed": 2, "pending": 1},
        "fail": {"dead": 1},
        "slow": {"dead": 1},
        "held": {"pending": 1},
    }
    assert jobs == {
        (queue, state): counts.get(state, 0) for queue, counts in wanted.items() for state in STATES
    }
    listed = {q["name"]: q for q in cli.json("queue", "list")}  # the same as `queue list`
    assert {(q, s): n for q, info in listed.items() for s, n in info["jobs"].items()} == jobs

    paused = scrape.values("queuectl_queue_paused", "queue")
    assert paused == {("fast",): 0, ("fail",): 0, ("slow",): 0, ("held",): 1}
    ages = scrape.values("queuectl_queue_oldest_ready_age_seconds", "queue")
    assert ages[("held",)] > 0  # due, and waiting while its queue is paused
    assert ages[("fast",)] == 0  # its pending job is not due for an hour

    runs = scrape.values("queuectl_job_runs_total", "queue", "outcome")
    assert runs == {  # SPEC §2's outcomes: an exit with any code is `exited`
        ("fast", "exited"): 2,
        ("fail", "exited"): 2,
        ("slow", "timed_out"): 1,
    }
    nonzero = scrape.values("queuectl_job_runs_exit_nonzero_total", "queue")
    assert nonzero == {("fast",): 0, ("fail",): 2, ("slow",): 0}
    scrape.assert_histograms_sound()
    name = "queuectl_job_run_duration_seconds"
    buckets = scrape.values(f"{name}_bucket", "queue", "le")
    assert buckets[("slow", "0.1")] == 0  # it ran until its 0.5 s timeout
    assert scrape.values(f"{name}_sum", "queue")[("slow",)] >= 0.5
    assert scrape.value("queuectl_workers") == 0  # the burst worker has exited
    assert scrape.values("queuectl_build_info", "version", "backend") == {
        (queuectl.__version__, backend(cli)): 1.0
    }


def test_live_and_busy_workers_of_a_running_pool(cli, pools):
    speed_up(cli)
    pool = pools.start(cli, "--count", "2")
    enqueue(cli, id="block", command="while [ ! -f go ]; do sleep 0.05; done")
    wait_state(cli, "block", "processing")

    def scraped(workers: int, busy: int):
        scrape = Scrape(cli)
        got = (scrape.value("queuectl_workers"), scrape.value("queuectl_workers_busy"))
        return scrape if got == (workers, busy) else None

    wait_for(lambda: scraped(2, 1), timeout=DEADLINE)
    (cli.cwd / "go").touch()
    wait_state(cli, "block", "completed")
    wait_for(lambda: scraped(2, 0), timeout=DEADLINE)
    assert_ok(cli("worker", "stop", "--timeout", str(DEADLINE)))
    assert pool.wait_exit() == 0
    scrape = wait_for(lambda: scraped(0, 0), timeout=DEADLINE)
    assert scrape.values("queuectl_job_runs_total", "queue", "outcome") == {
        ("default", "exited"): 1
    }


def run_batch(cli: CLI, pools, tag: str) -> None:
    """A pool of its own runs four jobs (one fails for good), then is stopped."""
    pool = pools.start(cli, "--count", "2")
    ids = [enqueue(cli, id=f"{tag}-ok{n}", command="true", queue="q") for n in range(3)]
    ids.append(enqueue(cli, id=f"{tag}-bad", command="exit 2", queue="q", max_retries=0))
    for job_id in ids:
        wait_state(cli, job_id, "completed", "dead")
    assert_ok(cli("worker", "stop", "--timeout", str(DEADLINE)))
    assert pool.wait_exit() == 0


def assert_not_lower(before: dict, after: dict) -> None:
    for key, value in before.items():
        assert after.get(key, -1) >= value, (key, value, after.get(key))


def test_counters_never_go_down_across_a_worker_restart_and_prune(cli, pools):
    speed_up(cli)
    run_batch(cli, pools, "first")
    first = Scrape(cli)
    first.assert_histograms_sound()
    assert first.values("queuectl_job_runs_total", "queue", "outcome") == {("q", "exited"): 4}
    assert first.values("queuectl_job_runs_exit_nonzero_total", "queue") == {("q",): 1}
    run_batch(cli, pools, "second")  # a new pool: new worker processes, new ids
    second = Scrape(cli)
    assert_not_lower(first.counters(), second.counters())
    assert second.values("queuectl_job_runs_total", "queue", "outcome") == {("q", "exited"): 8}
    assert second.values("queuectl_job_runs_exit_nonzero_total", "queue") == {("q",): 2}
    prune = cli("prune", "--older-than", "0", "--state", "completed", "--state", "dead")
    assert assert_ok(prune) == "pruned 8 jobs\n"
    pruned = Scrape(cli)
    assert pruned.counters() == second.counters()
    pruned.assert_histograms_sound()
    # The jobs are gone; the queue is no longer listed, its counters are.
    assert pruned.values("queuectl_jobs", "queue", "state") == {}


# Values that reach the store from users and commands: none may become a label or any text
# of the exposition. Control characters are refused in ids, not in commands or their output.
HOSTILE_ID = 'IDMARK<script>alert("x")</script>\'&{le="1"}'
HOSTILE_COMMAND = (
    "printf 'OUTMARK<script>\\033[31m\\033]0;title\\007\\n\"\\\\'; echo CMDMARK >/dev/null; exit 4"
)


def test_no_id_command_output_or_error_text_reaches_the_exposition(cli):
    enqueue(cli, id=HOSTILE_ID, command=HOSTILE_COMMAND, queue="plain", max_retries=0)
    enqueue(
        cli,
        id="IDMARK-cwd",
        command="true",
        queue="plain",
        max_retries=0,
        cwd="/nonexistent/ERRMARK<script>",
    )
    run_burst(cli)
    assert "OUTMARK" in cli("logs", HOSTILE_ID).stdout
    errors = [run["error"] or "" for run in cli.json("show", "IDMARK-cwd")["runs"]]
    assert any("ERRMARK" in error for error in errors), errors  # the store has it...
    scrape = Scrape(cli)
    for marker in ("IDMARK", "CMDMARK", "OUTMARK", "ERRMARK", "<script>", "\x1b", "\x07"):
        assert marker not in scrape.text, marker  # ...the exposition does not
    runs = scrape.values("queuectl_job_runs_total", "queue", "outcome")
    assert sum(runs.values()) == 2 and {queue for queue, _ in runs} == {"plain"}


ODD_QUEUE = 'we"ird\\ {q="1"},le=+Inf é ☃ \\n'


def test_a_queue_name_with_odd_characters_round_trips(cli):
    enqueue(cli, id="one", command="true", queue=ODD_QUEUE)
    assert_ok(cli("queue", "pause", ODD_QUEUE + "2"))
    run_burst(cli)
    scrape = Scrape(cli)
    assert set(scrape.values("queuectl_queue_paused", "queue")) == {
        (ODD_QUEUE,),
        (ODD_QUEUE + "2",),
    }
    assert scrape.values("queuectl_job_runs_total", "queue", "outcome") == {
        (ODD_QUEUE, "exited"): 1
    }
    assert scrape.values("queuectl_jobs", "queue", "state")[(ODD_QUEUE, "completed")] == 1
    scrape.assert_histograms_sound()
    # Escaped as the text format wants: \" and \\ inside the quotes, one sample a line.
    assert 'queue="we\\"ird\\\\ {q=\\"1\\"},le=+Inf é ☃ \\\\n"' in scrape.text
    for line in scrape.text.splitlines():
        assert line.startswith(("#", "queuectl_")), line


def test_without_the_web_extra_it_says_how_to_install_it(cli):
    # Python's own way to make a module unimportable: None in sys.modules.
    blocked = (
        "import sys; sys.modules['prometheus_client'] = None; "
        "from queuectl.cli import main; sys.argv = ['queuectl', 'metrics']; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocked],
        capture_output=True,
        text=True,
        cwd=cli.cwd,
        env=cli.env,
        timeout=60,
    )
    assert_error(result, 1, mentions=("web", "pip install '.[web]'"))


def test_help_names_the_extra(cli):
    assert "pip install '.[web]'" in assert_ok(cli("metrics", "--help"))


def test_render_gives_the_web_server_the_same_exposition(cli):
    """queuectl.web.metrics.render(queue) is what GET /metrics serves: the CLI's text, with the
    text format's content type."""
    from queuectl.queue import Queue
    from queuectl.web.metrics import render

    enqueue(cli, id="one", command="true", queue="a")
    assert_ok(cli("queue", "pause", "b"))
    run_burst(cli)
    with Queue.open(cli.db) as queue:
        body, content_type = render(queue)
    assert content_type.startswith("text/plain; version=") and "charset=utf-8" in content_type
    assert body.decode("utf-8") == Scrape(cli).text
