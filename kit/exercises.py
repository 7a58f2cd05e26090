"""Exercises that check themselves: the student writes one step of an algorithm, a check runs it
beside kit's own implementation on random inputs and says what to look at where it differs.

    from kit import exercises
    exercises.check_nmi(my_nmi)          # -> a Result: passed, and one line per difference found

Each check catches what the student's function raises and reports it, so a notebook with an
unfinished exercise still runs top to bottom. The walkthroughs hold the exercises (02: the uniform
sampler, NMI; 03: ODC's memory update, the small-cluster fix; the churn notebook: its homework); their
solutions are in `SOLUTIONS` and `solution_churn` below and in the notebooks' hidden blocks, and
tests/test_exercises.py shows each check passes with them and fails, with a one-line reason, for
each planted mistake (a sampler that is not shuffled or not random, an NMI that calls a library...).
"""
from __future__ import annotations

import inspect
import random
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from numbers import Real

import numpy as np
import torch

from .memory import ODCMemory
from .metrics import nmi as kit_nmi

TRIALS = 5  # random problems per check: enough to hit the edge cases (an empty cluster, a tiny one)
GENERATORS = 30  # generator seeds of the sampler's property checks, for what one draw cannot show


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


# -- 02: DeepCluster: the uniform sampler ------------------------------------------------------
def check_uniform_sampler(fn) -> Result:
    """`fn(labels (N,) int64 tensor, n_samples, generator) -> (n_samples,) dataset indices`, drawn
    uniformly over the non-empty clusters as DeepCluster does (kit.sampling.uniform_cluster_indices).

    On 5 random problems (an empty id among the others, a tiny cluster): every non-empty cluster gets
    its quota s = N // #non-empty + 1 less at most the s * #non-empty - N draws cut by the truncation,
    and a cluster with more than s members gives no image twice. Then, on one problem and 30 generator
    seeds, what one draw cannot show: the same generator gives the same draws whatever the global
    random state, another gives other draws, a big cluster's draws cover its members, the output is
    shuffled (clusters and dataset indices follow each other as in a shuffle, so a batch mixes
    clusters), and the draws cut by the truncation are not always the same cluster's. Thresholds are
    6 or more standard deviations wide, so a correct sampler does not fail by bad luck."""
    result = Result("uniform sampler", passed_text=f"matches kit on {TRIALS} random problems and {GENERATORS} generators")
    for trial in range(TRIALS):
        rng = np.random.default_rng(trial)
        n, k = int(rng.integers(200, 600)), int(rng.integers(5, 15))
        labels = torch.from_numpy(_labels(rng, n, k))
        labels[labels == k // 2] = 0  # an empty id between non-empty ones too
        draws = _draws(result, fn, labels, n, trial)
        if draws is None or not _quotas_kept(result, labels, draws, f"trial {trial}: "):
            return result
    # 9 non-empty clusters (id 3 empty), three of them bigger than the quota s = 223, 7 draws cut
    sizes = {0: 700, 1: 400, 2: 300, 4: 200, 5: 150, 6: 100, 7: 80, 8: 50, 9: 20}
    ids = np.repeat(list(sizes), list(sizes.values()))
    labels = torch.from_numpy(np.random.default_rng(TRIALS).permutation(ids))
    runs = [_draws(result, fn, labels, len(labels), seed) for seed in range(GENERATORS)]
    if any(d is None for d in runs) or not all(_quotas_kept(result, labels, d, "") for d in runs):
        return result
    # each records what it finds and returns False; the first finding is enough
    if _reproducible(result, fn, labels, runs) and _random_members(result, labels, runs) and _shuffled(result, labels, runs):
        _truncation_at_random(result, labels, runs)
    return result


def _draws(result: Result, fn, labels: torch.Tensor, n: int, seed: int) -> torch.Tensor | None:
    """The student's draws with a generator seeded `seed`, as int64, or None with the reason recorded."""
    out = _call(result, fn, labels.clone(), n, torch.Generator().manual_seed(seed))
    if out is None:
        return None
    out = torch.as_tensor(out)
    if out.shape != (n,) or out.dtype not in (torch.int64, torch.int32):
        result.problems.append(f"expected {n} integer indices, got shape {tuple(out.shape)} of {out.dtype}")
        return None
    if out.min() < 0 or out.max() >= len(labels):
        result.problems.append(f"indices outside 0..{len(labels) - 1}: they must index the dataset")
        return None
    return out.long()


def _quota(labels: torch.Tensor, n: int) -> tuple[torch.Tensor, int, int]:
    """(cluster sizes (K,), the quota s per non-empty cluster, the s * #non-empty - N draws the truncation cuts)"""
    counts = torch.bincount(labels)
    k = int((counts > 0).sum())
    return counts, n // k + 1, (n // k + 1) * k - n


def _quotas_kept(result: Result, labels: torch.Tensor, out: torch.Tensor, where: str) -> bool:
    """Every non-empty cluster got s less at most `cut` draws, and a big one no image twice."""
    counts, s, cut = _quota(labels, len(out))
    nonempty = counts > 0
    got = torch.bincount(labels[out], minlength=len(counts))
    bad = torch.nonzero(nonempty & ((got < s - cut) | (got > s))).flatten().tolist()
    if bad:
        c = bad[0]
        result.problems.append(f"{where}cluster {c} ({int(counts[c])} members) got {int(got[c])} draws; every non-empty "
                               f"cluster gets {s - cut}..{s} (N / #non-empty clusters + 1 = {s}, less a few cut by the "
                               "truncation to N; empty clusters get no quota)")
        return False
    for c in torch.nonzero(counts > s).flatten().tolist():  # a big cluster is drawn without replacement
        drawn = out[labels[out] == c]
        if len(drawn) != len(torch.unique(drawn)):
            result.problems.append(f"{where}cluster {c} has {int(counts[c])} members (more than its {s} draws) but an "
                                   "image was drawn twice: draw a big cluster without replacement")
            return False
    return True


@contextmanager
def _global_random_state(seed: int):
    """torch's, NumPy's and Python's global random generators seeded `seed`, restored afterwards."""
    saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.manual_seed(seed), np.random.seed(seed), random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(saved[0]), np.random.set_state(saved[1]), random.setstate(saved[2])


def _reproducible(result: Result, fn, labels: torch.Tensor, runs: list) -> bool:
    """The same generator gives the same draws whatever the global random state; others give others."""
    for seed in (1, 2):
        with _global_random_state(seed):
            again = _draws(result, fn, labels, len(labels), 0)
        if again is None:
            return False
        if not torch.equal(again, runs[0]):
            result.problems.append("the same generator gave different draws: take every random number from "
                                   "`generator` (torch.randperm(n, generator=generator)), not from a global one")
            return False
    if all(torch.equal(d, runs[0]) for d in runs[1:]):
        result.problems.append(f"the draws are the same for all {GENERATORS} generators: pick the members and "
                               "shuffle them at random, with `generator`")
        return False
    return True


def _random_members(result: Result, labels: torch.Tensor, runs: list) -> bool:
    """Over the generators, a big cluster's draws reach (nearly) all its members, not the same few."""
    counts, s, _ = _quota(labels, len(labels))
    for c in torch.nonzero(counts > s).flatten().tolist():
        seen = torch.unique(torch.cat([d[labels[d] == c] for d in runs]))
        # a fair draw of s of m members misses one member in all 30 draws with chance (1 - s/m)^30 < 1e-5 here
        if len(seen) < 0.9 * int(counts[c]):
            result.problems.append(f"over {GENERATORS} generators cluster {c}'s draws reached only {len(seen)} of its "
                                   f"{int(counts[c])} members: pick a big cluster's members at random, not the first ones")
            return False
    return True


def _shuffled(result: Result, labels: torch.Tensor, runs: list) -> bool:
    """Consecutive draws are of the same cluster, and go up in dataset index, about as often as in a shuffle."""
    n, pairs = len(labels), len(runs) * (len(labels) - 1)
    up = sum(int((d[1:] > d[:-1]).sum()) for d in runs)
    ties = sum(float((k * (k - 1)).sum()) / n for k in (torch.bincount(d).double() for d in runs))
    expected = (pairs - ties) / 2  # of two different indices in a random order, the larger is second half the time
    if abs(up - expected) > 8 * (len(runs) * n / 12) ** 0.5:  # ascents of a random order: variance ~ N/12
        result.problems.append(f"{up / pairs:.0%} of consecutive draws go up in dataset index, a shuffle gives about "
                               f"{expected / pairs:.0%}: shuffle all the draws at the end, do not sort them")
        return False
    same = sum(int((labels[d[1:]] == labels[d[:-1]]).sum()) for d in runs)
    # each of the N - 1 pairs is of one cluster with chance sum c(c - 1) / N(N - 1), c the clusters' draws
    expected = sum(float((c * (c - 1)).sum()) / n for c in (torch.bincount(labels[d]).double() for d in runs))
    if abs(same - expected) > 6 * expected ** 0.5 + 1:
        fix = "so that each batch mixes the clusters" if same > expected else "not in a fixed pattern"
        result.problems.append(f"consecutive draws are of the same cluster {same / pairs:.0%} of the time, a shuffle "
                               f"gives about {expected / pairs:.0%}: shuffle all the draws together at the end, {fix}")
        return False
    return True


def _truncation_at_random(result: Result, labels: torch.Tensor, runs: list) -> bool:
    """The draws cut by the truncation to N come from random clusters, not always the last one built."""
    counts, s, cut = _quota(labels, len(labels))
    k = int((counts > 0).sum())
    mean = torch.stack([torch.bincount(labels[d], minlength=len(counts)) for d in runs]).double().mean(0)
    short = torch.where(counts > 0, s - mean, 0.0)  # a cluster loses cut / k draws on average, sd 0.15 over 30 runs
    if short.max() > cut / k + 1.5:
        c = int(short.argmax())
        result.problems.append(f"the draws cut by the truncation to N come mostly from cluster {c} ({float(short[c]):.1f} "
                               f"of {cut} each time): shuffle all the draws first, then keep the first N")
        return False
    return True


# -- 02: DeepCluster: NMI ----------------------------------------------------------------------
LIBRARIES = ("sklearn", "scipy.stats", "kit.metrics", "torchmetrics", "pyitlib")  # what the NMI exercise may not call


def check_nmi(fn) -> Result:
    """`fn(a (N,) ints, b (N,) ints) -> float`: NMI with the geometric normalisation, as kit.metrics.nmi,
    written with NumPy. On 5 random problems (the first with ids 0..K-1, the others with gaps in the ids,
    e.g. 1, 4, 7) the value must be kit's to 1e-6; a wrong value is named if it is a known other
    normalisation or the unnormalised mutual information. A call into one of `LIBRARIES` while `fn`
    runs (scikit-learn, scipy.stats' entropy, kit's own metrics...) fails the check, whatever it returns."""
    result = Result("NMI")
    for trial in range(TRIALS):
        rng = np.random.default_rng(100 + trial)
        n, k = int(rng.integers(50, 400)), int(rng.integers(2, 12))
        a = rng.permutation(np.arange(n) % k)  # every id 0..k-1 used
        b = np.where(rng.random(n) < 0.6, a, rng.integers(0, k, n))  # related to a
        if trial:  # renamed ids with gaps, as k-means ids after empty clusters or a relabelling
            b = np.where(rng.random(n) < 0.6, a * 3 + 1, rng.integers(0, 20, n))
        with _library_calls() as called:
            out = _call(result, fn, a.copy(), b.copy())
        if called:
            result.problems[:] = [f"write it with NumPy: it called {called[0]}"]
            return result
        gaps = "" if not trial else (" (here the ids have gaps, e.g. 1, 4, 7: renumber them 0..K-1 first, "
                                     "np.unique(a, return_inverse=True))")
        if out is None:
            if result.problems[-1].startswith("it raised"):
                result.problems[-1] += gaps
            return result
        try:
            got = float(out)
        except (TypeError, ValueError):
            result.problems.append(f"it returned {type(out).__name__} {np.shape(out)}: return one number")
            return result
        want = kit_nmi(a, b)
        if not np.isfinite(got) or abs(got - want) > 1e-6:
            result.problems.append(f"trial {trial}: got {got:.6f}, kit gives {want:.6f}" + (_nmi_hint(a, b, got) or gaps))
            return result
    return result


def _nmi_hint(a, b, got: float) -> str:
    from sklearn.metrics import mutual_info_score, normalized_mutual_info_score as sk

    if not np.isfinite(got):
        return " (not a number: sum only over the cells with p > 0, as 0 log 0 = 0)"
    for method in ("arithmetic", "max", "min"):
        if abs(sk(a, b, average_method=method) - got) < 1e-6:
            return f" (that is the {method} normalisation; kit and the paper divide by sqrt(H(A) H(B)))"
    if abs(mutual_info_score(a, b) - got) < 1e-6:
        return " (that is the mutual information I(A; B) itself: divide it by sqrt(H(A) H(B)))"
    return ""


@contextmanager
def _library_calls():
    """Yields a list that gets the public name of the first function of `LIBRARIES` called meanwhile.
    A profile hook (sys.setprofile, this thread, any earlier hook put back afterwards) sees every Python
    function and builtin called; it costs the student's code a little time. Ufuncs are not calls it sees:
    NumPy's, and scipy.special's entr or xlogy (p log p elementwise), pass unnoticed."""
    called, inside = [], tuple(p + "." for p in LIBRARIES)

    def watch(frame, event, arg):
        if called or event not in ("call", "c_call"):
            return
        module = (frame.f_globals.get("__name__") or "") if event == "call" else (getattr(arg, "__module__", None) or "")
        if module in LIBRARIES or module.startswith(inside):
            called.append(_public_name(frame, arg, module, event))

    before = sys.getprofile()
    sys.setprofile(watch)
    try:
        yield called
    finally:
        sys.setprofile(before)


def _public_name(frame, arg, module: str, event: str) -> str:
    """`sklearn.metrics.normalized_mutual_info_score`, not `...cluster._supervised....wrapper`: the called
    function, or the one a decorator's closure wraps, by the shortest import path that shows it."""
    if event == "c_call":
        candidates, name = [arg], getattr(arg, "__name__", "?")
    else:
        code, name = frame.f_code, frame.f_code.co_qualname
        own = getattr(sys.modules.get(module), code.co_name, None)
        candidates = [own] if getattr(own, "__code__", None) is code else []
        free = (frame.f_locals.get(v) for v in code.co_freevars)  # a decorator's wrapper holds what it wraps
        candidates += [f for f in free if inspect.isfunction(f) and f.__module__.split(".")[0] == module.split(".")[0]]
    for fn in candidates:
        parts = (getattr(fn, "__module__", None) or "").split(".")
        for i in range(1, len(parts) + 1):
            attr = getattr(sys.modules.get(".".join(parts[:i])), fn.__name__, None)
            if attr is not None and (attr is fn or getattr(attr, "__wrapped__", None) is fn):
                return f"{'.'.join(parts[:i])}.{fn.__name__}"
    return f"{module}.{name}"


# -- 03: ODC ------------------------------------------------------------------------------------
def _memory(rng: np.random.Generator, n: int, d: int, k: int, momentum: float, min_size: int = 0) -> ODCMemory:
    mem = ODCMemory(n, d, k, momentum=momentum, min_cluster_size=min_size)
    mem.init(rng.standard_normal((n, d)).astype(np.float32), _labels(rng, n, k))
    return mem


def _changed(args: tuple, names: tuple, originals: tuple) -> str:
    """'' or the line saying which tensor arguments the student's function changed in place."""
    changed = [name for name, a, o in zip(names, args, originals) if isinstance(a, torch.Tensor) and not torch.equal(a, o)]
    return f"it changed its arguments ({', '.join(changed)}): work on a copy (x.clone())" if changed else ""


def check_momentum_update(fn) -> Result:
    """`fn(features (N, D), labels (N,), centroids (K, D), idx (B,) distinct, z (B, D), momentum)
    -> (rows (B, D), labels (B,))`: the batch's new memory rows and labels, as ODCMemory.update, with
    the arguments left as they were. Momenta 0.3, 0.5, 0.8, so swapping m and 1 − m shows (and is named)."""
    result = Result("momentum update of the samples memory")
    names = ("features", "labels", "centroids", "idx", "z")
    for trial in range(TRIALS):
        rng = np.random.default_rng(200 + trial)
        n, d, k, b = 300, 16, 8, 32
        momentum = float(rng.choice([0.3, 0.5, 0.8]))  # not only 0.5, where old and new weigh the same
        mem = _memory(rng, n, d, k, momentum)
        idx = torch.from_numpy(rng.choice(n, b, replace=False))
        z = torch.from_numpy(rng.standard_normal((b, d)).astype(np.float32) * 3)  # not unit length
        originals = (mem.features.clone(), mem.labels.clone(), mem.centroids.clone(), idx.clone(), z.clone())
        args = tuple(a.clone() for a in originals)
        out = _call(result, fn, *args, momentum)
        if out is None:
            return result
        if changed := _changed(args, names, originals):
            result.problems.append(changed)
            return result
        before = mem.labels[idx].clone()
        ratio = mem.update(idx, z)
        rows, labels = (torch.as_tensor(o) for o in out)
        if rows.shape != (b, d) or labels.shape != (b,):
            result.problems.append(f"expected rows ({b}, {d}) and labels ({b},), got {tuple(rows.shape)} and "
                                   f"{tuple(labels.shape)}")
            return result
        if not torch.allclose(rows.float(), mem.features[idx], atol=1e-5):
            result.problems.append(f"trial {trial} (momentum {momentum}): new rows differ from kit's by up to "
                                   f"{(rows.float() - mem.features[idx]).abs().max():.4f}"
                                   + _momentum_hint(rows.float(), originals[0][idx], z, momentum))
        elif not torch.equal(labels.long(), mem.labels[idx]):
            result.problems.append(f"trial {trial}: {int((labels.long() != mem.labels[idx]).sum())} of {b} labels differ "
                                   "(relabel by the largest dot product with the centroids, as they are)")
        elif abs(float((labels.long() != before).float().mean()) - ratio) > 1e-6:
            result.problems.append(f"trial {trial}: change ratio {float((labels.long() != before).float().mean()):.3f}, "
                                   f"kit {ratio:.3f}")
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
    """`fn(features (N, D), labels (N,), centroids (K, D), min_size) -> labels (N,)`: every member of a
    cluster smaller than min_size moves to the nearest centroid (largest dot product) among the clusters
    that are not small; nothing else moves, and the arguments stay as they were. Compared with
    ODCMemory.fix_small_clusters on every row that kit's next step (refilling the freed ids by splitting
    the largest cluster) leaves alone."""
    result = Result("small-cluster fix")
    names = ("features", "labels", "centroids")
    for trial in range(TRIALS):
        rng = np.random.default_rng(300 + trial)
        n, d, k, min_size = 300, 16, 12, 8
        mem = _memory(rng, n, d, k, 0.5, min_size)
        small = torch.nonzero(mem.counts() < min_size).flatten()
        originals = (mem.features.clone(), mem.labels.clone(), mem.centroids.clone())
        args = tuple(a.clone() for a in originals)
        out = _call(result, fn, *args, min_size)
        if out is None:
            return result
        if changed := _changed(args, names, originals):
            result.problems.append(changed)
            return result
        mine = torch.as_tensor(out).long()
        mem.fix_small_clusters()
        if mine.shape != (n,):
            result.problems.append(f"expected ({n},) labels, got {tuple(mine.shape)}")
            return result
        if torch.isin(mine, small).any():
            result.problems.append(f"trial {trial}: rows still in a small cluster ({small.tolist()} are below {min_size}): "
                                   "a small cluster may not take rows, not even another small cluster's")
            return result
        kept = ~torch.isin(mem.labels, small)  # rows kit's split did not move into a freed id
        wrong = torch.nonzero(kept & (mine != mem.labels)).flatten()
        if len(wrong):
            r = int(wrong[0])
            was = int(originals[1][r])
            why = "it was not in a small cluster" if was not in small.tolist() else "a nearer allowed centroid exists"
            result.problems.append(f"trial {trial}: {len(wrong)} rows differ, e.g. row {r} (cluster {was}): yours "
                                   f"{int(mine[r])}, kit {int(mem.labels[r])}; {why}")
            return result
    return result


# -- the churn notebook's homework --------------------------------------------------------------
ODC_MOMENTA = (0.0, 0.2, 0.5, 0.9)  # the memory momenta of the churn notebook's table (kit.ablations)
CHURN_QUESTIONS = ("aligned_minus_reset", "best_knn_momentum", "seed_noise_share")  # the homework's keys
CHURN_TOLERANCE = {"aligned_minus_reset": 0.02, "seed_noise_share": 0.05}  # the numbers are read off a table
CHURN_LOOK_AT = {  # what each answer is made of, shown for all of them whenever one disagrees
    "aligned_minus_reset": "AMI(t−1, t) of 'DeepCluster, head kept, ids aligned' minus DeepCluster's (it may be negative)",
    "best_knn_momentum": "the ODC row with the highest final kNN accuracy (3 decimals; a tie accepts either)",
    "seed_noise_share": "the two-seed row at the run's K (not K = classes): its images that changed cluster over "
                        "DeepCluster's reassigned per epoch",
}


def solution_churn(table: dict) -> dict:
    """The homework's answers, computed from the churn notebook's table ({run label: its measures})."""
    odc = {m: table[f"ODC, momentum {m}"] for m in ODC_MOMENTA}
    return {"aligned_minus_reset": table["DeepCluster, head kept, ids aligned"]["ami_prev"] - table["DeepCluster"]["ami_prev"],
            "best_knn_momentum": max(odc, key=lambda m: odc[m]["knn"]),
            "seed_noise_share": table["same features, two k-means seeds"]["label_change"] / table["DeepCluster"]["label_change"]}


def _momentum(got: float) -> float | None:
    """The table's momentum `got` stands for (0.2 also as a float32), or None."""
    return next((m for m in ODC_MOMENTA if abs(float(got) - m) < 1e-6), None)


def _as_shown(table: dict) -> dict:
    """The table at the precision the notebook shows it: kNN accuracy to 3 decimals, the rest to 2."""
    return {label: {k: round(v, 3 if k == "knn" else 2) if isinstance(v, Real) else v for k, v in row.items()}
            for label, row in table.items()}


def _churn_agrees(key: str, got: float, table: dict) -> bool:
    shown = _as_shown(table)
    if key == "best_knn_momentum":  # any momentum whose kNN ties the best at the 3 decimals shown
        knn = {m: shown[f"ODC, momentum {m}"]["knn"] for m in ODC_MOMENTA}
        return knn[_momentum(got)] == max(knn.values())
    want = [solution_churn(table)[key]]
    if shown["DeepCluster"]["label_change"] > 0:  # read off the shown numbers, a ratio of small ones can be off more
        want.append(solution_churn(shown)[key])
    return any(abs(float(got) - w) <= CHURN_TOLERANCE[key] for w in want)


def check_churn(answers: dict, table: dict) -> Result:
    """The churn notebook's homework: `answers` ({key of CHURN_QUESTIONS: a number}) against the same computed
    from this run's churn `table` ({run label: {"ami_prev", "label_change", ...}}), as `solution_churn`.

    An answer that is None is "not answered yet", one of the wrong kind (a string, a momentum not on
    the table) says what to write; the answers are compared only when all are given. Numbers agree
    within CHURN_TOLERANCE of the answer from the table or from its shown (rounded) numbers, the momentum
    when its kNN ties the best at the 3 decimals shown. If any disagrees,
    one line lists what to look at for every question, never which answer is wrong, so that changing
    one answer at a time tells nothing about the others."""
    result = Result("churn homework", passed_text=f"all {len(CHURN_QUESTIONS)} answers agree with this run's table")
    for key in CHURN_QUESTIONS:
        got = answers.get(key)
        if got is None:
            result.problems.append(f"{key}: not answered yet (None)")
        elif not isinstance(got, Real) or isinstance(got, (bool, np.bool_)):
            result.problems.append(f"{key}: write a number (like 0.5), not {got!r}")
        elif key == "best_knn_momentum" and _momentum(got) is None:
            result.problems.append(f"{key}: write one of the table's momenta, {', '.join(map(str, ODC_MOMENTA))}")
    if not result.problems and not all(_churn_agrees(key, answers[key], table) for key in CHURN_QUESTIONS):
        result.problems.append("not all answers agree with this run's table; look again at: "
                               + "; ".join(f"{key}: {CHURN_LOOK_AT[key]}" for key in CHURN_QUESTIONS))
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
