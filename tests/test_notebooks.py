"""Every notebook runs top to bottom in a real kernel, in three modes (tests/conftest.py): with
KIT_FAST=1, on the example run, and at full size for two epochs a run; and shows what it promises.

The notebooks are executed by the session's `executed_notebook` cache (tests/conftest.py): once per
mode, shared with the site build (tests/test_site.py) and the lessons' numbers
(tests/test_lesson.py)."""
import base64
from pathlib import Path

import nbformat
import pytest

from conftest import NOTEBOOKS, ON_CARD

# notebook -> the least number of PNG images its outputs must hold
EXPECT_IMAGES = {
    "01_quickstart.ipynb": 11,
    "02_deepcluster_walkthrough.ipynb": 5,
    "03_odc_walkthrough.ipynb": 4,
    "04_stability.ipynb": 8,
    "05_churn.ipynb": 2,
    "06_playground.ipynb": 0,
    "07_gpu_cifar10.ipynb": 4,
}
# the notebooks with the example-run switch (their classroom apparatus: tests/test_wording.py)
CLASSROOM = ["01_quickstart.ipynb", "02_deepcluster_walkthrough.ipynb", "03_odc_walkthrough.ipynb",
             "04_stability.ipynb", "05_churn.ipynb", "07_gpu_cifar10.ipynb"]
# full size: every notebook that trains, but 07, whose full size is CIFAR-10 (50,000 images, a
# download) on a GPU, neither of which CI has (its fast mode trains it on a stand-in card); the
# playground trains only when pressed
FULL = [n for n in CLASSROOM if n != "07_gpu_cifar10.ipynb"]
# what each prints that only its full-size settings print: 4,000 training digits at K = 30
FULL_SIZE_SAYS = {
    "02_deepcluster_walkthrough.ipynb": "| images 4000 | K 30",
    "03_odc_walkthrough.ipynb": "labels (4000,)",
    "05_churn.ipynb": "4,000 digits, K = 30, 2 epochs per run",
}


def outputs(nb, kind=None):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if kind is None or o.get("output_type") == kind]


def images(nb):
    return [o for o in outputs(nb) if "image/png" in o.get("data", {})]


def test_every_notebook_is_listed_and_committed_without_outputs():
    found = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert found == sorted(EXPECT_IMAGES)
    for name in found:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert not outputs(nb), f"{name} is committed with outputs: run nbstripout on it"
        assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        # reads the small-preset switch (the playground reads it inside kit.teaching.widgets)
        assert "fast_mode()" in code or "EPOCHS" in code or "Playground()" in code
        # an exercise cell (tagged `exercise`) is where the student writes a function; nowhere else
        code = "\n".join(
            c.source
            for c in nb.cells
            if c.cell_type == "code" and "exercise" not in c.metadata.get("tags", [])
        )
        assert "def " not in code and "class " not in code, (
            f"{name} defines code: move it into kit/"
        )
        assert (
            "departs from" in nb.cells[0].source.lower()
            or "departures from" in nb.cells[0].source.lower()
        )


@pytest.mark.slow
@pytest.mark.notebooks("fast")
@pytest.mark.parametrize("name", sorted(EXPECT_IMAGES))
def test_notebook_runs_end_to_end(name, executed_notebook):
    nb = executed_notebook(name, "fast")
    errors = outputs(nb, "error")
    assert not errors, errors[0]["ename"] + ": " + errors[0]["evalue"]
    pngs = images(nb)
    assert len(pngs) >= EXPECT_IMAGES[name], f"{name}: {len(pngs)} figures"
    assert all(base64.b64decode(o["data"]["image/png"])[:4] == b"\x89PNG" for o in pngs)
    text = "".join(o.get("text", "") for o in outputs(nb, "stream"))
    if name == "03_odc_walkthrough.ipynb":
        assert "== batch: True" in text and "centroid 0 == mean of its members: True" in text
    if name == "04_stability.ipynb":  # the evaluation tables, as HTML (or Markdown) rows
        shown = "".join(
            o.get("data", {}).get(k, "")
            for o in outputs(nb)
            for k in ("text/html", "text/markdown")
        )
        for model in ("DeepCluster", "ODC"):
            assert f"<td>{model}</td>" in shown or f"| {model} |" in shown, model
        assert "Feature5" in shown
    # the widgets are driven in tests/test_widgets.py and tests/test_browser.py
    if name == "06_playground.ipynb":
        assert any(
            "application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs(nb)
        )
    if name in ON_CARD:
        assert "card in use: True True" in text and "No CUDA GPU here" not in text


@pytest.mark.slow
@pytest.mark.notebooks("example")
@pytest.mark.parametrize("name", CLASSROOM)
def test_notebook_runs_on_the_example_run_without_training(name, executed_notebook):
    """USE_EXAMPLE_RUN = True (what the site shows): no training, nothing written, every figure
    drawn."""
    nb = executed_notebook(name, "example")
    assert not outputs(nb, "error")
    runs = Path(nb.metadata.kit_test.runs)
    assert not list(runs.iterdir()), (
        f"{name} trained or wrote a run although USE_EXAMPLE_RUN = True"
    )
    if name != "07_gpu_cifar10.ipynb":
        assert len(images(nb)) >= EXPECT_IMAGES[name]


@pytest.mark.slow
@pytest.mark.notebooks("full")
@pytest.mark.parametrize("name", FULL)
def test_notebook_runs_at_full_size(name, executed_notebook):
    """KIT_FAST unset and KIT_EPOCHS=2: what "run it before class" runs (all the data, K = 30, each
    notebook's own monitoring and evaluation logic), two epochs a run, top to bottom without an
    error."""
    nb = executed_notebook(name, "full")
    errors = outputs(nb, "error")
    assert not errors, errors[0]["ename"] + ": " + errors[0]["evalue"]
    assert len(images(nb)) >= EXPECT_IMAGES[name]
    text = "".join(o.get("text", "") for o in outputs(nb, "stream"))
    if name in FULL_SIZE_SAYS:
        assert FULL_SIZE_SAYS[name] in text, text[-2000:]
    else:  # 01 and 04 train (or reopen) the quickstart run: its saved settings are the full ones
        import json

        saved = json.loads(
            (Path(nb.metadata.kit_test.runs) / "quickstart" / "config.json").read_text()
        )["compare"]
        assert (saved["n_train"], saved["epochs"], saved["preset"]) == (None, 2, "small"), saved
