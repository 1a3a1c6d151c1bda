"""The store contract: stored configuration.

One suite run against every backend (the `store` and `timed` fixtures in conftest.py);
helpers in storekit.py.
"""

from __future__ import annotations

from queuectl.store import open_store

# ---------------------------------------------------------------------------------------------
# config


def test_config_set_get_unset(store):
    assert store.config_items() == {}
    store.config_set("max-retries", "5")
    store.config_set("backoff-base", "3")
    store.config_set("max-retries", "7")  # replaces
    assert store.config_items() == {"max-retries": "7", "backoff-base": "3"}
    other = open_store(store.target)
    try:
        assert other.config_items() == {"max-retries": "7", "backoff-base": "3"}
    finally:
        other.close()
    assert store.config_unset("max-retries") is True
    assert store.config_unset("max-retries") is False
    assert store.config_unset("never-set") is False
    assert store.config_items() == {"backoff-base": "3"}
