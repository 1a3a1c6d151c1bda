"""The store contract: schedules (SPEC §8). Adding, listing, pausing, resuming, removing, and
firing: each fire time becomes exactly one job, whoever fires it.

One suite run against every backend (the `timed` fixture in conftest.py: on SQLite the test
moves the store's clock; PostgreSQL reads the server's, so there time "passes" by moving the
schedule's next fire time back instead, as if no worker had run since). Helpers in storekit.py.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from storekit import OK, add, claim

from queuectl import cron
from queuectl.errors import QueueError, ScheduleExists, ScheduleNotFound
from queuectl.schedules import build_schedule, job_id
from queuectl.store import open_store

DEFAULTS = {"max-retries": 2, "job-timeout": 45.0}
YEARLY = "0 0 1 1 *"
YEAR = 366 * 86400.0


def new(timed, name: str = "s", expression: str = YEARLY, **fields):
    """Add a schedule as `schedule add` does; returns it as stored."""
    store = timed.store
    command = fields.pop("command", f"echo {name}")
    return store.add_schedule(build_schedule(name, expression, command, now=store.now(), **fields))


def table(store) -> str:
    return "queuectl_schedules" if store.target.startswith("postgres") else "schedules"


def set_columns(store, name: str, **values) -> None:
    """Change a schedule's row behind the store's back (numbers and plain text only)."""
    assignments = ", ".join(
        f"{column} = {value!r}" if isinstance(value, (int, float)) else f"{column} = '{value}'"
        for column, value in values.items()
    )
    store._transaction(
        lambda tx: tx.execute(f"UPDATE {table(store)} SET {assignments} WHERE name = '{name}'", {})
    )


def let_pass(timed, name: str, count: int = 1) -> list[float]:
    """Let `count` fire times of the schedule pass with no worker running; returns them (the
    last is the one a firing now enqueues). With an injected clock, time moves past them;
    otherwise the schedule is taken back to the `count` latest fire times before now."""
    store = timed.store
    schedule = store.get_schedule(name)
    if timed.clock is not None:
        first = schedule.next_run_at
        times = [first, *cron.next_times(schedule.cron, schedule.tz, first, count - 1)]
        timed.clock.time = max(timed.clock.time, times[-1] + 0.5)
        return times
    now = store.now()
    past = cron.next_times(schedule.cron, schedule.tz, now - (count + 1) * YEAR, 4 * count + 8)
    times = [moment for moment in past if moment <= now][-count:]
    set_columns(store, name, next_run_at=times[0], created_at=times[0] - 1)
    return times


def fire(store, defaults=DEFAULTS):
    return store.fire_schedules(defaults)


# ---------------------------------------------------------------------------------------------
# add, list, show, pause, resume, remove


def test_add_stores_the_schedule_due_at_its_first_fire_time_after_now(timed):
    store = timed.store
    before = store.now()
    added = new(timed, "nightly", "30 2 * * *", tz="Europe/Berlin", queue="q", priority=-2)
    after = store.now()
    assert added.next_run_at == cron.next_after("30 2 * * *", "Europe/Berlin", added.created_at)
    assert before - 0.01 <= added.created_at <= after + 0.01
    assert (added.queue, added.priority, added.max_retries, added.timeout) == ("q", -2, None, None)
    assert not added.paused and added.last_enqueued_at is None and added.last_job_id is None
    assert store.get_schedule("nightly") == added
    new(timed, "a-first", "@hourly", max_retries=0, timeout=0, overlap="skip")
    assert [s.name for s in store.list_schedules()] == ["a-first", "nightly"]
    got = store.get_schedule("a-first")
    assert (got.max_retries, got.timeout, got.overlap) == (0, 0.0, "skip")


def test_a_name_in_use_is_refused_and_nothing_is_written(timed):
    store = timed.store
    first = new(timed, "dup", "@daily", command="first")
    with pytest.raises(ScheduleExists, match="dup"):
        new(timed, "dup", "@hourly", command="second")
    assert store.list_schedules() == [first]


def test_unknown_names_are_errors(timed):
    store = timed.store
    for operation in (
        store.get_schedule,
        store.pause_schedule,
        store.resume_schedule,
        store.remove_schedule,
    ):
        with pytest.raises(ScheduleNotFound, match="nope"):
            operation("nope")


def test_remove_deletes_the_schedule_and_keeps_its_jobs(timed):
    store = timed.store
    new(timed, "gone")
    let_pass(timed, "gone")
    assert len(fire(store).enqueued) == 1
    store.remove_schedule("gone")
    assert store.list_schedules() == []
    assert len(store.list_jobs()) == 1
    after_removal = fire(store)
    assert after_removal.enqueued == [] and after_removal.wait is None
    with pytest.raises(ScheduleNotFound):
        store.remove_schedule("gone")


def test_pause_and_resume(timed):
    store = timed.store
    new(timed, "p", "*/5 * * * *")
    paused = store.pause_schedule("p")
    assert paused.paused and paused.next_run_at is None
    assert store.pause_schedule("p") == paused  # pausing twice changes nothing
    resumed_at = store.now()
    resumed = store.resume_schedule("p")
    assert not resumed.paused
    assert resumed.next_run_at > resumed_at - 0.01
    assert resumed.next_run_at == cron.next_after("*/5 * * * *", "UTC", resumed.next_run_at - 300)
    assert store.resume_schedule("p") == resumed  # resuming a running one changes nothing


# ---------------------------------------------------------------------------------------------
# firing


def test_nothing_fires_before_the_first_fire_time_after_it_was_added(timed):
    store = timed.store
    added = new(timed, "early", "*/10 * * * *")
    firing = fire(store)
    assert firing.enqueued == [] and store.list_jobs() == []
    # The wait is measured on the store's clock, to the fire time.
    assert firing.wait == pytest.approx(added.next_run_at - store.now(), abs=1.0)
    if timed.clock is not None:
        timed.clock.time = added.next_run_at - 0.001
        assert fire(store).enqueued == []
        timed.clock.time = added.next_run_at
        assert fire(store).enqueued == [job_id("early", added.next_run_at)]


def test_firing_enqueues_the_fire_times_job_with_the_schedules_fields(timed):
    store = timed.store
    new(timed, "full", queue="nightly", priority=7, max_retries=1, timeout=12.5)
    new(timed, "plain")
    (due,) = let_pass(timed, "full")
    let_pass(timed, "plain")
    fired_at = store.now()
    firing = fire(store)
    expected = {job_id("full", due), job_id("plain", due)}
    assert set(firing.enqueued) == expected and firing.skipped == firing.errors == []
    job = store.get(job_id("full", due))
    assert job.id.endswith("@" + cron_text(due))
    assert (job.command, job.queue, job.priority) == ("echo full", "nightly", 7)
    assert (job.max_retries, job.timeout, job.state.value) == (1, 12.5, "pending")
    assert job.run_at == pytest.approx(due, abs=0.01)  # due at its fire time
    plain = store.get(job_id("plain", due))  # the config's defaults in effect at fire time
    assert (plain.queue, plain.priority, plain.max_retries, plain.timeout) == (
        "default",
        0,
        DEFAULTS["max-retries"],
        DEFAULTS["job-timeout"],
    )
    schedule = store.get_schedule("full")
    assert schedule.last_job_id == job.id
    assert schedule.last_enqueued_at == pytest.approx(fired_at, abs=1.0)
    assert schedule.next_run_at == cron.next_after(YEARLY, "UTC", due)
    # Exactly once: firing again enqueues nothing.
    assert fire(store).enqueued == []
    assert len(store.list_jobs()) == 2


def cron_text(moment: float) -> str:
    return job_id("", moment)[1:]


def test_after_several_missed_fire_times_only_the_latest_is_enqueued(timed):
    store = timed.store
    new(timed, "catch", "@yearly")
    missed = let_pass(timed, "catch", 3)
    assert fire(store).enqueued == [job_id("catch", missed[-1])]
    assert [job.id for job in store.list_jobs()] == [job_id("catch", missed[-1])]
    assert store.get_schedule("catch").next_run_at > store.now()


def test_fire_times_while_paused_are_never_enqueued(timed):
    store = timed.store
    new(timed, "held", "@yearly")
    let_pass(timed, "held", 2)
    store.pause_schedule("held")
    assert fire(store).enqueued == []
    resumed = store.resume_schedule("held")
    assert resumed.next_run_at > store.now()
    assert fire(store).enqueued == [] and store.list_jobs() == []
    if timed.clock is not None:
        # The first fire time after the resume is enqueued, and only it.
        (due,) = let_pass(timed, "held")
        assert due == resumed.next_run_at
        assert fire(store).enqueued == [job_id("held", due)]


def test_a_fire_time_whose_job_id_exists_is_skipped_without_error(timed):
    store = timed.store
    new(timed, "taken")
    (due,) = let_pass(timed, "taken")
    add(store, job_id("taken", due), command="echo by hand")
    firing = fire(store)
    assert firing.enqueued == [] and firing.skipped == [job_id("taken", due)]
    assert store.get(job_id("taken", due)).command == "echo by hand"
    schedule = store.get_schedule("taken")
    assert schedule.next_run_at > store.now() and schedule.last_job_id is None


def test_overlap_skip_skips_fire_times_while_the_previous_job_is_unfinished(timed):
    if timed.clock is None:
        pytest.skip("needs fire times that pass one after another: an injected clock")
    store = timed.store
    new(timed, "once", "*/5 * * * *", overlap="skip")
    (first,) = let_pass(timed, "once")
    assert fire(store).enqueued == [job_id("once", first)]
    (second,) = let_pass(timed, "once")
    held = claim(store, queues=["default"])
    assert held.job.id == job_id("once", first)  # running: the next fire time is skipped
    firing = fire(store)
    assert firing.enqueued == [] and firing.skipped == [job_id("once", second)]
    assert store.get_schedule("once").last_job_id == job_id("once", first)
    assert store.finish(held, OK, None).held
    (third,) = let_pass(timed, "once")
    assert fire(store).enqueued == [job_id("once", third)]
    # overlap allow (the default) enqueues while the previous job is unfinished.
    new(timed, "many", "*/5 * * * *")
    for _ in range(2):
        let_pass(timed, "many")
        assert len(fire(store).enqueued) == 1
    assert len([job for job in store.list_jobs() if job.id.startswith("many@")]) == 2


def fire_at_once(timed, firers: int) -> list[str]:
    """`firers` stores, each with its own connection, fire due schedules at the same moment
    (a barrier releases them); every job id any of them says it enqueued."""
    gate = threading.Barrier(firers)
    told: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        own = open_store(timed.store.target, clock=timed.clock)
        try:
            gate.wait(timeout=30)
            told.extend(own.fire_schedules(DEFAULTS).enqueued)
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=work) for _ in range(firers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return told


def test_racing_firers_enqueue_each_fire_time_exactly_once(timed):
    # Six firers at once on eight due schedules: each fire time becomes one job, and exactly
    # one firer is told it enqueued it (the others lost the compare-and-set).
    store = timed.store
    names = [f"race-{n}" for n in range(8)]
    for name in names:
        new(timed, name)
    for _ in range(3 if timed.clock is not None else 1):
        dues = {name: let_pass(timed, name)[0] for name in names}
        told = fire_at_once(timed, 6)
        expected = sorted(job_id(name, due) for name, due in dues.items())
        assert sorted(told) == expected
        assert set(Counter(told).values()) == {1}
        assert set(expected) <= {job.id for job in store.list_jobs()}


def test_a_schedule_this_host_cannot_compute_does_not_hold_up_the_others(timed):
    store = timed.store
    new(timed, "odd")
    new(timed, "fine")
    let_pass(timed, "odd")
    (due,) = let_pass(timed, "fine")
    set_columns(store, "odd", tz="Mars/Base")  # as from a host with a newer zone database
    firing = fire(store)
    assert firing.enqueued == [job_id("fine", due)]
    assert len(firing.errors) == 1 and "'odd'" in firing.errors[0]
    assert "Mars/Base" in firing.errors[0]
    store.pause_schedule("odd")
    with pytest.raises(QueueError, match="Mars/Base"):
        store.resume_schedule("odd")  # an error, not a traceback; nothing changed
    assert store.get_schedule("odd").paused
