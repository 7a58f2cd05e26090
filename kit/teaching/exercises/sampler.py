"""02, DeepCluster: the uniform sampler over pseudo-labels
(kit.parts.sampling.uniform_cluster_indices), its check and its solution. One draw shows the quotas;
what one draw cannot show (reproducible from the generator, random members, a shuffled output, a
truncation at random) is checked over GENERATORS generator seeds."""
from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np
import torch

from .common import TRIALS, Result, _call, _labels

GENERATORS = 30  # generator seeds of the sampler's property checks, for what one draw cannot show


def check_uniform_sampler(fn) -> Result:
    """`fn(labels (N,) int64 tensor, n_samples, generator) -> (n_samples,) dataset indices`, drawn
    uniformly over the non-empty clusters as DeepCluster does
    (kit.parts.sampling.uniform_cluster_indices).

    On 5 random problems (an empty id among the others, a tiny cluster): every non-empty cluster
    gets its quota s = N // #non-empty + 1 less at most the s * #non-empty - N draws cut by the
    truncation, and a cluster with more than s members gives no image twice. Then, on one problem
    and 30 generator seeds, what one draw cannot show: the same generator gives the same draws
    whatever the global random state, another gives other draws, a big cluster's draws cover its
    members, the output is shuffled (clusters and dataset indices follow each other as in a shuffle,
    so a batch mixes clusters), and the draws cut by the truncation are not always the same
    cluster's. Thresholds are 6 or more standard deviations wide, so a correct sampler does not fail
    by bad luck."""
    result = Result(
        "uniform sampler",
        passed_text=f"matches kit on {TRIALS} random problems and {GENERATORS} generators",
    )
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
    if (
        _reproducible(result, fn, labels, runs)
        and _random_members(result, labels, runs)
        and _shuffled(result, labels, runs)
    ):
        _truncation_at_random(result, labels, runs)
    return result


def _draws(result: Result, fn, labels: torch.Tensor, n: int, seed: int) -> torch.Tensor | None:
    """The student's draws with a generator seeded `seed`, as int64, or None with the reason
    recorded."""
    out = _call(result, fn, labels.clone(), n, torch.Generator().manual_seed(seed))
    if out is None:
        return None
    out = torch.as_tensor(out)
    if out.shape != (n,) or out.dtype not in (torch.int64, torch.int32):
        result.problems.append(
            f"expected {n} integer indices, got shape {tuple(out.shape)} of {out.dtype}"
        )
        return None
    if out.min() < 0 or out.max() >= len(labels):
        result.problems.append(f"indices outside 0..{len(labels) - 1}: they must index the dataset")
        return None
    return out.long()


def _quota(labels: torch.Tensor, n: int) -> tuple[torch.Tensor, int, int]:
    """(cluster sizes (K,), the quota s per non-empty cluster, the s * #non-empty - N draws the
    truncation cuts)"""
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
        result.problems.append(
            f"{where}cluster {c} ({int(counts[c])} members) got {int(got[c])} draws; every "
            f"non-empty cluster gets {s - cut}..{s} (N / #non-empty clusters + 1 = {s}, less a few "
            "cut by the truncation to N; empty clusters get no quota)"
        )
        return False
    # a big cluster is drawn without replacement
    for c in torch.nonzero(counts > s).flatten().tolist():
        drawn = out[labels[out] == c]
        if len(drawn) != len(torch.unique(drawn)):
            result.problems.append(
                f"{where}cluster {c} has {int(counts[c])} members (more than its {s} draws) but an "
                "image was drawn twice: draw a big cluster without replacement"
            )
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
    """The same generator gives the same draws whatever the global random state; others give
    others."""
    for seed in (1, 2):
        with _global_random_state(seed):
            again = _draws(result, fn, labels, len(labels), 0)
        if again is None:
            return False
        if not torch.equal(again, runs[0]):
            result.problems.append(
                "the same generator gave different draws: take every random number from "
                "`generator` (torch.randperm(n, generator=generator)), not from a global one"
            )
            return False
    if all(torch.equal(d, runs[0]) for d in runs[1:]):
        result.problems.append(
            f"the draws are the same for all {GENERATORS} generators: pick the members and "
            "shuffle them at random, with `generator`"
        )
        return False
    return True


def _random_members(result: Result, labels: torch.Tensor, runs: list) -> bool:
    """Over the generators, a big cluster's draws reach (nearly) all its members, not the same
    few."""
    counts, s, _ = _quota(labels, len(labels))
    for c in torch.nonzero(counts > s).flatten().tolist():
        seen = torch.unique(torch.cat([d[labels[d] == c] for d in runs]))
        # a fair draw of s of m members misses one member in all 30 draws with chance
        # (1 - s/m)^30 < 1e-5 here
        if len(seen) < 0.9 * int(counts[c]):
            result.problems.append(
                f"over {GENERATORS} generators cluster {c}'s draws reached only {len(seen)} of its "
                f"{int(counts[c])} members: pick a big cluster's members at random, not the first "
                "ones"
            )
            return False
    return True


def _shuffled(result: Result, labels: torch.Tensor, runs: list) -> bool:
    """Consecutive draws are of the same cluster, and go up in dataset index, about as often as in a
    shuffle."""
    n, pairs = len(labels), len(runs) * (len(labels) - 1)
    up = sum(int((d[1:] > d[:-1]).sum()) for d in runs)
    ties = sum(float((k * (k - 1)).sum()) / n for k in (torch.bincount(d).double() for d in runs))
    # of two different indices in a random order, the larger is second half the time
    expected = (pairs - ties) / 2
    # ascents of a random order: variance ~ N/12
    if abs(up - expected) > 8 * (len(runs) * n / 12) ** 0.5:
        result.problems.append(
            f"{up / pairs:.0%} of consecutive draws go up in dataset index, a shuffle gives about "
            f"{expected / pairs:.0%}: shuffle all the draws at the end, do not sort them"
        )
        return False
    same = sum(int((labels[d[1:]] == labels[d[:-1]]).sum()) for d in runs)
    # each of the N - 1 pairs is of one cluster with chance sum c(c - 1) / N(N - 1), c the clusters'
    # draws
    expected = sum(
        float((c * (c - 1)).sum()) / n for c in (torch.bincount(labels[d]).double() for d in runs)
    )
    if abs(same - expected) > 6 * expected ** 0.5 + 1:
        fix = (
            "so that each batch mixes the clusters" if same > expected else "not in a fixed pattern"
        )
        result.problems.append(
            f"consecutive draws are of the same cluster {same / pairs:.0%} of the time, a shuffle "
            f"gives about {expected / pairs:.0%}: shuffle all the draws together at the end, {fix}"
        )
        return False
    return True


def _truncation_at_random(result: Result, labels: torch.Tensor, runs: list) -> bool:
    """The draws cut by the truncation to N come from random clusters, not always the last one
    built."""
    counts, s, cut = _quota(labels, len(labels))
    k = int((counts > 0).sum())
    mean = (
        torch.stack([torch.bincount(labels[d], minlength=len(counts)) for d in runs])
        .double()
        .mean(0)
    )
    # a cluster loses cut / k draws on average, sd 0.15 over 30 runs
    short = torch.where(counts > 0, s - mean, 0.0)
    if short.max() > cut / k + 1.5:
        c = int(short.argmax())
        result.problems.append(
            f"the draws cut by the truncation to N come mostly from cluster {c} "
            f"({float(short[c]):.1f} of {cut} each time): shuffle all the draws first, then keep "
            "the first N"
        )
        return False
    return True


# -- the solution (the notebook shows the same code in a hidden block) --------------------
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
