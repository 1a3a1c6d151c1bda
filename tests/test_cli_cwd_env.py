"""`enqueue --after/--unique-key/--cwd/--env` and the JSON fields through the real CLI, and jobs
with a cwd and an env run by real burst workers (SPEC §7), on every backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from clikit import all_jobs, assert_error, assert_ok, enqueue, job_ids, run_burst
from conftest import wait_for

from queuectl.cli import cli as root

HOSTILE = {
    "NEWLINES": "line one\nline two\r\n\n",
    "QUOTES": 'it\'s "double" `tick` $(echo no) ${HOME} \\ ;|&',
    "UNICODE": "h\u00e9llo \u2713 \U0001f600 \u202e",
    "EMPTY": "",
    "EQUALS": "a=b=c",
    "DASH": "--not-an-option",
}


def dump_env(names) -> str:
    """A command writing each variable's exact value to a file of its name, in its folder."""
    return "; ".join(f"printf '%s' \"${name}\" > {name}.out" for name in names)


def read_dumps(folder: Path, names) -> dict[str, str]:
    return {name: (folder / f"{name}.out").read_bytes().decode() for name in names}


# ---------------------------------------------------------------------------------------------
# enqueue: refused, nothing written


def test_a_reserved_env_name_is_refused(cli):
    for flag in ("QUEUECTL_X=1", "QUEUECTL_JOB_ID=x", "QUEUECTL_DB"):
        assert_error(cli("enqueue", "-c", "true", "--env", flag), mentions=["reserved"])
    assert_error(
        cli("enqueue", json.dumps({"command": "true", "env": {"QUEUECTL_ATTEMPT": "9"}})),
        mentions=["QUEUECTL_ATTEMPT", "reserved"],
    )
    assert job_ids(cli) == []


def test_env_of_an_unset_variable_is_refused(cli):
    stderr = assert_error(cli("enqueue", "-c", "true", "--env", "QCTL_SURELY_UNSET_VAR"))
    assert "QCTL_SURELY_UNSET_VAR is not set" in stderr
    assert job_ids(cli) == []


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--env", "=x"], "env names must not be empty"),
        (["--env", "A=1", "--env", "A=2"], "--env A is given twice"),
        (["--id", "me", "--after", "me"], "cannot wait for itself"),
        (["--after", ""], "after[0] must not be empty"),
        (["--unique-key", ""], "unique_key must not be empty"),
        (["--unique-key", "a\nb"], "control characters"),
        (["--cwd", ""], "cwd must not be empty"),
    ],
)
def test_bad_flags_are_refused_by_name(cli, flags, problem):
    stderr = assert_error(cli("enqueue", "-c", "true", *flags))
    assert problem in stderr
    assert job_ids(cli) == []


def test_a_relative_cwd_in_json_is_refused(cli):
    stderr = assert_error(cli("enqueue", json.dumps({"command": "pwd", "cwd": "sub/dir"})))
    assert "cwd must be an absolute folder" in stderr and "sub/dir" in stderr
    lines = '{"command": "true"}\n{"command": "pwd", "cwd": "rel"}\n'
    stderr = assert_error(cli("enqueue", "-", input=lines))
    assert stderr.startswith("Error: line 2: cwd must be an absolute folder"), stderr
    assert job_ids(cli) == []


def test_the_new_flags_do_not_mix_with_spec_json(cli):
    for flags in (["--env", "A=1"], ["--after", "x"], ["--cwd", "/"], ["--unique-key", "k"]):
        assert_error(cli("enqueue", '{"command": "true"}', *flags), code=2)
    assert job_ids(cli) == []


# ---------------------------------------------------------------------------------------------
# enqueue: what is stored


def test_flags_are_stored_as_the_json_fields(cli, tmp_path):
    first = enqueue(cli, command="true")
    out = cli.ok(
        "enqueue",
        "-c",
        "make",
        "--id",
        "j",
        "--after",
        first,
        "--after",
        first,
        "--unique-key",
        "build \u2713",
        "--cwd",
        "/srv/app",
        "--env",
        "MODE=release",
        "--env",
        "EMPTY=",
        "--env",
        "EQ=a=b",
    )
    assert out == "j\n"
    job = cli.json("show", "j")
    assert job["after"] == [first]
    assert job["unique_key"] == "build \u2713"
    assert job["cwd"] == "/srv/app"  # an absolute folder is kept as given, existing or not
    assert job["env"] == {"MODE": "release", "EMPTY": "", "EQ": "a=b"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [("sub", "sub"), ("./sub/deeper", "sub/deeper"), ("..", None), (".", "")],
)
def test_a_relative_cwd_flag_is_resolved_against_the_enqueuers_folder(cli, given, expected):
    job_id = cli.ok("enqueue", "-c", "pwd", "--cwd", given).strip()
    folder = cli.cwd.parent if expected is None else cli.cwd / expected
    assert cli.json("show", job_id)["cwd"] == str(folder).rstrip("/")


def test_env_name_alone_copies_the_enqueuers_value(cli):
    value = "copied \u2713\nwith a newline and 'quotes'"
    job_id = cli.ok("enqueue", "-c", "true", "--env", "QCTL_COPY_ME", env={"QCTL_COPY_ME": value})
    assert cli.json("show", job_id.strip())["env"] == {"QCTL_COPY_ME": value}
    # Set but empty is a value too.
    job_id = cli.ok("enqueue", "-c", "true", "--env", "QCTL_EMPTY", env={"QCTL_EMPTY": ""})
    assert cli.json("show", job_id.strip())["env"] == {"QCTL_EMPTY": ""}


# ---------------------------------------------------------------------------------------------
# running


def test_a_job_runs_in_its_cwd_and_sees_its_env(cli, tmp_path):
    folder = tmp_path / "work \u00e9"
    folder.mkdir()
    names = [*HOSTILE, "COPIED", "QUEUECTL_JOB_ID", "QUEUECTL_ATTEMPT"]
    command = "pwd > where.out; " + dump_env(names)
    from_flags = cli.ok(
        "enqueue",
        "-c",
        command,
        "--id",
        "flags",
        "--cwd",
        str(folder),
        *[arg for name, value in HOSTILE.items() for arg in ("--env", f"{name}={value}")],
        "--env",
        "COPIED",
        env={"COPIED": "from the enqueuer"},
    )
    assert from_flags == "flags\n"
    run_burst(cli)  # the worker's environment has no COPIED: the job's own value arrives
    job = cli.json("show", "flags")
    assert job["state"] == "completed", job
    assert (folder / "where.out").read_text() == f"{folder}\n"
    seen = read_dumps(folder, names)
    assert seen == {
        **HOSTILE,
        "COPIED": "from the enqueuer",
        "QUEUECTL_JOB_ID": "flags",
        "QUEUECTL_ATTEMPT": "1",
    }

    # The same through JSON, a job whose env does not leak into the next job of the worker.
    other = tmp_path / "other"
    other.mkdir()
    enqueue(cli, id="json", command=dump_env(HOSTILE), cwd=str(other), env=HOSTILE)
    enqueue(cli, id="plain", command=f"cd {other}; mkdir plain; cd plain; {dump_env(HOSTILE)}")
    run_burst(cli)
    assert read_dumps(other, HOSTILE) == HOSTILE
    assert set(read_dumps(other / "plain", HOSTILE).values()) == {""}


def test_a_missing_cwd_fails_the_run_as_not_started_under_the_retry_rules(cli, tmp_path):
    missing = tmp_path / "not here"
    enqueue(cli, id="lost", command="true", cwd=str(missing), max_retries=2)
    (tmp_path / "a file").write_text("")
    enqueue(cli, id="file", command="true", cwd=str(tmp_path / "a file"), max_retries=0)
    run_burst(cli)

    job = cli.json("show", "lost")
    assert job["state"] == "dead" and job["attempts"] == 3, job
    error = f"could not start: cannot run in folder {missing}: No such file or directory"
    assert job["last_error"] == error
    assert [run["outcome"] for run in job["runs"]] == ["not_started"] * 3
    assert {run["error"] for run in job["runs"]} == {error}
    assert {run["exit_code"] for run in job["runs"]} == {None}

    job = cli.json("show", "file")
    assert job["state"] == "dead" and job["attempts"] == 1, job
    assert job["runs"][0]["outcome"] == "not_started"
    assert job["last_error"].endswith(
        f"cannot run in folder {tmp_path / 'a file'}: Not a directory"
    )


def test_a_cwd_created_before_the_retry_lets_it_run(cli, tmp_path):
    later = tmp_path / "later"
    enqueue(cli, id="j", command="pwd > here.out", cwd=str(later), max_retries=3)
    run_burst(cli, env={"QUEUECTL_BACKOFF_BASE": "2"})  # the retry is due in 2s: not run now
    job = cli.json("show", "j")
    assert job["state"] == "failed" and job["runs"][0]["outcome"] == "not_started", job
    later.mkdir()

    def completed() -> bool:
        run_burst(cli)  # runs the retry once it is due
        return cli.json("show", "j")["state"] == "completed"

    wait_for(completed, timeout=30, interval=0.2)
    assert (later / "here.out").read_text() == f"{later}\n"


# ---------------------------------------------------------------------------------------------
# unique keys: the output (in-process, a store answering as SPEC §7 wants)


class HeldKeys:
    """A store stand-in for Queue.add*: a spec whose key is held gets the holder's id."""

    def __init__(self, held: dict[str, str]) -> None:
        self.held = held

    def config_items(self) -> dict[str, str]:
        return {}

    def add(self, specs):
        ids = []
        for spec in specs:
            holder = self.held.setdefault(spec.unique_key, spec.id) if spec.unique_key else None
            ids.append(holder or spec.id)
        return ids

    def close(self) -> None:
        pass


@pytest.fixture
def held(monkeypatch, tmp_path):
    from queuectl.queue import Queue

    keys = {"nightly": "existing-job"}
    monkeypatch.chdir(tmp_path)  # no .env of the project's is read
    monkeypatch.setattr(Queue, "open", classmethod(lambda cls, *a, **k: cls(HeldKeys(keys))))
    return keys


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(root, list(args), input=input, catch_exceptions=False)


def test_a_held_key_prints_the_holder_and_says_so_on_stderr(held):
    for args in (
        ["enqueue", "-c", "true", "--id", "new", "--unique-key", "nightly"],
        ["enqueue", '{"command": "true", "unique_key": "nightly"}'],
    ):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert result.stdout == "existing-job\n"
        assert result.stderr == "already queued: existing-job\n"
    result = invoke("enqueue", "-c", "true", "--id", "free", "--unique-key", "other")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "free\n", "")


def test_bulk_prints_the_holder_in_place_of_each_line_whose_key_is_held(held):
    lines = [
        {"command": "true", "id": "a", "unique_key": "k"},
        {"command": "true", "id": "b", "unique_key": "k"},
        {"command": "true", "id": "c", "unique_key": "nightly"},
        {"command": "true", "id": "d"},
    ]
    result = invoke("enqueue", "-", input="".join(json.dumps(line) + "\n" for line in lines))
    assert result.exit_code == 0, result.output
    assert result.stdout == "a\na\nexisting-job\nd\n"
    assert result.stderr == "already queued: a\nalready queued: existing-job\n"


# ---------------------------------------------------------------------------------------------
# unique keys on real stores: needs the store rules of SPEC §7


def test_a_second_job_with_a_held_key_is_not_written(cli):
    first = cli("enqueue", "-c", "true", "--id", "one", "--unique-key", "k")
    assert assert_ok(first) == "one\n"
    second = cli("enqueue", "-c", "true", "--id", "two", "--unique-key", "k")
    assert assert_ok(second) == "one\n"
    assert second.stderr == "already queued: one\n"
    bulk = cli("enqueue", "-", input='{"command": "true", "unique_key": "k"}\n')
    assert assert_ok(bulk) == "one\n" and bulk.stderr == "already queued: one\n"
    assert [job["id"] for job in all_jobs(cli)] == ["one"]
    run_burst(cli)
    assert assert_ok(cli("enqueue", "-c", "true", "--id", "three", "--unique-key", "k")) == (
        "three\n"
    )
