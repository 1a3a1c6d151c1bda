"""The dashboard in a real browser (SPEC §9): Chromium driven by Playwright against a real
`queuectl web` and a live worker pool. Every page opens; cancel, retry and pause are clicked;
pages update themselves without a reload; a script hidden in ids, commands and output never
runs. Screenshots go to test-artifacts/ (docs/img/overview.png with QUEUECTL_DOC_SCREENSHOTS=1).

Marked `browser`: deselect with `-m "not browser"`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from clikit import enqueue
from conftest import CLI, ROOT, wait_for
from webkit import HOSTILE_DEAD, HOSTILE_QUEUE, IMG, SCRIPT, page_path, web_process
from workerkit import speed_up, wait_state

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module (Debian's: Playwright's own download cannot work here)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"BROWSER TESTS SKIPPED: no Chromium at {CHROMIUM} (apt install chromium)")
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # root has no user namespace sandbox
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield launched
        launched.close()


class Watched:
    """A page whose dialogs, console errors, page errors and navigations are recorded."""

    def __init__(self, browser, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(20_000)
        self.page = self.context.new_page()
        self.base = base
        self.dialogs: list[str] = []
        self.problems: list[str] = []
        self.navigations = 0
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("console", self._console)
        self.page.on("framenavigated", self._navigated)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _navigated(self, frame) -> None:
        if frame == self.page.main_frame:
            self.navigations += 1

    def open(self, path: str):
        answer = self.page.goto(self.base + path.lstrip("/"))
        assert answer is not None and answer.status == 200, (path, answer and answer.status)
        return self.page

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        assert self.dialogs == [], self.dialogs  # alert(1) never ran
        assert self.problems == [], self.problems


def test_the_dashboard_in_a_browser(browser, cli: CLI, pools) -> None:
    speed_up(cli)
    command = f"printf '%s\\n' '{SCRIPT}' '{IMG}'; exit 3"
    enqueue(cli, id=HOSTILE_DEAD, command=command, max_retries=0, queue=HOSTILE_QUEUE)
    enqueue(cli, id="long", command="sleep 60", queue="slow")
    enqueue(cli, id="talker", command="for i in 1 2 3 4 5 6; do echo line$i; sleep 1; done")
    pools.start(cli, "--count", "3", "--quiet")
    wait_state(cli, HOSTILE_DEAD, "dead")
    wait_state(cli, "long", "processing")
    with web_process(cli, "--port", "0") as web:
        watched = Watched(browser, web.wait_ready())
        page = watched.open("/")
        page.get_by_text("Live workers (3)").wait_for()
        for path in ("/jobs", "/dead", "/queues", "/schedules", page_path(HOSTILE_DEAD)):
            watched.open(path)
            assert SCRIPT in page.inner_text("body") or path in ("/schedules",)
            watched.shot(path.strip("/").replace("/", "_")[:40] or "overview")

        # The job page follows a run as it prints, without a reload.
        watched.open("/jobs/talker")
        before = watched.navigations
        page.locator("pre.output", has_text="line3").wait_for()
        assert watched.navigations == before

        # A job enqueued from the CLI appears on the jobs page by itself.
        watched.open("/jobs?queue=later")
        before = watched.navigations
        assert "appears-later" not in page.inner_text("#live")
        cli.ok("queue", "pause", "later")  # so it stays pending, in view
        enqueue(cli, id="appears-later", command="true", queue="later")
        page.get_by_role("link", name="appears-later").wait_for()
        assert watched.navigations == before

        # Cancel a running job from its page.
        watched.open("/jobs/long")
        page.get_by_role("button", name="Cancel").click()
        page.locator("#live span.state", has_text="canceled").wait_for()
        assert page.url.endswith("/jobs/long")
        assert cli.json("show", "long")["state"] == "canceled"

        # Retry the dead job from the dead-letter page: it runs again (and dies again).
        watched.open("/dead")
        page.get_by_role("button", name="Retry", exact=True).click()
        assert page.url.endswith("/dead")
        wait_for(lambda: len(cli.json("show", HOSTILE_DEAD)["runs"]) == 2, timeout=30)

        # Pause a queue from the queues page; resume it.
        watched.open("/queues")
        row = page.locator("tr", has_text="slow")
        row.get_by_role("button", name="Pause").click()
        page.locator("tr", has_text="slow").get_by_role("button", name="Resume").wait_for()
        assert "slow" in cli.json("status")["paused_queues"]
        page.locator("tr", has_text="slow").get_by_role("button", name="Resume").click()
        page.locator("tr", has_text="slow").get_by_role("button", name="Pause").wait_for()
        assert "slow" not in cli.json("status")["paused_queues"]

        # The overview, once more, for the record (and the docs).
        watched.open("/")
        page.get_by_text("Live workers (3)").wait_for()
        shot = watched.shot("overview")
        if os.environ.get("QUEUECTL_DOC_SCREENSHOTS"):
            shutil.copyfile(shot, ROOT / "docs" / "img" / "overview.png")
        watched.assert_clean()
        watched.context.close()


def test_the_login_form_in_a_browser(browser, cli: CLI, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("browser-token\n")
    enqueue(cli, id="j1", command="true")
    with web_process(cli, "--port", "0", "--token-file", str(token_file)) as web:
        watched = Watched(browser, web.wait_ready())
        page = watched.page
        page.goto(watched.base + "jobs")
        assert "/login" in page.url
        page.get_by_label("Token").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        page.get_by_text("That is not the token.").wait_for()
        page.get_by_label("Token").fill("browser-token")
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("link", name="j1").wait_for()
        assert page.url.endswith("/jobs")
        page.get_by_role("button", name="Log out").click()
        assert "/login" in page.url
        # The failed login's 401 is the only console error expected.
        watched.problems = [p for p in watched.problems if "401" not in p]
        watched.assert_clean()
        watched.context.close()
