"""The exercises check themselves: each check passes with its solution (kit's copy and
the one hidden in the notebook) and fails, saying what to look at, with each planted mistake.
The churn notebook's homework has its own file, tests/test_churn_homework.py."""
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kit.teaching import exercises as ex
from kit.parts.sampling import uniform_cluster_indices

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
WALKTHROUGHS = ("02_deepcluster_walkthrough.ipynb", "03_odc_walkthrough.ipynb")


# -- planted mistakes: the uniform sampler ------------------------------------------------------
def _quota(labels, n_samples):
    clusters = torch.nonzero(torch.bincount(labels)).flatten().tolist()
    return clusters, n_samples // len(clusters) + 1


def _pick(members, s, generator):
    if len(members) > s:
        return members[torch.randperm(len(members), generator=generator)[:s]]
    return members[torch.randint(len(members), (s,), generator=generator)]


# no final shuffle: every batch is one cluster
def cluster_by_cluster(labels, n_samples, generator):
    clusters, s = _quota(labels, n_samples)
    return torch.cat([_pick(torch.nonzero(labels == c).flatten(), s, generator) for c in clusters])[
        :n_samples
    ]


def first_members(labels, n_samples, generator):  # a big cluster always gives its first s members
    clusters, s = _quota(labels, n_samples)
    picks = []
    for c in clusters:
        members = torch.nonzero(labels == c).flatten()
        picks.append(members[:s] if len(members) > s else _pick(members, s, generator))
    out = torch.cat(picks)
    return out[torch.randperm(len(out), generator=generator)][:n_samples]


def no_randomness(labels, n_samples, generator):  # first members, cycled small clusters, no shuffle
    clusters, s = _quota(labels, n_samples)
    picks = [torch.nonzero(labels == c).flatten() for c in clusters]
    return torch.cat([m[torch.arange(s) % len(m)] for m in picks])[:n_samples]


def with_replacement_everywhere(labels, n_samples, generator):
    clusters, s = _quota(labels, n_samples)
    picks = [torch.nonzero(labels == c).flatten() for c in clusters]
    out = torch.cat([m[torch.randint(len(m), (s,), generator=generator)] for m in picks])
    return out[torch.randperm(len(out), generator=generator)][:n_samples]


def plain_shuffle(labels, n_samples, generator):  # no balancing: big clusters dominate
    return torch.randperm(len(labels), generator=generator)[:n_samples]


# divides by every id, draws an empty id's quota anywhere
def quota_for_empty_clusters(labels, n_samples, generator):
    s = n_samples // (int(labels.max()) + 1) + 1
    picks = []
    for c in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == c).flatten()
        picks.append(_pick(members if len(members) else torch.arange(len(labels)), s, generator))
    out = torch.cat(picks)
    return out[torch.randperm(len(out), generator=generator)].repeat(2)[:n_samples]


def global_generator(labels, n_samples, generator):  # ignores `generator`: torch's global one
    return ex.solution_uniform_sampler(labels, n_samples, None)


def sorted_draws(labels, n_samples, generator):
    return ex.solution_uniform_sampler(labels, n_samples, generator).sort().values


# the last cluster always loses the cut draws
def truncate_then_shuffle(labels, n_samples, generator):
    clusters, s = _quota(labels, n_samples)
    out = torch.cat([_pick(torch.nonzero(labels == c).flatten(), s, generator) for c in clusters])[
        :n_samples
    ]
    return out[torch.randperm(len(out), generator=generator)]


def round_robin(labels, n_samples, generator):  # one cluster after the other, in a fixed pattern
    out = ex.solution_uniform_sampler(labels, n_samples, generator)
    rank = torch.zeros(len(out), dtype=torch.long)
    for c in torch.unique(labels[out]).tolist():
        rank[labels[out] == c] = torch.arange(int((labels[out] == c).sum()))
    return out[torch.argsort(rank * (int(labels.max()) + 1) + labels[out])]


# -- planted mistakes: NMI ----------------------------------------------------------------------
def sklearn_nmi(a, b):  # the right number, from a library
    from sklearn.metrics import normalized_mutual_info_score

    return normalized_mutual_info_score(a, b, average_method="geometric")


def sklearn_arithmetic_nmi(a, b):
    from sklearn.metrics import normalized_mutual_info_score

    return normalized_mutual_info_score(a, b)  # sklearn's default since 0.22, not the paper's


def kit_metrics_nmi(a, b):
    from kit.parts import metrics

    return metrics.nmi(a, b)


def scipy_entropies(a, b):
    from scipy.stats import entropy

    from sklearn.metrics import mutual_info_score
    return mutual_info_score(a, b) / np.sqrt(
        entropy(np.bincount(a)) * entropy(np.unique(b, return_counts=True)[1])
    )


def scipy_entropy_only(a, b):
    from scipy.stats import entropy

    ha, hb = (
        entropy(np.unique(a, return_counts=True)[1]),
        entropy(np.unique(b, return_counts=True)[1]),
    )
    return (ha + hb - _joint_entropy(a, b)) / np.sqrt(ha * hb)


def _joint_entropy(a, b):
    p = np.unique(np.stack([a, b]), axis=1, return_counts=True)[1] / len(a)
    return -(p * np.log(p)).sum()


def _entropies(a, b):
    pa, pb = (np.unique(x, return_counts=True)[1] / len(x) for x in (a, b))
    ha, hb = -(pa * np.log(pa)).sum(), -(pb * np.log(pb)).sum()
    return ha, hb, ha + hb - _joint_entropy(a, b)


def arithmetic_nmi(a, b):  # NumPy, divided by the mean of the entropies
    ha, hb, mi = _entropies(a, b)
    return mi / ((ha + hb) / 2)


def mutual_information(a, b):  # not normalised
    return _entropies(a, b)[2]


# sizes the table by the number of ids, indexes it by the ids themselves
def ids_without_gaps(a, b):
    p = np.zeros((len(np.unique(a)), len(np.unique(b))))
    np.add.at(p, (a, b), 1)
    return _nmi_of_table(p)


def _nmi_of_table(p):
    p = p / p.sum()
    pa, pb = p.sum(1), p.sum(0)
    nz = p > 0
    mi = (p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum()
    return mi / np.sqrt(
        (pa[pa > 0] * np.log(1 / pa[pa > 0])).sum() * (pb[pb > 0] * np.log(1 / pb[pb > 0])).sum()
    )


def log_of_zero(a, b):  # sums p log p over the empty cells too: 0 * -inf
    a, b = np.unique(a, return_inverse=True)[1], np.unique(b, return_inverse=True)[1]
    p = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(p, (a, b), 1)
    p /= p.sum()
    pa, pb = p.sum(1), p.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mi = (p * np.log(p / np.outer(pa, pb))).sum()
    return mi / np.sqrt((pa * np.log(1 / pa)).sum() * (pb * np.log(1 / pb)).sum())


# -- planted mistakes: ODC ----------------------------------------------------------------------
def momentum_backwards(features, labels, centroids, idx, z, momentum):  # m and 1 - m swapped
    rows = F.normalize(momentum * features[idx] + (1 - momentum) * F.normalize(z, dim=1), dim=1)
    return rows, (rows @ centroids.T).argmax(1)


def z_not_normalised(features, labels, centroids, idx, z, momentum):
    rows = F.normalize((1 - momentum) * features[idx] + momentum * z, dim=1)
    return rows, (rows @ centroids.T).argmax(1)


def rows_not_normalised(features, labels, centroids, idx, z, momentum):
    rows = (1 - momentum) * features[idx] + momentum * F.normalize(z, dim=1)
    return rows, (rows @ centroids.T).argmax(1)


# right rows, but written into its argument
def writes_the_memory(features, labels, centroids, idx, z, momentum):
    rows, new = ex.solution_momentum_update(features, labels, centroids, idx, z, momentum)
    features[idx] = rows
    return rows, new


def relabels_by_normalised_centroids(features, labels, centroids, idx, z, momentum):
    rows, _ = ex.solution_momentum_update(features, labels, centroids, idx, z, momentum)
    return rows, (rows @ F.normalize(centroids, dim=1).T).argmax(1)


def small_may_receive(features, labels, centroids, min_size):
    small = torch.bincount(labels, minlength=len(centroids)) < min_size
    members = torch.nonzero(small[labels]).flatten()
    labels = labels.clone()
    # forgot to exclude the small clusters
    labels[members] = (features[members] @ centroids.T).argmax(1)
    return labels


# the right labels, written into its argument
def fix_in_place(features, labels, centroids, min_size):
    new = ex.solution_small_cluster_fix(features, labels, centroids, min_size)
    labels[:] = new
    return labels


# reassigns every row, not only small clusters' members
def moves_everyone(features, labels, centroids, min_size):
    small = torch.bincount(labels, minlength=len(centroids)) < min_size
    scores = features @ centroids.T
    scores[:, small] = float("-inf")
    return scores.argmax(1)


MISTAKES = [
    (ex.check_uniform_sampler, cluster_by_cluster, "of the same cluster 100% of the time"),
    (ex.check_uniform_sampler, first_members, "members at random, not the first ones"),
    (ex.check_uniform_sampler, no_randomness, "the draws are the same for all 30 generators"),
    (ex.check_uniform_sampler, with_replacement_everywhere, "drawn twice"),
    (ex.check_uniform_sampler, plain_shuffle, "draws; every non-empty cluster gets"),
    (ex.check_uniform_sampler, quota_for_empty_clusters, "draws; every non-empty cluster gets"),
    (ex.check_uniform_sampler, global_generator, "the same generator gave different draws"),
    (ex.check_uniform_sampler, sorted_draws, "go up in dataset index"),
    (
        ex.check_uniform_sampler,
        truncate_then_shuffle,
        "the draws cut by the truncation to N come mostly from",
    ),
    (ex.check_uniform_sampler, round_robin, "of the same cluster 0% of the time"),
    (
        ex.check_nmi,
        sklearn_nmi,
        "write it with NumPy: it called sklearn.metrics.normalized_mutual_info_score",
    ),
    (
        ex.check_nmi,
        sklearn_arithmetic_nmi,
        "write it with NumPy: it called sklearn.metrics.normalized_mutual_info_score",
    ),
    (ex.check_nmi, kit_metrics_nmi, "write it with NumPy: it called kit.parts.metrics.nmi"),
    (ex.check_nmi, scipy_entropies, "write it with NumPy: it called"),
    (ex.check_nmi, scipy_entropy_only, "write it with NumPy: it called scipy.stats.entropy"),
    (ex.check_nmi, arithmetic_nmi, "arithmetic normalisation"),
    (ex.check_nmi, mutual_information, "the mutual information I(A; B) itself"),
    (ex.check_nmi, ids_without_gaps, "the ids have gaps"),
    (ex.check_nmi, log_of_zero, "0 log 0 = 0"),
    (ex.check_momentum_update, momentum_backwards, "m and 1 − m are swapped"),
    (ex.check_momentum_update, z_not_normalised, "normalise z before mixing"),
    (ex.check_momentum_update, rows_not_normalised, "not unit length"),
    (ex.check_momentum_update, writes_the_memory, "it changed its arguments (features)"),
    (ex.check_momentum_update, relabels_by_normalised_centroids, "labels differ"),
    (ex.check_small_cluster_fix, small_may_receive, "still in a small cluster"),
    (ex.check_small_cluster_fix, fix_in_place, "it changed its arguments (labels)"),
    (ex.check_small_cluster_fix, moves_everyone, "it was not in a small cluster"),
]


@pytest.mark.parametrize("check", list(ex.SOLUTIONS), ids=lambda c: c.__name__)
def test_check_passes_with_kits_solution(check):
    result = check(ex.SOLUTIONS[check])
    assert result.passed, repr(result)
    assert repr(result).startswith("✓")


@pytest.mark.parametrize("check, mistake, says", MISTAKES, ids=lambda v: getattr(v, "__name__", ""))
def test_check_fails_with_a_planted_mistake(check, mistake, says):
    result = check(mistake)
    assert not result.passed
    assert repr(result).startswith("✗") and says in repr(result), repr(result)
    assert len(result.problems) == 1, repr(result)  # one line says what to look at


@pytest.mark.parametrize(
    "sampler", [ex.solution_uniform_sampler, uniform_cluster_indices], ids=lambda f: f.__name__
)
def test_a_correct_sampler_never_fails_by_bad_luck(sampler):
    """The sampler check's statistical thresholds, over 100 other sets of generator seeds."""
    for offset in range(1, 101):
        # other draws, still reproducible from `generator`
        def shifted(labels, n_samples, generator):
            return sampler(
                labels,
                n_samples,
                torch.Generator().manual_seed(generator.initial_seed() + 1000 * offset),
            )

        result = ex.check_uniform_sampler(shifted)
        assert result.passed, f"offset {offset}: {result!r}"


def test_the_library_watch_lets_numpy_through_and_leaves_no_hook():
    import sys

    def numpy_heavy(a, b):
        np.unique(a), np.bincount(b), np.histogram2d(a, b)
        return ex.solution_nmi(a, b)

    assert ex.check_nmi(numpy_heavy).passed
    assert ex.check_nmi(sklearn_nmi).problems == [
        "write it with NumPy: it called sklearn.metrics.normalized_mutual_info_score"
    ]
    assert sys.getprofile() is None


def test_an_unfinished_or_broken_exercise_is_reported_not_raised():
    def unfinished(*args):
        raise NotImplementedError

    def broken(a, b):
        return a / "x"

    assert "not written yet" in repr(ex.check_nmi(unfinished))
    assert "it raised" in repr(ex.check_nmi(broken))
    assert "returned None" in repr(ex.check_nmi(lambda a, b: None))
    assert "return one number" in repr(ex.check_nmi(lambda a, b: np.zeros(3)))
    assert "not written yet" in repr(ex.check_uniform_sampler(unfinished))


# -- notebooks 02 and 03: the hidden solutions --------------------------------------------------
def notebook_exercises(name):
    """(function name, student's stub cell, hidden solution code) of every exercise in a
    notebook."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    found = []
    for i, cell in enumerate(nb.cells):
        if "exercise" in cell.metadata.get("tags", []):
            fn = re.search(r"^def (\w+)\(", cell.source, re.M).group(1)
            solution = next(c.source for c in nb.cells[i + 1:] if "<details>" in c.source)
            code = re.search(r"```python\n(.*?)```", solution, re.S).group(1)
            check = re.search(
                r"exercises\.(check_\w+)\(" + fn, "\n".join(c.source for c in nb.cells[i + 1 :])
            )
            found.append((fn, cell.source, code, getattr(ex, check.group(1))))
    return found


@pytest.mark.parametrize("name", WALKTHROUGHS)
def test_notebook_solutions_pass_and_stubs_do_not(name):
    found = notebook_exercises(name)
    assert 2 <= len(found) <= 3, f"{name}: {len(found)} exercises"
    for fn, stub, code, check in found:
        scope = {"np": np, "torch": torch, "F": F}
        exec(code, scope)
        result = check(scope[fn])
        assert result.passed, f"{name}: the hidden solution of {fn} fails its check: {result!r}"
        scope = {"np": np, "torch": torch, "F": F}
        exec(stub, scope)
        assert not check(scope[fn]).passed, f"{name}: the unfinished {fn} passes its check"


def nmi_one_for_a_collapse(a, b):
    """The notebooks' earlier solution: 1.0 whenever either labelling has one cluster."""
    return 1.0 if len(np.unique(a)) == 1 or len(np.unique(b)) == 1 else ex.solution_nmi(a, b)


def test_nmi_check_catches_a_collapse_called_perfect_agreement():
    """A labelling with a single cluster shares nothing with one that has several: NMI 0. A solution
    that returns 1 there would call a collapsed clustering perfectly stable (lecturer review 4)."""
    result = ex.check_nmi(nmi_one_for_a_collapse)
    assert not result.passed and "single cluster" in result.problems[0]
    assert ex.check_nmi(ex.solution_nmi).passed
