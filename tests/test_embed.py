"""UMAP as kit runs it (kit/analysis/embed.py)."""
import sys
import time
from pathlib import Path

import numpy as np

from kit.analysis import embed


def test_the_functions_umap_leaves_uncached_are_loaded_from_or_written_to_numbas_cache():
    """umap-learn jits a few functions without `cache=True`, so each new process compiled them
    before its first embedding (~4 s, bench/umap_first_call.py). kit turns numba's cache on for
    them: after an embedding in this process each was either loaded from the cache or compiled and
    written there for the next process. A umap-learn that renames one fails here rather than
    silently compiling again."""
    t0 = time.time()
    embed.umap_embed(np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32))
    for module, names in embed._UNCACHED.items():
        for name in names:
            fn = getattr(sys.modules.get(module), name, None)
            assert fn is not None, f"{module} has no {name}: update embed._UNCACHED"
            stats = fn.stats
            assert stats.cache_path is not None, f"{module}.{name} is not cached"
            assert fn.signatures  # compiled, or loaded, by the embedding above
            loaded = sum(stats.cache_hits.values()) > 0
            index = list(Path(stats.cache_path).glob(
                f"{module.rpartition('.')[2]}.{fn.py_func.__name__}-*.nbi"))
            written = bool(index) and max(p.stat().st_mtime for p in index) >= t0 - 1
            assert loaded or written, (module, name, stats)
