"""`queuectl config` (SPEC §6): list/get/set/unset, refused keys and values, environment
overrides, and defaults copied into jobs at enqueue time (SPEC §2)."""

from __future__ import annotations

from clikit import all_jobs, assert_error, assert_ok, each_case, enqueue

DEFAULTS = {
    "max-retries": 3,
    "backoff-base": 2,
    "backoff-max": 3600,
    "job-timeout": 300,
    "lease-seconds": 30,
    "poll-interval": 1.0,
    "retention": 0,  # a DURATION (SPEC §8); 0 = keep forever
}


def config_table(cli, env: dict | None = None) -> dict[str, tuple[str, str]]:
    """`config list` as {key: (value, source)}, checking it lists every key once."""
    lines = assert_ok(cli("config", "list", env=env)).splitlines()
    rows = {}
    for line in lines[1:]:  # the first line is the header
        key, value, source = line.split()
        rows[key] = (value, source)
    assert set(rows) == set(DEFAULTS), lines
    return rows


def config_get(cli, key: str, env: dict | None = None) -> str:
    out = assert_ok(cli("config", "get", key, env=env))
    assert out.count("\n") == 1, out
    return out.strip()


def test_config_defaults(cli):
    rows = config_table(cli)
    for key, default in DEFAULTS.items():
        value, source = rows[key]
        assert float(value) == default and source == "default", (key, rows[key])
        assert float(config_get(cli, key)) == default, key
    as_json = cli.json("config", "list")
    assert {key: entry["source"] for key, entry in as_json.items()} == dict.fromkeys(
        DEFAULTS, "default"
    )


def test_config_set_get_unset(cli):
    assert_ok(cli("config", "set", "max-retries", "5"))
    assert_ok(cli("config", "set", "backoff-base", "1.5"))
    assert config_get(cli, "max-retries") == "5"
    assert float(config_get(cli, "backoff-base")) == 1.5
    rows = config_table(cli)
    assert rows["max-retries"] == ("5", "store")
    assert rows["backoff-base"][1] == "store"
    assert rows["job-timeout"][1] == "default"

    assert_ok(cli("config", "unset", "max-retries"))
    assert config_get(cli, "max-retries") == "3"
    assert config_table(cli)["max-retries"] == ("3", "default")
    assert config_table(cli)["backoff-base"][1] == "store"
    # Unsetting a key that has no stored value is not an error.
    assert_ok(cli("config", "unset", "max-retries"))


def test_config_unknown_key(sqlite_cli):
    cases = {
        "get": (["get", "nope"],),
        "set": (["set", "nope", "1"],),
        "unset": (["unset", "nope"],),
        "spec field name": (["get", "max_retries"],),  # the spec field is not the config key
        "wrong case": (["set", "MAX-RETRIES", "1"],),
    }
    each_case(cases, lambda args: assert_error(sqlite_cli("config", *args), 1, [args[1]]))
    assert {source for _value, source in config_table(sqlite_cli).values()} == {"default"}


BAD_VALUES = [
    ("max-retries", "-1"),
    ("max-retries", "1.5"),
    ("max-retries", "many"),
    ("backoff-base", "abc"),
    ("backoff-base", ""),
    ("backoff-max", "-1"),
    ("job-timeout", "nan"),
    ("job-timeout", "inf"),
    ("lease-seconds", "0"),
    ("poll-interval", "0"),
    # Numbers Python reads but that are not plain ASCII decimals (SPEC §6).
    ("max-retries", "٣"),
    ("max-retries", "３"),
    ("max-retries", "+5"),
    ("backoff-base", "1_000"),
    ("backoff-base", "1e3"),
    ("backoff-max", "٣٦٠٠"),
    # Values no worker can live with: leases shorter than scheduling delays, a busy loop.
    ("lease-seconds", "0.0001"),
    ("lease-seconds", "0.99999999999999999"),  # float() rounds it up to 1.0
    ("poll-interval", "0.0099999999999999999"),
    ("lease-seconds", "0.5"),
    ("poll-interval", "1e-9"),
    ("poll-interval", "0.001"),
    # retention is a DURATION (SPEC §8)
    ("retention", "-1"),
    ("retention", "1w"),
    ("retention", "abc"),
    ("retention", ""),
    ("retention", "7 d"),
    ("retention", "1e3"),
    ("retention", "7D"),
    ("retention", "٣d"),
    ("retention", "inf"),
]


def test_config_set_bad_values_are_refused_and_nothing_stored(sqlite_cli):
    def check(key: str, value: str) -> None:
        assert_error(sqlite_cli("config", "set", key, value), 1, mentions=[key])

    each_case({f"{key}={value!r}": (key, value) for key, value in BAD_VALUES}, check)
    rows = config_table(sqlite_cli)
    assert rows == {key: (str(default), "default") for key, default in DEFAULTS.items()}


CANONICAL = [
    ("max-retries", "007", "7"),
    ("backoff-base", "2.50", "2.5"),
    ("backoff-max", "0", "0"),
    ("job-timeout", "0600.000", "600.0"),
    ("lease-seconds", " 1 ", "1"),  # the smallest lease
    ("poll-interval", "0.010", "0.01"),  # the shortest poll
    ("retention", "007d", "7d"),  # a DURATION keeps its unit
]


def test_config_values_are_stored_and_shown_canonically(cli):
    for key, typed, shown in CANONICAL:
        assert assert_ok(cli("config", "set", key, typed)) == f"{key} = {shown}\n"
    rows = config_table(cli)
    for key, _typed, shown in CANONICAL:
        assert rows[key] == (shown, "store"), key
        assert config_get(cli, key) == shown
    assert cli.json("config", "list")["max-retries"] == {"value": "7", "source": "store"}
    # An override is the value in effect, shown the same way.
    assert config_get(cli, "max-retries", env={"QUEUECTL_MAX_RETRIES": "0042"}) == "42"
    assert_error(cli("config", "get", "max-retries", env={"QUEUECTL_MAX_RETRIES": "٣"}), 1)
    assert config_get(cli, "retention", env={"QUEUECTL_RETENTION": " 1.50h "}) == "1.5h"
    assert_error(cli("config", "get", "retention", env={"QUEUECTL_RETENTION": "1w"}), 1)


def test_config_set_bad_value_on_every_backend(cli):
    assert_error(cli("config", "set", "lease-seconds", "0"), 1, mentions=["lease-seconds"])
    assert config_table(cli)["lease-seconds"] == ("30", "default")


def test_config_set_negative_value_after_double_dash_is_refused(cli):
    assert_error(cli("config", "set", "lease-seconds", "--", "-5"), 1, mentions=["lease-seconds"])
    assert config_table(cli)["lease-seconds"] == ("30", "default")


def test_config_usage_errors(sqlite_cli):
    assert_error(sqlite_cli("config", "set", "max-retries"), 2)
    assert_error(sqlite_cli("config", "get"), 2)
    assert_error(sqlite_cli("config", "nonsense"), 2)


def test_env_override_wins_for_this_process(cli):
    assert_ok(cli("config", "set", "max-retries", "5"))
    env = {"QUEUECTL_MAX_RETRIES": "7"}
    assert config_get(cli, "max-retries", env=env) == "7"
    assert config_table(cli, env=env)["max-retries"] == ("7", "env")
    # Only for that process: the stored value is untouched.
    assert config_get(cli, "max-retries") == "5"
    assert config_table(cli)["max-retries"] == ("5", "store")
    # The override is also the default copied into jobs enqueued by that process.
    assert_ok(cli("enqueue", '{"id": "e1", "command": "true"}', env=env))
    assert cli.json("show", "e1")["max_retries"] == 7


def test_bad_env_override_is_a_clear_error(cli):
    result = cli("enqueue", '{"command": "true"}', env={"QUEUECTL_MAX_RETRIES": "lots"})
    assert_error(result, 1, mentions=["QUEUECTL_MAX_RETRIES"])
    assert all_jobs(cli) == []


def test_bad_env_override_is_an_error_for_config_get_and_list_too(cli):
    """`config get` prints the value in effect (SPEC §4): a bad override is none, as for
    every other command, whichever key is asked for."""
    for env in ({"QUEUECTL_MAX_RETRIES": "bad"}, {"QUEUECTL_POLL_INTERVAL": "-1"}):
        (variable,) = env
        assert_error(cli("config", "get", "max-retries", env=env), 1, mentions=[variable])
        assert_error(cli("config", "list", env=env), 1, mentions=[variable])
        assert_error(cli("config", "list", "--json", env=env), 1, mentions=[variable])
    assert_error(cli("config", "get", "max-retries", env={"QUEUECTL_MAX_RETRIES": ""}), 1)
    # Fixing the store is still possible under a bad override, and needs no override.
    assert_ok(cli("config", "set", "max-retries", "4", env={"QUEUECTL_MAX_RETRIES": "bad"}))
    assert config_get(cli, "max-retries") == "4"


def test_enqueue_copies_config_defaults_at_enqueue_time(cli):
    assert_ok(cli("config", "set", "max-retries", "5"))
    assert_ok(cli("config", "set", "job-timeout", "42"))
    enqueue(cli, id="early", command="true")
    assert_ok(cli("config", "set", "max-retries", "1"))
    assert_ok(cli("config", "set", "job-timeout", "7"))
    enqueue(cli, id="late", command="true")
    assert_ok(cli("config", "unset", "max-retries"))

    early, late = cli.json("show", "early"), cli.json("show", "late")
    assert (early["max_retries"], early["timeout"]) == (5, 42)
    assert (late["max_retries"], late["timeout"]) == (1, 7)
    # An explicit value in the spec beats the config.
    enqueue(cli, id="explicit", command="true", max_retries=0, timeout=0)
    explicit = cli.json("show", "explicit")
    assert (explicit["max_retries"], explicit["timeout"]) == (0, 0)
