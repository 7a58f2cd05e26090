"""One end-to-end test in a real JupyterLab driven by headless Chromium (Debian's, via Playwright):
open the playground, run it, press Train, see the live plot update, press Stop, see training end.

`.ci/run` installs Debian's chromium; without /usr/bin/chromium the test is skipped and says why.
Set KIT_SCREENSHOTS=DIR to keep the mid-training screenshot (docs/playground.png comes from here).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian chromium is not installed (.ci/run installs it: apt-get install chromium)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    root = tmp_path / "nb"
    root.mkdir()
    shutil.copy(NOTEBOOKS / "06_playground.ipynb", root)
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    port = _free_port()
    # full playground defaults: time to press Stop
    env = {k: v for k, v in os.environ.items() if k != "KIT_FAST"}
    env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp_path / "settings")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            "--ServerApp.token=",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.disable_check_xsrf=True",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not start within 60 s")
    yield url
    proc.terminate()
    proc.wait(30)


def open_and_run_all(p, url: str, height: int = 1100):
    """Headless Chromium on a notebook in JupyterLab: wait for its kernel and for the notebook to
    take focus, close a dialog left open (printed, so the log says which), then Run All Cells; again
    only if, 20 s on, no cell shows it was asked to run and the kernel is still idle (on a loaded
    machine a click could land before the notebook took focus, and the test then waited two minutes
    for an output never asked for; a run that did start marks its cells [*] at once, so it is not
    asked twice)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.goto(url)
    idle = page.get_by_role("button", name=re.compile(r"\| Idle"))
    expect(idle).to_be_visible(timeout=90_000)  # kernel ready
    expect(page.locator(".jp-NotebookPanel .jp-Cell.jp-mod-active:visible").first).to_be_visible(
        timeout=30_000
    )
    # [*] asked, [1] done
    started = page.locator(".jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]")).first
    dialog = page.locator(".jp-Dialog").first
    for attempt in range(3):
        # a modal JupyterLab opened on a loaded machine swallows the click: say which, close it
        if dialog.is_visible():
            print(
                "a JupyterLab dialog was open, closed with Escape:",
                " ".join(dialog.inner_text().split())[:200],
            )
            page.keyboard.press("Escape")
            expect(dialog).to_be_hidden(timeout=10_000)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            expect(started).to_be_attached(timeout=20_000)
            break
        except (AssertionError, PlaywrightTimeout):
            # a busy kernel is running it: never ask twice
            if attempt == 2 or not idle.is_visible():
                raise
    return browser, page


def _set_slider(page, label: str, value: int) -> None:
    """Type a value into an ipywidgets slider's editable readout, as a user can."""
    box = page.locator(
        ".widget-slider", has=page.locator(".widget-label", has_text=re.compile(f"^{label}$"))
    )
    box.locator(".widget-readout").click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")
    expect_text(box.locator(".widget-readout"), str(value))


def expect_text(locator, text: str, timeout: int = 10_000) -> None:
    from playwright.sync_api import expect

    expect(locator).to_have_text(text, timeout=timeout)


@pytest.mark.timeout(600)
def test_playground_compares_fades_earlier_runs_and_stops_in_a_real_jupyterlab(
    jupyterlab, tmp_path
):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser, page = open_and_run_all(
            p, f"{jupyterlab}/lab/tree/06_playground.ipynb", height=1300
        )
        train = page.get_by_role("button", name="Train")
        expect(train).to_be_visible(timeout=60_000)
        status = page.locator(".widget-html-content", has_text=re.compile(r"^(done|stopped)"))

        # 1. compare mode (the default): DeepCluster, then ODC, on one board
        _set_slider(page, "train images", 400)
        _set_slider(page, "epochs", 2)
        train.click()
        plot = page.locator(".widget-output img").first
        expect(plot).to_be_visible(timeout=120_000)  # the first live board
        first = plot.get_attribute("src")
        # it updated
        page.wait_for_function("(src) => { const i = document.querySelector('.widget-output img');"
                               " return i && i.src !== src; }", arg=first, timeout=120_000)
        expect(status).to_have_text("done: DeepCluster 2 epochs; ODC 2 epochs", timeout=240_000)
        expect(page.get_by_text("on the board: DeepCluster, ODC", exact=True)).to_be_visible()

        # 2. another K for both: the first runs (each at its own preset: both at K 30, DeepCluster
        # at lr 0.3, ODC at lr 0.1) stay, faded and labelled with what differs from their own
        # algorithm's new run (K 40, lr unchanged)
        _set_slider(page, "clusters K", 40)  # the top at 400 images: 10 a cluster
        train.click()
        # the caption names the faded runs from this press's first draw on, after the status left
        # step 1's "done"
        faded = "faded: DeepCluster, earlier: K=30; ODC, earlier: K=30"
        expect(page.get_by_text(faded)).to_be_visible(timeout=120_000)
        expect(status).to_have_text("done: DeepCluster 2 epochs; ODC 2 epochs", timeout=240_000)
        expect(
            page.get_by_text(f"on the board: DeepCluster, ODC; {faded}", exact=True)
        ).to_be_visible()
        # KIT_SCREENSHOTS=docs keeps docs/playground.png
        shots = Path(os.environ.get("KIT_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.locator(".jp-OutputArea-output").first.screenshot(path=str(shots / "playground.png"))

        # 3. Stop mid-epoch says how far it got
        _set_slider(page, "train images", 4000)
        _set_slider(page, "epochs", 50)
        expect(train).to_be_enabled()
        train.click()
        expect(page.get_by_text(re.compile(r"^DeepCluster: epoch 1, loss"))).to_be_visible(
            timeout=120_000
        )
        page.get_by_role("button", name="Stop").click()
        expect(status).to_have_text(
            re.compile(
                r"^stopped: DeepCluster stopped after 0 epochs; epoch 1 rolled back after "
                r"\d+ of 63 iterations; ODC not started$"
            ),
            timeout=120_000,
        )
        expect(train).to_be_enabled()
        browser.close()
