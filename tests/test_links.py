"""The repository stands alone: every link resolves inside it, and every section citation exists.

Users clone this repository and nothing else, so:
- every link and image in the markdown (README.md, docs/, data/README.md, any other tracked .md
  file, and the markdown cells of notebooks/*.ipynb) is an http(s)/mailto URL or a file of the
  repository, reached by a relative path that stays inside it (a `#fragment` into a markdown file
  or notebook must name one of its headings);
- no file of the repository names the developers' folder outside it;
- a citation of the form `<DOC>.md §n` (DOC = ALGORITHMS or ECOSYSTEM), and a bare `§n` in a
  file that cites those documents, names a heading of docs/<DOC>.md.

No network, no kit import; each check prints every offender as `path:line: what is wrong`.
"""
from __future__ import annotations

import json
import re
import subprocess
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = {"ALGORITHMS": ROOT / "docs" / "ALGORITHMS.md", "ECOSYSTEM": ROOT / "docs" / "ECOSYSTEM.md"}
FORBIDDEN = ("../" + "shared", "/work/" + "shared")  # split so this file does not contain them
URL_SCHEMES = ("http://", "https://", "mailto:")


# -- the repository's files ------------------------------------------------------------------------

@lru_cache(maxsize=None)
def repo_files() -> tuple[str, ...]:
    """Tracked files plus untracked ones git does not ignore (what the next commit can ship), that
    exist."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        names = [n for n in out.decode("utf-8").split("\0") if n]
    # not a git checkout (e.g. an unpacked archive)
    except (OSError, subprocess.CalledProcessError):
        skip = {
            ".git",
            ".venv",
            "runs",
            "data",
            "__pycache__",
            ".cache",
            ".pytest_cache",
            ".ipynb_checkpoints",
        }
        names = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
                 if p.is_file() and not skip.intersection(p.relative_to(ROOT).parts)
                 and not any(part.endswith(".egg-info") for part in p.relative_to(ROOT).parts)]
        names.append("data/README.md")
    return tuple(sorted(n for n in set(names) if (ROOT / n).is_file()))


def repo_dirs() -> set[str]:
    return {Path(n).parent.as_posix() for n in repo_files()} | {
        p.as_posix() for n in repo_files() for p in Path(n).parents}


def read_text(name: str) -> str | None:
    """The file's text, or None for a binary file."""
    data = (ROOT / name).read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def markdown_sources() -> list[tuple[str, str, str, dict]]:
    """(display name, file, markdown text, notebook attachments) for every .md file and notebook
    markdown cell."""
    out = []
    for name in repo_files():
        if name.endswith(".md"):
            out.append((name, name, read_text(name) or "", {}))
        elif name.endswith(".ipynb"):
            for i, cell in enumerate(json.loads(read_text(name))["cells"]):
                if cell["cell_type"] == "markdown":
                    out.append(
                        (
                            f"{name} cell {i}",
                            name,
                            _joined(cell["source"]),
                            cell.get("attachments", {}),
                        )
                    )
    return out


def _joined(source) -> str:
    return "".join(source) if isinstance(source, list) else source


# -- markdown parsing ------------------------------------------------------------------------------

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
INLINE_LINK = re.compile(
    r"(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]"  # [text], one level of nested brackets
    r"\(\s*(<[^>\n]*>|(?:[^()\s]|\([^()\s]*\))*)"  # (target, or <target>, with balanced parentheses
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")  # and an optional "title")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?", re.M)
HTML_LINK = re.compile(
    r"<(?:img|a|source|video|audio|iframe)\b[^>]*?\b(?:src|href)\s*=\s*([\"'])(.*?)\1", re.I | re.S
)
HTML_ID = re.compile(r"<[a-z][^>]*?\b(?:id|name)\s*=\s*([\"'])(.*?)\1", re.I)
ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")


def strip_code(text: str) -> str:
    """Blank out fenced blocks and code spans (their `[..](..)` are not links), keeping line
    numbers."""
    lines, fence = [], None
    for line in text.split("\n"):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)[0] * len(m.group(1))
            lines.append("")
        elif fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) == {fence[0]}:
                fence = None
            lines.append("")
        else:
            lines.append(line)
    return CODE_SPAN.sub(lambda m: "code" + "\n" * m.group(0).count("\n"), "\n".join(lines))


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link/image, reference definition and HTML src/href."""
    text = strip_code(text)
    found = []
    for m in INLINE_LINK.finditer(text):
        found.append((m.start(3), m.group(3).strip("<>")))
    for m in REF_DEF.finditer(text):
        found.append((m.start(1), m.group(1)))
    for m in HTML_LINK.finditer(text):
        found.append((m.start(2), m.group(2)))
    return [(text.count("\n", 0, pos) + 1, target) for pos, target in sorted(found)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: links reduced to their text, lower case, punctuation
    dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def headings(text: str) -> list[str]:
    """The headings' texts (ATX and setext), outside code blocks."""
    lines = strip_code(text).split("\n")
    found = []
    for i, line in enumerate(lines):
        m = ATX.match(line)
        if m:
            found.append(m.group(2))
        elif (
            i + 1 < len(lines)
            and re.fullmatch(r" {0,3}(=+|-+)[ \t]*", lines[i + 1])
            and line.strip()
            and not re.match(r" {0,3}([|>#*+-]|\d+[.)])", line)
        ):
            found.append(line.strip())
    return found


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for h in headings(text):
        s = slug(h)
        out.add(s if s not in seen else f"{s}-{seen[s]}")
        seen[s] = seen.get(s, 0) + 1
    out.update(m.group(2) for m in HTML_ID.finditer(text))
    return out


@lru_cache(maxsize=None)
def anchors_of(name: str) -> frozenset[str]:
    if name.endswith(".ipynb"):
        cells = json.loads(read_text(name))["cells"]
        return frozenset().union(
            *[anchors(_joined(c["source"])) for c in cells if c["cell_type"] == "markdown"]
        )
    return frozenset(anchors(read_text(name) or ""))


def check_link(holder: str, target: str, attachments: dict) -> str | None:
    """None if `target`, written in file `holder`, resolves; otherwise what is wrong."""
    if not target:
        return "empty link target"
    if target.lower().startswith(URL_SCHEMES):
        return None if not re.search(r"\s", target) else "URL with whitespace"
    if target.startswith("attachment:"):
        return None if target[len("attachment:"):] in attachments else "no such notebook attachment"
    if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target):
        return "a URL scheme other than http(s)/mailto (a clone cannot follow it)"
    path, _, fragment = target.partition("#")
    path = unquote(path.split("?")[0])
    if not path:  # "#anchor" into the holder itself
        resolved = holder
    else:
        if path.startswith("/"):
            return "absolute path; use a path relative to the file"
        full = (ROOT / holder).parent.joinpath(path).resolve()
        try:
            resolved = full.relative_to(ROOT.resolve()).as_posix()
        except ValueError:
            return "resolves outside the repository"
        if resolved not in repo_files() and resolved not in repo_dirs():
            exists = (
                "exists here but is not part of the repository"
                if full.exists()
                else "does not exist"
            )
            return f"{resolved} {exists}"
    if (
        fragment
        and resolved.endswith((".md", ".ipynb"))
        and unquote(fragment) not in anchors_of(resolved)
    ):
        return f"{resolved} has no heading with anchor #{fragment}"
    return None


# -- section citations ----------------------------------------------------------------------------

SEC = r"\d+(?:\.\d+)*"
# name, maybe `code` or [link](..)
CITATION = re.compile(
    rf"\b(ALGORITHMS|ECOSYSTEM)\.md`?\]?(?:\([^)\s]*\))?"
    rf"[ \t]*§[ \t]*({SEC})(?:[ \t]*[-–][ \t]*§?[ \t]*({SEC}))?"
)  # §n or §n-m
BARE = re.compile(rf"§[ \t]*({SEC})(?:[ \t]*[-–][ \t]*§?[ \t]*({SEC}))?")
HEADING_NUMBER = re.compile(rf"^§?[ \t]*({SEC})\.?(?:[ \t]|$)")


@lru_cache(maxsize=None)
def sections(doc: str) -> frozenset[str]:
    """The section numbers of docs/<doc>.md: headings like `## 1. Title` or `### 1.2 Title`."""
    path = DOCS[doc]
    if not path.is_file():
        return frozenset()
    nums = (HEADING_NUMBER.match(h.strip()) for h in headings(path.read_text(encoding="utf-8")))
    return frozenset(m.group(1) for m in nums if m)


def expand(start: str, end: str | None) -> list[str]:
    """`1.3`-`1.5` -> 1.3, 1.4, 1.5; `3.2`-`4` -> 3.2, 3.3, 3.4 (same major); anything else: the two
    ends."""
    if not end:
        return [start]
    a = start.split(".")
    b = end.split(".")
    if len(a) == 2 and len(b) == 1:
        b = [a[0], b[0]]
    if len(a) == len(b) and a[:-1] == b[:-1] and int(a[-1]) <= int(b[-1]):
        return [".".join(a[:-1] + [str(n)]) for n in range(int(a[-1]), int(b[-1]) + 1)]
    return [start, ".".join(b)]


def cited_texts() -> list[tuple[str, str]]:
    """(file, text) of every tracked .py/.md file and every notebook's cell sources, but not this
    file."""
    out = []
    for name in repo_files():
        if name == Path(__file__).resolve().relative_to(ROOT).as_posix():
            continue
        if name.endswith((".py", ".md")):
            out.append((name, read_text(name) or ""))
        elif name.endswith(".ipynb"):
            cells = json.loads(read_text(name))["cells"]
            out.extend((f"{name} cell {i}", _joined(c["source"])) for i, c in enumerate(cells))
    return out


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


# -- the checks ------------------------------------------------------------------------------------

def test_every_link_resolves_inside_the_repository():
    broken, n = [], 0
    for shown, holder, text, attachments in markdown_sources():
        for line, target in links(text):
            n += 1
            why = check_link(holder, target, attachments)
            if why:
                broken.append(f"{shown}:{line}: ({target}) {why}")
    assert n > 0, "no links found at all: the link parser is broken"
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_no_file_names_the_developers_folder():
    offenders = []
    for name in repo_files():
        text = read_text(name)
        if text is None:
            continue
        for i, line in enumerate(text.split("\n"), 1):
            for bad in FORBIDDEN:
                if bad in line:
                    offenders.append(f"{name}:{i}: names {bad!r}: {line.strip()[:120]}")
    assert not offenders, "the repository must stand alone:\n" + "\n".join(offenders)


def test_every_section_citation_names_a_heading():
    assert {"1", "2", "3", "4", "5", "1.6", "2.3"} <= sections("ALGORITHMS"), (
        "docs/ALGORITHMS.md lost its numbering"
    )
    broken, n = [], 0
    for name, text in cited_texts():
        for m in CITATION.finditer(text):
            n += 1
            missing = [s for s in expand(m.group(2), m.group(3)) if s not in sections(m.group(1))]
            if missing:
                where = f"{name}:{line_of(text, m.start())}"
                broken.append(f"{where}: {m.group(0)!r} -> no section {', '.join(missing)} in "
                              f"docs/{m.group(1)}.md")
    assert n > 0, "no citations found at all: the citation parser is broken"
    assert not broken, "citations of missing sections:\n" + "\n".join(broken)


def test_every_bare_section_sign_names_a_heading():
    """A bare §n means a section of docs/ALGORITHMS.md (kit's spec), or of docs/ECOSYSTEM.md in a
    file that names ECOSYSTEM.md; inside docs/<DOC>.md it means a section of that document."""
    broken = []
    for name, text in cited_texts():
        own = [d for d, p in DOCS.items() if p == ROOT / name]
        docs = own or ["ALGORITHMS"] + (
            ["ECOSYSTEM"] if re.search(r"\bECOSYSTEM\.md", text) else []
        )
        cited_spans = [m.span() for m in CITATION.finditer(text)]
        for m in BARE.finditer(text):
            if any(a <= m.start() < b for a, b in cited_spans):
                continue
            missing = [
                s for s in expand(m.group(1), m.group(2)) if not any(s in sections(d) for d in docs)
            ]
            if missing:
                where = f"{name}:{line_of(text, m.start())}"
                broken.append(f"{where}: {m.group(0)!r} -> no section {', '.join(missing)} in "
                              f"{' or '.join(f'docs/{d}.md' for d in docs)}")
    assert not broken, "bare § references to missing sections:\n" + "\n".join(broken)


# -- the checker itself --------------------------------------------------------------------------

def test_the_link_parser_finds_what_it_should():
    text = ("[a](x.md) ![img](docs/p.png \"title\") `[not](code.md)` [b](<y z.md>)\n"
            "```\n[in](fence.md)\n```\n<img src='i.png'> <a href=\"h.md#x\">h</a>\n[ref]: r.md\n"
            "[nested [brackets]](n.md) [w](https://en.wikipedia.org/wiki/X_(y))")
    assert [t for _, t in links(text)] == [
        "x.md",
        "docs/p.png",
        "y z.md",
        "i.png",
        "h.md#x",
        "r.md",
        "n.md",
        "https://en.wikipedia.org/wiki/X_(y)",
    ]
    assert (
        slug("1.6 Pseudo-label dataset and uniform `sampling`")
        == "16-pseudo-label-dataset-and-uniform-sampling"
    )
    assert slug("2. Online Deep Clustering (ODC)") == "2-online-deep-clustering-odc"


@pytest.mark.parametrize("target, ok", [
    ("https://arxiv.org/abs/1807.05520", True),
    ("docs/ALGORITHMS.md", True),
    ("docs/ALGORITHMS.md#1-deepcluster", True),
    ("docs/ALGORITHMS.md#no-such-heading", False),
    ("docs/NOPE.md", False),
    ("../outside.md", False),
    ("/etc/passwd", False),
    ("file:///tmp/x", False),
    (".venv/pyvenv.cfg", False),  # present on a developer's machine, absent from a clone
])
def test_the_link_checker_judges_targets(target, ok):
    assert (check_link("README.md", target, {}) is None) == ok


def test_the_citation_parser_reads_the_forms_in_use():
    forms = {
        "(ALGORITHMS.md §1.6)": ("ALGORITHMS", "1.6", None),
        "`ALGORITHMS.md` §5": ("ALGORITHMS", "5", None),
        "[`ALGORITHMS.md` §1.6](docs/ALGORITHMS.md#x)": ("ALGORITHMS", "1.6", None),
        "ECOSYSTEM.md §3.2-3.4": ("ECOSYSTEM", "3.2", "3.4"),
    }
    for text, groups in forms.items():
        assert CITATION.search(text).groups() == groups, text
    assert expand("3.2", "3.4") == ["3.2", "3.3", "3.4"] and expand("1.3", "4") == ["1.3", "1.4"]
