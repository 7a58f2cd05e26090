"""Reassignment flows: how images move between clusters over epochs, as pure functions of label
arrays.

Cluster ids mean nothing across clusterings (DeepCluster runs a fresh k-means every epoch; ODC's ids
drift as small clusters are dissolved and refilled), so every comparison first *carries ids
forward*: the clusters of snapshot t+1 are renamed after the snapshot-t clusters they share most
images with by `kit.parts.metrics.match_clusters`, the one matching the metrics use: one-to-one
(Hungarian, `scipy.optimize.linear_sum_assignment` on the K x K contingency table) up to K = 1,000,
each cluster to its largest overlap above (Hungarian is O(K^3)). After that, "cluster 17 at t,
cluster 17 at t+1" means the images stayed together, and an image *flips* at a transition when its
carried id changes. The fraction of flipped images is the history's `label_change`
(`kit.parts.metrics.changed`).

Snapshot s of either algorithm follows s epochs of training: DeepCluster's snapshot s is the k-means
at the *start* of epoch s, ODC's snapshot 0 is its initial k-means and snapshot s + 1 the memory's
labels after epoch s (see `plots.stability`). DeepCluster never clusters the features its last epoch
produced, so after E epochs it has E snapshots and ODC E + 1. Flips are therefore counted over the
snapshots both have (`common_snapshots`): the same transitions, after the same training, for both.
"""
from __future__ import annotations

import numpy as np

from ..parts.metrics import contingency, match_clusters


def carry_ids(snapshots: list[np.ndarray], n_clusters: int | None = None) -> list[np.ndarray]:
    """Rename each snapshot's clusters after the previous (already carried) snapshot's: (N,)
    each."""
    if not len(snapshots):
        return []
    k = n_clusters or int(max(s.max() for s in snapshots)) + 1
    out = [np.asarray(snapshots[0], dtype=np.int64)]
    for cur in snapshots[1:]:
        # cur's ids renamed after the previous ones
        out.append(match_clusters(cur, out[-1], n_clusters=k)[cur])
    return out


def common_snapshots(labels: dict[str, list[np.ndarray]]) -> int:
    """How many snapshots (0, 1, ..., S-1) every algorithm has: flips compare like with like over
    them."""
    return min(len(s) for s in labels.values())


def flips(snapshots: list[np.ndarray], upto: int | None = None) -> np.ndarray:
    """(N,) int: in how many transitions 0->1, ..., (S-2)->(S-1) each image changed cluster.

    `upto` = S keeps the first S snapshots (use `common_snapshots` to compare two algorithms).
    """
    chain = carry_ids(list(snapshots[:upto]))
    out = np.zeros(len(chain[0]), dtype=np.int64)
    for a, b in zip(chain[:-1], chain[1:]):
        out += a != b
    return out


def flow_table(a: np.ndarray, b: np.ndarray, n_clusters: int | None = None) -> np.ndarray:
    """(K, K) counts of images in carried cluster i at t and j at t+1; the diagonal are the stays.

    `a` and `b` must already carry the same ids (`carry_ids`); nothing is re-matched here.
    """
    k = n_clusters or int(max(a.max(), b.max())) + 1
    return contingency(a, b, k, k)


def top_flows(a: np.ndarray, b: np.ndarray, m: int = 8) -> dict:
    """The m largest moves between carried clusters, the rest lumped together.

    Returns {"stayed": int, "moves": [(from_id, to_id, count), ...] largest first, "other": int};
    stayed + sum of the moves + other = N.
    """
    table = flow_table(a, b)
    stayed = int(np.trace(table))
    np.fill_diagonal(table, 0)
    flat = np.argsort(-table, axis=None, kind="stable")[:m]
    moves = [
        (int(i), int(j), int(table[i, j]))
        for i, j in zip(*np.unravel_index(flat, table.shape))
        if table[i, j] > 0
    ]
    return {"stayed": stayed, "moves": moves, "other": int(table.sum()) - sum(n for *_, n in moves)}


def alluvium(classes: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bands of a class-level alluvial step: unique rows (class, cluster at t, cluster at t+1)
    (B, 3) and their image counts (B,), which sum to N."""
    keys = np.stack([np.asarray(classes), np.asarray(a), np.asarray(b)], axis=1).astype(np.int64)
    rows, counts = np.unique(keys, axis=0, return_counts=True)
    return rows, counts


def majority_class(labels: np.ndarray, classes: np.ndarray, n_clusters: int | None = None,
                   n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cluster: its majority class (the many-to-one match), its size and its purity (K,) each.

    Purity is the fraction of the cluster's images in its majority class (0 for an empty cluster).
    """
    k = n_clusters or int(labels.max()) + 1
    c = n_classes or int(classes.max()) + 1
    table = contingency(labels, classes, k, c)
    size = table.sum(1)
    return table.argmax(1), size, np.where(size > 0, table.max(1) / np.maximum(size, 1), 0.0)


def cluster_order(
    labels: np.ndarray, classes: np.ndarray, n_clusters: int | None = None
) -> np.ndarray:
    """Non-empty cluster ids sorted by majority class, then largest first: the rows of a
    block-diagonal confusion table and the node order of an alluvial column."""
    major, size, _ = majority_class(labels, classes, n_clusters)
    ids = np.flatnonzero(size)
    return ids[np.lexsort((-size[ids], major[ids]))]


def nearest_to_centroid(
    features: np.ndarray, labels: np.ndarray, n: int = 8
) -> dict[int, np.ndarray]:
    """For each cluster, the indices of its (up to) n members nearest to its centroid, nearest
    first.

    Rows are L2-normalised first (both algorithms cluster normalised features); the centroid is the
    mean of the cluster's normalised rows, and distance is Euclidean.
    """
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)  # (N, D)
    out = {}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        d = np.linalg.norm(x[members] - x[members].mean(0), axis=1)
        out[int(c)] = members[np.argsort(d, kind="stable")[:n]]
    return out
