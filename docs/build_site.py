"""`make docs`: the notebooks, executed, as a static site that opens offline (default folder:
site/).

    python docs/build_site.py                    # all seven notebooks -> site/index.html
    python docs/build_site.py --only 02 04       # a reduced site
    python docs/build_site.py --out /tmp/s --no-example-run

`execute_for_site` executes, `render` writes the site from notebooks executed already: the tests
(tests/test_site.py) render the notebooks their session executed once, as `make docs` would.

Each notebook is executed in a fresh kernel with KIT_FAST=1 (unless KIT_FAST is set otherwise) and,
where its `parameters` cell has the line `USE_EXAMPLE_RUN = False`, with that line turned into
`USE_EXAMPLE_RUN = True`, so it reads the trained run that ships with kit instead of training. The
executed notebook becomes one HTML page with every output: PNG figures as data URIs, the bokeh views
(kit.views) as iframes with BokehJS inlined, tables, printed text. The index comes from
docs/index.md; every markdown file a page links to (README, docs/ALGORITHMS.md, ...) becomes a page
too, every other file it links to (images, sources) is copied beside it, and links keep working:
`x.ipynb`/`x.md` become `x.html`, and each heading also gets GitHub's anchor so
`ALGORITHMS.md#1-deepcluster` lands.

Why plain nbconvert (+ nbclient to execute), not jupyter-book, mkdocs-jupyter or sphinx-gallery:
- it is the Jupyter project's own converter, already installed with JupyterLab, so the docs add no
  dependency and render every output exactly as JupyterLab shows it (its "lab" template);
- offline is easy to guarantee: the template (docs/site_template/) drops the only remote requests
  (require.js, MathJax, mermaid, the widget manager), a remote image in a markdown cell (the
  "Open in Colab" badge) is drawn as a local badge around the same link, and this script fails if
  any page still names another host in a script, stylesheet, image or frame;
- jupyter-book 2 needs Node.js and fetches its theme at build time (not offline), jupyter-book 1
  and mkdocs-material are in maintenance mode, mkdocs-jupyter would add mkdocs and a theme for a
  site of eight pages, and sphinx-gallery builds from .py scripts, not notebooks.
"""
from __future__ import annotations

import argparse
import copy
import html
import os
import posixpath
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TEMPLATE_DIRS = [str(ROOT / "docs")]  # docs/site_template/
INDEX_SOURCE = "docs/index.md"
MARKER = ".kit-site"  # the output folder is ours to empty only if it carries this file
PARAM_LINE = re.compile(r"^(\s*USE_EXAMPLE_RUN\s*=\s*)False\b", re.M)
SKIP_DIRS = {".git", ".venv", "runs", "site", "__pycache__", ".cache"}

ATTR = re.compile(r'\b(href|src)="([^"]*)"')
HEADING = re.compile(r'<h([1-6]) id="([^"]*)">(.*?)(?=<a class="anchor-link"|</h\1>)', re.S)
SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")
# a request to another host: a script, stylesheet, image, frame or media source, a CSS url() or an
# import()
REMOTE = re.compile(
    r"<(?:script|link|img|iframe|source|video|audio|embed|object)\b[^>]*?\b(?:src|href|data)\s*=\s*"
    r"[\"']?\s*(?:https?:)?//[^\s\"'<>)]*|url\(\s*[\"']?\s*(?:https?:)?//[^\s\"'<>)]*"
    r"|\bimport\(\s*[\"'](?:https?:)?//[^\s\"'<>)]*",
    re.I,
)


REMOTE_IMG = re.compile(r"<img\b[^>]*?\bsrc=\"(?:https?:)?//[^\"]*\"[^>]*>", re.I)


WIDGET = "application/vnd.jupyter.widget-view+json"
# what a page shows where a widget was: the widgets need a live kernel, and without one nbconvert
# prints their repr
WIDGET_PICTURE = (
    "<p><b>The playground needs a running kernel:</b> open "
    "<code>notebooks/06_playground.ipynb</code> in JupyterLab "
    "(<code>.venv/bin/jupyter lab notebooks/</code>) to train with it. This is what it looks like "
    'there:</p><img src="{src}" alt="The playground in JupyterLab" style="max-width:100%">'
)


def is_playground(output) -> bool:
    """The playground's widget (its repr starts with its top box); a progress bar is a widget too,
    but its text repr reads as it should and stays."""
    data = output.get("data", {})
    return WIDGET in data and data.get("text/plain", "").startswith("VBox(")


def widgets_as_pictures(nb, source: str):
    """A copy of `nb` in which the playground's output is a picture of it and a note that it needs a
    kernel."""
    import copy

    if not any(is_playground(o) for c in nb.cells for o in c.get("outputs", [])):
        return nb
    nb = copy.deepcopy(nb)
    src = posixpath.relpath("docs/playground.png", posixpath.dirname(source) or ".")
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if is_playground(out):
                out["data"] = {"text/html": WIDGET_PICTURE.format(src=src)}
    return nb


def local_badge(m) -> str:
    """A remote image (a badge in a markdown cell) as its alt text in a badge drawn by CSS: no
    request."""
    alt = re.search(r'\balt="([^"]*)"', m.group(0))
    return f'<span class="kit-badge">{alt.group(1) if alt else "image"}</span>'


def github_slug(heading_html: str) -> str:
    """GitHub's anchor for a heading (as tests/test_links.py computes it), from the rendered
    heading."""
    text = html.unescape(re.sub(r"<[^>]+>", "", heading_html))
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def use_example_run(nb) -> bool:
    """Turn `USE_EXAMPLE_RUN = False` into `= True` (the `parameters` cell first); True if it was
    there."""
    cells = [c for c in nb.cells if c.cell_type == "code"]
    cells.sort(key=lambda c: "parameters" not in c.get("metadata", {}).get("tags", []))
    for cell in cells:
        if PARAM_LINE.search(cell.source):
            cell.source = PARAM_LINE.sub(r"\1True", cell.source, count=1)
            return True
    return False


def execute(nb, timeout: int) -> None:
    from nbclient import NotebookClient

    # the kernel inherits os.environ (KIT_FAST) and runs in notebooks/, as in JupyterLab
    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()


class Site:
    def __init__(self, out: Path):
        self.out = out
        self.pages: dict[str, str] = {}  # repo path of a source -> site path of its page
        self.queue: list[str] = []  # markdown files still to render
        self.copies: set[str] = set()  # repo paths copied as they are
        self.unresolved: list[str] = []
        self.nav: list[tuple[str, str]] = []  # (label, site path)

    # -- where a repository path lands on the site -------------------------------------------------
    def page_for(self, repo_path: str) -> str | None:
        if repo_path in self.pages:
            return self.pages[repo_path]
        full = ROOT / repo_path
        if SKIP_DIRS.intersection(Path(repo_path).parts):
            return None
        if full.is_dir():
            readme = posixpath.join(repo_path, "README.md") if repo_path != "." else "README.md"
            return self.page_for(readme) if (ROOT / readme).is_file() else None
        if not full.is_file():
            return None
        if repo_path.endswith(".md"):
            self.pages[repo_path] = repo_path[:-3] + ".html"
            self.queue.append(repo_path)
            return self.pages[repo_path]
        self.copies.add(repo_path)  # an image, a source file, a notebook that was not executed
        return repo_path

    def rewrite(self, text: str, source: str, target: str) -> str:
        """Point every relative href/src of a page rendered from `source` at the site's copy of its
        target."""
        def fix(m):
            link = html.unescape(m.group(2))
            if not link or link.startswith("#") or SCHEME.match(link) or link.startswith("//"):
                return m.group(0)
            path, sep, fragment = link.partition("#")
            repo_path = posixpath.normpath(
                posixpath.join(posixpath.dirname(source), unquote(path.split("?")[0]))
            )
            dest = None if repo_path.startswith("..") else self.page_for(repo_path)
            if dest is None:
                self.unresolved.append(f"{source}: {link}")
                return m.group(0)
            rel = posixpath.relpath(dest, posixpath.dirname(target) or ".")
            return f'{m.group(1)}="{html.escape(quote(rel) + sep + fragment, quote=True)}"'
        return ATTR.sub(fix, text)

    # -- pages -------------------------------------------------------------------------------------
    def nav_html(self, target: str) -> str:
        here = posixpath.dirname(target) or "."
        links = []
        for label, path in self.nav:
            cls = ' class="here"' if path == target else ""
            links.append(
                f'<a href="{quote(posixpath.relpath(path, here))}"{cls}>{html.escape(label)}</a>'
            )
        return f'<nav class="kit-nav"><b>kit</b>{"".join(links)}</nav>'

    def write(self, nb, source: str, target: str, banner: str = "") -> None:
        from nbconvert import HTMLExporter
        from nbconvert.preprocessors import TagRemovePreprocessor

        exporter = HTMLExporter(
            template_name="site_template", extra_template_basedirs=TEMPLATE_DIRS
        )
        # a folded answer's cell formats its text from the run: show the answer, not the code that
        # spells it out
        exporter.register_preprocessor(
            TagRemovePreprocessor(remove_input_tags={"answer"}), enabled=True
        )
        nb = widgets_as_pictures(nb, source)
        title = Path(source).stem if source != INDEX_SOURCE else "kit"
        nb.metadata["title"] = f"{title} · kit"
        # nav and banner hold site paths already: put them in after the source's links are rewritten
        body, _ = exporter.from_notebook_node(
            nb, resources={"kit_nav": "<!--kit-nav-->", "kit_banner": "<!--kit-banner-->"}
        )
        body = self.rewrite(body, source, target)
        body = body.replace("<!--kit-nav-->", self.nav_html(target), 1).replace(
            "<!--kit-banner-->", banner, 1
        )
        # e.g. the "Open in Colab" badge: its link stays, its image is drawn here
        body = REMOTE_IMG.sub(local_badge, body)
        seen: dict[str, int] = {}

        def anchor(m):  # GitHub's anchor beside nbconvert's own id
            slug = github_slug(m.group(3))
            slug, seen[slug] = (
                (slug if slug not in seen else f"{slug}-{seen[slug]}"),
                seen.get(slug, 0) + 1,
            )
            return (
                m.group(0)
                if slug == m.group(2)
                else f'<h{m.group(1)} id="{m.group(2)}"><a '
                     f'id="{html.escape(slug)}"></a>{m.group(3)}'
            )
        body = HEADING.sub(anchor, body)
        dest = self.out / target
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(body, encoding="utf-8")

    def markdown_page(self, source: str, target: str) -> None:
        import nbformat

        text = (ROOT / source).read_text(encoding="utf-8")
        self.write(
            nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)]), source, target
        )

    def finish(self) -> None:
        while self.queue:
            source = self.queue.pop(0)
            self.markdown_page(source, self.pages[source])
        for repo_path in sorted(self.copies):
            dest = self.out / repo_path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / repo_path, dest)


def remote_requests(folder: Path) -> list[str]:
    """Every place a page of the site would ask another host for something (inside iframes' srcdoc
    too)."""
    found = []
    for page in sorted(folder.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        outer = re.sub(r'srcdoc="[^"]*"', 'srcdoc=""', text)
        for inner in [outer] + [html.unescape(s) for s in re.findall(r'srcdoc="([^"]*)"', text)]:
            found += [
                f"{page.relative_to(folder)}: {m.group(0)[:100]}" for m in REMOTE.finditer(inner)
            ]
    return found


def prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            sys.exit(
                f"error: {out} is not empty and was not made by docs/build_site.py; choose another "
                "--out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by docs/build_site.py; emptied by each build\n")


@dataclass
class Executed:
    """A notebook as executed for the site: what its banner says comes with it."""

    path: Path  # the notebook file under notebooks/
    nb: object  # the executed nbformat notebook
    seconds: float  # how long its execution took
    example_run: bool  # `USE_EXAMPLE_RUN = True` was injected
    kit_fast: str  # the KIT_FAST its kernel had


def execute_for_site(path: Path, example_run: bool = True, timeout: int = 900) -> Executed:
    """Execute one notebook as `make docs` shows it: a fresh kernel, KIT_FAST from the
    environment."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    injected = use_example_run(nb) if example_run else False
    print(f"executing {path.name} (KIT_FAST={os.environ['KIT_FAST']}, "
          f"USE_EXAMPLE_RUN={'True' if injected else 'as written'}) ...", flush=True)
    t0 = time.perf_counter()
    execute(nb, timeout)
    seconds = time.perf_counter() - t0
    print(f"  {path.name}: {seconds:.1f} s", flush=True)
    return Executed(path, nb, seconds, injected, os.environ["KIT_FAST"])


def _what_it_shows(e: Executed) -> str:
    """The banner's account of where the page's numbers come from, true of each kind of notebook."""
    source = e.path.read_text()
    if e.example_run and "example_run()" in source:
        return (
            " and <code>USE_EXAMPLE_RUN = True</code>: what it would train is read from the "
            "trained run that ships with kit (4,000 digits, K = 30, 30 epochs), so the numbers it "
            "shows are that full-size run's"
        )
    if e.example_run:  # the switch, but nothing shipped to read (07 trains CIFAR-10 on a GPU)
        return (
            " and <code>USE_EXAMPLE_RUN = True</code>, which this notebook answers with a "
            "message: kit ships no run of what it trains, so the page shows no results"
        )
    if "Playground" in source:
        return (
            ": its widgets need a live kernel, so the page shows a picture of them and no results "
            "of its own"
        )
    return " (small presets), so its numbers are those of a seconds-long smoke run"


def render(out: Path, notebooks: list[Executed]) -> int:
    """The site in `out` from notebooks executed already (by `execute_for_site`, or by the tests'
    cache): a page per notebook, the index, every markdown page they link to. 0, or 1 if a page asks
    another host."""
    started = time.perf_counter()
    prepare(out)
    site = Site(out)
    site.pages[INDEX_SOURCE] = "index.html"
    site.nav.append(("Home", "index.html"))
    for e in notebooks:
        source = e.path.relative_to(ROOT).as_posix()
        site.pages[source] = source[:-6] + ".html"
        site.nav.append((e.path.stem.replace("_", " "), site.pages[source]))  # "01 quickstart"
    site.nav.append(
        ("ALGORITHMS.md", site.page_for("docs/ALGORITHMS.md") or "docs/ALGORITHMS.html")
    )

    for e in notebooks:
        source = e.path.relative_to(ROOT).as_posix()
        site.copies.add(source)  # the notebook itself, unexecuted, to download beside its page
        # the page's title and the dropped widget state stay off the caller's copy
        nb = copy.deepcopy(e.nb)
        nb.metadata.pop("widgets", None)  # no widget manager on a static page
        banner = (
            f'<div class="kit-banner">This is <a href="{e.path.name}">{e.path.name}</a> as '
            "<code>make docs</code> "
            f"executed it ({time.strftime('%Y-%m-%d')}, {e.seconds:.0f} s on the CPU) with "
            "<code>KIT_FAST="
            f"{html.escape(e.kit_fast)}</code>"
            + _what_it_shows(e)
            + "."
            + " To run it yourself: <code>.venv/bin/jupyter lab notebooks/</code>.</div>"
        )
        site.write(nb, source, site.pages[source], banner)
    site.markdown_page(INDEX_SOURCE, "index.html")
    site.finish()

    remote = remote_requests(out)
    if remote:
        print(
            "error: these pages would ask another host for something:\n  " + "\n  ".join(remote),
            file=sys.stderr,
        )
        return 1
    for link in site.unresolved:
        print(f"warning: link left as it is (not part of the site): {link}")
    n = len(list(out.rglob("*.html")))
    print(
        f"site: {n} pages in {out} ({time.perf_counter() - started:.0f} s to render); open "
        f"{out / 'index.html'}"
    )
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "site"), help="output folder (default: site/)")
    p.add_argument("--only", nargs="*", default=None, metavar="PREFIX",
                   help="build only the notebooks whose names start with these (e.g. 02 04)")
    p.add_argument(
        "--no-example-run",
        action="store_true",
        help="leave USE_EXAMPLE_RUN as the notebooks have it",
    )
    p.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    args = p.parse_args(argv)

    os.environ.setdefault("KIT_FAST", "1")
    out = Path(args.out).resolve()
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.only is not None:
        notebooks = [
            nb for nb in notebooks if any(nb.name.startswith(prefix) for prefix in args.only)
        ]
        if not notebooks:
            sys.exit(f"error: no notebook starts with {' or '.join(args.only)}")
    prepare(out)  # a folder that is not ours is refused before minutes of execution
    executed = []
    for path in notebooks:
        try:
            executed.append(execute_for_site(path, not args.no_example_run, args.timeout))
        except Exception as e:  # nbclient's CellExecutionError names the cell and the traceback
            print(f"error: {path.name} failed:\n{e}", file=sys.stderr)
            return 1
    return render(out, executed)


if __name__ == "__main__":
    sys.exit(main())
