"""`make docs` builds the static site offline, and a browser reads it without asking any other host.

The site is rendered (docs/build_site.py `render`) from the notebooks the session executed once with
KIT_FAST=1 and USE_EXAMPLE_RUN = True (tests/conftest.py `executed_notebook`), as `make docs`
executes them, with every proxy variable pointing at a closed port, so a download attempted during
the execution or the rendering fails. Headless Chromium (Debian's, via Playwright, as in
tests/test_browser.py) then opens the index served from 127.0.0.1, follows its link to a walkthrough
and finds the figures loaded, with every request to another host blocked and counted: none may be
made, none may fail. Set KIT_SCREENSHOTS=DIR to keep its screenshot.
"""
import functools
import html
import http.server
import os
import re
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import build_site  # docs/, put on sys.path by tests/conftest.py
import pytest
from conftest import NOTEBOOKS, OFFLINE
from test_browser import CHROMIUM, FLAGS

WALKTHROUGH = "notebooks/02_deepcluster_walkthrough.html"
MIN_FIGURES = 5  # tests/test_notebooks.py: the PNG figures 02 draws
VIEWS = "notebooks/04_stability.html"  # the flight recorder: a bokeh page in an iframe


@pytest.fixture(scope="module")
def site(tmp_path_factory, executed_notebook):
    """The site as `make docs` builds it, from the notebooks this session executed in mode
    "example"."""
    import nbformat

    out = tmp_path_factory.mktemp("site")
    executed = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = executed_notebook(path.name, "example")
        injected = build_site.use_example_run(nbformat.read(path, as_version=4))
        executed.append(build_site.Executed(path, nb, nb.metadata.kit_test.seconds, injected, "1"))
    with pytest.MonkeyPatch.context() as mp:  # rendering asks no other host either
        for k, v in OFFLINE.items():
            mp.setenv(k, v)
        assert build_site.render(out, executed) == 0
    return out


# -- the build's own pieces, no kernel -----------------------------------------------------------

def test_the_example_run_switch_is_injected():
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1\nUSE_EXAMPLE_RUN = False  # True: load the shipped run",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(USE_EXAMPLE_RUN)")])
    assert build_site.use_example_run(nb)
    assert nb.cells[0].source == "x = 1\nUSE_EXAMPLE_RUN = True  # True: load the shipped run"
    assert not build_site.use_example_run(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("y = 2")])
    )


def test_remote_requests_are_found_even_inside_iframes(tmp_path):
    page = (
        '<script src="https://cdn.example/x.js"></script><img src="data:image/png;base64,AA"><a '
        'href="https://arxiv.org/abs/1807.05520">a link is fine</a><iframe srcdoc="'
        f'{html.escape("<link rel=stylesheet href=//fonts.example/a.css>", quote=True)}"></iframe>'
    )
    (tmp_path / "p.html").write_text(page)
    found = build_site.remote_requests(tmp_path)
    assert len(found) == 2 and "cdn.example" in found[0] and "fonts.example" in found[1], found


def test_a_remote_badge_becomes_a_local_one_around_the_same_link():
    badge = (
        '<a '
        'href="https://colab.research.google.com/github/o/kit/blob/main/notebooks/x.ipynb"><img '
        'alt="Open In Colab" '
        'src="https://colab.research.google.com/assets/colab-badge.svg"/></a><img alt="a figure" '
        'src="data:image/png;base64,AA">'
    )
    out = build_site.REMOTE_IMG.sub(build_site.local_badge, badge)
    assert out == (
        '<a '
        'href="https://colab.research.google.com/github/o/kit/blob/main/notebooks/x.ipynb"><span '
        'class="kit-badge">Open In Colab</span></a><img alt="a figure" '
        'src="data:image/png;base64,AA">'
    )


def test_the_build_refuses_a_folder_it_did_not_make_and_an_unknown_notebook(tmp_path):
    (tmp_path / "theirs.txt").write_text("precious")
    with pytest.raises(SystemExit, match="was not made by docs/build_site.py"):
        build_site.main(["--out", str(tmp_path), "--only", "02"])
    assert [p.name for p in tmp_path.iterdir()] == ["theirs.txt"]
    with pytest.raises(SystemExit, match="no notebook starts with 99"):
        build_site.main(["--out", str(tmp_path / "new"), "--only", "99"])


def test_headings_get_githubs_anchor():
    assert build_site.github_slug("1. DeepCluster") == "1-deepcluster"
    assert (
        build_site.github_slug("2. Online Deep Clustering (ODC)") == "2-online-deep-clustering-odc"
    )


# -- the built site ------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.notebooks("example")
def test_the_site_builds_offline_and_every_link_lands(site):
    assert (site / "index.html").is_file() and (site / WALKTHROUGH).is_file()
    page = (site / WALKTHROUGH).read_text(encoding="utf-8")
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) >= MIN_FIGURES
    assert "jp-OutputArea-output" in page and "KIT_FAST=1" in page
    assert not build_site.remote_requests(site)
    broken = []
    for html_file in site.rglob("*.html"):
        text = html_file.read_text(encoding="utf-8")
        for link in re.findall(r'\b(?:href|src)="([^"#]*)(?:#[^"]*)?"', text):
            if link and not build_site.SCHEME.match(link) and not link.startswith("//"):
                if not (html_file.parent / unquote(html.unescape(link))).exists():
                    broken.append(f"{html_file.relative_to(site)}: {link}")
    assert not broken, "links that go nowhere on the site:\n" + "\n".join(broken)


@pytest.mark.slow
@pytest.mark.notebooks("example")
def test_pages_show_a_picture_for_the_playground_no_pipe_tables_and_answers_not_their_code(site):
    """The playground needs a kernel: its page shows a picture and says so, not `VBox(children=...`;
    no table is left as raw pipes (01's numbers); a folded answer's cell shows the answer, not the
    f-string that spells it."""
    playground = (site / "notebooks/06_playground.html").read_text(encoding="utf-8")
    assert "VBox(" not in playground and "needs a running kernel" in playground
    assert 'src="../docs/playground.png"' in playground and (site / "docs/playground.png").is_file()
    for page in site.glob("notebooks/*.html"):
        text = re.sub(
            r"<pre>.*?</pre>|<code>.*?</code>", "", page.read_text(encoding="utf-8"), flags=re.S
        )
        assert not re.search(r"\|\s*-{3,}\s*\|", text), f"{page.name} has a table left as raw pipes"
    stability = (site / VIEWS).read_text(encoding="utf-8")
    assert "<summary><b>Answer</b></summary>" in stability and "lesson.Answer" not in stability


@pytest.fixture
def served(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.notebooks("example")
@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian chromium is not installed (.ci/run installs it: apt-get install chromium)",
)
@pytest.mark.timeout(300)
def test_a_browser_reads_the_site_offline(served, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    blocked, failed = [], []

    def only_local(route):
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1300, "height": 1100})
        context.route("**/*", only_local)
        page = context.new_page()
        page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
        page.goto(f"{served}/index.html")
        expect(page.locator("h1").first).to_contain_text("DeepCluster")
        page.locator(f'main a[href="{WALKTHROUGH}"]').first.click()
        page.wait_for_url(f"**/{WALKTHROUGH}")
        page.wait_for_load_state("load")
        figures = page.eval_on_selector_all(
            ".jp-OutputArea-output img",
            "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])",
        )
        assert len(figures) >= MIN_FIGURES, f"{len(figures)} figures on {WALKTHROUGH}"
        assert all(complete and w > 0 and h > 0 for complete, w, h in figures), figures
        expect(page.locator("nav.kit-nav a.here")).to_be_visible()
        walkthrough = page.url
        # BokehJS inlined in the iframe draws the flight recorder, offline
        page.goto(f"{served}/{VIEWS}")
        frame = page.frame_locator("iframe").first
        expect(frame.locator("canvas").first).to_be_attached(timeout=30_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('iframe')].some(f => f.contentWindow.Bokeh"
            " && f.contentWindow.Bokeh.documents.length > 0)",
            timeout=30_000,
        )
        page.goto(walkthrough)
        # KIT_SCREENSHOTS=DIR keeps the view at the first figure (docs/site.png comes from here)
        # its prompt, figure and guide
        page.evaluate("window.scrollTo(0, document.querySelector('.jp-OutputArea-output img')"
                      ".getBoundingClientRect().top + window.scrollY - 300)")
        shots = Path(os.environ.get("KIT_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "site.png"))
        browser.close()
    assert not blocked, "requests to other hosts:\n" + "\n".join(blocked)
    assert not failed, "failed requests:\n" + "\n".join(failed)
