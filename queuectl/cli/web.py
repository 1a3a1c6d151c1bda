"""`queuectl web`: serve the dashboard (SPEC §9) until Ctrl-C.

The app is queuectl.web's (Starlette, served by uvicorn); this module checks the options,
binds the socket, says where it listens, and ends quietly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import sys

import click

from .base import Command, Context, pass_ctx

TOKEN_ENV = "QUEUECTL_WEB_TOKEN"
# Uvicorn waits this long for requests in flight when told to stop, then closes them.
GRACEFUL_SECONDS = 3
WEB_EXTRA = ("starlette", "uvicorn", "jinja2", "multipart")


@click.command(cls=Command)
@click.option(
    "--host", metavar="HOST", default="127.0.0.1", show_default=True, help="Address to listen on."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    default=8765,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option("--read-only", is_flag=True, help="Show everything, change nothing: no forms.")
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, readable=True),
    help=f"A file whose text is the token every request must carry (else ${TOKEN_ENV}). "
    "Needed to listen on an address other than loopback.",
)
@pass_ctx
def web(ctx: Context, host: str, port: int, read_only: bool, token_file: str | None) -> None:
    """Serve the web dashboard until Ctrl-C: jobs, workers, queues, schedules and the
    dead-letter queue, with actions (retry, cancel, pause, resume), a JSON API and
    /metrics. Its URL is printed on stderr once it listens.

    Listening on an address other than loopback needs a token (--token-file or
    $QUEUECTL_WEB_TOKEN); with one, every request needs it (a login form, or
    `Authorization: Bearer TOKEN`). Needs the `web` extra: pip install '.[web]'.

    \b
    Examples:
      queuectl web
      queuectl web --host 0.0.0.0 --port 8080 --token-file ~/.queuectl-token --read-only
    """
    token = read_token(token_file)
    if token is None and not is_loopback(host):
        raise click.UsageError(
            f"listening on {host} (not loopback) needs a token: give --token-file FILE or set "
            f"${TOKEN_ENV}; nothing was served"
        )
    require_web_extra()
    store = ctx.queue.store  # a store that cannot be used fails here, before serving
    target = store.target
    ctx.close()  # the dashboard opens its own connections, one per thread
    sock = listen(host, port)
    serve(sock, target, token=token, read_only=read_only, host=host)


def is_loopback(host: str) -> bool:
    """Whether HOST is a loopback address (or the name localhost): serving there needs no
    token, as only this machine's users reach it."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(token_file: str | None) -> str | None:
    """The token from the file (its text, surrounding white space dropped) or the
    environment; None if neither gives one."""
    if token_file is not None:
        try:
            with open(token_file, encoding="utf-8") as handle:
                text = handle.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(
                f"cannot read it: {exc}", param_hint="'--token-file'"
            ) from None
        if not text:
            raise click.BadParameter("the file is empty", param_hint="'--token-file'")
        return text
    text = os.environ.get(TOKEN_ENV, "").strip()
    return text or None


def require_web_extra() -> None:
    """Exit 1 with how to install the `web` extra when a package of it is missing."""
    for name in WEB_EXTRA:
        try:
            __import__(name)
        except ImportError:
            raise click.ClickException(
                f"the dashboard needs the web extra ({name} is missing): run "
                "pip install '.[web]' in the queuectl checkout"
            ) from None


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port and listening (exit 1 when that is refused)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        if os.name != "nt":  # on Windows it would let another process share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    sock.set_inheritable(True)
    return sock


def serve(sock: socket.socket, target: str, *, token: str | None, read_only: bool, host: str):
    """Serve the dashboard on the bound socket until Ctrl-C or SIGTERM; then exit 0."""
    import uvicorn

    from ..web.app import create_app
    from ..web.security import host_value

    port = sock.getsockname()[1]
    app = create_app(target, token=token, read_only=read_only, host=host, port=port)
    url = f"http://{host_value(host, port)}/"
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        lifespan="on",
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                mode = " (read-only)" if read_only else ""
                # The URL stands between blanks, so that a script splitting the line on white
                # space (or matching `http://\S+`) gets exactly the URL, no trailing `;`.
                click.echo(f"queuectl: dashboard{mode} at {url} (Ctrl-C to stop)", err=True)

    # Uvicorn stops on SIGINT/SIGTERM, then raises the signal again once it has: end quietly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    sys.exit(0)
