"""The churn notebook's homework (kit.teaching.exercises.churn): the check accepts this run's
answers, read off the table as it is shown, refuses each planted mistake with the same one line
whichever answer is wrong, judges nothing until all are given; whether the kNN difference is noise
is judged against two standard errors of a difference on the run's number of test images; the
notebook's stub and hidden solution ask its questions; and the page's folded answers do not print
what the homework asks."""
import ast
import re
from math import sqrt
from pathlib import Path

import nbformat
import numpy as np
import pytest

from kit.teaching import exercises as ex

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
RESET, ALIGNED = "DeepCluster", "DeepCluster, head kept, ids aligned"


def churn_table(knn_02=0.912, first_02=0.25, aligned=0.915):
    """A made-up churn table (kit.teaching.ablations' labels). Right answers: the best kNN among the
    ODC rows at momentum 0.2 (0.912; knn_02=0.9106 ties it with 0.5's 0.9108 at 3 decimals); the
    largest rise of the pseudo-labels' AMI to the digits DeepCluster's, 0.20 → 0.60 (first_02=0.204
    ties it at 2 decimals: 0.20 → 0.60 shown); aligned − reset kNN 0.915 − 0.905 = 0.010, which is
    noise on 1,000 test images (two standard errors of the difference: 0.026). Each wrong reading
    gives another answer: the best AMI(t−1, t) is at momentum 0.0, the steadiest run is ODC 0.0
    (which also rises least), the best final pseudo-labels are ODC 0.5's, the best first ones ODC
    0.9's, the best kNN is the aligned run's."""
    def row(ami, moved, knn, first, last):
        return dict(ami_prev=ami, label_change=moved, pseudo_first=first, pseudo_last=last, knn=knn)

    return {
        RESET: row(0.60, 0.40, 0.905, 0.20, 0.60),
        ALIGNED: row(0.75, 0.30, aligned, 0.30, 0.50),
        "ODC, momentum 0.0": row(0.99, 0.01, 0.850, 0.31, 0.30),
        "ODC, momentum 0.2": row(0.90, 0.05, knn_02, first_02, 0.58),
        "ODC, momentum 0.5": row(0.70, 0.20, 0.9108, 0.40, 0.65),
        "ODC, momentum 0.9": row(0.50, 0.40, 0.880, 0.45, 0.50),
        "same features, two k-means seeds": {
            "ami_prev": 0.80,
            "label_change": 0.12,
            "n_clusters": 30,
        },
        "same features, two k-means seeds, K = classes": {
            "ami_prev": 0.55,
            "label_change": 0.36,
            "n_clusters": 10,
        },
    }


RIGHT = {"best_knn_momentum": 0.2, "largest_gain_run": RESET, "aligned_knn_minus_reset": 0.010,
         "knn_difference_is_noise": True}
PLANTED = {  # each answer read from a plausible wrong place of the table
    # the steadiest labels (the best AMI(t−1, t)); the runners-up in kNN
    "best_knn_momentum": [0.0, 0.5, 0.9],
    # the steadiest run (and the smallest rise) instead of the largest rise
    "largest_gain_run": ["ODC, momentum 0.0",
                         "ODC, momentum 0.5",  # the best final pseudo-labels, not the largest rise
                         "ODC, momentum 0.9",  # the best first pseudo-labels
                         ALIGNED,  # the best kNN accuracy
                         "ODC, momentum 0.2"],  # the largest rise among the ODC rows only
    "aligned_knn_minus_reset": [-0.010,  # the sign flipped: reset − aligned
                                0.15,  # the AMI(t−1, t) difference, 0.75 − 0.60
                                0.915,  # the aligned run's kNN alone
                                1.0,  # in percentage points; the table writes fractions
                                0.003],  # aligned − the best ODC run (0.915 − 0.912)
    # 0.010 read as a real gain; on 1,000 images the noise is 0.026
    "knn_difference_is_noise": [False],
}
LOOK_AGAIN = ("not all answers agree with this run's table; look again at: "
              + "; ".join(f"{key}: {ex.CHURN_LOOK_AT[key]}" for key in ex.CHURN_QUESTIONS))


def test_the_churn_homework_accepts_the_runs_answers():
    table = churn_table()
    assert ex.solution_churn(table) == {**RIGHT, "aligned_knn_minus_reset": pytest.approx(0.010)}
    # the embedded test split's size
    assert ex.solution_churn(table, n_test=1000) == ex.solution_churn(table)
    assert set(ex.CHURN_QUESTIONS) == set(RIGHT) and ex.check_churn(RIGHT, table).passed
    for read in (0.012, 0.008, np.float32(0.01)):  # read off the table, within 0.002
        assert ex.check_churn({**RIGHT, "aligned_knn_minus_reset": read}, table).passed, read
    assert ex.check_churn({**RIGHT, "best_knn_momentum": np.float32(0.2)}, table).passed
    # case and spaces aside
    assert ex.check_churn({**RIGHT, "largest_gain_run": " deepcluster "}, table).passed
    # as NumPy writes it
    assert ex.check_churn({**RIGHT, "knn_difference_is_noise": np.bool_(True)}, table).passed


def test_a_tie_as_shown_accepts_either():
    knn_tie = churn_table(knn_02=0.9106)  # 0.911 and 0.911 at the 3 decimals shown: either momentum
    for m in (0.2, 0.5):
        assert ex.check_churn({**RIGHT, "best_knn_momentum": m}, knn_tie).passed, m
    assert not ex.check_churn(
        {**RIGHT, "best_knn_momentum": 0.5}, churn_table(knn_02=0.9116)
    ).passed
    # rises 0.40 and 0.376, both 0.40 as shown (0.20 → 0.60, 0.20 → 0.58)...
    rise_tie = churn_table(first_02=0.204)
    rise_tie["ODC, momentum 0.2"]["pseudo_last"] = 0.6
    for run in (RESET, "ODC, momentum 0.2"):
        assert ex.check_churn({**RIGHT, "largest_gain_run": run}, rise_tie).passed, run
    assert not ex.check_churn(
        {**RIGHT, "largest_gain_run": "ODC, momentum 0.2"}, churn_table(first_02=0.21)
    ).passed
    shown = churn_table()  # exact kNN 0.9154 − 0.9046 = 0.0108, shown 0.915 − 0.905 = 0.010
    shown[ALIGNED]["knn"], shown[RESET]["knn"] = 0.9154, 0.9046
    for read in (0.0108, 0.008):
        assert ex.check_churn({**RIGHT, "aligned_knn_minus_reset": read}, shown).passed, read
    assert not ex.check_churn({**RIGHT, "aligned_knn_minus_reset": 0.0075}, shown).passed


@pytest.mark.parametrize("key", list(PLANTED))
def test_a_planted_mistake_is_not_named(key):
    table = churn_table()
    for wrong in PLANTED[key]:
        result = ex.check_churn({**RIGHT, key: wrong}, table)
        # the same line whichever is wrong
        assert result.problems == [LOOK_AGAIN], f"{key} = {wrong}: {result!r}"
    all_wrong = {key: PLANTED[key][0] for key in PLANTED}
    assert ex.check_churn(all_wrong, table).problems == [LOOK_AGAIN]
    assert not re.search(r"\d\.\d", LOOK_AGAIN)  # what to look at, never a value


def test_the_churn_homework_judges_nothing_until_all_are_answered():
    table = churn_table()
    unanswered = ex.check_churn(dict.fromkeys(ex.CHURN_QUESTIONS), table)
    assert unanswered.problems == [f"{key}: not answered yet (None)" for key in ex.CHURN_QUESTIONS]
    # a guess alone reveals nothing
    one_wrong = ex.check_churn({"aligned_knn_minus_reset": -0.5}, table)
    assert one_wrong.problems == [f"{key}: not answered yet (None)" for key in ex.CHURN_QUESTIONS
                                  if key != "aligned_knn_minus_reset"]
    runs = ", ".join(repr(run) for run in list(table)[:6])
    kinds = ex.check_churn(
        {
            "best_knn_momentum": 0.3,
            "largest_gain_run": 0.2,
            "aligned_knn_minus_reset": "0.01",
            "knn_difference_is_noise": "True",
        },
        table,
    )
    assert kinds.problems == [
        "best_knn_momentum: write one of the table's momenta, 0.0, 0.2, 0.5, 0.9",
        "largest_gain_run: write one trained run's label, in quotes, as the table shows it "
        f"({runs}), not 0.2",
        "aligned_knn_minus_reset: write a number (like 0.5), not '0.01'",
        "knn_difference_is_noise: write True or False, not 'True'",
    ]
    for not_a_verdict in (1, 0.0, "no"):
        assert ex.check_churn(
            {**RIGHT, "knn_difference_is_noise": not_a_verdict}, table
        ).problems == [f"knn_difference_is_noise: write True or False, not {not_a_verdict!r}"]
    seeds = ex.check_churn({**RIGHT, "largest_gain_run": "same features, two k-means seeds"}, table)
    # a two-seed row trains nothing
    assert seeds.problems[0].startswith("largest_gain_run: write one trained run's label")
    assert "write a number" in repr(
        ex.check_churn({**RIGHT, "aligned_knn_minus_reset": True}, table)
    )


# -- is the kNN difference larger than noise? ------------------------------------------------------
def two_standard_errors(p1, p2, n):
    """The lecturer's threshold, written here on its own: two standard errors of a difference of two
    accuracies."""
    return 2 * sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n)


def noise_answers(table, n_test=1000):
    """RIGHT for `table`, with its own kNN difference and the verdict for `n_test` test images."""
    p1, p2 = table[ALIGNED]["knn"], table[RESET]["knn"]
    return {**RIGHT, "aligned_knn_minus_reset": p1 - p2,
            "knn_difference_is_noise": abs(p1 - p2) < two_standard_errors(p1, p2, n_test)}


def test_a_difference_of_five_thousandths_on_1000_images_is_noise():
    # the review's case: aligned − reset = −0.005, 0.2 of the noise (0.027)
    table = churn_table(aligned=0.900)
    right = noise_answers(table)
    assert (
        right["knn_difference_is_noise"] is True
        and ex.solution_churn(table)["knn_difference_is_noise"] is True
    )
    assert ex.check_churn(right, table).passed
    noise_as_signal = {**right, "knn_difference_is_noise": False}
    assert ex.check_churn(noise_as_signal, table).problems == [LOOK_AGAIN]


def test_a_difference_larger_than_the_noise_is_not_noise():
    table = churn_table(aligned=0.955)  # 0.050 against two standard errors of 0.023
    right = noise_answers(table)
    assert right["knn_difference_is_noise"] is False and ex.check_churn(right, table).passed
    assert ex.check_churn({**right, "knn_difference_is_noise": True}, table).problems == [
        LOOK_AGAIN
    ]


def test_the_noise_is_the_differences_not_one_accuracys():
    """0.020 on 1,000 images is below two standard errors of the difference (0.025), so it is noise;
    three slips of the formula make the threshold too small and call it a real gain: the standard
    error of one accuracy (either), or one standard error of the difference instead of two."""
    table = churn_table(aligned=0.925)
    p1, p2, n = 0.925, 0.905, 1000
    slips = {"the aligned run's accuracy alone": 2 * sqrt(p1 * (1 - p1) / n),
             "the reset run's accuracy alone": 2 * sqrt(p2 * (1 - p2) / n),
             "one standard error, not two": two_standard_errors(p1, p2, n) / 2}
    assert 0.020 < 0.9 * two_standard_errors(p1, p2, n) and all(
        0.020 > t for t in slips.values()
    ), slips
    assert ex.check_churn(noise_answers(table), table).passed
    assert ex.check_churn(
        {**noise_answers(table), "knn_difference_is_noise": False}, table
    ).problems == [LOOK_AGAIN]


def test_the_number_of_test_images_decides():
    """The same 0.040 is a real gain on 1,000 test images and noise on KIT_FAST's 200; the check
    reads n_test."""
    table = churn_table(aligned=0.945)
    assert ex.solution_churn(table)["knn_difference_is_noise"] is False
    assert ex.solution_churn(table, n_test=200)["knn_difference_is_noise"] is True
    assert ex.check_churn(noise_answers(table, 200), table, n_test=200).passed
    # judged on 1,000 images
    assert ex.check_churn(noise_answers(table, 200), table).problems == [LOOK_AGAIN]
    assert ex.check_churn(noise_answers(table), table, n_test=200).problems == [LOOK_AGAIN]
    for wrong in (0, -5, 1000.0, "1000", None):
        with pytest.raises(ValueError, match="n_test"):
            ex.check_churn(RIGHT, table, n_test=wrong)


def test_close_to_the_threshold_either_answer_is_accepted():
    """The table's 0.010 against two standard errors of 0.8093/sqrt(n): within NOISE_BAND (10%) of
    it at n = 7,000 (0.0097), either answer; clearly below at n = 4,000 (0.0128) and clearly above
    at n = 9,000 (0.0085)."""
    table = churn_table()
    assert ex.NOISE_BAND == 0.1
    for n, accepted in ((4000, {True}), (7000, {True, False}), (9000, {False})):
        threshold = two_standard_errors(0.915, 0.905, n)
        assert (abs(0.010 - threshold) <= 0.1 * threshold) == (len(accepted) == 2), (n, threshold)
        for verdict in (True, False):
            passed = ex.check_churn(
                {**RIGHT, "knn_difference_is_noise": verdict}, table, n_test=n
            ).passed
            assert passed == (verdict in accepted), (n, verdict)


# -- the notebook ---------------------------------------------------------------------------------
def churn_notebook():
    """The notebook that sets the churn homework: the one whose cells call exercises.check_churn."""
    found = [nbformat.read(path, as_version=4) for path in sorted(NOTEBOOKS.glob("*.ipynb"))
             if "exercises.check_churn(" in path.read_text()]
    assert len(found) == 1, f"{len(found)} notebooks set the churn homework"
    return found[0]


def test_the_notebooks_hidden_churn_solution_is_kits():
    nb = churn_notebook()
    stub = next(
        c.source
        for c in nb.cells
        if "exercise" in c.metadata.get("tags", []) and "homework = " in c.source
    )
    solution = next(
        c.source for c in nb.cells if "<details>" in c.source and "homework = " in c.source
    )
    scope = {}
    exec(stub, scope)
    assert scope["homework"] == dict.fromkeys(ex.CHURN_QUESTIONS), (
        "the notebook's homework stub asks other questions"
    )
    call = 'exercises.check_churn(homework, table, n_test=setup.get("n_test", 1000))'
    assert any(c.source.strip() == call for c in nb.cells if c.cell_type == "code"), (
        "the check is not told n_test"
    )
    # 0.040: a real gain on 1,000 test images, noise on 200
    for table in (churn_table(), churn_table(knn_02=0.95), churn_table(knn_02=0.5, first_02=0.0),
                  churn_table(aligned=0.945)):
        # an older run's settings carry no n_test
        for setup in ({}, {"n_test": 1000}, {"n_test": 200}):
            n_test = setup.get("n_test", 1000)
            scope = {"table": table, "setup": setup}
            exec(re.search(r"```python\n(.*?)```", solution, re.S).group(1), scope)
            assert scope["homework"] == ex.solution_churn(table, n_test=n_test)
            assert ex.check_churn(scope["homework"], table, n_test=n_test).passed
        assert not ex.check_churn(dict.fromkeys(ex.CHURN_QUESTIONS), table).passed


def _given_away(cells: list[str]) -> dict[str, list[str]]:
    """{cell source: the expressions in it that give a homework answer away}, over code cells; see
    below."""
    trees = [ast.parse(source) for source in cells]
    # names bound to a DeepCluster row: reset = table["DeepCluster"], or a, b = table[...],
    # table[...]
    rows = set()
    for node in (n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.Assign)):
        for target in node.targets:
            pairs = (
                zip(target.elts, node.value.elts)
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                else [(target, node.value)]
            )
            rows |= {
                t.id for t, v in pairs if isinstance(t, ast.Name) and _key(v) in (RESET, ALIGNED)
            }

    def leaks(node) -> bool:
        if _key(node) == "knn" and (
            _key(node.value) in (RESET, ALIGNED) or getattr(node.value, "id", None) in rows
        ):
            return True  # a DeepCluster row's kNN accuracy
        return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and \
            {_key(node.left), _key(node.right)} == {"pseudo_last", "pseudo_first"}  # a run's rise

    # names assigned from a leak anywhere on the page, e.g. rise = row["pseudo_last"] -
    # row["pseudo_first"]
    tainted = set()
    for node in (n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.Assign)):
        if any(leaks(n) for n in ast.walk(node.value)):
            tainted |= {
                t.id for target in node.targets for t in ast.walk(target) if isinstance(t, ast.Name)
            }
    return {
        source: [
            ast.unparse(n)
            for n in ast.walk(tree)
            if leaks(n)
            or (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in tainted)
        ]
        for source, tree in zip(cells, trees)
    }


def _key(node) -> str | None:
    """"knn" for x["knn"]: the string a subscript is taken with, else None."""
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    ):
        return node.slice.value
    return None


def test_no_folded_answer_gives_the_homework_away():
    """Issue 28: the homework's answers cannot be copied from the page's answers. Two of the three
    need numbers that the table shows and no answer may print: a DeepCluster row's final kNN
    accuracy (their difference is aligned_knn_minus_reset) and a run's rise pseudo_last −
    pseudo_first (largest_gain_run). Nothing is run: the code cells' source is parsed, and the cells
    that print prose (calling lesson.Answer( or Markdown() may not hold `x["knn"]` where x is
    table["DeepCluster"], table["DeepCluster, head kept, ids aligned"] or a name bound to one of
    them in any cell, nor `a["pseudo_last"] - b["pseudo_first"]` (either order), nor a name assigned
    from either anywhere on the page. A simple source-level check: it follows the ways the page
    writes these, not every way Python could (a loop over row labels would pass it)."""
    nb = churn_notebook()
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    answers = {source: found for source, found in _given_away(code).items()
               if ("lesson.Answer(" in source or "Markdown(" in source) and found}
    assert not answers, "folded answers print what the homework asks: " + "; ".join(
        f"{', '.join(found)} in the cell starting {source.splitlines()[0]!r}"
        for source, found in answers.items()
    )


def test_the_give_away_check_finds_what_it_looks_for():
    setup = """reset, aligned = table["DeepCluster"], table["DeepCluster, head kept, ids aligned"]
rise = table["ODC, momentum 0.2"]["pseudo_last"] - table["ODC, momentum 0.2"]["pseudo_first"]"""
    leaky = [
        """lesson.Answer(f"{aligned['knn']:.3f}")""",
        """lesson.Answer(f"{table['DeepCluster']['knn']}")""",
        """lesson.Answer(f"{rise:.2f}")""",
        """Markdown(f"{row['pseudo_first'] - row['pseudo_last']:.2f}")""",
    ]
    for cell in leaky:
        assert _given_away([setup, cell])[cell], cell
    fine = [
        """lesson.Answer(f"{aligned['ami_prev']:.2f} {table['ODC, momentum 0.2']['knn']:.3f}")""",
        """lesson.Answer(f"{reset['pseudo_first']:.2f} → {reset['pseudo_last']:.2f}")""",
        """lesson.Answer(f"{reset['pseudo_last'] > reset['pseudo_first'] + 0.02}")""",
    ]
    for cell in fine:
        assert not _given_away([setup, cell])[cell], cell
