"""UMAP embeddings of features across epochs, aligned so a reader can watch points move.

umap-learn spends ~45 s compiling (numba) before its first embedding in a fresh process on a
2-core CPU (ECOSYSTEM.md §5.6). kit cuts that three ways:
- the kNN graph comes from faiss and is passed as `precomputed_knn`, so NNDescent never compiles;
- numba's on-disk cache holds the compiled functions, the three that umap-learn leaves uncached
  included (`_umap`): the first process compiles them, later ones load them. `make install` fills
  the cache its targets use (`.cache/numba`); elsewhere the first process fills
  `~/.cache/kit/numba`;
- `warm_up()` does the first embedding's compiling (or loading) in a background thread while
  training runs.

Successive epochs are aligned by initialising each layout from the previous one and rotating it onto
the previous one (orthogonal Procrustes). AlignedUMAP would be exact but costs ~3x (ECOSYSTEM.md
§5.7).
"""
from __future__ import annotations

import functools
import os
import sys
import threading
import warnings
from pathlib import Path

import numpy as np


def _numba_cache() -> None:
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "kit" / "numba"))


def knn_graph(x: np.ndarray, k: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN by faiss (each point its own first neighbour): (N, k) indices and Euclidean
    distances."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    d2, idx = index.search(x, k)
    return idx.astype(np.int64), np.sqrt(np.maximum(d2, 0))  # faiss returns squared distances


# umap-learn 0.5.12 (the version checked) jits these three without cache=True, compiled at their
# first call (its fuzzy simplicial set, its layout's epoch): every process compiled them before its
# first embedding, NUMBA_CACHE_DIR or not (4-5 s, one thread: bench/umap_first_call.py). Not the
# layout's `_parallel` twin: it jits the same function, and numba's cache key would not tell the
# two apart (kit always passes a seed, which picks the serial one).
_UNCACHED = {"umap.umap_": ("smooth_knn_dist", "compute_membership_strengths"),
             "umap.layouts": ("_nb_optimize_layout_euclidean_single_epoch",)}
_UMAP_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _umap():
    """umap-learn, imported with numba's cache on for the functions it leaves uncached (what
    `cache=True` does, for every user of umap in this process): the first process compiles and
    writes them, later ones load them. A function or module a later umap-learn lacks is skipped."""
    _numba_cache()
    with _UMAP_LOCK:  # the warm-up thread and the caller may both get here first
        import umap

        for module, names in _UNCACHED.items():
            for name in names:
                fn = getattr(sys.modules.get(module), name, None)
                if hasattr(fn, "enable_caching") and not fn.signatures:
                    fn.enable_caching()
    return umap


def umap_embed(x: np.ndarray, init: np.ndarray | None = None, seed: int = 0, n_neighbors: int = 15,
               min_dist: float = 0.1) -> np.ndarray:
    """2-D UMAP of `x` (N, D) with a faiss kNN graph; `init` (N, 2) warm-starts from a previous
    layout."""
    umap = _umap()
    idx, dist = knn_graph(x, n_neighbors)
    start = "spectral" if init is None else _rescale(init)
    # "n_jobs overridden by random_state", "no transform without index"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            random_state=seed,
            init=start,
            precomputed_knn=(idx, dist, None),
            n_epochs=200 if init is None else 100,
        )
        return reducer.fit_transform(x).astype(np.float32)


def _rescale(y: np.ndarray) -> np.ndarray:
    """UMAP expects an init of modest scale (its spectral init spans about ±10)."""
    y = y - y.mean(0)
    return (y * (10.0 / (np.abs(y).max() + 1e-12))).astype(np.float32)


def procrustes_align(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Rotate/reflect and scale `y` (N, 2) onto `ref` (N, 2); only the orientation changes."""
    from scipy.linalg import orthogonal_procrustes

    yc, rc = y - y.mean(0), ref - ref.mean(0)
    r, _ = orthogonal_procrustes(yc, rc)
    scale = np.linalg.norm(rc) / (np.linalg.norm(yc) + 1e-12)
    return (yc @ r * scale + ref.mean(0)).astype(np.float32)


def aligned_embeddings(features: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """One 2-D layout per feature array (same points, successive epochs), each warm-started from
    and rotated onto the one before, so the pictures are comparable."""
    out: list[np.ndarray] = []
    for x in features:
        y = umap_embed(x, init=out[-1] if out else None, seed=seed)
        out.append(procrustes_align(y, out[-1]) if out else y)
    return out


def warm_up(background: bool = True) -> threading.Thread | None:
    """Embed a tiny problem, by default in a daemon thread, so the first real embedding does not
    pay for importing umap and compiling (or loading from the cache) its numba code. Safe to call
    many times: one thread per process. In the foreground (`make install` fills the cache so) a
    failure raises; in the background it is left to the real call."""
    if not background:
        _tiny_embedding()
        return None
    return _warm_up_thread()


@functools.lru_cache(maxsize=1)
def _warm_up_thread() -> threading.Thread:
    thread = threading.Thread(target=_warm_up_work, name="kit-umap-warm-up", daemon=True)
    thread.start()
    return thread


def _tiny_embedding() -> None:
    umap_embed(np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32))


def _warm_up_work() -> None:
    try:
        _tiny_embedding()
    except Exception:  # noqa: BLE001 - warming is best effort; the real call will raise properly
        pass
