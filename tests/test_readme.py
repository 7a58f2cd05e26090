"""The README's Python code runs as written (its first screen is a wording check:
tests/test_wording.py).

Every ```python block of README.md is executed, in order, in one fresh interpreter with KIT_FAST=1
(the block reads it and shrinks to a smoke run), in a temporary folder so nothing lands in the
repository.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_readme_python_code_runs_as_written(tmp_path):
    blocks = PYTHON_BLOCK.findall(README)
    assert blocks, "README.md has no ```python block"
    script = tmp_path / "readme.py"
    script.write_text("\n\n".join(blocks), encoding="utf-8")
    env = {**os.environ, "KIT_FAST": "1", "NUMBA_CACHE_DIR": str(ROOT / ".cache" / "numba")}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, f"README's python code failed:\n{done.stderr[-4000:]}"
    assert "kNN accuracy" in done.stdout


def test_the_readme_file_table_matches_the_tree():
    """Every module of kit/ is named in the README (its file table), and every kit/ path the README
    names exists."""
    text = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`(kit/[\w/.-]+)`", text))
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "kit").glob("*.py")}
    assert not modules - named, (
        f"modules the README's file table leaves out: {sorted(modules - named)}"
    )
    assert all((ROOT / p).exists() for p in named), (
        f"named but absent: {[p for p in named if not (ROOT / p).exists()]}"
    )


def test_the_protocol_table_is_the_shipped_example_runs_evaluation():
    """The README's protocol table (one row per model) shows the shipped example run's
    evaluation.json, rounded to one decimal: it fell behind once when the run was remade."""
    import json

    import kit

    scored = json.loads((kit.example_run() / "evaluation.json").read_text())
    start = README.index("| Model | Linear Feature3 |")
    rows = [line for line in README[start:].splitlines()[2:6]]

    def cell(v):
        return f"{v[0]:.1f} ± {v[1]:.1f}" if isinstance(v, list) else f"{float(v):.1f}"

    for line in rows:
        model, *cells = [c.strip() for c in line.strip("|").split("|")]
        s = scored[model]
        want = [s["linear"]["Feature3"]["top1"], s["linear"]["AvgPool"]["top1"], s["knn"]["20"],
                s["svm"]["SVM"], s["svm"]["1"], s["svm"]["8"], s["semi"]["0.01"]["top1"],
                s["semi"]["0.1"]["top1"]]
        assert cells == [cell(v) for v in want], model
