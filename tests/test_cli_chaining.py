"""Dependencies through the CLI (SPEC §7): `--after`, `enqueue -` with `after`, the `waiting`
state in `list` and `status`, and a chain run by real workers, on every backend."""

from __future__ import annotations

import json

from clikit import assert_error, assert_ok, enqueue, job_ids, make_dead, run_burst
from conftest import CLI


def states(cli: CLI) -> dict[str, str]:
    return {job["id"]: job["state"] for job in cli.json("list", "--limit", "0")}


def test_a_chain_whose_middle_job_dies_runs_the_first_and_cancels_the_last(cli: CLI) -> None:
    enqueue(cli, id="build", command="echo built")
    assert_ok(
        cli("enqueue", "--id", "test", "--after", "build", "--max-retries", "0", "-c", "exit 3")
    )
    assert_ok(cli("enqueue", "--id", "deploy", "--after", "test", "-c", "echo deployed"))
    assert job_ids(cli, "--state", "waiting") == ["test", "deploy"]
    assert cli.json("status")["jobs"]["waiting"] == 2
    run_burst(cli)
    assert states(cli) == {"build": "completed", "test": "dead", "deploy": "canceled"}
    deploy = cli.json("show", "deploy")
    assert deploy["last_error"] == "dependency test ended dead"
    assert deploy["after"] == ["test"]
    assert deploy["runs"] == []  # never ran


def test_a_batch_may_run_after_an_earlier_line_but_not_a_later_one(cli: CLI) -> None:
    lines = [{"id": "a", "command": "true"}, {"id": "b", "command": "true", "after": ["a"]}]
    out = assert_ok(cli("enqueue", "-", input="".join(json.dumps(x) + "\n" for x in lines)))
    assert out.split() == ["a", "b"]
    forward = [{"id": "c", "command": "true", "after": ["d"]}, {"id": "d", "command": "true"}]
    result = cli("enqueue", "-", input="".join(json.dumps(x) + "\n" for x in forward))
    assert_error(result, mentions=["later line"])
    assert job_ids(cli) == ["a", "b"]
    run_burst(cli)
    assert states(cli) == {"a": "completed", "b": "completed"}


def test_an_unknown_or_dead_dependency_is_refused_and_nothing_written(cli: CLI) -> None:
    assert_error(cli("enqueue", "--after", "nope", "-c", "true"), mentions=["'nope'", "no such"])
    make_dead(cli, "gone")
    result = cli("enqueue", "--id", "x", "--after", "gone", "-c", "true")
    assert_error(result, mentions=["'gone'", "already ended dead"])
    assert job_ids(cli) == ["gone"]


def test_cancel_of_a_waiting_job_cancels_its_dependents(cli: CLI) -> None:
    enqueue(cli, id="a", command="true")
    assert_ok(cli("enqueue", "--id", "b", "--after", "a", "-c", "true"))
    assert_ok(cli("enqueue", "--id", "c", "--after", "b", "-c", "true"))
    assert cli.ok("cancel", "b").strip() == "canceled b, was waiting"
    assert states(cli) == {"a": "pending", "b": "canceled", "c": "canceled"}
