"""The SPEC §7 spec fields as pure rules: `after`, `unique_key`, `cwd` and `env` are checked with
the other fields, each refusal a one-line SpecError naming the problem; and what `Queue.add*`
tells the CLI when a spec's unique key is held (a store that answers by the contract)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from queuectl.models import MAX_ID_LENGTH
from queuectl.queue import Enqueued, Queue
from queuectl.specs import SpecError, build_spec, parse_spec_json

DEFAULTS = {"max-retries": 3, "job-timeout": 300.0}


def spec(**fields):
    return build_spec({"command": "echo hi", **fields}, DEFAULTS)


def refusal(**fields) -> str:
    with pytest.raises(SpecError) as info:
        spec(**fields)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# defaults


def test_the_new_fields_default_to_nothing():
    job = spec()
    assert job.after == ()
    assert job.unique_key is None and job.cwd is None and job.env is None


def test_null_is_the_default_as_for_every_other_field():
    job = spec(after=None, unique_key=None, cwd=None, env=None)
    assert (job.after, job.unique_key, job.cwd, job.env) == ((), None, None, None)


def test_every_new_field_from_json_at_once():
    text = (
        '{"command": "make", "id": "j", "after": ["a", "b"], "unique_key": "build main",'
        ' "cwd": "/srv/app", "env": {"MODE": "release", "EMPTY": ""}}'
    )
    job = build_spec(parse_spec_json(text), DEFAULTS)
    assert job.after == ("a", "b")
    assert job.unique_key == "build main"
    assert job.cwd == "/srv/app"
    assert job.env == {"MODE": "release", "EMPTY": ""}


# ---------------------------------------------------------------------------------------------
# after


def test_after_keeps_the_order_and_drops_repeats():
    assert spec(after=["b", "a", "b", "c", "a"]).after == ("b", "a", "c")


def test_an_empty_after_is_no_dependency():
    assert spec(after=[]).after == ()


@pytest.mark.parametrize("value", ["a", 1, True, {"a": 1}])
def test_after_must_be_an_array(value):
    assert "after must be an array of job ids" in refusal(after=value)


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (1, "after[1] must be a string, got a number"),
        (None, "after[1] must be a string, got null"),
        (["x"], "after[1] must be a string, got an array"),
        ("", "after[1] must not be empty"),
        ("a\nb", "after[1] must not contain control characters"),
        ("x" * (MAX_ID_LENGTH + 1), "after[1] is 201 characters long; the limit is 200"),
        ("a\ud800", "after[1] is not valid text"),
    ],
)
def test_each_id_in_after_is_checked_as_an_id(item, problem):
    assert problem in refusal(after=["ok", item])


def test_a_job_cannot_wait_for_itself():
    message = refusal(id="me", after=["other", "me"])
    assert "'me'" in message and "cannot wait for itself" in message


def test_a_generated_id_is_never_in_after():
    job = spec(after=["a"])
    assert job.id not in job.after


# ---------------------------------------------------------------------------------------------
# unique_key


def test_unique_key_is_kept_as_given():
    assert spec(unique_key="nightly ✓ report").unique_key == "nightly ✓ report"
    assert spec(unique_key="k" * 200).unique_key == "k" * 200


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (1, "unique_key must be a string, got a number"),
        (["k"], "unique_key must be a string, got an array"),
        ("", "unique_key must not be empty"),
        ("k" * 201, "unique_key is 201 characters long; the limit is 200"),
        ("a\tb", "unique_key must not contain control characters"),
        ("a\x00b", "unique_key must not contain control characters"),
        ("a\x85b", "unique_key must not contain control characters"),
        ("a\u2028b", "unique_key must not contain control characters"),
        ("a\udc80", "unique_key is not valid text"),
    ],
)
def test_unique_key_is_checked_like_an_id(value, problem):
    assert problem in refusal(unique_key=value)


# ---------------------------------------------------------------------------------------------
# cwd


@pytest.mark.parametrize(
    "folder",
    ["/", "/srv/app", "/a b/\u00e9\u2713", "/with\nnewline", "C:\\work", "D:/x", "\\\\h\\s"],
)
def test_absolute_folders_are_accepted_as_given(folder):
    # Not checked for existence: it may exist only on the workers' hosts (SPEC §7). Windows
    # forms are absolute too: a worker elsewhere may be a Windows host.
    assert spec(cwd=folder).cwd == folder


@pytest.mark.parametrize("folder", ["rel", "./x", "../x", "x/y", "~", "~/x", "C:", "C:x", "1:\\x"])
def test_a_relative_cwd_in_json_is_an_error(folder):
    message = refusal(cwd=folder)
    assert "cwd must be an absolute folder" in message and repr(folder) in message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (1, "cwd must be a string, got a number"),
        (["/x"], "cwd must be a string, got an array"),
        ("", "cwd must not be empty"),
        ("/x\x00y", "cwd must not contain NUL characters"),
        ("/" + "x" * 4096, "cwd is 4097 characters long; the limit is 4096"),
        ("/x\ud800", "cwd is not valid text"),
    ],
)
def test_bad_cwd_values(value, problem):
    assert problem in refusal(cwd=value)


# ---------------------------------------------------------------------------------------------
# env


def test_env_values_are_kept_byte_for_byte():
    hostile = {
        "NEWLINES": "a\nb\r\nc",
        "QUOTES": 'it\'s "quoted" `and` $(not run) \\',
        "UNICODE": "h\u00e9llo \u2713 \U0001f600",
        "EMPTY": "",
        "EQUALS": "a=b=c",
        "lower_case": "ok",
        "WITH SPACE": "ok",
    }
    assert spec(env=hostile).env == hostile


def test_an_empty_env_is_none():
    assert spec(env={}).env is None


@pytest.mark.parametrize("value", ["A=1", ["A=1"], 1, True])
def test_env_must_be_an_object(value):
    assert "env must be an object of names to strings" in refusal(env=value)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "env names must not be empty"),
        ("A=B", "env name 'A=B' must not contain '='"),
        ("=A", "env name '=A' must not contain '='"),
        ("A\x00", "env name 'A\\x00' must not contain NUL characters"),
        ("QUEUECTL_JOB_ID", "env name 'QUEUECTL_JOB_ID' is reserved"),
        ("QUEUECTL_ATTEMPT", "env name 'QUEUECTL_ATTEMPT' is reserved"),
        ("QUEUECTL_", "env name 'QUEUECTL_' is reserved"),
        ("QUEUECTL_DB", "names starting with QUEUECTL_ are set by the worker"),
        ("A\ud800", "is not valid text"),
    ],
)
def test_bad_env_names(name, problem):
    assert problem in refusal(env={"OK": "1", name: "1"})


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (1, "env 'A' must be a string, got a number"),
        (None, "env 'A' must be a string, got null"),
        (True, "env 'A' must be a string, got a boolean"),
        (["x"], "env 'A' must be a string, got an array"),
        ("a\x00b", "env 'A' must not contain NUL characters"),
        ("a\udfff", "env 'A' is not valid text"),
    ],
)
def test_bad_env_values(value, problem):
    assert problem in refusal(env={"A": value})


def test_a_name_merely_containing_queuectl_is_allowed():
    assert spec(env={"MY_QUEUECTL_X": "1", "queuectl_x": "2"}).env == {
        "MY_QUEUECTL_X": "1",
        "queuectl_x": "2",
    }


def test_a_repeated_env_name_in_json_is_refused():
    with pytest.raises(SpecError, match="key 'A' is given twice"):
        parse_spec_json('{"command": "x", "env": {"A": "1", "A": "2"}}')


@given(
    st.dictionaries(
        st.text(min_size=1).filter(lambda n: "=" not in n and not n.startswith("QUEUECTL_")),
        st.text(),
        max_size=5,
    )
)
def test_any_env_without_nul_or_surrogates_round_trips(env):
    def clean(text: str) -> bool:
        return "\x00" not in text and not any(0xD800 <= ord(ch) < 0xE000 for ch in text)

    if all(clean(name) and clean(value) for name, value in env.items()):
        assert spec(env=env).env == (env or None)
    else:
        with pytest.raises(SpecError):
            spec(env=env)


# ---------------------------------------------------------------------------------------------
# Queue.add*: which ids were there already


class KeyedStore:
    """The part of a store Queue.add* uses, answering as SPEC §7 wants: a spec whose
    unique_key is held (by an existing job or an earlier spec) gets the holder's id."""

    def __init__(self, held: dict[str, str]) -> None:
        self.held = dict(held)
        self.written: list[str] = []

    def config_items(self) -> dict[str, str]:
        return {}

    def add(self, specs):
        ids = []
        for job in specs:
            if job.unique_key in self.held:
                ids.append(self.held[job.unique_key])
                continue
            if job.unique_key is not None:
                self.held[job.unique_key] = job.id
            self.written.append(job.id)
            ids.append(job.id)
        return ids


def test_add_says_when_the_key_is_held():
    queue = Queue(KeyedStore({"nightly": "old"}))
    assert queue.add({"command": "x", "id": "new", "unique_key": "nightly"}) == Enqueued(
        "old", True
    )
    assert queue.add({"command": "x", "id": "free", "unique_key": "other"}) == Enqueued(
        "free", False
    )
    assert queue.add_json('{"command": "x", "id": "again", "unique_key": "other"}') == (
        Enqueued("free", True)
    )
    assert queue.enqueue({"command": "x", "unique_key": "nightly"}) == "old"


def test_add_lines_marks_each_line_whose_key_is_held():
    store = KeyedStore({"held": "existing"})
    lines = [
        '{"command": "x", "id": "a", "unique_key": "k"}',
        '{"command": "x", "id": "b", "unique_key": "k"}',
        "",
        '{"command": "x", "id": "c", "unique_key": "held"}',
        '{"command": "x", "id": "d"}',
    ]
    assert Queue(store).add_lines(lines) == [
        Enqueued("a", False),
        Enqueued("a", True),
        Enqueued("existing", True),
        Enqueued("d", False),
    ]
    assert store.written == ["a", "d"]
    assert Queue(KeyedStore({})).enqueue_lines(lines[:2]) == ["a", "a"]
