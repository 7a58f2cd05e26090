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
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason="Debian chromium is not installed (.ci/run installs it: apt-get install chromium)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    root = tmp_path / "nb"
    root.mkdir()
    shutil.copy(NOTEBOOKS / "05_playground.ipynb", root)
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "KIT_FAST"}  # full playground defaults: time to press Stop
    env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp_path / "settings")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
                             "--ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password=",
                             f"--ServerApp.root_dir={root}", "--ServerApp.disable_check_xsrf=True"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


@pytest.mark.timeout(300)
def test_playground_trains_and_stops_in_a_real_jupyterlab(jupyterlab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(f"{jupyterlab}/lab/tree/05_playground.ipynb")
        expect(page.get_by_role("button", name=re.compile(r"\| Idle"))).to_be_visible(timeout=90_000)  # kernel ready
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        train = page.get_by_role("button", name="Train")
        expect(train).to_be_visible(timeout=60_000)
        train.click()
        plot = page.locator(".widget-output img").first
        expect(plot).to_be_visible(timeout=120_000)  # the first live plot
        first = plot.get_attribute("src")
        page.wait_for_function("(src) => { const i = document.querySelector('.widget-output img');"
                               " return i && i.src !== src; }", arg=first, timeout=120_000)  # it updated
        if "KIT_SCREENSHOTS" in os.environ:  # for docs/: a few epochs in, so the per-epoch panel has points
            expect(page.get_by_text("epoch 4,", exact=False)).to_be_visible(timeout=180_000)
        shots = Path(os.environ.get("KIT_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "playground.png"), full_page=True)
        page.get_by_role("button", name="Stop").click()
        expect(page.get_by_text("stopped after", exact=False)).to_be_visible(timeout=120_000)
        expect(train).to_be_enabled()
        browser.close()
