"""05, the churn notebook's homework: answers read off its table of runs, judged against the same computed
from this run's table (`solution_churn`); when one disagrees, the check lists what to look at for every
question, never which one is wrong."""
from __future__ import annotations

from numbers import Real

import numpy as np

from .common import Result

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

