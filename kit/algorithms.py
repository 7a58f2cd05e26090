"""The two algorithms by name, written once: their trainers, their configs and what a sweep varies.

    TRAINERS["odc"](ODCConfig.small()).fit(train, epochs=10)
    CONFIGS["deepcluster"].fast()        # each config owns its presets: .small(), .fast()

`NAMES` and `GRID` are plain data, read by the command line before torch loads (kit/__main__.py);
`TRAINERS` and `CONFIGS` import the algorithms on first use (PEP 562) for the same reason.
"""
from __future__ import annotations

NAMES = {"deepcluster": "DeepCluster", "odc": "ODC"}  # as in commands and folders -> as written for people
# the settings a sweep varies per algorithm; every other setting is the algorithm's preset (kit/sweep.py)
GRID = {"deepcluster": ("n_clusters", "lr", "pca_dim"), "odc": ("n_clusters", "lr", "memory_momentum")}
GRID_KEYS = tuple(dict.fromkeys(key for keys in GRID.values() for key in keys))  # n_clusters, lr, pca_dim, memory_momentum


def __getattr__(name: str):
    if name == "TRAINERS":
        from .deepcluster import DeepCluster
        from .odc import ODC

        return {"deepcluster": DeepCluster, "odc": ODC}
    if name == "CONFIGS":
        from .deepcluster import DeepClusterConfig
        from .odc import ODCConfig

        return {"deepcluster": DeepClusterConfig, "odc": ODCConfig}
    raise AttributeError(f"module 'kit.algorithms' has no attribute {name!r}")
