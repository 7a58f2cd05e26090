import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("KIT_FAST", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def mnist_small():
    """400 embedded MNIST digits (40 per class) and a 200-image test split: seconds per epoch."""
    import kit

    return kit.load_dataset("mnist5k", n=400), kit.load_dataset("mnist5k", split="test", n=200)


# The tests' configs run on the CPU unless a test names a device: exactness tests (same seed, same numbers;
# exact resume) must not pick up a GPU's cudnn.benchmark and float atomics on a machine that has one.
def tiny_dc_config(**kw):
    import kit

    return kit.DeepClusterConfig.small(**{"n_clusters": 20, "pca_dim": 16, "batch_size": 64, "eval_every": 0,
                                          "device": "cpu", **kw})


def tiny_odc_config(**kw):
    import kit

    return kit.ODCConfig.small(**{"n_clusters": 10, "min_cluster_size": 5, "batch_size": 64, "eval_every": 0,
                                  "device": "cpu", **kw})


@pytest.fixture(scope="session")
def fast_compare(tmp_path_factory):
    """`python -m kit compare` on the KIT_FAST preset, run once for the session in this process:
    `.path` (runs/t) and `.stdout`. Read it; copy it (`shutil.copytree`) before changing it."""
    import contextlib
    import io
    import types

    from kit.__main__ import main

    root = tmp_path_factory.mktemp("compare")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["compare", "--name", "t", "--runs", str(root)])
    assert code == 0, err.getvalue()[-2000:]
    return types.SimpleNamespace(path=root / "t", stdout=out.getvalue())


@pytest.fixture
def card():
    """A CUDA card that is not there (tests/fake_cuda.py): an H100's precision, on the CPU."""
    from fake_cuda import FakeCuda

    with FakeCuda(capability=(9, 0)) as c:
        yield c


# -- the notebooks, each executed once per mode for the whole session ------------------------------
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(ROOT / "docs"))  # docs/build_site.py, the site build the tests share notebooks with
# these train on a CUDA card that is not there (tests/fake_cuda.py), so a cell that mixes devices fails here as
# it would on Colab's GPU; 06 trains on a CIFAR-10 stand-in of 400 images
ON_CARD = ("02_deepcluster_walkthrough.ipynb", "03_odc_walkthrough.ipynb", "04_stability.ipynb", "06_gpu_cifar10.ipynb")
SWITCH = "USE_EXAMPLE_RUN = False"  # the docs build injects True through the `parameters` cell: keep this form


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket closes


# every proxy at a closed port: a download tried by a notebook (or the site build) fails instead of passing unseen
OFFLINE = {k: f"http://127.0.0.1:{_closed_port()}" for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                                             "all_proxy")} | {"NO_PROXY": "", "no_proxy": "", "HF_HUB_OFFLINE": "1",
                                                              "PIP_NO_INDEX": "1"}


def execute_notebook(name: str, mode: str, runs: Path):
    """Run notebook `name` top to bottom in a fresh kernel, offline, its runs under `runs` (KIT_RUNS).

    mode "fast": KIT_FAST=1, training end to end (the ON_CARD notebooks on the stand-in card);
    mode "example": KIT_FAST=1 with `USE_EXAMPLE_RUN = True`, reading the shipped run (what the site shows).
    The notebook comes back with `metadata.kit_test`: the mode, the runs folder and the seconds it took.
    """
    import time

    import nbformat
    from nbclient import NotebookClient

    if mode not in ("fast", "example"):
        raise ValueError(f"mode {mode!r}: 'fast' or 'example'")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if mode == "example":
        import build_site  # docs/: the switch is turned as `make docs` turns it

        assert build_site.use_example_run(nb), f"{name} has no `{SWITCH}` line"
    elif name in ON_CARD:
        from fake_cuda import notebook_cells

        first, last = notebook_cells(cifar10=name.startswith("06"))
        nb.cells = [nbformat.v4.new_code_cell(first), *nb.cells, nbformat.v4.new_code_cell(last)]
    env = {**os.environ, **OFFLINE, "KIT_FAST": "1", "KIT_RUNS": str(runs)}
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute(env=env)
    nb.metadata["kit_test"] = {"mode": mode, "runs": str(runs), "seconds": time.perf_counter() - t0}
    return nb


@pytest.fixture(scope="session")
def executed_notebook(tmp_path_factory):
    """run(name, mode) -> the notebook executed in mode "fast" or "example" (see `execute_notebook`).

    Each (name, mode) is executed once per session, on first use, and every caller gets its own copy, so a
    test run with `-k` executes only the notebooks its tests ask for. Each execution has a runs folder of its
    own (`metadata.kit_test.runs`): 04 trains the quickstart run on the card itself, and an example-run
    execution's folder must stay empty. A notebook without the example-run switch (the playground) reads the
    same in both modes: it is executed once for the two. A notebook that failed fails every test that asks
    for it, without being executed again.
    """
    import copy

    done = {}

    def run(name: str, mode: str):
        if mode == "example" and name not in ON_CARD and SWITCH not in (NOTEBOOKS / name).read_text():
            mode = "fast"  # nothing to switch: the example run is the fast run
        if (name, mode) not in done:
            try:
                done[name, mode] = execute_notebook(name, mode, tmp_path_factory.mktemp(f"{name[:2]}-{mode}"))
            except Exception as e:  # nbclient's CellExecutionError names the cell and its traceback
                done[name, mode] = e
        if isinstance(done[name, mode], Exception):
            raise done[name, mode]
        return copy.deepcopy(done[name, mode])

    return run
