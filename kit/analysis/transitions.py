"""What clusters do between epochs, and which images keep theirs: pure functions of label and
feature arrays.

A transition t -> t+1 puts every cluster of snapshot t in one of four kinds, and counts the clusters
of t+1 that come from no earlier cluster. The kinds are those of cluster-transition tracking (MONIC,
Spiliopoulou et al., KDD 2006: survival, split, absorption, disappearance, emergence), with kit's
thresholds:

    survived  >= SURVIVE (0.7) of its members stay together in one cluster, and they are that
              cluster's largest source
    merged    >= 0.7 of its members stay together, in a cluster whose largest source is another
              cluster: it was absorbed
    split     no cluster keeps 0.7 of it, but two or more clusters each take >= PART (0.3) of it
    shrank    one cluster keeps a core of PART (0.3) to 0.7 of it, and the rest scattered in
              pieces under 0.3
    died      no cluster keeps even PART (0.3) of it: its members scattered
    born      a cluster of t+1 that no cluster of t gave PART of its members to: made of scraps

The kinds read the K x K' contingency table, so they need no matching of ids (a renamed cluster is
the same cluster); the images are the same N in both snapshots.
survived + merged + split + shrank + died = the non-empty clusters of t. An image *kept its cluster*
in a transition when its carried id did not change (`flows.flips`, the same matching as the flows
and `label_change`).
"""
from __future__ import annotations

import numpy as np

from ..parts.metrics import contingency
from . import flows

# share of a cluster's members that must stay together for it to survive (or be absorbed whole)
SURVIVE = 0.7
PART = 0.3  # share a piece must take to count as a part of a split, or as a source of a new cluster
KINDS = ("survived", "merged", "split", "shrank", "died", "born")


def classify(
    prev: np.ndarray, cur: np.ndarray, survive: float = SURVIVE, part: float = PART
) -> dict:
    """One transition: {kind: count} for KINDS, and "of": the non-empty clusters of `prev`, "new":
    of `cur`. prev, cur: (N,) labels of the same images."""
    kp, kc = int(prev.max()) + 1, int(cur.max()) + 1
    table = contingency(prev, cur, kp, kc)  # (Kp, Kc)
    size = table.sum(1)
    share = table / np.maximum(size, 1)[:, None]  # row i: where cluster i's members went
    source = table.argmax(0)  # per new cluster, the old cluster that gave it most members
    out = dict.fromkeys(KINDS, 0)
    for i in np.flatnonzero(size):
        j = share[i].argmax()
        if share[i, j] >= survive:
            out["survived" if source[j] == i else "merged"] += 1
        elif (share[i] >= part).sum() >= 2:
            out["split"] += 1
        else:
            out["shrank" if share[i, j] >= part else "died"] += 1
    nonempty = table.sum(0) > 0
    out["born"] = int((nonempty & (share.max(0) < part)).sum())
    return {**out, "of": int((size > 0).sum()), "new": int(nonempty.sum())}


def strip(snapshots: list[np.ndarray], upto: int | None = None) -> list[dict]:
    """`classify` for each transition 0->1, ..., (S-2)->(S-1) of the first `upto` snapshots, each
    with "reassigned": the fraction of images whose carried cluster changed (the reassignment
    curve)."""
    snaps = [np.asarray(s) for s in snapshots[:upto]]
    chain = flows.carry_ids(snaps)
    return [{**classify(a, b), "reassigned": float((ca != cb).mean())}
            for a, b, ca, cb in zip(snaps[:-1], snaps[1:], chain[:-1], chain[1:])]


def mean_shares(transitions: list[dict]) -> dict:
    """The mean share of the old clusters of each kind (survived, merged, split, shrank, died) over
    some transitions of `strip`."""
    return {k: float(np.mean([t[k] / t["of"] for t in transitions])) for k in KINDS[:-1]}


def kept_share(snapshots: list[np.ndarray], upto: int | None = None) -> np.ndarray:
    """(N,) the share of transitions in which each image kept its cluster (1 = never moved)."""
    n = len(snapshots[:upto]) - 1
    return 1.0 - flows.flips(snapshots, upto) / max(n, 1)


def centroid_distance(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n,) each image's Euclidean distance to the mean of its cluster, on L2-normalised rows (as
    both algorithms cluster). features (n, D), labels (n,)."""
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels, x)
    centroids = sums / np.maximum(np.bincount(labels, minlength=k), 1)[:, None]
    return np.linalg.norm(x - centroids[labels], axis=1)


def hardest(kept: np.ndarray, distance: np.ndarray, n: int = 12) -> np.ndarray:
    """Indices of the n images that kept their cluster least often, the farthest from their centroid
    first among equals."""
    return np.lexsort((-distance, kept))[:n]
