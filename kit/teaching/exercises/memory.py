"""03, ODC: the two steps of the samples memory (kit.algorithms.memory.ODCMemory) the student
writes, the momentum update of the batch's rows and the small-cluster fix, their checks and their
solutions."""
from __future__ import annotations

import numpy as np
import torch

from ...algorithms.memory import ODCMemory
from .common import TRIALS, Result, _call, _labels


def _memory(
    rng: np.random.Generator, n: int, d: int, k: int, momentum: float, min_size: int = 0
) -> ODCMemory:
    mem = ODCMemory(n, d, k, momentum=momentum, min_cluster_size=min_size)
    mem.init(rng.standard_normal((n, d)).astype(np.float32), _labels(rng, n, k))
    return mem


def _call_on_copies(result: Result, fn, names: tuple, originals: tuple, *rest):
    """The student's function on copies of the tensor arguments `originals` (then `rest`), or None
    with the reason recorded: it failed, returned nothing, or changed one of its arguments in
    place."""
    args = tuple(a.clone() for a in originals)
    out = _call(result, fn, *args, *rest)
    if out is None:
        return None
    changed = [name for name, a, o in zip(names, args, originals) if not torch.equal(a, o)]
    if changed:
        result.problems.append(
            f"it changed its arguments ({', '.join(changed)}): work on a copy (x.clone())"
        )
        return None
    return out


def check_momentum_update(fn) -> Result:
    """`fn(features (N, D), labels (N,), centroids (K, D), idx (B,) distinct, z (B, D), momentum)
    -> (rows (B, D), labels (B,))`: the batch's new memory rows and labels, as ODCMemory.update,
    with the arguments left as they were. Momenta 0.3, 0.5, 0.8, so swapping m and 1 − m shows (and
    is named)."""
    result = Result("momentum update of the samples memory")
    names = ("features", "labels", "centroids", "idx", "z")
    for trial in range(TRIALS):
        rng = np.random.default_rng(200 + trial)
        n, d, k, b = 300, 16, 8, 32
        # not only 0.5, where old and new weigh the same
        momentum = float(rng.choice([0.3, 0.5, 0.8]))
        mem = _memory(rng, n, d, k, momentum)
        idx = torch.from_numpy(rng.choice(n, b, replace=False))
        z = torch.from_numpy(rng.standard_normal((b, d)).astype(np.float32) * 3)  # not unit length
        originals = (
            mem.features.clone(),
            mem.labels.clone(),
            mem.centroids.clone(),
            idx.clone(),
            z.clone(),
        )
        out = _call_on_copies(result, fn, names, originals, momentum)
        if out is None:
            return result
        before = mem.labels[idx].clone()
        ratio = mem.update(idx, z)
        rows, labels = (torch.as_tensor(o) for o in out)
        if rows.shape != (b, d) or labels.shape != (b,):
            result.problems.append(
                f"expected rows ({b}, {d}) and labels ({b},), got {tuple(rows.shape)} and "
                f"{tuple(labels.shape)}"
            )
            return result
        if not torch.allclose(rows.float(), mem.features[idx], atol=1e-5):
            result.problems.append(
                f"trial {trial} (momentum {momentum}): new rows differ from kit's by up to "
                f"{(rows.float() - mem.features[idx]).abs().max():.4f}"
                + _momentum_hint(rows.float(), originals[0][idx], z, momentum)
            )
        elif not torch.equal(labels.long(), mem.labels[idx]):
            result.problems.append(
                f"trial {trial}: {int((labels.long() != mem.labels[idx]).sum())} of {b} labels "
                "differ (relabel by the largest dot product with the centroids, as they are)"
            )
        elif abs(float((labels.long() != before).float().mean()) - ratio) > 1e-6:
            result.problems.append(
                f"trial {trial}: change ratio "
                f"{float((labels.long() != before).float().mean()):.3f}, kit {ratio:.3f}"
            )
        if result.problems:  # one line says what to look at; the other trials would repeat it
            return result
    return result


def _momentum_hint(rows: torch.Tensor, old: torch.Tensor, z: torch.Tensor, m: float) -> str:
    norm = torch.nn.functional.normalize
    if not torch.allclose(rows.norm(dim=1), torch.ones(len(rows)), atol=1e-4):
        return " (the rows are not unit length: normalise the mix)"
    if torch.allclose(rows, norm(m * old + (1 - m) * norm(z, dim=1), dim=1), atol=1e-5):
        return " (m and 1 − m are swapped: the old row keeps 1 − m, the new feature gets m)"
    if torch.allclose(rows, norm((1 - m) * old + m * z, dim=1), atol=1e-5):
        return " (normalise z before mixing it in)"
    return ""


def check_small_cluster_fix(fn) -> Result:
    """`fn(features (N, D), labels (N,), centroids (K, D), min_size) -> labels (N,)`: every member
    of a cluster smaller than min_size moves to the nearest centroid (largest dot product) among the
    clusters that are not small; nothing else moves, and the arguments stay as they were. Compared
    with ODCMemory.fix_small_clusters on every row that kit's next step (refilling the freed ids by
    splitting the largest cluster) leaves alone."""
    result = Result("small-cluster fix")
    names = ("features", "labels", "centroids")
    for trial in range(TRIALS):
        rng = np.random.default_rng(300 + trial)
        n, d, k, min_size = 300, 16, 12, 8
        mem = _memory(rng, n, d, k, 0.5, min_size)
        small = torch.nonzero(mem.counts() < min_size).flatten()
        originals = (mem.features.clone(), mem.labels.clone(), mem.centroids.clone())
        out = _call_on_copies(result, fn, names, originals, min_size)
        if out is None:
            return result
        mine = torch.as_tensor(out).long()
        mem.fix_small_clusters()
        if mine.shape != (n,):
            result.problems.append(f"expected ({n},) labels, got {tuple(mine.shape)}")
            return result
        if torch.isin(mine, small).any():
            result.problems.append(
                f"trial {trial}: rows still in a small cluster ({small.tolist()} are below "
                f"{min_size}): a small cluster may not take rows, not even another small cluster's"
            )
            return result
        kept = ~torch.isin(mem.labels, small)  # rows kit's split did not move into a freed id
        wrong = torch.nonzero(kept & (mine != mem.labels)).flatten()
        if len(wrong):
            r = int(wrong[0])
            was = int(originals[1][r])
            why = (
                "it was not in a small cluster"
                if was not in small.tolist()
                else "a nearer allowed centroid exists"
            )
            result.problems.append(
                f"trial {trial}: {len(wrong)} rows differ, e.g. row {r} (cluster {was}): yours "
                f"{int(mine[r])}, kit {int(mem.labels[r])}; {why}"
            )
            return result
    return result


# -- the solutions (the notebook shows the same code in a hidden block) --------------------
def solution_momentum_update(features, labels, centroids, idx, z, momentum):
    f = torch.nn.functional.normalize(z, dim=1)
    rows = torch.nn.functional.normalize((1 - momentum) * features[idx] + momentum * f, dim=1)
    return rows, (rows @ centroids.T).argmax(dim=1)


def solution_small_cluster_fix(features, labels, centroids, min_size):
    small = torch.bincount(labels, minlength=len(centroids)) < min_size
    members = torch.nonzero(small[labels]).flatten()
    scores = features[members] @ centroids.T
    scores[:, small] = float("-inf")  # only clusters outside the small set may take them
    labels = labels.clone()
    labels[members] = scores.argmax(dim=1)
    return labels
