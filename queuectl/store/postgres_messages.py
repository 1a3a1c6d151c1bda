"""Driver messages fit for users: one line, no password, no cleanup noise.

libpq and psycopg quote URLs, and single tokens of them, in their errors (a malformed host, a
bad %-escape, a `password=` parameter); a URL may hold a password. Every message of the
PostgreSQL store passes through `scrub`, and `status` shows `mask_password`'s form of the URL.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote


def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """(scheme://user, password, @rest) of a URL with a password, however malformed.

    The password ends at the last `@` before the query, or at the last `@` at all when the
    query mark is itself in the password (`u:pa?ss@host`); it starts after the first `:` of
    what precedes. libpq splits at the first `@` instead, so a password holding an `@` is
    partly quoted by it as a host name: `secrets` masks those pieces too."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return None
    head = rest.split("?", 1)[0]
    userinfo, at, after = (head if "@" in head else rest).rpartition("@")
    if not at or ":" not in userinfo:
        return None
    user, _, password = userinfo.partition(":")
    return f"{scheme}://{user}", password, "@" + rest[len(userinfo) + 1 :]


def mask_password(url: str) -> str:
    """The URL with any password replaced by ***, for messages and `status`."""
    url = re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)
    parts = _split_userinfo(url)
    return url if parts is None else f"{parts[0]}:***{parts[2]}"


def secrets(url: str) -> list[str]:
    """Every text of URL that is, or may be part of, a password, as written and decoded,
    longest first: what `scrub` removes from a driver's message."""
    found = set(re.findall(r"(?i)[?&]password=([^&]*)", url))
    parts = _split_userinfo(url)
    if parts is not None:
        found.add(parts[1])
        # Pieces libpq may quote apart (as a host or port) when the password holds an `@`;
        # short ones would mask ordinary words and say little of the password.
        found.update(piece for piece in parts[1].split("@") if len(piece) >= 4)
    found |= {unquote(text) for text in found}
    return sorted(filter(None, found), key=len, reverse=True)


def scrub(text: str, url: str, masked: str) -> str:
    """`text` with URL and every password text in it masked: libpq quotes whole URLs and
    single tokens of them in its errors (a malformed host, a bad %-escape)."""
    text = text.replace(url, masked)
    for secret in secrets(url):
        text = text.replace(secret, "***")
    return text


def message(exc: BaseException) -> str:
    """The driver's message on one line (they often span several); not yet scrubbed."""
    diag = getattr(exc, "diag", None)
    text = (diag.message_primary if diag is not None else None) or str(exc) or type(exc).__name__
    return " ".join(text.split())


# Driver noise


class _CleanupNoise(logging.Filter):
    """psycopg logs "error ignored terminating <psycopg.Copy …>" (and "… in rollback …") when
    it cleans up after a connection that was already lost; the loss itself reaches us as an
    exception and is reported (or retried) once. Without a handler of the application's,
    Python's last-resort handler would print those lines on a CLI user's stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored ")


# transaction.py logs under its own name ("psycopg.transaction"), the rest under "psycopg";
# a logger's filter does not see its children's records.
for _name in ("psycopg", "psycopg.transaction"):
    logging.getLogger(_name).addFilter(_CleanupNoise())
