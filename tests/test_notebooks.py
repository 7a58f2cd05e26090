"""Every notebook runs top to bottom with KIT_FAST=1 in a real kernel, and shows what it promises."""
import base64
import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# notebook -> the least number of PNG images its outputs must hold
EXPECT_IMAGES = {"01_quickstart.ipynb": 11, "02_deepcluster_walkthrough.ipynb": 5, "03_odc_walkthrough.ipynb": 4,
                 "04_stability.ipynb": 8, "05_playground.ipynb": 0, "06_gpu_cifar10.ipynb": 4}
# these run on a CUDA card that is not there (tests/fake_cuda.py), so a cell that mixes devices fails here as
# it would on Colab's GPU; 06 trains on a CIFAR-10 stand-in of 400 images
ON_CARD = ("02_deepcluster_walkthrough.ipynb", "03_odc_walkthrough.ipynb", "04_stability.ipynb", "06_gpu_cifar10.ipynb")


# the notebooks with the classroom apparatus: Colab badge and cell, example-run switch, guides, takeaway
CLASSROOM = ["01_quickstart.ipynb", "02_deepcluster_walkthrough.ipynb", "03_odc_walkthrough.ipynb",
             "04_stability.ipynb", "06_gpu_cifar10.ipynb"]
WALKTHROUGHS = ["02_deepcluster_walkthrough.ipynb", "03_odc_walkthrough.ipynb", "04_stability.ipynb"]
SWITCH = "USE_EXAMPLE_RUN = False"  # the docs build injects True through the `parameters` cell: keep this form


def execute(name: str, runs, fast: bool = True, example: bool = False, cells=()):
    """Run a notebook in a real kernel; its runs go to `runs` (KIT_RUNS), never the checkout's runs/.
    `cells`: (first, last) cells to run around the notebook's own (tests/test_cuda_path.py installs a card)."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if cells:
        nb.cells = [cells[0], *nb.cells, cells[1]]
    if example:
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        cell.source = cell.source.replace(SWITCH, "USE_EXAMPLE_RUN = True")
    env = {"KIT_FAST": "1" if fast else "0", "KIT_RUNS": str(runs)}  # the kernel inherits them
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return nb


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
        # reads the small-preset switch (the playground reads it inside kit.widgets)
        assert "fast_mode()" in code or "EPOCHS" in code or "Playground()" in code
        # an exercise cell (tagged `exercise`) is where the student writes a function; nowhere else
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code" and "exercise" not in c.metadata.get("tags", []))
        assert "def " not in code and "class " not in code, f"{name} defines code: move it into kit/"
        assert "departs from" in nb.cells[0].source.lower() or "departures from" in nb.cells[0].source.lower()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECT_IMAGES))
def test_notebook_runs_end_to_end(name, tmp_path):
    cells = ()
    if name in ON_CARD:
        from fake_cuda import notebook_cells

        cells = tuple(nbformat.v4.new_code_cell(c) for c in notebook_cells(cifar10=name.startswith("06")))
    nb = execute(name, tmp_path, cells=cells)
    errors = outputs(nb, "error")
    assert not errors, errors[0]["ename"] + ": " + errors[0]["evalue"]
    pngs = images(nb)
    assert len(pngs) >= EXPECT_IMAGES[name], f"{name}: {len(pngs)} figures"
    assert all(base64.b64decode(o["data"]["image/png"])[:4] == b"\x89PNG" for o in pngs)
    text = "".join(o.get("text", "") for o in outputs(nb, "stream"))
    if name == "03_odc_walkthrough.ipynb":
        assert "== batch: True" in text and "centroid 0 == mean of its members: True" in text
    if name == "04_stability.ipynb":
        md = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs(nb))
        assert "| DeepCluster |" in md and "| ODC |" in md and "Feature5" in md
    if name == "05_playground.ipynb":  # the widgets are driven in tests/test_widgets.py and tests/test_browser.py
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs(nb))
    if name in ON_CARD:
        assert "card in use: True True" in text and "No CUDA GPU here" not in text


def cells(name):
    return nbformat.read(NOTEBOOKS / name, as_version=4).cells


@pytest.mark.parametrize("name", CLASSROOM)
def test_classroom_apparatus(name):
    """Colab badge and install cell, the example-run switch, a guide under every figure, a takeaway."""
    nb = cells(name)
    assert "colab.research.google.com/github/" in nb[0].source and name in nb[0].source
    code = [c for c in nb if c.cell_type == "code"]
    assert '"google.colab" in sys.modules' in code[0].source and "pip" in code[0].source
    params = [c for c in nb if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and SWITCH in params[0].source.splitlines()
    for i, c in enumerate(nb):
        if c.cell_type == "code" and any(k in c.source for k in ("plots.show(", "display(Image(", "flight_recorder(",
                                                                 "Markdown(")):
            after = next(d.source for d in nb[i + 1:] if d.cell_type == "markdown")
            assert "How to read" in after, f"{name}: no reading guide after the cell {c.source[:60]!r}"
    assert nb[-1].cell_type == "markdown" and nb[-1].source.startswith("## Takeaway")


@pytest.mark.parametrize("name", WALKTHROUGHS)
def test_walkthroughs_ask_before_they_show(name):
    """3-5 Predict prompts, each answered in a <details> block after the code cell that shows it."""
    nb = cells(name)
    prompts = [i for i, c in enumerate(nb) if c.cell_type == "markdown" and "**Predict" in c.source]
    n_prompts = sum(nb[i].source.count("**Predict") for i in prompts)
    assert 3 <= n_prompts <= 5, f"{name}: {n_prompts} prompts"
    for i in prompts:
        shown = next(j for j in range(i + 1, len(nb)) if nb[j].cell_type == "code")
        answer = next(j for j in range(shown + 1, len(nb)) if "<details>" in nb[j].source)
        assert "**Predict" not in "".join(nb[k].source for k in range(i + 1, answer)), f"{name}: prompt {i} unanswered"


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSROOM)
def test_notebook_runs_on_the_example_run_in_seconds(name, tmp_path):
    """USE_EXAMPLE_RUN = True: no training, full-size settings (no KIT_FAST), top to bottom in seconds."""
    import time

    t0 = time.perf_counter()
    nb = execute(name, tmp_path, fast=False, example=True)
    took = time.perf_counter() - t0
    assert not outputs(nb, "error")
    assert not list(tmp_path.iterdir()), f"{name} trained or wrote a run although USE_EXAMPLE_RUN = True"
    if name != "06_gpu_cifar10.ipynb":
        assert len(images(nb)) >= EXPECT_IMAGES[name]
    assert took < 90, f"{name} took {took:.0f} s on the example run"
