"""Feature preprocessing (PCA-whitening, L2) and k-means, as DeepCluster's `clustering.py` does it (§1.3-1.4).

Pure functions over float32 arrays, and one estimator, `KMeans(n_clusters, n_iter, seed).fit(X)`,
backed by faiss with the reference's settings: 20 iterations, no subsampling, random init from
distinct data points, empty clusters split inside faiss's iterations.
"""
from __future__ import annotations

import numpy as np
import torch


def _as_f32(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def check_finite(features: np.ndarray, what: str = "features") -> None:
    bad = ~np.isfinite(features)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise ValueError(f"{what} contain NaN/inf in {len(rows)} of {len(features)} rows (first: row {rows[0]}): "
                         "the network has diverged; lower the learning rate or resume from an earlier checkpoint")


def check_sizes(n_samples: int, n_clusters: int, pca_dim: int = -1) -> None:
    """The small-data guards of ALGORITHMS.md §4: N >= K and N >= pca_dim, in one line each."""
    if n_clusters < 2:
        raise ValueError(f"n_clusters={n_clusters}: k-means needs at least 2 clusters")
    if n_samples < n_clusters:
        raise ValueError(f"{n_samples} samples cannot form {n_clusters} clusters: use n_clusters <= {n_samples} "
                         "or a bigger dataset")
    if pca_dim > 0 and n_samples < pca_dim:
        raise ValueError(f"PCA to {pca_dim} dims needs at least {pca_dim} samples, got {n_samples}: "
                         f"use pca_dim <= {n_samples} or pca_dim=-1 (no PCA)")


def l2_normalize(x: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """Rows divided by their norm (+1e-10, as mmselfsup), so every row has unit length."""
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + eps)


def pca_whiten(features: np.ndarray, dim: int) -> np.ndarray:
    """PCA to `dim` dimensions with whitening, fitted on all N rows (faiss PCAMatrix, eigen_power=-0.5).

    faiss divides by the square root of the eigenvalues of the *unnormalised* scatter matrix, so
    its output has variance 1/N per component (ECOSYSTEM.md §5.2). We multiply by sqrt(N) so the
    result is whitened in the usual sense (identity covariance); DeepCluster L2-normalises next,
    so the clustering is unchanged by this rescaling.
    """
    import faiss

    x = _as_f32(features)
    n, d = x.shape
    if dim > d:
        raise ValueError(f"pca_dim={dim} exceeds the feature dimension {d}: use pca_dim <= {d} or -1 (no PCA)")
    check_sizes(n, 2, dim)
    pca = faiss.PCAMatrix(d, dim, -0.5)
    pca.max_points_per_d = max(1000, n // d + 1)  # fit on all N rows, never a subsample
    pca.train(x)
    y = pca.apply(x) * np.float32(np.sqrt(n))
    # as mmselfsup: sparse NaNs after PCA (from near-zero eigenvalues) become 0, many mean trouble
    nan = np.isnan(y)
    if nan.mean() > 1e-3:
        raise ValueError(f"{nan.mean():.2%} of the PCA output is NaN: the features are degenerate "
                         "(dead units?); lower pca_dim or check the network")
    y[nan] = 0
    return y


def preprocess_features(features, pca_dim: int = 256) -> np.ndarray:
    """DeepCluster's `preprocess_features`: float32, NaN check, PCA-whiten to `pca_dim` (-1 skips), L2 rows."""
    x = _as_f32(features)
    check_finite(x)
    if pca_dim > 0:
        x = pca_whiten(x, pca_dim)
    return l2_normalize(x)


class KMeans:
    """k-means with the estimator contract, on faiss with DeepCluster's settings (§1.4).

    >>> km = KMeans(n_clusters=10, n_iter=20, seed=3).fit(X)   # X: (N, D) float32
    >>> km.labels_, km.centroids_, km.inertia_                 # (N,), (K, D), float

    `labels_` comes from a final nearest-centroid search after the last centroid update, as in
    the reference, so a few clusters can come out empty; `n_empty_` counts them and nothing crashes.
    `n_splits_` counts faiss's empty-cluster repairs during the iterations. Initialisation is K
    distinct random data points, so one run (`n_init=1`, the reference) can merge two true clusters;
    `n_init` > 1 keeps the best of several runs.
    """

    def __init__(self, n_clusters: int, n_iter: int = 20, seed: int = 0, n_init: int = 1,
                 spherical: bool = False, gpu: bool = False):
        self.n_clusters, self.n_iter, self.seed, self.n_init = n_clusters, n_iter, seed, n_init
        self.spherical, self.gpu = spherical, gpu

    def fit(self, X) -> "KMeans":
        import faiss

        x = _as_f32(X)
        n, d = x.shape
        check_finite(x)
        check_sizes(n, self.n_clusters)
        km = faiss.Kmeans(d, self.n_clusters, niter=self.n_iter, seed=int(self.seed) % (2**31),
                          nredo=self.n_init,  # restarts, best objective kept; the reference runs one
                          spherical=self.spherical, gpu=self.gpu,
                          max_points_per_centroid=n // self.n_clusters + 1,  # never subsample (faiss default: 256)
                          min_points_per_centroid=1,  # the reference warns below 39; kit checks sizes itself
                          verbose=False)
        km.train(x)
        dist, idx = km.index.search(x, 1)
        self.labels_ = idx[:, 0].astype(np.int64)
        self.centroids_ = km.centroids.copy()
        self.inertia_ = float(dist.sum())  # after the final assignment; faiss's iteration_stats hold the per-iteration objective
        self.objective_ = [s["obj"] for s in km.iteration_stats]
        self.n_splits_ = int(sum(s["nsplit"] for s in km.iteration_stats))
        self.n_empty_ = int((np.bincount(self.labels_, minlength=self.n_clusters) == 0).sum())
        return self
