"""Metrics: pure functions of label vectors and feature arrays.

NMI uses the paper's definition I(A;B) / sqrt(H(A) H(B)) (`average_method="geometric"`), pinned
because scikit-learn's default changed to the arithmetic mean in 0.22 (ALGORITHMS.md §1.11).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from sklearn import metrics as skm

HUNGARIAN_MAX_K = 1000  # above this, matching clusters uses the majority mapping (Hungarian is O(K^3))


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def nmi(a, b) -> float:
    """Normalised mutual information, geometric normalisation (the DeepCluster paper's)."""
    return float(skm.normalized_mutual_info_score(_np(a), _np(b), average_method="geometric"))


def ari(a, b) -> float:
    """Adjusted Rand index."""
    return float(skm.adjusted_rand_score(_np(a), _np(b)))


def contingency(a, b) -> np.ndarray:
    """Counts C[i, j] = #{n : a[n] = i, b[n] = j}, dense (max(a)+1, max(b)+1)."""
    a, b = _np(a).astype(np.int64), _np(b).astype(np.int64)
    shape = (a.max() + 1, b.max() + 1)
    return coo_matrix((np.ones_like(a), (a, b)), shape=shape).toarray()


def match_clusters(pred, target, method: str = "auto") -> np.ndarray:
    """A map m with m[pred_id] = target_id, maximising agreement.

    "hungarian": one-to-one (linear_sum_assignment on the contingency table); "majority": each
    predicted cluster goes to the target id it overlaps most (many-to-one). "auto" picks Hungarian
    when both label sets have at most 1,000 ids.
    """
    c = contingency(pred, target)
    if method == "auto":
        method = "hungarian" if max(c.shape) <= HUNGARIAN_MAX_K else "majority"
    if method == "majority":
        return c.argmax(axis=1)
    rows, cols = linear_sum_assignment(-c)
    m = np.full(c.shape[0], -1, dtype=np.int64)  # predicted ids left unmatched map to -1 (never correct)
    m[rows] = cols
    return m


def cluster_acc(pred, target) -> float:
    """Clustering accuracy: the fraction correct under the best one-to-one map (Hungarian)."""
    pred, target = _np(pred), _np(target)
    return float((match_clusters(pred, target, "hungarian")[pred] == target).mean())


def label_change(prev, cur, method: str = "auto") -> float:
    """Fraction of samples whose cluster changed between two assignments, after matching ids.

    Cluster ids carry no meaning across clusterings, so `prev`'s ids are first mapped onto `cur`'s
    (see `match_clusters`); a relabelled permutation therefore changes nothing (0.0).
    """
    prev, cur = _np(prev), _np(cur)
    return float((match_clusters(prev, cur, method)[prev] != cur).mean())


def cluster_sizes(labels, n_clusters: int) -> dict:
    """Size statistics: empty count, min, max and the entropy (nats) of the size distribution."""
    h = np.bincount(_np(labels).astype(np.int64), minlength=n_clusters)
    p = h[h > 0] / h.sum()
    return {"empty": int((h == 0).sum()), "min_size": int(h.min()), "max_size": int(h.max()),
            "size_entropy": float(-(p * np.log(p)).sum())}


@torch.no_grad()
def knn_accuracy(train_features, train_labels, test_features, test_labels, k: int = 200,
                 temperature: float = 0.07, n_classes: int | None = None, chunk: int = 1024) -> float:
    """Weighted kNN accuracy on L2-normalised features (Wu et al. 2018; the SSL-literature monitor).

    Each test point votes with its k nearest train points by cosine similarity s, each vote
    weighted by exp(s / temperature).
    """
    xtr = torch.nn.functional.normalize(torch.as_tensor(_np(train_features), dtype=torch.float32), dim=1)
    xte = torch.nn.functional.normalize(torch.as_tensor(_np(test_features), dtype=torch.float32), dim=1)
    ytr = torch.as_tensor(_np(train_labels), dtype=torch.long)
    yte = torch.as_tensor(_np(test_labels), dtype=torch.long)
    c = n_classes or int(max(ytr.max(), yte.max())) + 1
    k = min(k, len(xtr))
    correct = 0
    for s in range(0, len(xte), chunk):
        sim, nn_idx = (xte[s : s + chunk] @ xtr.T).topk(k, dim=1)  # (b, k)
        votes = torch.zeros(len(sim), c).scatter_add_(1, ytr[nn_idx], (sim / temperature).exp())
        correct += int((votes.argmax(1) == yte[s : s + chunk]).sum())
    return correct / len(xte)
