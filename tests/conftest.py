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


def tiny_dc_config(**kw):
    import kit

    return kit.DeepClusterConfig.small(**{"n_clusters": 20, "pca_dim": 16, "batch_size": 64, "eval_every": 0, **kw})


def tiny_odc_config(**kw):
    import kit

    return kit.ODCConfig.small(**{"n_clusters": 10, "min_cluster_size": 5, "batch_size": 64, "eval_every": 0, **kw})
