"""Golden tests of the `--json` documents the PowerShell module reads (SPEC §10): the real CLI on
a real store with real jobs run by a real worker, checked for every field name the module and
tests/test_core_flow.ps1 read, and for arrays where the module unrolls arrays.
"""

from __future__ import annotations

import re

import click
import pskit

from queuectl.cli import cli as root_group

# What the module reads from each document (besides handing the objects to the user).
MODULE_READS = {
    ("list",): {"id", "state", "queue"},
    ("dlq", "list"): {"id"},
    ("queue", "list"): {"name", "paused"},
    ("schedule", "list"): {"name"},
}
STATUS_FIELDS = {"store", "jobs", "workers", "paused_queues"}
RUN_FIELDS = {"attempt", "worker_id", "host", "started_at", "finished_at", "outcome", "exit_code"}


def keys_everywhere(document) -> set[str]:
    """Every key of every object in a JSON document, at any depth."""
    if isinstance(document, dict):
        return set(document) | {k for v in document.values() for k in keys_everywhere(v)}
    if isinstance(document, list):
        return {k for v in document for k in keys_everywhere(v)}
    return set()


def module_list(name: str) -> list[str]:
    """The strings of `$script:NAME = @(...)`, set in exactly one of the module's files."""
    found = [
        lists[name]
        for path in pskit.module_scripts()
        if name in (lists := pskit.script_lists(pskit.parse(path)))
    ]
    assert len(found) == 1, (name, found)
    assert None not in found[0], name
    return found[0]


def documents(cli) -> dict[tuple[str, ...], object]:
    """Every --json document the module reads, from a store with a completed job, a dead one,
    a dependent one, a paused queue and a schedule."""
    cli.ok("config", "set", "backoff-base", "0")
    cli.ok("enqueue", "--id", "ok", "--command", "echo hello")
    cli.ok("enqueue", "--id", "bad", "--command", "exit 3", "--max-retries", "1")
    cli.ok("enqueue", "-", input='{"id": "dep", "command": "echo dep", "after": ["ok"]}\n')
    cli.ok("queue", "pause", "held")
    cli.ok("enqueue", "--id", "held1", "--command", "echo held", "--queue", "held")
    cli.ok("schedule", "add", "nightly", "@daily", "--command", "echo nightly")
    cli.ok("worker", "start", "--burst", "--quiet")
    return {
        ("list",): cli.json("list", "--limit", "0"),
        ("show",): cli.json("show", "bad"),
        ("status",): cli.json("status"),
        ("dlq", "list"): cli.json("dlq", "list"),
        ("config", "list"): cli.json("config", "list"),
        ("queue", "list"): cli.json("queue", "list"),
        ("schedule", "list"): cli.json("schedule", "list"),
        ("schedule", "show"): cli.json("schedule", "show", "nightly"),
    }


def test_the_json_the_module_reads(cli):
    docs = documents(cli)

    # Arrays where the module unrolls one object per element.
    for path in [("list",), ("dlq", "list"), ("queue", "list"), ("schedule", "list")]:
        assert isinstance(docs[path], list) and docs[path], path
        for item in docs[path]:
            assert isinstance(item, dict), path
            assert MODULE_READS[path] <= set(item), (path, sorted(item))
    jobs = {job["id"]: job for job in docs[("list",)]}
    assert {jobs["ok"]["state"], jobs["dep"]["state"], jobs["bad"]["state"]} == {
        "completed",
        "dead",
    }
    assert jobs["dep"]["after"] == ["ok"]
    assert jobs["held1"]["state"] == "pending"
    assert [job["id"] for job in docs[("dlq", "list")]] == ["bad"]

    # Single objects.
    shown = docs[("show",)]
    assert isinstance(shown, dict) and shown["state"] == "dead" and shown["exit_code"] == 3
    assert isinstance(shown["runs"], list) and len(shown["runs"]) == 2
    for run in shown["runs"]:
        assert set(run) >= RUN_FIELDS, sorted(run)
    assert shown["runs"][0]["outcome"] == "exited"

    status = docs[("status",)]
    assert set(status) >= STATUS_FIELDS
    assert isinstance(status["workers"], list) and isinstance(status["paused_queues"], list)
    assert status["paused_queues"] == ["held"]
    assert set(status["jobs"]) == set(module_list("QueuectlStates"))
    assert status["jobs"]["dead"] == 1 and status["jobs"]["completed"] == 2

    config = docs[("config", "list")]
    assert isinstance(config, dict)
    assert list(config) == module_list("QueuectlConfigKeys")  # the -Key completer's list
    for key, setting in config.items():
        assert set(setting) == {"value", "source"}, key  # Get-QueuectlConfig's Value, Source
    assert config["backoff-base"] == {"value": "0", "source": "store"}

    queues = {queue["name"]: queue for queue in docs[("queue", "list")]}
    assert queues["held"]["paused"] is True and queues["held"]["limit"] is None
    assert queues["default"]["paused"] is False

    schedule = docs[("schedule", "show")]
    assert isinstance(schedule["next_runs"], list) and len(schedule["next_runs"]) == 5

    # Every lowercase member the module or the core-flow script reads ($_.id, $status.jobs.dead)
    # is a field of one of these documents.
    everything = set().union(*(keys_everywhere(doc) for doc in docs.values()))
    read = set()
    for path in (*pskit.module_scripts(), pskit.CORE_FLOW):
        read |= pskit.member_names(pskit.parse(path))
    assert {"id", "name", "state", "runs", "jobs"} <= read  # the extraction finds them
    assert read <= everything, sorted(read - everything)


def test_the_state_lists_match_the_cli():
    """-State's ValidateSet and completer offer exactly the states `list --state` accepts."""
    ctx = click.Context(root_group, info_name="queuectl")
    state = next(p for p in root_group.get_command(ctx, "list").params if p.name == "state")
    choices = list(state.type.choices)
    assert module_list("QueuectlStates") == choices
    declared = pskit.module_functions()["Get-QueuectlJob"].parameters["State"]
    validate_set = re.search(r"\[ValidateSet\(([^)]*)\)\]", declared)
    assert validate_set, declared
    assert re.findall(r"'(\w+)'", validate_set.group(1)) == choices
