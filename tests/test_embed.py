"""UMAP as kit runs it (kit/analysis/embed.py)."""
import importlib
from pathlib import Path

import numpy as np

from kit.analysis import embed


def test_the_functions_umap_leaves_uncached_are_compiled_to_disk_for_the_next_process():
    """umap-learn jits a few functions without `cache=True`, so each new process compiled them
    before its first embedding (~4 s, bench/umap_first_call.py). kit turns numba's cache on for
    them: after an embedding each is on disk, where the next kernel loads it. A umap-learn that
    renames one fails here rather than silently compiling again."""
    embed.umap_embed(np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32))
    for module, names in embed._UNCACHED.items():
        for name in names:
            fn = getattr(importlib.import_module(f"umap.{module}"), name, None)
            assert fn is not None, f"umap.{module} has no {name}: update embed._UNCACHED"
            where = fn.stats.cache_path
            assert where is not None, f"umap.{module}.{name} is not cached"
            assert list(Path(where).glob(f"{module}.{fn.py_func.__name__}-*.nbi")), (where, name)
            assert fn.signatures  # compiled (or loaded) by the embedding above
