"""The project's set-up: dependency lists agree, the Makefile has the two commands, CI runs make
test."""
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_installs_an_extra_that_exists():
    env = "\n".join(line for line in (ROOT / "environment.yml").read_text().splitlines()
                    if not line.lstrip().startswith("#"))  # the settings, not the comments
    m = re.search(r"-e \.\[([\w,]+)\]", env)
    assert m, "environment.yml must pip-install the package with an extra"
    extras = _pyproject()["project"]["optional-dependencies"]
    for extra in m.group(1).split(","):
        assert extra in extras
    assert "python=3.11" in env and "pytorch" not in env  # no deprecated pytorch channel


def test_all_extra_brings_every_required_dependency():
    """The brief's list (torch, torchvision, jupyterlab, ipywidgets, matplotlib, umap-learn,
    faiss-cpu) is what `pip install -e .[all]` (environment.yml's line) installs."""
    proj = _pyproject()["project"]
    names = lambda reqs: {re.split(r"[<>=\[ ;]", r)[0].lower() for r in reqs}  # noqa: E731
    extras = proj["optional-dependencies"]
    resolved = names(proj["dependencies"])
    for extra in ("notebooks", "test"):
        resolved |= names(extras[extra])
    for need in (
        "torch",
        "torchvision",
        "jupyterlab",
        "ipywidgets",
        "matplotlib",
        "umap-learn",
        "faiss-cpu",
    ):
        assert need in resolved, need


def test_torch_ranges_admit_the_builds_on_disk():
    deps = " ".join(_pyproject()["project"]["dependencies"])
    assert "torch>=2.1,<=2.14.1" in deps and "torchvision>=0.16,<=0.29.1" in deps


def test_ci_runs_make_test_and_the_makefile_has_the_two_commands():
    """The README's two commands (its first screen: tests/test_wording.py) are Makefile targets, and
    CI runs one."""
    script = ROOT / ".ci" / "run"
    # it parses as bash
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    commands = [
        line
        for line in script.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[-1] == "make test"  # the last command it runs, not a word in a comment
    assert all(
        f"apt-get install -y -qq {package}" in script.read_text()
        for package in ("chromium", "dataset-fashion-mnist")
    )
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
