import os

import pytest
import torch

os.environ.setdefault("KIT_FAST", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def mnist_small():
    """400 embedded MNIST digits (40 per class) and a 200-image test split: seconds per epoch."""
    import kit

    return kit.load_dataset("mnist5k", n=400), kit.load_dataset("mnist5k", split="test", n=200)


# The tests' configs: each algorithm's KIT_FAST preset (`.fast()`, K = 20), shrunk further for 400 digits, with
# no monitoring, on the CPU unless a test names a device: exactness tests (same seed, same numbers; exact resume)
# must not pick up a GPU's cudnn.benchmark and float atomics on a machine that has one.
def tiny_dc_config(**kw):
    import kit

    return kit.DeepClusterConfig.fast(**{"pca_dim": 16, "eval_every": 0, "device": "cpu", **kw})


def tiny_odc_config(**kw):
    import kit

    return kit.ODCConfig.fast(**{"n_clusters": 10, "min_cluster_size": 5, "eval_every": 0, "device": "cpu", **kw})


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
