"""`queuectl web` as users run it (SPEC §9): a real server in a subprocess that prints its URL
on stderr once it listens, serves, and ends quietly on Ctrl-C; refusing a non-loopback address
without a token; saying how to install a missing `web` extra.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import urllib.error
import urllib.request

import pytest
from clikit import assert_error, enqueue
from conftest import CLI
from webkit import TOKEN, web_process


def fetch(url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_web_prints_its_url_serves_and_ends_quietly(cli: CLI, sig: int) -> None:
    enqueue(cli, id="j1", command="true")
    with web_process(cli, "--port", "0") as web:
        url = web.wait_ready()
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        status, body = fetch(url + "api/status")
        assert status == 200 and json.loads(body) == cli.json("status")
        status, body = fetch(url + "jobs/j1")
        assert status == 200 and "j1" in body
        assert fetch(url + "healthz") == (200, "ok\n")
        assert web.interrupt(sig) == 0
        assert web.proc.stdout.read() == ""  # stdout stays empty
        stderr = web.stderr()
        assert "Traceback" not in stderr and stderr.count("\n") == 1, stderr
        assert "dashboard at" in stderr
        # The URL is a word of its own: a script taking `http://\S+` gets exactly it.
        assert re.search(r"http://\S+", stderr).group(0) == url, stderr


def test_a_non_loopback_address_needs_a_token(cli: CLI, tmp_path) -> None:
    result = cli("web", "--host", "0.0.0.0", "--port", "0")
    stderr = assert_error(result, 2, mentions=("token", "--token-file", "QUEUECTL_WEB_TOKEN"))
    assert "0.0.0.0" in stderr
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    assert_error(cli("web", "--host", "0.0.0.0", "--token-file", str(empty)), 2, ("empty",))
    assert_error(cli("web", "--token-file", str(tmp_path / "missing")), 2)


def test_with_a_token_from_the_environment_every_request_needs_it(cli: CLI) -> None:
    enqueue(cli, id="j1", command="true")
    env = {"QUEUECTL_WEB_TOKEN": TOKEN}
    with web_process(cli, "--host", "0.0.0.0", "--port", "0", env=env) as web:
        url = web.wait_ready().replace("0.0.0.0", "127.0.0.1")
        assert fetch(url + "api/jobs/j1")[0] == 401
        status, body = fetch(url + "api/jobs/j1", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and json.loads(body) == cli.json("show", "j1")
        assert fetch(url + "healthz")[0] == 200
        assert fetch(url, {"Host": "evil.example:80"})[0] == 400
        assert web.interrupt() == 0


@pytest.mark.skipif(sys.platform != "linux", reason="127.0.0.2 is a loopback address on Linux")
def test_on_every_interface_the_address_a_request_arrived_on_is_served(cli: CLI) -> None:
    # 127.0.0.2 stands for a LAN address that is not what the host name resolves to: a user
    # on another machine types http://<that address>:PORT/ and must not get "Invalid Host".
    env = {"QUEUECTL_WEB_TOKEN": TOKEN}
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with web_process(cli, "--host", "0.0.0.0", "--port", "0", env=env) as web:
        port = web.wait_ready().rsplit(":", 1)[1].strip("/")
        other = f"http://127.0.0.2:{port}/"
        status, body = fetch(other + "api/status", bearer)
        assert status == 200 and json.loads(body)["jobs"] == cli.json("status")["jobs"]
        # Another address than the one the connection came in on, or a name, is refused.
        assert fetch(other + "api/status", {**bearer, "Host": f"127.0.0.3:{port}"})[0] == 400
        assert fetch(other + "api/status", {**bearer, "Host": f"evil.example:{port}"})[0] == 400
        assert web.interrupt() == 0


def test_a_token_file_and_read_only(cli: CLI, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n")
    with web_process(cli, "--port", "0", "--read-only", "--token-file", str(token_file)) as web:
        url = web.wait_ready()
        assert "read-only" in web.stderr()
        assert fetch(url + "api/status")[0] == 401
        assert fetch(url + "api/status", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert web.interrupt() == 0


def test_a_port_in_use_is_a_clear_error(cli: CLI) -> None:
    with web_process(cli, "--port", "0") as web:
        port = web.wait_ready().rsplit(":", 1)[1].strip("/")
        assert_error(cli("web", "--port", port), 1, mentions=(port,))


def test_without_the_web_extra_it_says_how_to_install_it(cli: CLI, tmp_path) -> None:
    # A `starlette` that cannot be imported, ahead of the installed one on the path.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "starlette.py").write_text("raise ImportError('No module named starlette')\n")
    env = {"PYTHONPATH": f"{shadow}:{cli.env['PYTHONPATH']}"}
    result = cli("web", "--port", "0", env=env)
    assert_error(result, 1, mentions=("pip install '.[web]'", "starlette"))
