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


def churn_table(frozen_improves=False):
    """A made-up notebook-04 churn table: the restart makes 0.30 of DeepCluster's 0.40 per epoch."""
    row = lambda ami, moved, first=0.3, last=0.5: dict(ami_prev=ami, label_change=moved, pseudo_first=first,  # noqa: E731
                                                       pseudo_last=last, knn=0.9)
    return {"DeepCluster": row(0.6, 0.40), "DeepCluster, no head reset": row(0.62, 0.38),
            "ODC, momentum 0.0": row(0.99, 0.01, 0.3, 0.4 if frozen_improves else 0.3), "ODC, momentum 0.2": row(0.9, 0.05),
            "ODC, momentum 0.5": row(0.7, 0.2), "ODC, momentum 0.9": row(0.5, 0.4),
            "same features, two k-means seeds": {"ami_prev": 0.7, "label_change": 0.30}}


def test_the_churn_homework_checks_against_the_runs_table():
    table = churn_table()
    right = {"restart_share": 0.75, "steadiest_momentum": 0.0, "steadiest_labels_improve": False}
    assert ex.solution_churn(table) == {**right, "restart_share": pytest.approx(0.75)}
    assert ex.check_churn(right, table).passed
    assert ex.check_churn({**right, "restart_share": 0.76}, table).passed  # two decimals are enough
    assert not ex.check_churn({**right, "steadiest_labels_improve": False}, churn_table(frozen_improves=True)).passed
    wrong = ex.check_churn({**right, "restart_share": 0.3, "steadiest_momentum": 0.9}, table)
    assert [p.split(" ")[0] for p in wrong.problems] == ["restart_share", "steadiest_momentum"]
    assert "0.75" not in repr(wrong)  # it names what to look at, not the value
    unanswered = ex.check_churn({"restart_share": None, "steadiest_momentum": None, "steadiest_labels_improve": None}, table)
    assert len(unanswered.problems) == 3 and all("not answered yet" in p for p in unanswered.problems)


def test_notebook_04s_hidden_churn_solution_is_kits():
    nb = nbformat.read(NOTEBOOKS / "04_stability.ipynb", as_version=4)
    stub = next(c.source for c in nb.cells if "exercise" in c.metadata.get("tags", []))
    solution = next(c.source for c in nb.cells if "<details>" in c.source and "homework = " in c.source)
    for tables in (churn_table(), churn_table(frozen_improves=True)):
        scope = {"table": tables}
        exec(re.search(r"```python\n(.*?)```", solution, re.S).group(1), scope)
        assert scope["homework"] == ex.solution_churn(tables) and ex.check_churn(scope["homework"], tables).passed
        scope = {}
        exec(stub, scope)
        assert not ex.check_churn(scope["homework"], tables).passed
