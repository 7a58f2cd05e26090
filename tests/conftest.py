import os
import sys
import time
from pathlib import Path

import pytest

from notebook_lane import NotebookLane

os.environ.setdefault("KIT_FAST", "1")
# as `import kit` does (kit/__init__.py), before torch loads its libgomp: spinning OpenMP threads in
# this process took the cores from the notebook kernels running beside it, and a 5 s test took 50 s
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

CORES = min(2, os.cpu_count() or 1)
STARTED = time.perf_counter()


def share_cores(n: int) -> None:
    """n OpenMP threads for torch and faiss in this process, and for the processes its tests start
    (kit's `set_threads` reads OMP_NUM_THREADS)."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(n)


share_cores(CORES)


@pytest.fixture(scope="session")
def mnist_small():
    """400 embedded MNIST digits (40 per class) and a 200-image test split: seconds per epoch."""
    import kit

    return kit.load_dataset("mnist5k", n=400), kit.load_dataset("mnist5k", split="test", n=200)


# an augmentation with nothing random left: the batches are the images as they are
NO_AUGMENT = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0, rotate=0.0, brightness=0.0,
                  contrast=0.0, saturation=0.0, hue=0.0, grayscale=0.0)


# The tests' configs: each algorithm's KIT_FAST preset (`.fast()`, K = 20), shrunk further for 400
# digits, with no monitoring, on the CPU unless a test names a device: exactness tests (same seed,
# same numbers; exact resume) must not pick up a GPU's cudnn.benchmark and float atomics on a
# machine that has one.
def tiny_dc_config(**kw):
    import kit

    return kit.DeepClusterConfig.fast(**{"pca_dim": 16, "eval_every": 0, "device": "cpu", **kw})


def tiny_odc_config(**kw):
    import kit

    return kit.ODCConfig.fast(
        **{"n_clusters": 10, "min_cluster_size": 5, "eval_every": 0, "device": "cpu", **kw}
    )


def tiny_v2_config(**kw):
    import kit

    return kit.DeepClusterV2Config.fast(**{"eval_every": 0, "device": "cpu", **kw})


def tiny_trainer(algo: str, **kw):
    """A trainer of `algo` ("deepcluster", "odc", "deepcluster-v2") at the tests' config above, with
    `kw` over it."""
    import kit

    make = {"deepcluster": (kit.DeepCluster, tiny_dc_config), "odc": (kit.ODC, tiny_odc_config),
            "deepcluster-v2": (kit.DeepClusterV2, tiny_v2_config)}[algo]
    return make[0](make[1](**kw))


@pytest.fixture(scope="session")
def fast_compare(tmp_path_factory):
    """`python -m kit compare` on the KIT_FAST preset, run once for the session in this process:
    `.path` (runs/t) and `.stdout`. Read it; copy it (`shutil.copytree`) before changing it."""
    import contextlib
    import io
    import types

    from kit.__main__ import main

    # a space and a quote: every hint must quote them
    root = tmp_path_factory.mktemp("compare") / "my runs, Ada's"
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
# docs/build_site.py, the site build the tests share notebooks with
sys.path.insert(0, str(ROOT / "docs"))
# these train on a CUDA card that is not there (tests/fake_cuda.py), so a cell that mixes devices
# fails here as it would on Colab's GPU; 07 trains on a CIFAR-10 stand-in of 160 images
ON_CARD = (
    "02_deepcluster_walkthrough.ipynb",
    "03_odc_walkthrough.ipynb",
    "04_stability.ipynb",
    "05_churn.ipynb",
    "07_gpu_cifar10.ipynb",
)
MODES = ("fast", "example", "full")
# the "full" mode's epoch cap (KIT_EPOCHS): full data, K and monitoring, two epochs of each run
FULL_EPOCHS = 2
# the docs build injects True through the `parameters` cell: keep this form
SWITCH = "USE_EXAMPLE_RUN = False"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket closes


# every proxy at a closed port: a download tried by a notebook (or the site build) fails instead of
# passing unseen
OFFLINE = {
    k: f"http://127.0.0.1:{_closed_port()}"
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
} | {"NO_PROXY": "", "no_proxy": "", "HF_HUB_OFFLINE": "1", "PIP_NO_INDEX": "1"}


def execute_notebook(name: str, mode: str, runs: Path, threads: int = CORES):
    """Run notebook `name` top to bottom in a fresh kernel, offline, its runs under `runs`
    (KIT_RUNS).

    mode "fast": KIT_FAST=1, training end to end (the ON_CARD notebooks on the stand-in card); mode
    "example": KIT_FAST=1 with `USE_EXAMPLE_RUN = True`, reading the shipped run (what the site
    shows); mode "full": the notebooks' own full-size settings (all the data, the presets' K, their
    monitoring), each run capped at FULL_EPOCHS epochs (KIT_EPOCHS), on the CPU: what "run it before
    class" runs, shorter. The notebook comes back with `metadata.kit_test`: the mode, the runs
    folder and the seconds it took. `threads`: the kernel's OpenMP threads (one while the tests run
    beside it, see `NotebookCache`).
    """
    import nbformat
    from nbclient import NotebookClient

    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
    runs.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if mode == "example":
        import build_site  # docs/: the switch is turned as `make docs` turns it

        assert build_site.use_example_run(nb), f"{name} has no `{SWITCH}` line"
    elif mode == "fast" and name in ON_CARD:
        from fake_cuda import notebook_cells

        first, last = notebook_cells(cifar10=name.startswith("07"))
        nb.cells = [nbformat.v4.new_code_cell(first), *nb.cells, nbformat.v4.new_code_cell(last)]
    size = (
        {"KIT_FAST": "0", "KIT_EPOCHS": str(FULL_EPOCHS)}
        if mode == "full"
        else {"KIT_FAST": "1", "KIT_EPOCHS": ""}
    )
    env = {**os.environ, **OFFLINE, **size, "KIT_RUNS": str(runs), "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute(env=env)
    nb.metadata["kit_test"] = {"mode": mode, "runs": str(runs), "seconds": time.perf_counter() - t0,
                               "ended": time.perf_counter() - STARTED}
    return nb


def _key(name: str, mode: str) -> tuple[str, str]:
    if mode == "job":
        return name, mode
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
    if mode != "fast" and SWITCH not in (NOTEBOOKS / name).read_text():
        # no example-run switch and nothing sized by KIT_FAST (the playground): one execution
        mode = "fast"
    return name, mode


def runs_folder(name: str, mode: str) -> str:
    """Each execution trains into a folder of its own, but for 01 and 04 in the modes that train,
    which share one as a user's do: whichever runs first trains the quickstart run, the other
    reopens it (in "fast" mode 04 runs on the stand-in card, so a run trained on the CPU is reopened
    on a card, or the other way)."""
    if mode == "job":
        return f"job-{name}"
    return (
        f"01+04-{mode}" if mode != "example" and name[:2] in ("01", "04") else f"{name[:2]}-{mode}"
    )


# -- jobs: a test's work done in processes of its own, by the lane at the session's tail ----------
# The lane ends before the tests do (its notebooks take one core, the tests the other): a test whose
# work is all in child processes (a script, `torchrun`) hands that work to the lane, which runs it
# on its core once the notebooks are done, while the tests go on. The test keeps its assertions and
# reads what the job returned (`lane_job`). A job is fn(folder, threads) -> a picklable result;
# `threads` is the OpenMP threads its processes may take. Its processes get SESSION_ENV, the
# environment as the session began, not what a test running beside it has monkeypatched.
JOBS: dict = {}
JOB_TIMES: dict = {}  # name -> (seconds it took, seconds into the session it ended)
SESSION_ENV = dict(os.environ)


def job_name(fn) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _register(fn) -> str:
    name = job_name(fn)
    if JOBS.setdefault(name, fn) is not fn:
        raise ValueError(f"two job functions are named {name}: give each its own name")
    return name


def _execute(name: str, mode: str, runs: Path, threads: int = CORES):
    if mode == "job":
        runs.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        try:
            return JOBS[name](runs, threads)
        finally:
            JOB_TIMES[name] = (time.perf_counter() - t0, time.perf_counter() - STARTED)
    return execute_notebook(name, mode, runs, threads)


def NotebookCache(folder) -> NotebookLane:
    """The session's lane over kit's notebooks and the tests' jobs (tests/notebook_lane.py)."""
    return NotebookLane(folder, _execute, CORES, _key, runs_folder)


_notebooks: NotebookLane | None = None


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "notebooks(mode, *names): the test reads these notebooks executed in this mode "
        "(default: its `name` parameter, else every notebook); they are executed in the "
        "background while earlier tests run. A test parametrised over `name` and `mode` "
        "needs no mark",
    )
    config.addinivalue_line(
        "markers",
        "job(fn), written job.with_args(fn): the test reads what fn(folder, threads) returns, "
        "work in processes of its own that the lane runs at the session's tail (`lane_job` gives "
        "it); the test runs last",
    )


def _tail(item) -> int:
    """0 for most tests; 1 for one that reads a full-size execution; 2 for one that reads a job:
    what the lane does last."""
    if item.get_closest_marker("job") is not None:
        return 2
    return int(any(m.args[:1] == ("full",) for m in item.iter_markers("notebooks")))


def pytest_collection_modifyitems(config, items):
    """The tests that read the full-size executions, then those that read the jobs, run last, in
    the order the lane does them (the full-size executions are the longest): the other tests run
    beside them instead of waiting."""
    items.sort(key=_tail)  # stable: every other test keeps its place


def pytest_collection_finish(session):
    """Start the background lane on the notebooks the selected tests declared, in the order they
    need them."""
    global _notebooks
    keys, every = [], sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    for item in session.items:
        params = item.callspec.params if hasattr(item, "callspec") else {}
        marks = list(item.iter_markers("notebooks"))
        if (
            not marks
            and "executed_notebook" in getattr(item, "fixturenames", ())
            and {"name", "mode"} <= set(params)
        ):
            keys.append((params["name"], params["mode"]))  # parametrised over both: declared enough
        for mark in marks:
            mode, *names = mark.args or (params["mode"],)
            keys += [(n, mode) for n in names or ([params["name"]] if "name" in params else every)]
    jobs = [(_register(mark.args[0]), "job") for item in session.items
            for mark in item.iter_markers("job")]
    if any(_tail(item) < 2 for item in session.items):
        keys += jobs  # after every notebook: the tail of the lane, beside the last tests
    # else only jobs' tests were selected: each runs its job itself, on every core (`lane_job`)
    if keys and not session.config.option.collectonly:
        _notebooks = NotebookCache(session.config._tmp_path_factory.mktemp("notebooks"))
        _notebooks.start_lane(keys)


def pytest_runtest_setup(item):
    """While the lane runs a notebook, a test gets the cores its kernel does not use; after, all of
    them."""
    if _notebooks is not None and _tail(item):
        with _notebooks.lock:
            if not _notebooks.tail and item.session.items[0] is not item:  # some test ran before
                _notebooks.others_ended = time.perf_counter() - STARTED
            _notebooks.tail = True
            _notebooks.lock.notify_all()
    share_cores(max(1, CORES - 1) if _notebooks is not None and _notebooks.busy() else CORES)


def pytest_terminal_summary(terminalreporter):
    """How long each notebook took, and when: the lane is the suite's longest single line of
    work."""
    done = {} if _notebooks is None else dict(_notebooks.done)
    times = [(k, nb.metadata.kit_test) for k, nb in done.items()
             if k[1] != "job" and not isinstance(nb, BaseException)]
    if times:
        terminalreporter.write_line(
            f"notebooks: {len(times)} executed in {sum(t['seconds'] for _, t in times):.0f} s, "
            f"the last ending {max(t['ended'] for _, t in times):.0f} s into the session; "
            f"tests waited {_notebooks.waited:.0f} s for the lane"
            + ("" if _notebooks.others_ended is None else " (the tests before those of full-size "
               f"runs and jobs ended {_notebooks.others_ended:.0f} s in)")
            + ": "
            + ", ".join(f"{n[:2]}-{m} {t['seconds']:.0f} s" for (n, m), t in sorted(times))
        )
    if JOB_TIMES:
        terminalreporter.write_line("jobs: " + ", ".join(
            f"{name.rpartition('.')[2]} {took:.0f} s (ended at {ended:.0f} s"
            + (", failed)" if isinstance(done.get((name, "job")), BaseException) else ")")
            for name, (took, ended) in JOB_TIMES.items()))


def pytest_sessionfinish(session):
    """An early end (-x, a failure in collection, Ctrl-C) leaves no kernel behind: the lane takes
    nothing new and the one it runs is waited for."""
    if _notebooks is not None:
        _notebooks.stop()


@pytest.fixture(scope="session")
def executed_notebook(tmp_path_factory):
    """run(name, mode) -> the notebook executed in mode "fast", "example" or "full" (see
    `execute_notebook`).

    Each (name, mode) is executed once per session and every caller gets its own copy. A test that
    declares what it reads (`@pytest.mark.notebooks("fast")`) has it executed in the background
    while earlier tests run; any other call executes on first use, so a test run with `-k` executes
    only what its tests ask for. Each execution has a runs folder of its own
    (`metadata.kit_test.runs`), but for 01 and 04, which share the quickstart run as a user's
    notebooks do (`runs_folder`); an example-run execution's folder must stay empty. A notebook
    without the example-run switch (the playground) reads the same in every mode: it is executed
    once for all.
    """
    global _notebooks
    if _notebooks is None:
        _notebooks = NotebookCache(tmp_path_factory.mktemp("notebooks"))
    return _notebooks.get


@pytest.fixture(scope="session")
def lane_job(executed_notebook):
    """lane_job(fn) -> what fn(folder, threads) returned, run once for the session: by the lane
    when the test is marked `@pytest.mark.job.with_args(fn)` and other tests run beside it (at the
    session's tail), else here, now, on the cores no kernel uses."""

    def get(fn):
        return executed_notebook(_register(fn), "job")

    return get
