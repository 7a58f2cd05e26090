"""The walkthroughs' exercises check themselves: each check passes with its solution (kit's copy and
the one hidden in the notebook) and fails, saying why, with a planted mistake."""
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kit import exercises as ex

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
WALKTHROUGHS = ("02_deepcluster_walkthrough.ipynb", "03_odc_walkthrough.ipynb")


def with_replacement_everywhere(labels, n_samples, generator):
    counts = torch.bincount(labels)
    s = n_samples // int((counts > 0).sum()) + 1
    picks = [torch.nonzero(labels == c).flatten() for c in torch.nonzero(counts).flatten().tolist()]
    out = torch.cat([m[torch.randint(len(m), (s,), generator=generator)] for m in picks])
    return out[torch.randperm(len(out), generator=generator)][:n_samples]


def plain_shuffle(labels, n_samples, generator):  # no balancing: big clusters dominate
    return torch.randperm(len(labels), generator=generator)[:n_samples]


def arithmetic_nmi(a, b):
    from sklearn.metrics import normalized_mutual_info_score

    return normalized_mutual_info_score(a, b)  # sklearn's default since 0.22, not the paper's


def momentum_backwards(features, labels, centroids, idx, z, momentum):
    rows = F.normalize(momentum * features[idx] + (1 - momentum) * F.normalize(z, dim=1), dim=1)
    return rows, (rows @ centroids.T).argmax(1)


def z_not_normalised(features, labels, centroids, idx, z, momentum):
    rows = F.normalize((1 - momentum) * features[idx] + momentum * z, dim=1)
    return rows, (rows @ centroids.T).argmax(1)


def small_may_receive(features, labels, centroids, min_size):
    small = torch.bincount(labels, minlength=len(centroids)) < min_size
    members = torch.nonzero(small[labels]).flatten()
    labels = labels.clone()
    labels[members] = (features[members] @ centroids.T).argmax(1)  # forgot to exclude the small clusters
    return labels


MISTAKES = [
    (ex.check_uniform_sampler, with_replacement_everywhere, "drawn twice"),
    (ex.check_uniform_sampler, plain_shuffle, "draws; kit gives"),
    (ex.check_nmi, arithmetic_nmi, "arithmetic normalisation"),
    (ex.check_momentum_update, momentum_backwards, "new rows differ"),
    (ex.check_momentum_update, z_not_normalised, "new rows differ"),
    (ex.check_small_cluster_fix, small_may_receive, "still in a small cluster"),
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


def test_an_unfinished_or_broken_exercise_is_reported_not_raised():
    def unfinished(*args):
        raise NotImplementedError

    def broken(a, b):
        return a / "x"

    assert "not written yet" in repr(ex.check_nmi(unfinished))
    assert "it raised TypeError" in repr(ex.check_nmi(broken))
    assert "returned None" in repr(ex.check_nmi(lambda a, b: None))


def notebook_exercises(name):
    """(function name, student's stub cell, hidden solution code) of every exercise in a notebook."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    found = []
    for i, cell in enumerate(nb.cells):
        if "exercise" in cell.metadata.get("tags", []):
            fn = re.search(r"^def (\w+)\(", cell.source, re.M).group(1)
            solution = next(c.source for c in nb.cells[i + 1:] if "<details>" in c.source)
            code = re.search(r"```python\n(.*?)```", solution, re.S).group(1)
            check = re.search(r"exercises\.(check_\w+)\(" + fn, "\n".join(c.source for c in nb.cells[i + 1:]))
            found.append((fn, cell.source, code, getattr(ex, check.group(1))))
    return found


@pytest.mark.parametrize("name", WALKTHROUGHS)
def test_notebook_solutions_pass_and_stubs_do_not(name):
    found = notebook_exercises(name)
    assert 2 <= len(found) <= 3, f"{name}: {len(found)} exercises"
    for fn, stub, code, check in found:
        scope = {"np": np, "torch": torch, "F": F}
        exec(code, scope)
        assert check(scope[fn]).passed, f"{name}: the hidden solution of {fn} fails its check"
        scope = {"np": np, "torch": torch, "F": F}
        exec(stub, scope)
        assert not check(scope[fn]).passed, f"{name}: the unfinished {fn} passes its check"
