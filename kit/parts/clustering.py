"""Feature preprocessing (PCA-whitening, L2) and k-means, as DeepCluster's `clustering.py` does it
(§1.3-1.4).

Pure functions over float32 arrays, and one estimator, `KMeans(n_clusters, n_iter, seed).fit(X)`,
with the reference's settings: 20 iterations, no subsampling, random init from distinct data points,
empty clusters split inside the iterations. It runs on faiss, or on torch (`TorchKMeans`, below)
when X is a CUDA tensor; the caller never chooses.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .runtime import Diverged, full_precision


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _as_f32(x) -> np.ndarray:
    return np.ascontiguousarray(_np(x), dtype=np.float32)


def check_finite(features, what: str = "features") -> None:
    """Raise `Diverged` if any entry of the (N, D) array or tensor is NaN/inf, naming the first bad
    row."""
    finite = (
        torch.isfinite(features) if isinstance(features, torch.Tensor) else np.isfinite(features)
    )
    if not finite.all():
        rows = np.flatnonzero(_np(~finite.all(1)))
        raise Diverged(
            f"{what} contain NaN/inf in {len(rows)} of {len(features)} rows (first: row "
            f"{rows[0]}): the network has diverged; lower the learning rate or resume from an "
            "earlier checkpoint"
        )


def check_sizes(n_samples: int, n_clusters: int, pca_dim: int = -1, who: str | None = None,
                pca_flag: str | None = None) -> None:
    """The small-data guards of ALGORITHMS.md §4: K >= 2, N >= K and N >= pca_dim, in one line each;
    the one place kit checks them. `who` (an algorithm's name) words them for a command's train
    split: what to type, never a setting the command has no flag for (`pca_flag`: its flag for
    pca_dim, if it has one)."""
    if n_clusters < 2:
        raise ValueError(f"n_clusters={n_clusters}: k-means needs at least 2 clusters")
    if who and n_samples < max(2, n_clusters):
        raise ValueError(
            f"{who} needs at least {max(2, n_clusters)} train images for K={n_clusters} clusters, "
            f"and the train split has {n_samples}: give more images"
            + (f" or --n-clusters from 2 to {n_samples}" if n_samples >= 2 else "")
        )
    if who and pca_dim > 0 and n_samples < pca_dim:
        raise ValueError(
            f"{who} whitens features to {pca_dim} PCA dims, which needs at least {pca_dim} train "
            f"images; the train split has {n_samples}: give more images"
            + (f" or {pca_flag} {n_samples} or less" if pca_flag else "")
        )
    if n_samples < 2:
        raise ValueError(
            f"{n_samples} sample(s) cannot be clustered: k-means needs at least 2 clusters, so "
            "give it at least 2 images (more than K, in practice many more)"
        )
    if n_samples < n_clusters:
        raise ValueError(
            f"{n_samples} samples cannot form {n_clusters} clusters: use n_clusters <= {n_samples} "
            "or a bigger dataset"
        )
    if pca_dim > 0 and n_samples < pca_dim:
        raise ValueError(
            f"PCA to {pca_dim} dims needs at least {pca_dim} samples, got {n_samples}: "
            f"use pca_dim <= {n_samples} or pca_dim=-1 (no PCA)"
        )


def l2_normalize(x: np.ndarray, eps: float = 1e-10) -> np.ndarray:
    """Rows divided by their norm (+1e-10, as mmselfsup), so every row has unit length."""
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + eps)


def pca_whiten(features: np.ndarray, dim: int) -> np.ndarray:
    """PCA to `dim` dimensions with whitening (faiss PCAMatrix, eigen_power=-0.5), fitted as the
    reference fits it: on all N rows up to faiss's default cap of `max_points_per_d` = 1000 rows
    per input dimension, above which faiss fits on a fixed random sample of 1000 x D rows. The
    cap binds only for narrow inputs: with ResNet-50's D = 2048 it is 2.05M rows, more than
    ImageNet's 1.28M, so there the PCA sees every row (§1.3). (N, D) -> (N, dim)

    faiss divides by the square root of the eigenvalues of the *unnormalised* scatter matrix of the
    rows it was fitted on, so its output has variance 1/n_fit per component (ECOSYSTEM.md §5.2). We
    multiply by sqrt(n_fit) so the result is whitened in the usual sense (identity covariance);
    DeepCluster L2-normalises next, so the clustering is unchanged by this rescaling.
    """
    import faiss

    x = _as_f32(features)
    n, d = x.shape
    if dim > d:
        raise ValueError(
            f"pca_dim={dim} exceeds the feature dimension {d}: use pca_dim <= {d} or -1 (no PCA)"
        )
    check_sizes(n, 2, dim)
    # faiss's default max_points_per_d, as the reference leaves it
    pca = faiss.PCAMatrix(d, dim, -0.5)
    pca.train(x)
    n_fit = min(n, pca.max_points_per_d * d)
    y = pca.apply(x) * np.float32(np.sqrt(n_fit))
    # as mmselfsup: sparse NaNs after PCA (from near-zero eigenvalues) become 0, many mean trouble
    nan = np.isnan(y)
    if nan.mean() > 1e-3:
        raise ValueError(f"{nan.mean():.2%} of the PCA output is NaN: the features are degenerate "
                         "(dead units?); lower pca_dim or check the network")
    y[nan] = 0
    return y


def preprocess_features(features, pca_dim: int = 256) -> np.ndarray:
    """DeepCluster's `preprocess_features`: float32, NaN check, PCA-whiten to `pca_dim` (-1 skips),
    L2 rows."""
    x = _as_f32(features)
    check_finite(x)
    if pca_dim > 0:
        x = pca_whiten(x, pca_dim)
    return l2_normalize(x)


class KMeans:
    """k-means with the estimator contract and DeepCluster's settings (§1.4), on faiss or on torch.

    >>> km = KMeans(n_clusters=10, n_iter=20, seed=3).fit(X)   # X: (N, D) float32 array or tensor
    >>> km.labels_, km.centroids_, km.inertia_                 # (N,) int64, (K, D) float32, float

    `labels_` comes from a final nearest-centroid search after the last centroid update, as in
    the reference, so a few clusters can come out empty; `n_empty_` counts them and nothing crashes.
    `n_splits_` counts the empty-cluster repairs during the iterations, `objective_` the sum of
    squared distances at each iteration's assignment. Initialisation is K distinct random data
    points (or `init_centroids`, (K, D)), so one run (`n_init=1`, the reference) can merge two true
    clusters; `n_init` > 1 keeps the best of several runs.

    `backend="auto"` runs `TorchKMeans` (below: the same algorithm in torch) when X is a
    CUDA tensor, so features extracted on a GPU are clustered there, and faiss on the CPU otherwise;
    "faiss" or "torch" forces one. `backend_` says which ran.
    """

    def __init__(self, n_clusters: int, n_iter: int = 20, seed: int = 0, n_init: int = 1,
                 spherical: bool = False, backend: str = "auto", init_centroids=None):
        self.n_clusters, self.n_iter, self.seed, self.n_init = n_clusters, n_iter, seed, n_init
        self.spherical, self.backend, self.init_centroids = spherical, backend, init_centroids

    def fit(self, X) -> "KMeans":
        if self.backend not in ("auto", "faiss", "torch"):
            raise ValueError(f"backend={self.backend!r}: use 'auto', 'faiss' or 'torch'")
        if self.n_init > 1 and self.init_centroids is not None:
            raise ValueError("n_init > 1 would restart from the same init_centroids: use n_init=1")
        backend = self.backend
        if backend == "auto":
            backend = "torch" if isinstance(X, torch.Tensor) and X.is_cuda else "faiss"
        if backend == "torch":
            km = TorchKMeans(self.n_clusters, self.n_iter, self.seed, self.n_init, self.spherical,
                             init_centroids=self.init_centroids).fit(X)
            # the learned state
            vars(self).update({k: v for k, v in vars(km).items() if k.endswith("_")})
        else:
            self._fit_faiss(_as_f32(X))
        self.backend_ = backend
        return self

    def _fit_faiss(self, x: np.ndarray) -> None:
        import faiss

        n, d = x.shape
        check_finite(x)
        check_sizes(n, self.n_clusters)
        km = faiss.Kmeans(d, self.n_clusters, niter=self.n_iter, seed=int(self.seed) % (2**31),
                          # restarts, best objective kept; the reference runs one
                          nredo=self.n_init,
                          spherical=self.spherical,
                          # never subsample (faiss default: 256)
                          max_points_per_centroid=n // self.n_clusters + 1,
                          # the reference warns below 39; kit checks sizes itself
                          min_points_per_centroid=1,
                          verbose=False)
        km.train(
            x, init_centroids=None if self.init_centroids is None else _as_f32(self.init_centroids)
        )
        dist, idx = km.index.search(x, 1)
        objective = np.array([s["obj"] for s in km.iteration_stats])
        # faiss scored by inner product; with unit centroids |x - c|^2 = |x|^2 + 1 - 2<x, c>
        if self.spherical:
            dist, objective = (
                (x * x).sum(1) + 1 - 2 * dist[:, 0],
                float((x * x).sum()) + n - 2 * objective,
            )
        self.labels_ = idx[:, 0].astype(np.int64)
        self.centroids_ = km.centroids.copy()
        # after the final assignment; faiss's iteration_stats hold the per-iteration objective
        self.inertia_ = float(dist.sum())
        self.objective_ = objective.tolist()
        self.n_splits_ = int(sum(s["nsplit"] for s in km.iteration_stats))
        self.n_empty_ = int((np.bincount(self.labels_, minlength=self.n_clusters) == 0).sum())


class TorchKMeans:
    """faiss's k-means written out in torch, on the device X lives on.

    >>> km = TorchKMeans(n_clusters=10_000, n_iter=20, seed=0).fit(X)  # X: (N, D), tensor or array
    >>> km.labels_, km.centroids_, km.inertia_  # as `KMeans`, which calls this

    Each of the `n_iter` iterations is one step of faiss's `Clustering::train`
    (faiss/Clustering.cpp): assign every row to its nearest centroid and sum the distances
    (`objective_`), set each centroid to its members' mean, then repair the empty ones by faiss's
    `split_clusters` rule (`_split_empty`). `labels_` comes from one more nearest-centroid search,
    as faiss's final `index.search`. The assignment runs in chunks of rows whose (rows, K) distance
    block fits in `chunk_bytes`: all at once it would be 1.28M x 10k floats = 51 GB at ImageNet
    scale. The default is 16 MiB on a CPU, where a block that stays in cache ran 1.35x faster than
    256 MiB (N = 50k, D = 128, K = 1,000, one thread), and 256 MiB on a GPU, for fewer kernel
    launches. Under torchrun one rank clusters the gathered features (`Distributed.cluster`).
    """

    def __init__(self, n_clusters: int, n_iter: int = 20, seed: int = 0, n_init: int = 1,
                 spherical: bool = False, init_centroids=None, chunk_bytes: int | None = None):
        self.n_clusters, self.n_iter, self.seed, self.n_init = n_clusters, n_iter, seed, n_init
        self.spherical, self.init_centroids, self.chunk_bytes = (
            spherical,
            init_centroids,
            chunk_bytes,
        )

    @torch.no_grad()
    def fit(self, X) -> "TorchKMeans":
        # distances in float32 as written: no TF32, no autocast (runtime.full_precision)
        with full_precision(getattr(X, "device", "cpu")):
            return self._fit(X)

    def _fit(self, X) -> "TorchKMeans":
        x = torch.as_tensor(X).float()  # (N, D), on X's device
        check_finite(x)
        check_sizes(len(x), self.n_clusters)
        # on the CPU, so a seed gives the same run on any device
        g = torch.Generator().manual_seed(int(self.seed))
        best = None
        for _ in range(self.n_init):  # restarts, the lowest last objective kept (faiss's nredo)
            run = self._lloyd(x, self._initial_centroids(x, g), g)
            if best is None or run[1][-1] < best[1][-1]:
                best = run
        c, self.objective_, self.n_splits_ = best
        dist, labels = self._assign(x, c)
        self.labels_ = labels.cpu().numpy()
        self.centroids_ = c.cpu().numpy()
        self.inertia_ = float(dist.sum())
        self.n_empty_ = int((torch.bincount(labels, minlength=self.n_clusters) == 0).sum())
        return self

    def _initial_centroids(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """K distinct random rows of x, as faiss (its permutation differs; the rule is the same).
        -> (K, D)"""
        if self.init_centroids is not None:
            return torch.as_tensor(self.init_centroids).to(x).clone()
        return x[torch.randperm(len(x), generator=g)[: self.n_clusters].to(x.device)].clone()

    def _lloyd(self, x: torch.Tensor, c: torch.Tensor, g: torch.Generator):
        """`n_iter` assignment + update steps from centroids c (K, D) -> (c, objective per
        iteration, splits). The reference's faiss always ran all `n_iter`; stopping at a fixed point
        gives the same result."""
        objective, splits = [], 0
        c = F.normalize(c, dim=1) if self.spherical else c
        for _ in range(self.n_iter):
            sums = torch.zeros_like(c)  # (K, D)
            dist, labels = self._assign(x, c, sums)
            counts = torch.bincount(labels, minlength=len(c))  # (K,)
            objective.append(float(dist.sum()))
            counts = counts.double()
            # an empty cluster's centroid is 0 until split, as faiss
            c = sums / counts.clamp(min=1)[:, None].to(sums)
            splits += _split_empty(c, counts, g)
            # spherical: faiss renormalises after each update
            c = F.normalize(c, dim=1) if self.spherical else c
            if len(objective) > 1 and objective[-1] == objective[-2]:
                # a fixed point: the remaining iterations would change nothing (faiss >= 1.14.2
                # stops here too)
                break
        return c, objective, splits

    def _assign(self, x: torch.Tensor, c: torch.Tensor, sums: torch.Tensor | None = None):
        """Nearest centroid of every row of x (N, D), chunk by chunk; adds each row to its cluster's
        row of `sums` (K, D) when given. -> squared distances (N,) float64, labels (N,) int64"""
        budget = self.chunk_bytes or (2**24 if x.device.type == "cpu" else 2**28)
        rows = max(1, budget // (4 * len(c)))  # a (rows, K) float32 block fits the budget
        c_sq = (c * c).sum(1)  # (K,)
        dists, labels = [], []
        for xs in x.split(rows):
            # (rows, K): |c|^2 - 2<x, c>; |x|^2 is added to the min
            d2 = torch.addmm(c_sq, xs, c.T, alpha=-2)
            m, a = d2.min(dim=1)
            # a rounding-negative distance is 0, as faiss
            dists.append(((xs * xs).sum(1) + m).clamp_(min=0).double())
            labels.append(a)
            if sums is not None:
                sums.index_add_(0, a, xs)
        return torch.cat(dists), torch.cat(labels)


_SPLIT_EPS = 1 / 1024  # faiss's split perturbation, "a bit above machine epsilon for float16"


def _split_empty(c: torch.Tensor, counts: torch.Tensor, g: torch.Generator) -> int:
    """faiss's `split_clusters` (faiss/Clustering.cpp): each empty cluster e, in id order, takes a
    copy of a donor centroid j drawn with probability proportional to size - 1 (a singleton never
    gives), the two are pushed apart by a relative +-1/1024 that alternates sign by coordinate, and
    j's count is halved between them, so later draws in the same pass see it split.
    c (K, D) is changed in place; counts (K,) float64 are only read; returns the number of splits.

    Departure, on purpose: faiss draws j by scanning the clusters cyclically from 0 and accepting
    each with probability (size - 1)/(N - K), which slightly favours low ids; kit draws exactly
    in proportion, from the run's seeded generator (faiss reseeds its own with 1234 each call).
    """
    empty = torch.nonzero(counts == 0).flatten().tolist()
    h = counts.cpu().clone()  # the draws use the CPU generator
    sign = torch.ones(c.shape[1], dtype=c.dtype, device=c.device)
    sign[1::2] = -1
    for e in empty:
        weight = (h - 1).clamp(min=0)
        # when no cluster has more than one member left to give (N close to K), faiss takes the
        # largest
        j = int(torch.multinomial(weight, 1, generator=g)) if weight.sum() > 0 else int(h.argmax())
        c[e] = c[j] * (1 + _SPLIT_EPS * sign)
        c[j] *= 1 - _SPLIT_EPS * sign
        h[e] = h[j] / 2
        h[j] -= h[e]
    return len(empty)
