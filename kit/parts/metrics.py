"""Metrics: pure functions of label vectors and feature arrays.

NMI uses the paper's definition I(A;B) / sqrt(H(A) H(B)) (`average_method="geometric"`), pinned
because scikit-learn's default changed to the arithmetic mean in 0.22 (ALGORITHMS.md §1.11).

NMI is not chance-corrected: two independent random partitions of 4,000 images into K clusters have
NMI 0.004 at K = 10, 0.25 at K = 100 and 0.54 at K = 300, so an NMI compared across K measures K.
`agreement` therefore reports, beside NMI, the adjusted (chance-corrected) AMI and ARI, which read
~0 for unrelated partitions at any K, and `nmi_chance`, the NMI of the same two label vectors with
one shuffled (same cluster sizes, no relation): the floor an NMI figure draws under its curve.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from sklearn import metrics as skm

# above this, matching clusters uses the majority mapping (Hungarian is O(K^3))
HUNGARIAN_MAX_K = 1000
# scikit-learn's AMI computes the expected MI exactly, in time that grows with K x N. Measured on 2
# CPU cores: 0.13-0.19 s at K = 1,000, N = 4,000; 0.27 s at K = 3,000, N = 4,000; 0.79 s at
# K = 1,000, N = 20,000. Above this product (ImageNet: K = 10,000, N = 1.28 M) `agreement` gives
# AMI as None and the chance-corrected reading is ARI (constant time in K) together with the
# permutation floor `nmi_chance`.
AMI_MAX_WORK = 20_000_000  # K x N


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def nmi(a, b) -> float:
    """Normalised mutual information, geometric normalisation (the DeepCluster paper's)."""
    return float(skm.normalized_mutual_info_score(_np(a), _np(b), average_method="geometric"))


def ari(a, b) -> float:
    """Adjusted Rand index: pair counting, 0 in expectation for unrelated partitions, 1 for equal
    ones."""
    return float(skm.adjusted_rand_score(_np(a), _np(b)))


def ami(a, b) -> float:
    """Adjusted mutual information (geometric normalisation, as `nmi`):
    (MI - E[MI]) / (sqrt(H(A) H(B)) - E[MI]), E[MI] under random labellings with the same cluster
    sizes. 0 for unrelated partitions at any K."""
    return float(skm.adjusted_mutual_info_score(_np(a), _np(b), average_method="geometric"))


def nmi_chance(a, b, seed: int = 0) -> float:
    """The chance level of `nmi(a, b)`: the NMI of `a` against `b` shuffled (one random permutation,
    so both keep their cluster sizes and lose any relation). It climbs with K; an NMI near it means
    nothing."""
    b = _np(b)
    return nmi(a, b[np.random.default_rng(seed).permutation(len(b))])


def agreement(a, b, prefix: str = "", suffix: str = "") -> dict:
    """NMI with its chance floor, AMI and ARI of two labellings, as {prefix + name + suffix: value}:
    `agreement(prev, cur, suffix="_prev")` -> nmi_prev, nmi_prev_chance, ami_prev, ari_prev.
    AMI is None past `AMI_MAX_WORK` (too slow there; read ARI and the NMI floor instead)."""
    name = lambda m: f"{prefix}{m}{suffix}"  # noqa: E731
    if a is None:  # no previous labelling yet (DeepCluster's first epoch)
        return dict.fromkeys([name("nmi"), name("nmi") + "_chance", name("ami"), name("ari")])
    a, b = _np(a), _np(b)
    k = max(len(np.unique(a)), len(np.unique(b)))
    return {name("nmi"): nmi(a, b), name("nmi") + "_chance": nmi_chance(a, b),
            name("ami"): ami(a, b) if k * len(a) <= AMI_MAX_WORK else None, name("ari"): ari(a, b)}


def contingency(a, b, n_a: int | None = None, n_b: int | None = None) -> np.ndarray:
    """Counts C[i, j] = #{n : a[n] = i, b[n] = j}, dense (n_a, n_b); by default
    (max(a)+1, max(b)+1)."""
    a, b = _np(a).astype(np.int64), _np(b).astype(np.int64)
    shape = (n_a or a.max() + 1, n_b or b.max() + 1)
    return coo_matrix((np.ones_like(a), (a, b)), shape=shape).toarray()


def match_clusters(pred, target, method: str = "auto", n_clusters: int | None = None) -> np.ndarray:
    """A map m with m[pred_id] = target_id, maximising agreement. Serves the metrics
    (`label_change`, `cluster_acc`) and the views' carried cluster ids (kit/analysis/flows.py)
    alike.

    "hungarian": one-to-one (linear_sum_assignment on the contingency table); "majority": each
    predicted cluster goes to the target id it overlaps most (many-to-one). "auto" picks Hungarian
    when both label sets have at most 1,000 ids. With `n_clusters` the table is K x K, so Hungarian
    matches every id (an empty or new cluster takes a leftover id): m is a permutation of [0, K).
    """
    c = contingency(pred, target, n_clusters, n_clusters)
    if method == "auto":
        method = "hungarian" if max(c.shape) <= HUNGARIAN_MAX_K else "majority"
    if method == "majority":
        return c.argmax(axis=1)
    rows, cols = linear_sum_assignment(-c)
    # predicted ids left unmatched map to -1 (never correct)
    m = np.full(c.shape[0], -1, dtype=np.int64)
    m[rows] = cols
    return m


def cluster_acc(pred, target) -> float:
    """Clustering accuracy: the fraction correct under the best one-to-one map (Hungarian)."""
    pred, target = _np(pred), _np(target)
    return float((match_clusters(pred, target, "hungarian")[pred] == target).mean())


def changed(prev, cur, method: str = "auto") -> np.ndarray:
    """(N,) bool: the samples whose cluster changed between two assignments, after matching ids.

    Cluster ids carry no meaning across clusterings, so `prev`'s ids are first mapped onto `cur`'s
    (see `match_clusters`); a relabelled permutation therefore changes nothing.
    """
    prev, cur = _np(prev), _np(cur)
    return match_clusters(prev, cur, method)[prev] != cur


def label_change(prev, cur, method: str = "auto") -> float:
    """Fraction of samples whose cluster changed between two assignments (`changed`): 0.0 for a
    relabelling."""
    return float(changed(prev, cur, method).mean())


def within_class_moves(prev, cur, classes) -> float:
    """Of the samples that changed cluster between two assignments (`changed`), the share whose old
    and new cluster have the same majority class: a move between two clusters of one class (a
    boundary redrawn inside it) rather than to another class. nan when nothing changed."""
    prev, cur, classes = _np(prev), _np(cur), _np(classes)
    moved = changed(prev, cur)
    if not moved.any():
        return float("nan")
    major_prev, major_cur = (
        contingency(prev, classes).argmax(1),
        contingency(cur, classes).argmax(1),
    )
    return float((major_prev[prev[moved]] == major_cur[cur[moved]]).mean())


def cluster_sizes(labels, n_clusters: int) -> dict:
    """Size statistics: empty count, min, max and the entropy (nats) of the size distribution."""
    h = np.bincount(_np(labels).astype(np.int64), minlength=n_clusters)
    p = h[h > 0] / h.sum()
    return {"empty": int((h == 0).sum()), "min_size": int(h.min()), "max_size": int(h.max()),
            "size_entropy": float(-(p * np.log(p)).sum())}


@torch.no_grad()
def knn_accuracy(
    train_features,
    train_labels,
    test_features,
    test_labels,
    k: int = 200,
    temperature: float = 0.07,
    n_classes: int | None = None,
    chunk: int = 1024,
) -> float:
    """Weighted kNN accuracy on L2-normalised features (Wu et al. 2018; the SSL-literature monitor).

    Each test point votes with its k nearest train points by cosine similarity s, each vote
    weighted by exp(s / temperature). Arrays or tensors; it runs on the device of `train_features`
    (a GPU's features are searched there) and reads one number back at the end.
    """
    xtr = torch.nn.functional.normalize(torch.as_tensor(train_features, dtype=torch.float32), dim=1)
    device = xtr.device
    xte = torch.nn.functional.normalize(
        torch.as_tensor(test_features, dtype=torch.float32).to(device), dim=1
    )
    ytr = torch.as_tensor(train_labels).long().to(device)
    yte = torch.as_tensor(test_labels).long().to(device)
    c = n_classes or int(max(ytr.max(), yte.max())) + 1
    k = min(k, len(xtr))
    correct = torch.zeros((), dtype=torch.long, device=device)
    for s in range(0, len(xte), chunk):
        sim, nn_idx = (xte[s : s + chunk] @ xtr.T).topk(k, dim=1)  # (b, k)
        votes = torch.zeros(len(sim), c, device=device).scatter_add_(
            1, ytr[nn_idx], (sim / temperature).exp()
        )
        correct += (votes.argmax(1) == yte[s : s + chunk]).sum()
    return int(correct) / len(xte)
