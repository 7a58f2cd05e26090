"""The README's first screen holds what a newcomer needs, and its Python code runs as written.

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


def top() -> str:
    """What comes before the first section about results: what a newcomer reads first."""
    return README.split("\n## What it shows", 1)[0]


def test_the_readme_starts_with_install_the_two_commands_and_jupyterlab():
    head = top()
    for needed in ("make demo", "make test", ".venv/bin/jupyter lab notebooks/", "Python 3.11"):
        assert needed in head, f"the README's top part does not mention {needed!r}"
    assert head.index("make demo") < head.index("```python"), "install and run first, then the library"


def test_the_readme_links_the_papers_and_the_original_code():
    for url in ("https://arxiv.org/abs/1807.05520", "https://arxiv.org/abs/2006.10645",
                "https://github.com/facebookresearch/deepcluster", "https://github.com/open-mmlab/OpenSelfSup"):
        assert f"]({url})" in top(), f"the README's top part does not link {url}"


def test_the_readme_says_how_to_train_on_a_gpu():
    head = top()
    assert "Colab" in head and "--device cuda" in head and "(#scale-up)" in head


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_readme_python_code_runs_as_written(tmp_path):
    blocks = PYTHON_BLOCK.findall(README)
    assert blocks, "README.md has no ```python block"
    script = tmp_path / "readme.py"
    script.write_text("\n\n".join(blocks), encoding="utf-8")
    env = {**os.environ, "KIT_FAST": "1", "NUMBA_CACHE_DIR": str(ROOT / ".cache" / "numba")}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=280)
    assert done.returncode == 0, f"README's python code failed:\n{done.stderr[-4000:]}"
    assert "kNN accuracy" in done.stdout
