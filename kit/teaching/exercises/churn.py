"""05, the churn notebook's homework: four answers read off its table of runs, judged against the
same computed from this run's table (`solution_churn`). The fourth asks whether the third, a
difference of two kNN accuracies, is larger than the noise of measuring them on a finite test set.

The page's folded answers may not print what three of them need (the kNN accuracy of the two
DeepCluster rows, a run's rise of its pseudo-labels; tests/test_churn_homework.py reads the page for
it), so the homework cannot be copied from them; and the check, when an answer disagrees, lists what
to look at for every question, never which one is wrong.
"""
from __future__ import annotations

from math import sqrt
from numbers import Integral, Real

import numpy as np

from .common import Result

# the memory momenta of the table's four ODC rows (kit.teaching.ablations.MOMENTA)
ODC_MOMENTA = (0.0, 0.2, 0.5, 0.9)
# the table's two DeepCluster rows
RESET, ALIGNED = "DeepCluster", "DeepCluster, head kept, ids aligned"
CHURN_QUESTIONS = ("best_knn_momentum", "largest_gain_run", "aligned_knn_minus_reset",
                   "knn_difference_is_noise")  # the homework's keys
# aligned_knn_minus_reset: kNN accuracies are shown to 3 decimals, read off within 2 thousandths
KNN_TOLERANCE = 0.002
# knn_difference_is_noise: a difference within 10% of two standard errors accepts either answer
NOISE_BAND = 0.1
CHURN_LOOK_AT = {  # what each answer is made of, shown for all of them whenever one disagrees
    "best_knn_momentum": "the ODC row with the highest final kNN accuracy (3 decimals; a tie "
                         "accepts either)",
    "largest_gain_run": "the trained run whose pseudo-labels' AMI to the digits rose the most, "
                        "last minus first (a rise, not a final value; a tie at 2 decimals accepts "
                        "either)",
    "aligned_knn_minus_reset": f"the final kNN accuracy of '{ALIGNED}' minus that of '{RESET}', as "
                               "the table writes them (it may be negative)",
    "knn_difference_is_noise": "True when the size of aligned_knn_minus_reset is below two "
                               "standard errors of a difference of two accuracies, "
                               "2·sqrt(p1(1−p1)/n + p2(1−p2)/n), with p1 and p2 the two "
                               "DeepCluster rows' final kNN accuracies and n the number of "
                               "held-out test images (close to that threshold either answer is "
                               "accepted)",
}


def solution_churn(table: dict, n_test: int = 1000) -> dict:
    """The homework's answers, computed from the churn notebook's table ({run label: its measures})
    whose kNN accuracies were measured on `n_test` held-out images (1,000: the embedded test
    split)."""
    odc = {m: table[f"ODC, momentum {m}"] for m in ODC_MOMENTA}
    p1, p2 = table[ALIGNED]["knn"], table[RESET]["knn"]
    return {
        "best_knn_momentum": max(odc, key=lambda m: odc[m]["knn"]),
        "largest_gain_run": max(
            _trained(table), key=lambda run: table[run]["pseudo_last"] - table[run]["pseudo_first"]
        ),
        "aligned_knn_minus_reset": p1 - p2,
        "knn_difference_is_noise": bool(abs(p1 - p2) < _two_standard_errors(p1, p2, n_test)),
    }


def _two_standard_errors(p1: float, p2: float, n_test: int) -> float:
    """Two standard errors of p1 − p2, two accuracies each measured on the same `n_test` test
    images: 2·sqrt(p1(1−p1)/n + p2(1−p2)/n), each accuracy a binomial proportion and the two taken
    as independent (they are not quite: both runs are scored on the same images, and two runs that
    miss the same hard images differ by less than this)."""
    if not isinstance(n_test, Integral) or n_test < 1:
        raise ValueError(
            f"n_test is the number of test images, a positive whole number, not {n_test!r}"
        )
    return 2 * sqrt(p1 * (1 - p1) / n_test + p2 * (1 - p2) / n_test)


def check_churn(answers: dict, table: dict, *, n_test: int = 1000) -> Result:
    """The churn notebook's homework: `answers` ({key of CHURN_QUESTIONS: a momentum, a run's
    label, a number, True or False}) against the same computed from this run's churn `table` ({run
    label: {"ami_prev", "knn", ...}}), whose kNN accuracies were measured on `n_test` held-out
    images (the notebook's setup["n_test"]).

    An answer that is None is "not answered yet", one of the wrong kind (a string for a number, a
    momentum not on the table, a run that is not one of the trained rows, anything but True or
    False) says what to write; the answers are judged only when all are given. The momentum agrees
    when its kNN ties the best at the 3 decimals shown, the run when its rise is the largest or ties
    it at the 2 decimals shown, the kNN difference within KNN_TOLERANCE of the table's or of its
    shown numbers', True or False when it is what the table or its shown numbers give, or either
    when the difference is within NOISE_BAND of the threshold. If any disagrees, one line lists what
    to look at for every question, never which answer is wrong, so that changing one answer at a
    time tells nothing about the others."""
    _two_standard_errors(0.5, 0.5, n_test)  # refuse a wrong n_test before judging anything
    result = Result(
        "churn homework",
        passed_text=f"all {len(CHURN_QUESTIONS)} answers agree with this run's table",
    )
    for key in CHURN_QUESTIONS:
        got = answers.get(key)
        if got is None:
            result.problems.append(f"{key}: not answered yet (None)")
        elif key == "knn_difference_is_noise":
            if not isinstance(got, (bool, np.bool_)):
                result.problems.append(f"{key}: write True or False, not {got!r}")
        elif key == "largest_gain_run":
            if _run_named(got, table) is None:
                names = ", ".join(repr(run) for run in _trained(table))
                result.problems.append(
                    f"{key}: write one trained run's label, in quotes, as the table shows it "
                    f"({names}), not {got!r}"
                )
        elif not isinstance(got, Real) or isinstance(got, (bool, np.bool_)):
            result.problems.append(f"{key}: write a number (like 0.5), not {got!r}")
        elif key == "best_knn_momentum" and _momentum(got) is None:
            result.problems.append(
                f"{key}: write one of the table's momenta, {', '.join(map(str, ODC_MOMENTA))}"
            )
    if not result.problems and not all(
        _agrees(key, answers[key], table, n_test) for key in CHURN_QUESTIONS
    ):
        result.problems.append(
            "not all answers agree with this run's table; look again at: "
            + "; ".join(f"{key}: {CHURN_LOOK_AT[key]}" for key in CHURN_QUESTIONS)
        )
    return result


def _agrees(key: str, got, table: dict, n_test: int) -> bool:
    shown = _as_shown(table)
    if key == "best_knn_momentum":  # any momentum whose kNN ties the best at the 3 decimals shown
        knn = {m: shown[f"ODC, momentum {m}"]["knn"] for m in ODC_MOMENTA}
        return knn[_momentum(got)] == max(knn.values())
    if key == "largest_gain_run":  # the largest rise, or one that ties it at the 2 decimals shown
        rise = {
            run: round(shown[run]["pseudo_last"] - shown[run]["pseudo_first"], 2)
            for run in _trained(table)
        }
        run = _run_named(got, table)
        return run == solution_churn(table)[key] or rise[run] == max(rise.values())
    # from the table, or as shown
    want = (solution_churn(table, n_test)[key], solution_churn(shown, n_test)[key])
    # near the threshold the verdict is a coin toss: either answer
    if key == "knn_difference_is_noise":
        p1, p2 = table[ALIGNED]["knn"], table[RESET]["knn"]
        threshold = _two_standard_errors(p1, p2, n_test)
        return bool(got) in want or abs(abs(p1 - p2) - threshold) <= NOISE_BAND * threshold
    # 1e-9: 0.012 − 0.010 is not exactly 0.002
    return any(abs(float(got) - w) <= KNN_TOLERANCE + 1e-9 for w in want)


def _trained(table: dict) -> list[str]:
    """The labels of the six trained runs (the rows with pseudo-labels, not the two-seed rows), in
    the table's order."""
    return [run for run, row in table.items() if "pseudo_first" in row]


def _run_named(got, table: dict) -> str | None:
    """The trained run's label `got` spells (case and surrounding spaces aside), or None."""
    if not isinstance(got, str):
        return None
    return next((run for run in _trained(table) if run.casefold() == got.strip().casefold()), None)


def _momentum(got: float) -> float | None:
    """The table's momentum `got` stands for (0.2 also as a float32), or None."""
    return next((m for m in ODC_MOMENTA if abs(float(got) - m) < 1e-6), None)


def _as_shown(table: dict) -> dict:
    """The table at the precision the notebook shows it: kNN accuracy to 3 decimals, the rest to
    2."""
    return {
        label: {
            k: round(v, 3 if k == "knn" else 2) if isinstance(v, Real) else v
            for k, v in row.items()
        }
        for label, row in table.items()
    }
