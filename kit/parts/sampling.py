"""Which dataset indices an epoch visits: DeepCluster's uniform-over-clusters draw and ODC's draw
with replacement."""
from __future__ import annotations

import torch


def uniform_cluster_indices(
    labels: torch.Tensor, n_samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Dataset indices for one DeepCluster epoch, uniform over the non-empty clusters (§1.6).

    Each non-empty cluster contributes s = floor(M / #non-empty) + 1 draws, with replacement only
    if it has <= s members; the list is shuffled and truncated to M = `n_samples`. The indices
    are *dataset indices*, so every sampled image keeps its own pseudo-label.

    Departure from the original code, on purpose: `deepcluster:util.py` feeds these indices to a
    dataset stored in cluster-sorted order, i.e. uses them as positions, which pairs each image with
    its own label but makes the draw non-uniform (§1.6 caveat). kit indexes the dataset directly, as
    OpenSelfSup/mmselfsup do; the quota divides by #non-empty clusters, as the original.

    Vectorised: one sort by (cluster, random key) replaces a Python loop over K clusters.
    labels: (N,) int64 -> (M,) int64
    """
    labels = labels.long().cpu()
    n = labels.numel()
    counts = torch.bincount(labels)
    nonempty = int((counts > 0).sum())
    s = n_samples // nonempty + 1
    # members of each cluster, in a random order within the cluster
    keys = torch.rand(n, generator=generator, dtype=torch.float64) + labels.double()
    members = torch.argsort(keys)  # (N,) grouped by cluster, shuffled inside each group
    starts = torch.cumsum(counts, 0) - counts  # (K,) first position of each cluster in `members`
    big = counts > s  # clusters drawn without replacement
    # without replacement: the first s members of each big cluster's random order
    rank = torch.arange(n) - starts[labels[members]]
    take_big = members[(rank < s) & big[labels[members]]]
    # with replacement: s uniform draws among the members of each small non-empty cluster
    small = torch.nonzero((counts > 0) & ~big).flatten()
    pos = (torch.rand(len(small), s, generator=generator) * counts[small, None]).long() + starts[
        small, None
    ]
    take_small = members[pos.flatten()]
    out = torch.cat([take_big, take_small])
    out = out[torch.randperm(len(out), generator=generator)]
    # only when M is not a multiple (never with the +1 quota), kept for safety
    if len(out) < n_samples:
        out = out.repeat(n_samples // len(out) + 1)
    return out[:n_samples]


def replacement_indices(
    n: int, n_samples: int | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """ODC's epoch: N indices drawn uniformly with replacement, no per-cluster balancing (§2.9)."""
    return torch.randint(n, (n_samples or n,), generator=generator)
