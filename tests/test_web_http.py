"""The dashboard over HTTP, in process (SPEC §9): every route on both backends, its guards
(token, CSRF, Host, read-only), hostile store values shown as text, and the JSON API equal to
the CLI's --json. The real server and a real browser: test_cli_web.py, test_web_browser.py.
"""

from __future__ import annotations

import time

import pytest
from clikit import all_jobs, enqueue, make_dead
from conftest import CLI
from webkit import (
    HOSTILE_DEAD,
    HOSTILE_PENDING,
    HOSTILE_QUEUE,
    HOSTILE_SCHEDULE,
    SCRIPT,
    TOKEN,
    assert_inert,
    client,
    csrf_of,
    hostile_store,
    page_path,
)

# Starlette would have its TestClient on httpx2; httpx is what the test extra installs.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

PAGES = ("/", "/jobs", "/jobs?state=dead", "/dead", "/queues", "/schedules")
HEADERS = {
    "content-security-policy": "script-src 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


@pytest.fixture
def cli(cli: CLI, monkeypatch) -> CLI:
    """The conftest CLI, with this process seeing the same config folder as its commands (on
    PostgreSQL, run log paths are under it): the app in process is like `queuectl web`."""
    monkeypatch.setenv("XDG_CONFIG_HOME", cli.env["XDG_CONFIG_HOME"])
    return cli


def assert_guarded(answer) -> None:
    """The security headers every response carries."""
    for name, needle in HEADERS.items():
        assert needle in answer.headers.get(name, ""), (name, dict(answer.headers))
    assert "unsafe-inline" not in answer.headers["content-security-policy"]


def test_every_page_shows_hostile_values_as_text_only(cli: CLI) -> None:
    ids = hostile_store(cli)
    with client(cli.db) as http:
        paths = [*PAGES, "/jobs?queue=" + HOSTILE_QUEUE, *(page_path(i) for i in ids.values())]
        bodies = {}
        for path in paths:
            answer = http.get(path)
            assert answer.status_code == 200, (path, answer.text)
            assert answer.headers["content-type"].startswith("text/html")
            assert_guarded(answer)
            assert_inert(answer.text)
            bodies[path] = answer.text
    # ... and yet they are shown, escaped: the check above could fail.
    escaped_script = "&lt;script&gt;alert(1)&lt;/script&gt;"
    dead_page = bodies[page_path(HOSTILE_DEAD)]
    assert escaped_script in dead_page and "\\x1b[31m" in dead_page  # output tail, escaped
    assert "exited with" in dead_page or "exit 3" in dead_page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in bodies[page_path(ids["dependent"])]
    assert escaped_script in bodies["/dead"] and escaped_script in bodies["/queues"]
    assert "img src=x" in bodies["/schedules"]  # the schedule's name, escaped
    assert escaped_script in bodies["/jobs?queue=" + HOSTILE_QUEUE]


def test_the_api_gives_the_clis_json(cli: CLI) -> None:
    ids = hostile_store(cli)
    enqueue(cli, id="plain", command="true", queue="other")
    with client(cli.db) as http:
        assert http.get("/api/status").json() == cli.json("status")
        for query, args in [
            ("", ()),
            ("?limit=0", ("--limit", "0")),
            ("?limit=2", ("--limit", "2")),
            ("?state=dead", ("--state", "dead")),
            ("?queue=other", ("--queue", "other")),
            (
                "?state=pending&queue=held&limit=1",
                ("--state", "pending", "-q", "held", "--limit", "1"),
            ),
        ]:
            answer = http.get("/api/jobs" + query)
            assert answer.status_code == 200
            assert_guarded(answer)
            assert answer.json() == cli.json("list", *args), query
        every = cli.json("list", "--limit", "0")
        assert http.get("/api/jobs?offset=1&limit=2").json() == every[1:3]
        for job_id in [*ids.values(), "plain"]:
            api = http.get("/api" + page_path(job_id))
            assert api.status_code == 200
            assert api.json() == cli.json("show", job_id)
        missing = http.get("/api/jobs/nope")
        assert missing.status_code == 404 and "nope" in missing.json()["error"]
        assert http.get("/api/jobs?state=bogus").status_code == 400
        assert http.get("/api/jobs?limit=-1").status_code == 400


def test_jobs_are_filtered_and_paged(cli: CLI) -> None:
    cli.ok(
        "enqueue", "-", input="".join(f'{{"id":"p{i:03}","command":"true"}}\n' for i in range(120))
    )
    enqueue(cli, id="elsewhere", command="true", queue="other")
    with client(cli.db) as http:
        first = http.get("/jobs").text
        assert "p000" in first and "p049" in first and "p050" not in first
        assert 'rel="next"' in first and 'rel="prev"' not in first
        third = http.get("/jobs?page=3").text
        assert "p100" in third and "elsewhere" in third and "p099" not in third
        assert 'rel="next"' not in third and 'rel="prev"' in third
        other = http.get("/jobs?queue=other").text
        assert "elsewhere" in other and "p000" not in other
        assert http.get("/jobs?state=completed").text.count('href="/jobs/') == 0
        assert http.get("/jobs?page=0").status_code == 400
        assert http.get("/jobs?state=nope").status_code == 400
        missing = http.get("/jobs/nope")
        assert missing.status_code == 404 and "nope" in missing.text
        # Text no id or queue can hold (a NUL would not even reach PostgreSQL).
        assert http.get("/jobs/a%00b").status_code == 404
        assert http.get("/api/jobs/a%00b").status_code == 404
        for path in ("/jobs?queue=a%00b", "/api/jobs?queue=%1b"):
            assert http.get(path).status_code == 400, path
        assert "error" in http.get("/api/jobs?queue=%00").json()


def test_actions_change_the_store_and_redirect_back(cli: CLI) -> None:
    make_dead(cli, "d1", "d2", "d3")
    enqueue(cli, id=HOSTILE_PENDING, command="true", queue="q1")
    cli.ok("schedule", "add", HOSTILE_SCHEDULE, "@daily", "--command", "true")
    state = {job["id"]: job["state"] for job in all_jobs(cli)}
    assert state == {"d1": "dead", "d2": "dead", "d3": "dead", HOSTILE_PENDING: "pending"}
    with client(cli.db) as http:
        token = csrf_of(http, "/dead")

        def post(path: str, **fields: str):
            answer = http.post(path, data={"csrf_token": token, **fields})
            assert answer.status_code == 303, answer.text
            assert_guarded(answer)
            return answer.headers["location"]

        assert post("/actions/retry", job_id="d1", next="/dead") == "/dead"
        assert cli.json("show", "d1")["state"] == "pending"
        post("/actions/retry-all", next="/dead")
        assert {job["id"] for job in all_jobs(cli, "--state", "dead")} == set()
        back = page_path(HOSTILE_PENDING)
        assert post("/actions/cancel", job_id=HOSTILE_PENDING, next=back) == back
        assert cli.json("show", HOSTILE_PENDING)["state"] == "canceled"
        post("/actions/pause-queue", queue="q1", next="/queues")
        assert cli.json("status")["paused_queues"] == ["q1"]
        post("/actions/resume-queue", queue="q1", next="/queues")
        assert cli.json("status")["paused_queues"] == []
        post("/actions/pause-schedule", schedule=HOSTILE_SCHEDULE, next="/schedules")
        assert cli.json("schedule", "show", HOSTILE_SCHEDULE)["paused"] is True
        post("/actions/resume-schedule", schedule=HOSTILE_SCHEDULE, next="/schedules")
        assert cli.json("schedule", "show", HOSTILE_SCHEDULE)["paused"] is False
        # Somewhere else than this site is never where a form sends the browser back to.
        assert post("/actions/pause-queue", queue="q2", next="//evil.example/") == "/"
        assert post("/actions/pause-queue", queue="q2", next="https://evil.example/") == "/"
        # A refused change: a page saying why (an unknown job, a finished one).
        refused = http.post("/actions/cancel", data={"csrf_token": token, "job_id": "d1x"})
        assert refused.status_code == 404 and "d1x" in refused.text
        finished = {"csrf_token": token, "job_id": HOSTILE_PENDING}  # canceled above
        finished = http.post("/actions/cancel", data=finished)
        assert finished.status_code == 409 and "canceled" in finished.text
        nul = http.post("/actions/cancel", data={"csrf_token": token, "job_id": "d\x001"})
        assert nul.status_code == 400
        assert_inert(http.get(back).text)


def test_a_post_without_the_sessions_csrf_token_changes_nothing(cli: CLI) -> None:
    enqueue(cli, id="keep", command="true")
    with client(cli.db) as http, client(cli.db) as other:
        token = csrf_of(http)
        others = csrf_of(other)
        for data in (
            {"job_id": "keep"},
            {"job_id": "keep", "csrf_token": ""},
            {"job_id": "keep", "csrf_token": "0" * 64},
            {"job_id": "keep", "csrf_token": others},  # another browser's token
        ):
            answer = http.post("/actions/cancel", data=data)
            assert answer.status_code == 403, data
            assert_guarded(answer)
        # A token is only good with its own session cookie.
        bare = client(cli.db)
        assert (
            bare.post("/actions/cancel", data={"job_id": "keep", "csrf_token": token}).status_code
            == 403
        )
        assert cli.json("show", "keep")["state"] == "pending"
        assert (
            http.post("/actions/cancel", data={"job_id": "keep", "csrf_token": token}).status_code
            == 303
        )
        assert cli.json("show", "keep")["state"] == "canceled"


def test_only_the_served_address_is_answered(cli: CLI) -> None:
    with client(cli.db) as http:
        for host in ("evil.example:8765", "127.0.0.1:9999", "localhost", "127.0.0.1", ""):
            answer = http.get("/", headers={"host": host})
            assert answer.status_code == 400, host
            assert_guarded(answer)
            assert http.get("/healthz", headers={"host": host}).status_code == 400
        assert http.get("/", headers={"host": "localhost:8765"}).status_code == 200
        assert http.get("/", headers={"host": "127.0.0.1:8765"}).status_code == 200


def test_with_a_token_every_request_needs_it(cli: CLI) -> None:
    enqueue(cli, id="j1", command="true")
    with client(cli.db, token=TOKEN) as http:
        page = http.get("/jobs?state=pending", headers={"accept": "text/html"})
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fjobs%3Fstate%3Dpending"
        for path in ("/api/status", "/api/jobs", "/api/jobs/j1", "/metrics", "/", "/dead"):
            answer = http.get(path)
            assert answer.status_code == 401, path
            assert "j1" not in answer.text
            assert_guarded(answer)
        assert http.get("/api/status", headers={"authorization": "Bearer wrong"}).status_code == 401
        bearer = http.get("/api/jobs/j1", headers={"authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200 and bearer.json()["id"] == "j1"
        # No token needed: the health probe, the login form, the package's own assets.
        assert http.get("/healthz").status_code == 200
        assert http.get("/static/dashboard.js").status_code == 200
        form = http.get("/login?next=/dead")
        assert form.status_code == 200 and 'type="password"' in form.text
        token = csrf_of(http, "/login")
        wrong = http.post("/login", data={"csrf_token": token, "token": "nope", "next": "/dead"})
        assert wrong.status_code == 401 and http.get("/api/status").status_code == 401
        no_csrf = http.post("/login", data={"token": TOKEN})
        assert no_csrf.status_code == 403
        right = http.post("/login", data={"csrf_token": token, "token": TOKEN, "next": "/dead"})
        assert right.status_code == 303 and right.headers["location"] == "/dead"
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert TOKEN not in cookie
        assert http.get("/").status_code == 200
        assert http.get("/api/status").json() == cli.json("status")
        login_cookies = dict(http.cookies)
        assert any(name.startswith("queuectl_auth_") for name in login_cookies), login_cookies
        token = csrf_of(http)
        assert http.post("/logout", data={"csrf_token": token}).status_code == 303
        assert http.get("/api/status").status_code == 401
    # The same cookie is void for a server started again (another port of the host may have
    # seen it: browsers share cookies across ports).
    with client(cli.db, token=TOKEN) as restarted:
        restarted.cookies.update(login_cookies)
        assert restarted.get("/api/status").status_code == 401


def test_read_only_shows_no_form_and_refuses_every_change(cli: CLI) -> None:
    make_dead(cli, "d1")
    enqueue(cli, id="p1", command="true", queue="q1")
    cli.ok("schedule", "add", "s1", "@daily", "--command", "true")
    with client(cli.db, read_only=True) as http:
        for path in (*PAGES, "/jobs/d1", "/jobs/p1"):
            body = http.get(path).text
            assert 'action="/actions/' not in body, path
        token = csrf_of(http)
        for path, fields in (
            ("/actions/retry", {"job_id": "d1"}),
            ("/actions/retry-all", {}),
            ("/actions/cancel", {"job_id": "p1"}),
            ("/actions/pause-queue", {"queue": "q1"}),
            ("/actions/pause-schedule", {"schedule": "s1"}),
        ):
            answer = http.post(path, data={"csrf_token": token, **fields})
            assert answer.status_code == 403, path
    assert cli.json("show", "d1")["state"] == "dead"
    assert cli.json("show", "p1")["state"] == "pending"
    assert cli.json("status")["paused_queues"] == []
    assert cli.json("schedule", "show", "s1")["paused"] is False
    with client(cli.db) as http:  # the same pages with forms, when changes are allowed
        assert 'action="/actions/retry"' in http.get("/jobs/d1").text


def test_the_overview_counts_runs_workers_and_waiting_time(cli: CLI) -> None:
    make_dead(cli, "d1", "d2")
    cli.ok("enqueue", "--command", "true", "--id", "later", "--delay", "3600")
    enqueue(cli, id="ready", command="true", queue="slow")
    cli.ok("queue", "pause", "slow")
    with client(cli.db) as http:
        body = http.get("/").text
    assert '<strong id="runs-last-hour">2</strong>' in body
    assert 'data-state="dead">2<' in body and 'data-state="pending">2<' in body
    assert "No worker is running." in body and "slow" in body
    assert '<strong id="oldest-ready">' in body and 'id="oldest-ready">-<' not in body


def test_healthz_says_whether_the_store_answers_and_nothing_else(cli: CLI, tmp_path) -> None:
    enqueue(cli, id=SCRIPT, command="true")
    with client(cli.db) as http:
        answer = http.get("/healthz")
        assert answer.status_code == 200 and answer.text == "ok\n"
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with client(str(blocker / "queue.db")) as http:
        answer = http.get("/healthz")
        assert answer.status_code == 503 and answer.text == "unavailable\n"
        assert http.get("/").status_code == 503
    # A PostgreSQL server that does not answer: 503 within the probe's few seconds.
    with client("postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2") as http:
        started = time.monotonic()
        answer = http.get("/healthz")
        assert answer.status_code == 503 and answer.text == "unavailable\n"
        assert time.monotonic() - started < 10


@pytest.mark.parametrize("path", ["/static/dashboard.js", "/static/dashboard.css"])
def test_static_assets_are_the_packages_own(cli: CLI, path: str) -> None:
    with client(cli.db) as http:
        answer = http.get(path)
        assert answer.status_code == 200 and len(answer.content) > 200
        assert_guarded(answer)
        assert "http://" not in answer.text and "https://" not in answer.text
        assert http.get("/static/../app.py").status_code == 404


def test_the_host_values_each_address_answers_to() -> None:
    from queuectl.web.security import allowed_hosts

    assert allowed_hosts("127.0.0.1", 8765) == {"127.0.0.1:8765", "localhost:8765"}
    assert allowed_hosts("192.0.2.5", 9000) == {"192.0.2.5:9000"}
    assert allowed_hosts("::1", 8765) == {"[::1]:8765", "localhost:8765"}
    assert allowed_hosts("localhost", 81) == {"localhost:81", "127.0.0.1:81", "[::1]:81"}
    # Port 80: browsers leave it out of the Host header.
    assert allowed_hosts("127.0.0.1", 80) >= {"127.0.0.1", "localhost", "localhost:80"}
    everywhere = allowed_hosts("0.0.0.0", 8080)
    assert {"localhost:8080", "127.0.0.1:8080"} <= everywhere
    assert not any(value.startswith("evil") for value in everywhere)


def test_metrics_over_http_are_the_commands_exposition_and_follow_the_token_rule(cli: CLI):
    """GET /metrics (SPEC §9) gives what `queuectl metrics` prints, parsed by prometheus_client,
    with its text format's content type; with a token it needs the token like every page."""
    from prometheus_client.parser import text_string_to_metric_families

    ids = hostile_store(cli)
    enqueue(cli, id="plain", command="true", queue="other")

    def samples(text: str) -> dict:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    with client(cli.db) as http:
        answer = http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert_guarded(answer)
    printed = cli("metrics")
    assert printed.returncode == 0, printed.stderr
    served, expected = samples(answer.text), samples(printed.stdout)
    assert served.keys() == expected.keys()
    assert served[("queuectl_jobs", (("queue", "other"), ("state", "pending")))] == 1
    assert served[("queuectl_jobs", (("queue", HOSTILE_QUEUE), ("state", "dead")))] >= 1
    for job_id in ids.values():  # no job id is ever a label or a value
        assert job_id not in answer.text
    with client(cli.db, token=TOKEN) as http:
        assert http.get("/metrics").status_code == 401
        bearer = http.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200 and "queuectl_build_info" in bearer.text


def test_a_store_file_deleted_under_the_dashboard_is_unavailable_not_made_afresh(sqlite_cli):
    """Opening an SQLite store creates a missing file; the dashboard must not: /healthz says
    503 and the pages say the store is unavailable, and no empty store appears in its place."""
    from pathlib import Path

    enqueue(sqlite_cli, id="kept", command="true")
    store_file = Path(sqlite_cli.db)
    with client(sqlite_cli.db) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/api/jobs/kept").status_code == 200
        for leftover in store_file.parent.glob(store_file.name + "*"):
            leftover.unlink()
        assert http.get("/healthz").status_code == 503
        assert http.get("/api/status").status_code == 503
    assert not store_file.exists()


def test_output_keeps_tabs_and_line_breaks_and_shows_other_controls_as_escapes():
    from queuectl.web.templating import output_text

    text = "a\tb C:\\temp\n\x1b[31mred\r"
    assert output_text(text) == "a\tb C:\\temp\n\\x1b[31mred\\r"  # C:\temp keeps its backslash
