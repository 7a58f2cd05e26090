"""kit: DeepCluster and Online Deep Clustering, faithful, small, fast and visible.

    import kit
    train, test = kit.load_dataset("mnist5k"), kit.load_dataset("mnist5k", split="test")
    dc = kit.DeepCluster(kit.DeepClusterConfig.small()).fit(train, epochs=10, eval_dataset=test)
    odc = kit.ODC(kit.ODCConfig.small()).fit(train, epochs=10, eval_dataset=test)

The names below are imported on first use (PEP 562), so `python -m kit` can install its Ctrl-C
handling before torch is loaded.
"""
from __future__ import annotations

import importlib
import os as _os
from pathlib import Path as _Path

from .algorithms import SPECS as _SPECS

# OpenMP threads that spin-wait between parallel regions (libgomp's default) take the cores of
# whatever else runs on the machine: an ODC epoch went from 2.45 s to 15.8 s beside a 2-thread numpy
# job, where a fair share of two cores is about 2x (issue 19, bench/RESULTS.md). torch and faiss
# each bring their own libgomp, and each reads this once, when it loads: so it is set here, before
# either is imported. A value the user set wins; in a notebook that imported torch before kit it
# comes too late to matter.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_EXPORTS = {
    "parts.clustering": ["KMeans", "l2_normalize", "pca_whiten", "preprocess_features"],
    "parts.data": ["load_dataset", "with_indices"],
    "teaching.example": ["example_run"],
    "commands.machine": ["doctor"],
    "parts.features": ["extract_features"],
    "algorithms.memory": ["ODCMemory", "class_weights"],
    "parts.models": ["ClusterHead", "ClusterNet", "ODCNeck", "Sobel", "build_backbone"],
    "store.checkpoints": ["load_checkpoint", "save_checkpoint"],
    "store.runs": ["Run"],
    "parts.runtime": ["resolve_device", "seed_everything"],
    "parts.sampling": ["replacement_indices", "uniform_cluster_indices"],
    # each algorithm's trainer and config
    **{f"algorithms.{spec.module}": [spec.trainer, spec.config] for spec in _SPECS.values()},
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = list(_WHERE)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    here = _Path(__file__).parent
    # `kit.algorithms.memory`, `kit.views` and the like, as an eager package gives
    if (here / f"{name}.py").exists() or (here / name / "__init__.py").exists():
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'kit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
