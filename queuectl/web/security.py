"""The dashboard's guards (SPEC §9), one ASGI middleware in front of every route:

- the Host header must name the served address (DNS rebinding: a page of another site whose
  name resolves to 127.0.0.1 must not read or drive the dashboard);
- with a token, every request needs it: `Authorization: Bearer <token>`, or the login cookie
  set by /login (an HMAC of the token under a secret drawn at start, never the token, and
  void once the server restarts); /healthz, /login and /static excepted;
- every response carries a strict Content-Security-Policy (no inline script, nothing from
  another site) and nosniff / no-referrer headers;
- every browser gets a session cookie, and each form a CSRF token derived from it with the
  server's secret (`csrf_token`); a POST without the right one is refused (`check_csrf`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
# Paths served without the token: the login form, the health probe, and the static assets
# (the package's own CSS and script: nothing of the store).
OPEN_PATHS = ("/login", "/healthz")
OPEN_PREFIXES = ("/static/",)
LOGIN_MESSAGE = b"queuectl web login"
CSRF_FIELD = "csrf_token"


@dataclass
class Guard:
    """What the middleware checks against: the token (None: no login), the Host values
    accepted, and the secret the CSRF tokens are derived with (new each start)."""

    token: str | None
    allowed_hosts: frozenset[str]
    port: int
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    # Served on every interface (0.0.0.0, ::): an address the connection arrived on is served.
    every_interface: bool = False

    def host_allowed(self, host: str, scope: Scope) -> bool:
        """Whether the Host header `host` names the served address. On every interface, the
        local address this connection came in on counts too (a LAN address that is not what
        the host name resolves to, or one added since the start): an address literal cannot
        be DNS rebinding, which needs a name of the attacker's."""
        value = host.lower()
        if value in self.allowed_hosts:
            return True
        server = scope.get("server")
        if not self.every_interface or not server:
            return False
        local = str(server[0])
        with contextlib.suppress(ValueError):
            mapped = ipaddress.ip_address(local.split("%", 1)[0])
            if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped is not None:
                local = str(mapped.ipv4_mapped)  # an IPv4 client of a dual-stack `::`
        served = host_value(local, self.port)
        return value == served or (self.port == 80 and value == served.rsplit(":", 1)[0])

    @property
    def session_cookie(self) -> str:
        # Cookies are shared by every port of a host: one name per dashboard.
        return f"queuectl_session_{self.port}"

    @property
    def auth_cookie(self) -> str:
        return f"queuectl_auth_{self.port}"

    def login_value(self) -> str:
        """The login cookie's value: proves the token was given, without being it. Keyed by
        the secret drawn at start as well: a browser sends cookies to every port of a host,
        so another service there may see it, and it must not outlive this server."""
        assert self.token is not None
        message = LOGIN_MESSAGE + b"\0" + self.token.encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def token_matches(self, given: str) -> bool:
        """Whether `given` is the token, compared in constant time."""
        if self.token is None:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())

    def authenticated(self, conn: HTTPConnection) -> bool:
        """Whether the request carries the token (bearer) or the login cookie."""
        if self.token is None:
            return True
        scheme, _, given = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(given.strip()):
            return True
        cookie = conn.cookies.get(self.auth_cookie, "")
        return hmac.compare_digest(cookie.encode(), self.login_value().encode())

    def csrf_for(self, session: str) -> str:
        """The CSRF token of a session: its HMAC under the server's secret."""
        return hmac.new(self.secret, b"csrf:" + session.encode(), hashlib.sha256).hexdigest()


def session_of(conn: HTTPConnection) -> str:
    """The browser's session id, as the middleware found or issued it."""
    return conn.scope["queuectl.session"]


def csrf_token(request: Request) -> str:
    """The CSRF token every form of this response must carry."""
    guard: Guard = request.app.state.guard
    return guard.csrf_for(session_of(request))


def check_csrf(request: Request, form: dict) -> bool:
    """Whether a POSTed form carries this session's CSRF token."""
    given = form.get(CSRF_FIELD)
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode(), csrf_token(request).encode())


class SecurityMiddleware:
    """Host check, token, session cookie and security headers for every HTTP request."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guard = self.guard
        conn = HTTPConnection(scope)
        new_session = None
        session = conn.cookies.get(guard.session_cookie, "")
        if not (20 <= len(session) <= 100 and session.isascii() and session.isalnum()):
            session = new_session = secrets.token_hex(16)
        scope["queuectl.session"] = session

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if new_session is not None:
                    headers.append(
                        "set-cookie",
                        f"{guard.session_cookie}={new_session}; Path=/; HttpOnly; SameSite=Strict",
                    )
            await send(message)

        host = Headers(scope=scope).get("host", "")
        if not guard.host_allowed(host, scope):
            response = PlainTextResponse(
                "Invalid Host header: this dashboard answers only to the address it serves.\n",
                status_code=400,
            )
            await response(scope, receive, send_guarded)
            return
        path = scope["path"]
        open_path = path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
        if not open_path and not guard.authenticated(conn):
            await refuse_unauthenticated(conn)(scope, receive, send_guarded)
            return
        await self.app(scope, receive, send_guarded)


def refuse_unauthenticated(conn: HTTPConnection):
    """A browser asking for a page is sent to the login form; anything else gets 401."""
    path = conn.scope["path"]
    wants_page = conn.scope["method"] == "GET" and not path.startswith(("/api/", "/metrics"))
    if wants_page and "text/html" in conn.headers.get("accept", ""):
        target = path + ("?" + conn.url.query if conn.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return JSONResponse(
        {"error": "a token is needed: log in at /login or send Authorization: Bearer <token>"},
        status_code=401,
        headers={"www-authenticate": "Bearer"},
    )


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values the dashboard answers to when served on host:port: that
    address itself; for a loopback address also `localhost:port` (what users type); for an
    address of every interface (0.0.0.0, ::) this machine's names and addresses."""
    names: set[str] = {host}
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if host.lower() == "localhost" or (address is not None and address.is_loopback):
        names.add("localhost")
        if host.lower() == "localhost":  # bound to what the name resolves to
            names |= {"127.0.0.1", "::1"}
    if address is not None and address.is_unspecified:
        names |= {"localhost", "127.0.0.1", "::1", *this_machine()}
    values = {host_value(name, port) for name in names}
    if port == 80:  # a browser leaves out the default port
        values |= {value.rsplit(":", 1)[0] for value in values}
    return frozenset(values)


def is_every_interface(host: str) -> bool:
    """Whether `host` is the address of every interface (0.0.0.0, ::)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def this_machine() -> Iterable[str]:
    """This host's names and the addresses they resolve to."""
    found = {socket.gethostname(), socket.getfqdn()}
    for name in list(found):
        with contextlib.suppress(OSError):  # a name that does not resolve here
            found |= {info[4][0] for info in socket.getaddrinfo(name, None)}
    return {name for name in found if name}


def host_value(name: str, port: int) -> str:
    """`name:port` as a Host header writes it (IPv6 addresses in brackets), lower case."""
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return f"{name}:{port}".lower()
