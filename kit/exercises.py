"""Exercises that check themselves: the student writes one step of an algorithm, a check runs it
beside kit's own implementation on random inputs and says what differs.

    from kit import exercises
    exercises.check_nmi(my_nmi)          # -> a Result: passed, and one line per difference found

Each check catches what the student's function raises and reports it, so a notebook with an
unfinished exercise still runs top to bottom. The walkthroughs hold the exercises (02: the uniform
sampler, NMI; 03: ODC's memory update, the small-cluster fix); their solutions are in `SOLUTIONS`
below and in the notebooks' hidden blocks, and tests/test_exercises.py shows each check passes
with them and fails with a planted mistake.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field

import numpy as np
import torch

from .memory import ODCMemory
from .metrics import nmi as kit_nmi
from .sampling import uniform_cluster_indices

TRIALS = 5  # random problems per check: enough to hit the edge cases (an empty cluster, a tiny one)


@dataclass
class Result:
    """What a check found; shown in a notebook as its lines, true when nothing differed."""

    name: str
    problems: list[str] = field(default_factory=list)
    passed_text: str = f"matches kit on {TRIALS} random problems"

    @property
    def passed(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        if self.passed:
            return f"✓ {self.name}: {self.passed_text}"
        return "\n".join([f"✗ {self.name}: differs from kit", *(f"  - {p}" for p in self.problems[:5])])


def _call(result: Result, fn, *args):
    """The student's function on one problem, or None with the reason recorded."""
    try:
        out = fn(*args)
    except NotImplementedError:
        result.problems.append("not written yet (it raises NotImplementedError)")
        return None
    except Exception as e:  # any bug in the student's code is a finding, not a crash of the notebook
        where = traceback.extract_tb(e.__traceback__)[-1]
        result.problems.append(f"it raised {type(e).__name__}: {e} (line {where.lineno})")
        return None
    if out is None:
        result.problems.append("it returned None: return the answer")
    return out


def _labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Cluster ids with very unequal sizes, one empty id and one cluster of a single member:
    the cases a sampler or a fix has to get right."""
    sizes = rng.dirichlet(np.full(k, 0.3))
    labels = rng.choice(k, size=n, p=sizes)
    labels[labels == k - 1] = 0  # id k-1 is empty
    labels[0] = k - 2  # at least one member of k-2
    return labels


# -- 02: DeepCluster ---------------------------------------------------------------------------
def check_uniform_sampler(fn) -> Result:
    """`fn(labels (N,) int64 tensor, n_samples, generator) -> (n_samples,) dataset indices`, drawn
    uniformly over the non-empty clusters as DeepCluster does (kit.sampling.uniform_cluster_indices)."""
    result = Result("uniform sampler")
    for trial in range(TRIALS):
        rng = np.random.default_rng(trial)
        n, k = int(rng.integers(200, 600)), int(rng.integers(5, 15))
        labels = torch.from_numpy(_labels(rng, n, k))
        out = _call(result, fn, labels.clone(), n, torch.Generator().manual_seed(trial))
        if out is None:
            return result
        out = torch.as_tensor(out)
        if out.shape != (n,) or out.dtype not in (torch.int64, torch.int32):
            result.problems.append(f"expected {n} integer indices, got shape {tuple(out.shape)} of {out.dtype}")
            return result
        if out.min() < 0 or out.max() >= n:
            result.problems.append(f"indices outside 0..{n - 1}: they must index the dataset")
            return result
        out = out.long()
        ours = uniform_cluster_indices(labels, n, torch.Generator().manual_seed(trial))
        counts = torch.bincount(labels, minlength=k)
        theirs, kits = torch.bincount(labels[out], minlength=k), torch.bincount(labels[ours], minlength=k)
        s = n // int((counts > 0).sum()) + 1  # kit's quota per non-empty cluster, before the truncation to N
        # kit's draws per cluster are s minus a few lost to the random truncation; a fair draw by hand
        # lands in the same band whatever its random numbers
        bad = torch.nonzero((counts > 0) & ((theirs < s // 2) | (theirs > s))).flatten().tolist()
        if (theirs[counts == 0] > 0).any():
            result.problems.append("an empty cluster got draws")
        elif bad:
            c = bad[0]
            result.problems.append(f"trial {trial}: cluster {c} ({int(counts[c])} members) got {int(theirs[c])} draws; "
                                   f"kit gives every non-empty cluster {int(kits[counts > 0].min())}..{s} "
                                   f"(N / #non-empty + 1 = {s}, less a few lost to the truncation to N)")
        for c in torch.nonzero(counts > s).flatten().tolist():  # a big cluster is drawn without replacement
            drawn = out[labels[out] == c]
            if len(drawn) != len(torch.unique(drawn)):
                result.problems.append(f"trial {trial}: cluster {c} has {int(counts[c])} members (> {s} draws) but an "
                                       "image was drawn twice: kit draws big clusters without replacement")
                break
    return result


def check_nmi(fn) -> Result:
    """`fn(a (N,) ints, b (N,) ints) -> float`: NMI with the geometric normalisation, as kit.metrics.nmi."""
    result = Result("NMI")
    for trial in range(TRIALS):
        rng = np.random.default_rng(100 + trial)
        n = int(rng.integers(50, 400))
        a = rng.integers(0, int(rng.integers(2, 12)), n)
        b = np.where(rng.random(n) < 0.6, a * 3 + 1, rng.integers(0, 20, n))  # related, renamed ids, gaps
        out = _call(result, fn, a.copy(), b.copy())
        if out is None:
            return result
        want = kit_nmi(a, b)
        if not np.isfinite(float(out)) or abs(float(out) - want) > 1e-6:
            result.problems.append(f"trial {trial}: got {float(out):.6f}, kit gives {want:.6f}"
                                   + _nmi_hint(a, b, float(out)))
    return result


def _nmi_hint(a, b, got: float) -> str:
    from sklearn.metrics import normalized_mutual_info_score as sk

    for method in ("arithmetic", "max", "min"):
        if abs(sk(a, b, average_method=method) - got) < 1e-6:
            return f" (that is the {method} normalisation; kit and the paper divide by sqrt(H(A) H(B)))"
    return ""


# -- 03: ODC ------------------------------------------------------------------------------------
def _memory(rng: np.random.Generator, n: int, d: int, k: int, momentum: float, min_size: int = 0) -> ODCMemory:
    mem = ODCMemory(n, d, k, momentum=momentum, min_cluster_size=min_size)
    mem.init(rng.standard_normal((n, d)).astype(np.float32), _labels(rng, n, k))
    return mem


def check_momentum_update(fn) -> Result:
    """`fn(features (N, D), labels (N,), centroids (K, D), idx (B,) distinct, z (B, D), momentum)
    -> (rows (B, D), labels (B,))`: the batch's new memory rows and labels, as ODCMemory.update."""
    result = Result("momentum update of the samples memory")
    for trial in range(TRIALS):
        rng = np.random.default_rng(200 + trial)
        n, d, k, b = 300, 16, 8, 32
        momentum = float(rng.choice([0.3, 0.5, 0.8]))  # not only 0.5, where old and new weigh the same
        mem = _memory(rng, n, d, k, momentum)
        idx = torch.from_numpy(rng.choice(n, b, replace=False))
        z = torch.from_numpy(rng.standard_normal((b, d)).astype(np.float32) * 3)  # not unit length
        args = (mem.features.clone(), mem.labels.clone(), mem.centroids.clone(), idx.clone(), z.clone(), momentum)
        out = _call(result, fn, *args)
        if out is None:
            return result
        before = mem.labels[idx].clone()
        ratio = mem.update(idx, z)
        rows, labels = (torch.as_tensor(o) for o in out)
        if rows.shape != (b, d) or labels.shape != (b,):
            result.problems.append(f"expected rows ({b}, {d}) and labels ({b},), got {tuple(rows.shape)} and "
                                   f"{tuple(labels.shape)}")
            return result
        if not torch.allclose(rows.float(), mem.features[idx], atol=1e-5):
            norms = rows.float().norm(dim=1)
            hint = "" if torch.allclose(norms, torch.ones(b), atol=1e-4) else " (rows are not unit length)"
            result.problems.append(f"trial {trial} (momentum {momentum}): new rows differ from kit's by up to "
                                   f"{(rows.float() - mem.features[idx]).abs().max():.4f}{hint}")
        elif not torch.equal(labels.long(), mem.labels[idx]):
            result.problems.append(f"trial {trial}: {int((labels.long() != mem.labels[idx]).sum())} of {b} labels differ "
                                   "(relabel by the largest dot product with the centroids, as they are)")
        else:
            mine = float((labels.long() != before).float().mean())
            if abs(mine - ratio) > 1e-6:
                result.problems.append(f"trial {trial}: change ratio {mine:.3f}, kit {ratio:.3f}")
    return result


def check_small_cluster_fix(fn) -> Result:
    """`fn(features (N, D), labels (N,), centroids (K, D), min_size) -> labels (N,)`: every member of a
    cluster smaller than min_size moves to the nearest centroid (largest dot product) among the clusters
    that are not small; nothing else moves. Compared with ODCMemory.fix_small_clusters on every row
    that kit's next step (refilling the freed ids by splitting the largest cluster) leaves alone."""
    result = Result("small-cluster fix")
    for trial in range(TRIALS):
        rng = np.random.default_rng(300 + trial)
        n, d, k, min_size = 300, 16, 12, 8
        mem = _memory(rng, n, d, k, 0.5, min_size)
        small = torch.nonzero(mem.counts() < min_size).flatten()
        args = (mem.features.clone(), mem.labels.clone(), mem.centroids.clone(), min_size)
        out = _call(result, fn, *args)
        if out is None:
            return result
        mine = torch.as_tensor(out).long()
        mem.fix_small_clusters()
        if mine.shape != (n,):
            result.problems.append(f"expected ({n},) labels, got {tuple(mine.shape)}")
            return result
        if torch.isin(mine, small).any():
            result.problems.append(f"trial {trial}: rows still in a small cluster ({small.tolist()} are below {min_size})")
        kept = ~torch.isin(mem.labels, small)  # rows kit's split did not move into a freed id
        wrong = torch.nonzero(kept & (mine != mem.labels)).flatten()
        if len(wrong):
            r = int(wrong[0])
            was = int(args[1][r])
            why = "it was not in a small cluster" if was not in small.tolist() else "a nearer allowed centroid exists"
            result.problems.append(f"trial {trial}: {len(wrong)} rows differ, e.g. row {r} (cluster {was}): yours "
                                   f"{int(mine[r])}, kit {int(mem.labels[r])}; {why}")
    return result


# -- 04: the churn homework ---------------------------------------------------------------------
ODC_MOMENTA = (0.0, 0.2, 0.5, 0.9)  # the memory momenta of notebook 04's churn table


def solution_churn(table: dict) -> dict:
    """The homework's answers, computed from notebook 04's churn table ({run label: its measures})."""
    odc = {m: table[f"ODC, momentum {m}"] for m in ODC_MOMENTA}
    best = max(odc, key=lambda m: odc[m]["ami_prev"])
    return {"restart_share": table["same features, two k-means seeds"]["label_change"] / table["DeepCluster"]["label_change"],
            "steadiest_momentum": best,
            "steadiest_labels_improve": bool(odc[best]["pseudo_last"] > odc[best]["pseudo_first"] + 0.02)}


def check_churn(answers: dict, table: dict) -> Result:
    """Notebook 04's homework: the student's three answers against the same computed from the run's table.
    A wrong answer is named with what to look at, not with the value."""
    result = Result("churn homework", passed_text="all three answers agree with this run's table")
    want = solution_churn(table)
    hints = {"restart_share": "divide the two-seed row's 'reassigned per epoch' by DeepCluster's (within 0.02)",
             "steadiest_momentum": "the ODC row with the highest AMI(t−1, t)",
             "steadiest_labels_improve": "compare that row's pseudo-labels' AMI to the digits, first → last"}
    for key, hint in hints.items():
        got = answers.get(key)
        if got is None:
            result.problems.append(f"{key}: not answered yet (None)")
        elif key == "restart_share" and not (isinstance(got, (int, float)) and abs(got - want[key]) <= 0.02):
            result.problems.append(f"{key} = {got!r} does not match this run's table: {hint}")
        elif key == "steadiest_momentum" and not (isinstance(got, (int, float)) and float(got) == want[key]):
            result.problems.append(f"{key} = {got!r} does not match this run's table: {hint}")
        elif key == "steadiest_labels_improve" and got is not want[key]:
            result.problems.append(f"{key} = {got!r} does not match this run's table: {hint}")
    return result


# -- solutions (the notebooks show the same code in a hidden block) ------------------------------
def solution_uniform_sampler(labels, n_samples, generator):
    counts = torch.bincount(labels)
    clusters = torch.nonzero(counts).flatten()
    s = n_samples // len(clusters) + 1  # draws per non-empty cluster, before truncation
    picks = []
    for c in clusters.tolist():
        members = torch.nonzero(labels == c).flatten()
        if len(members) > s:  # enough members: no image twice
            picks.append(members[torch.randperm(len(members), generator=generator)[:s]])
        else:
            picks.append(members[torch.randint(len(members), (s,), generator=generator)])
    out = torch.cat(picks)
    return out[torch.randperm(len(out), generator=generator)][:n_samples]


def solution_nmi(a, b):
    a, b = np.unique(a, return_inverse=True)[1], np.unique(b, return_inverse=True)[1]
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1)
    p = joint / joint.sum()
    pa, pb = p.sum(1), p.sum(0)
    nz = p > 0
    mi = (p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum()
    h = lambda q: -(q[q > 0] * np.log(q[q > 0])).sum()  # noqa: E731
    return mi / np.sqrt(h(pa) * h(pb)) if h(pa) * h(pb) > 0 else 1.0


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


SOLUTIONS = {check_uniform_sampler: solution_uniform_sampler, check_nmi: solution_nmi,
             check_momentum_update: solution_momentum_update, check_small_cluster_fix: solution_small_cluster_fix}
