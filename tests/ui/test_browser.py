"""End to end in headless Chromium: a live ``modelyard ui`` over the demo project, driven by
Playwright with the system's ``chromium`` (Debian's package; never a downloaded browser).

Every page loads with no console error and no failed request; the main flows work: filter
runs, compare three runs, open a model, promote refused by the gates then passed, roll
back, open a drift chart. Each test saves screenshots under ``tests/ui/screenshots/`` (the
path is printed) for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(__file__).parent / "screenshots"
CLI = [sys.executable, "-c", "from modelyard.cli.app import main; main()"]
#: The demo's full size and a pinned calendar, on which its story holds: version 4 ends in
#: production, version 2 fails its gates against it and version 1 passes them all.
DEMO = ["--customers", "20000", "--seed", "42", "--today", "2026-12-04"]
MODEL = "claims-model"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: apt-get install -y "
                                                "chromium (.ci/run does it)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["XDG_CONFIG_HOME"] = str(base / "xdg-config")
    source = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture(scope="module")
def live_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo project, built once by ``modelyard demo``, served by ``modelyard ui``.
    ``MODELYARD_TEST_DEMO_PROJECT`` names a demo project built already (by ``modelyard demo
    --path ...``): the tests then work on a copy of it instead of building one."""
    base = tmp_path_factory.mktemp("ui-browser")
    built = os.environ.get("MODELYARD_TEST_DEMO_PROJECT")
    env = _environment(base)
    project = base / "demo"
    if built:
        shutil.copytree(built, project)
    else:
        subprocess.run([*CLI, "demo", "--path", str(project), *DEMO], env=env, check=True,
                       capture_output=True, timeout=1800)
    port = _free_port()
    log = base / "ui.log"
    with log.open("wb") as out:
        server = subprocess.Popen([*CLI, "ui", "--path", str(project), "--port", str(port)],
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"modelyard ui did not start:\n{log.read_text()}")
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Watched:
    """A page and what went wrong while it loaded."""

    page: Any
    base: str
    problems: list[str] = field(default_factory=list)
    allowed: set[int] = field(default_factory=set)  # statuses a test expects, e.g. 409

    def go(self, path: str) -> Any:
        """Open ``path`` and wait until nothing more loads (so the next step's navigation
        aborts no request of this page)."""
        answer = self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return answer

    def arrive(self, url: Any) -> None:
        """Wait for the navigation to ``url`` (a pattern) and for its page to settle."""
        self.page.wait_for_url(url)
        self.page.wait_for_load_state("networkidle")

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    def clean(self) -> None:
        assert self.problems == [], self.problems


@pytest.fixture
def ui(browser: Any, live_ui: str) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watched = Watched(page, live_ui)

    def on_console(message: Any) -> None:
        if message.type == "error":
            if any(f"status of {s}" in message.text for s in watched.allowed):
                return  # the expected refusal's status, reported by the browser
            watched.problems.append(f"console: {message.text}")

    def on_response(response: Any) -> None:
        if response.status >= 400 and response.status not in watched.allowed:
            watched.problems.append(f"{response.status} {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: watched.problems.append(
        f"failed: {request.url} {request.failure}"))
    page.on("response", on_response)
    print(f"screenshots go to {SHOTS}")
    yield watched
    context.close()


def test_every_page_loads_with_no_console_error_and_no_failed_request(ui: Watched) -> None:
    ui.go("/runs?experiment=claims-demo")
    run_link = ui.page.locator("table.runs a.row-link").first.get_attribute("href")
    assert run_link
    ui.go("/monitoring/" + MODEL)
    report = ui.page.locator("a", has_text="HTML report").first.get_attribute("href")
    assert report
    pages = {"overview": "/", "runs": "/runs", "run": run_link, "models": "/models",
             "model": f"/models/{MODEL}", "promote-preview": f"/models/{MODEL}/promote?version=2",
             "monitoring": "/monitoring", "drift": f"/monitoring/{MODEL}", "report": report,
             "features": "/features", "feature-group": "/features?group=claim_history",
             "pipelines": "/pipelines"}
    for name, path in pages.items():
        answer = ui.go(path)
        assert answer is not None and answer.status == 200, path
        assert ui.page.locator("h1").first.is_visible(), path
        ui.shot(f"page-{name}")
    ui.clean()


def test_filter_runs_from_the_keyboard_and_a_bad_filter_in_place(ui: Watched) -> None:
    ui.go("/runs?experiment=claims-demo")
    everything = ui.page.locator("table.runs tbody tr").count()
    ui.page.keyboard.press("/")  # the shortcut focuses the filter box
    ui.page.keyboard.type("metrics.r2 > 0.755 and params.model.class != 'Ridge'")
    ui.page.keyboard.press("Enter")
    ui.arrive(re.compile(r"filter=metrics\.r2"))
    kept = ui.page.locator("table.runs tbody tr")
    assert 0 < kept.count() < everything
    assert "Ridge" not in ui.page.locator("table.runs tbody").inner_text()
    ui.shot("runs-filtered")
    ui.page.reload()  # the state is in the address
    assert ui.page.locator("table.runs tbody tr").count() == kept.count()
    ui.clean()
    ui.allowed.add(422)
    ui.page.fill("#filter", "metrics.r2 >> 0.7")
    ui.page.keyboard.press("Enter")
    alert = ui.page.locator("#filter-error")
    alert.wait_for()
    assert "at position 12" in alert.inner_text() and "^" in alert.inner_text()
    assert ui.page.locator("#filter").get_attribute("aria-invalid") == "true"
    ui.shot("runs-bad-filter")
    ui.clean()


def test_compare_three_runs(ui: Watched) -> None:
    ui.go("/runs?experiment=claims-demo&filter=metrics.r2+>+0")
    boxes = ui.page.locator("input[form='compare-form']")
    assert boxes.count() >= 3
    for i in range(3):
        boxes.nth(i).check()
    ui.page.get_by_role("button", name="Compare selected runs").click()
    ui.arrive(re.compile(r"/compare\?"))
    assert ui.page.locator("h1").inner_text() == "Compare 3 runs"
    assert ui.page.locator("table.diff tbody tr").count() >= 1
    ui.page.get_by_role("link", name="r2", exact=True).click()
    ui.arrive(re.compile(r"metric=r2"))
    overlay = ui.page.locator("section", has=ui.page.locator("#h-overlay"))
    assert overlay.locator("svg.chart polyline").count() == 3  # one line per run
    ui.shot("compare-three-runs")
    ui.clean()


def test_open_a_model_from_the_list(ui: Watched) -> None:
    ui.go("/")
    ui.page.keyboard.press("g")
    ui.page.keyboard.press("m")  # g then m: the models
    ui.arrive(re.compile(r"/models$"))
    ui.page.get_by_role("link", name=MODEL).click()
    ui.arrive(re.compile(rf"/models/{MODEL}$"))
    assert ui.page.locator("h1").inner_text() == MODEL
    for heading in ("Aliases", "Versions", "Alias history", "Gate reports", "Lineage"):
        assert ui.page.get_by_role("heading", name=heading).is_visible()
    ui.shot("model")
    ui.clean()


def test_promote_refused_by_the_gates_then_rolled_back_then_passed(ui: Watched) -> None:
    ui.go(f"/models/{MODEL}")
    holder = ui.page.locator("section", has=ui.page.locator("#h-aliases")).locator(
        "tbody tr").first.locator("td").first.inner_text()
    assert holder.startswith("v") and holder != "v1"  # the demo's story ends on a later one
    ui.page.select_option("#p-version", "2")
    ui.page.get_by_role("button", name="Check the gates…").click()
    ui.arrive(re.compile(r"/promote\?version=2"))
    assert "gate(s) fail against it now" in ui.page.locator("main").inner_text()
    ui.shot("promote-preview-failing")
    ui.allowed.add(409)
    ui.page.get_by_role("button", name="Promote v2 to production").click()
    alert = ui.page.get_by_role("alert")
    alert.wait_for()
    assert "GateFailedError" in alert.inner_text()
    ui.shot("promote-refused")
    ui.clean()

    # roll production back to the version before the demo's last promotion...
    ui.go(f"/models/{MODEL}")
    ui.page.once("dialog", lambda dialog: dialog.accept())  # the confirmation
    ui.page.fill("#rb-reason-production", "undo from the browser")
    ui.page.get_by_role("button", name="Roll back production").click()
    ui.arrive(re.compile(r"notice=production\+rolled\+back"))
    status = ui.page.get_by_role("status").inner_text()
    moved = re.search(rf"rolled back from version {holder[1:]} to version (\d+)", status)
    assert moved is not None, status
    assert "undo from the browser" in ui.page.locator("ol.timeline").inner_text()
    ui.shot("rolled-back")

    # ...then promote the later version again: it beats that one, so every gate passes
    latest = holder[1:]
    ui.go(f"/models/{MODEL}/promote?version={latest}&alias=production")
    assert "Every gate passes against it now" in ui.page.locator("main").inner_text()
    ui.page.fill("#reason", "forward again after the check")
    ui.page.get_by_role("button", name=f"Promote v{latest} to production").click()
    ui.arrive(re.compile(rf"/models/{MODEL}\?notice="))
    assert f"Version {latest} now holds production" in ui.page.get_by_role(
        "status").inner_text()
    ui.shot("promote-passed")
    ui.clean()


def test_open_a_drift_chart(ui: Watched) -> None:
    ui.go("/monitoring")
    ui.page.get_by_role("link", name=MODEL).first.click()
    ui.arrive(re.compile(rf"/monitoring/{MODEL}$"))
    grid = ui.page.locator("table.grid")
    assert grid.locator("tbody tr").count() > 5
    feature = grid.locator("tbody tr th a").nth(1)
    name = feature.inner_text()
    feature.click()
    ui.arrive(re.compile(r"feature="))
    chart = ui.page.get_by_role("img", name=f"drift of {name} per window")
    assert chart.is_visible()
    assert chart.locator("polyline").count() == 2  # the statistic and its threshold
    ui.shot("drift-chart")
    ui.clean()
