"""The lesson agrees with its own numbers (issue 21): every number a folded answer or a takeaway
states is one the notebook's run printed or computed, and every comparison page states the same
takeaway."""
import ast
import re
from pathlib import Path

import pytest

from kit.teaching import lesson

ROOT = Path(__file__).resolve().parents[1]
LESSONS = [
    "01_quickstart.ipynb",
    "02_deepcluster_walkthrough.ipynb",
    "03_odc_walkthrough.ipynb",
    "04_stability.ipynb",
    "05_churn.ipynb",
]
# 0.97, 53.42: measured values are quoted to two decimals or more; settings (momentum 0.2, K = 30)
# are not
NUMBER = re.compile(r"(?<![\w.])\d+\.\d{2,}(?![\w.]*\d)")


def numbers(text: str) -> set[str]:
    return set(NUMBER.findall(text))


def typed_text(source: str) -> str:
    """The text typed into a cell's string literals (f-strings' literal parts included), not its
    expressions: `f"kNN {knn:.2f}"` types "kNN ", while `x > 0.02` types nothing."""
    return "\n".join(node.value for node in ast.walk(ast.parse(source))
                     if isinstance(node, ast.Constant) and isinstance(node.value, str))


def output_text(output) -> str:
    if output.get("output_type") == "stream":
        return output["text"]
    data = output.get("data", {})
    return "\n".join(data.get(k, "") for k in ("text/markdown", "text/html", "text/plain"))


def is_answer(text: str) -> bool:
    """A folded answer (not a solution to an exercise, which is code) or a takeaway."""
    return ("<summary><b>Answer" in text) or text.lstrip().startswith("## Takeaway")


def lesson_parts(nb):
    """(typed, computed, printed): the answers and takeaways typed in markdown cells, those a code
    cell formats ([(its output, its source)]), and the text of every other output."""
    typed, computed, printed = [], [], []
    takeaway_next = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if is_answer(cell.source):
                typed.append(cell.source)
            takeaway_next = cell.source.lstrip().startswith("## Takeaway")
            continue
        for out in cell.get("outputs", []):
            text = output_text(out)
            if is_answer(text) or (takeaway_next and "text/markdown" in out.get("data", {})):
                computed.append((text, cell.source))
            else:
                printed.append(text)
        takeaway_next = False
    return typed, computed, printed


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "example"])
@pytest.mark.parametrize("name", LESSONS)
def test_every_number_an_answer_states_comes_from_the_page(executed_notebook, name, mode):
    """A typed answer may only quote a number the outputs show; a computed one must format its
    numbers from variables, not type them into the cell. KIT_FAST trains tiny runs, the example mode
    reads the 30-epoch run: a number copied from one run into the text fails in the other."""
    typed, computed, printed = lesson_parts(executed_notebook(name, mode))
    assert typed or computed, f"{name} has no folded answer or takeaway"
    shown = set().union(*(numbers(t) for t in printed))
    for text in typed:
        missing = numbers(text) - shown
        assert not missing, (
            f"{name} ({mode}): a typed answer quotes {sorted(missing)}, which no output "
            f"shows:\n{text[:300]}"
        )
    for text, source in computed:
        typed_in = numbers(text) & numbers(typed_text(source))
        assert not typed_in, (
            f"{name} ({mode}): {sorted(typed_in)} are typed into the cell that formats the answer"
        )


@pytest.mark.slow
def test_readme_notebooks_report_and_presets_state_the_same_takeaway(
    executed_notebook, fast_compare
):
    sentence = lesson.ranking_sentence()
    assert sentence == (
        "At equal K, ODC's labels are the steadier from one epoch to the next, and DeepCluster's "
        "features score higher in kNN accuracy and agreement with the classes."
    )
    pages = {
        "README.md": (ROOT / "README.md").read_text(),
        "bench/presets.md": (ROOT / "bench/presets.md").read_text(),
        "bench/equal_k.md": (ROOT / "bench/equal_k.md").read_text(),
        "report.html": (fast_compare.path / "report.html").read_text(),
    }
    for name in ("01_quickstart.ipynb", "04_stability.ipynb"):
        pages[name] = "\n".join(
            output_text(o)
            for c in executed_notebook(name, "fast").cells
            for o in c.get("outputs", [])
        )
    for page, text in pages.items():
        assert sentence in text, f"{page} does not state the takeaway: {sentence}"


def test_the_ranking_follows_the_numbers():
    """The sentence is computed: swap the two algorithms' numbers and the ranking swaps too."""
    h = lesson.headline()
    swapped = {**h, **{m: {"deepcluster": h[m]["odc"], "odc": h[m]["deepcluster"]}
                       for m in ("knn", lesson.AGREEMENT, "ami_prev")}}
    assert lesson.ranking(swapped) == {"steadier": "deepcluster", "better": "odc"}
    mixed = {**h, lesson.AGREEMENT: {"deepcluster": (0.5, 0.0), "odc": (0.6, 0.0)}}
    assert lesson.ranking(mixed)["better"] == "neither"
    assert (
        "kNN accuracy and agreement with the classes do not rank the features alike"
        in lesson.ranking_sentence(mixed)
    )


def test_an_answer_shows_folded_with_its_markdown():
    a = lesson.Answer("\n**4.** No: 0.81\n")
    assert (
        a._repr_markdown_()
        == "<details><summary><b>Answer</b></summary>\n\n**4.** No: 0.81\n\n</details>"
    )


def test_this_run_states_a_final_knn_of_zero_as_zero_not_as_missing():
    """A kNN of exactly 0.0 is a number: `last(h, "knn") or nan` read it as missing."""
    from kit.analysis.findings import this_run

    def history(knn):
        return {"algo": "odc", "config": {"n_clusters": 30}, "monitor_init": {"knn": 0.1},
                "epoch": [{"epoch": 0, "knn": 0.5, "ami_true": 0.2},
                          {"epoch": 1, "knn": knn, "ami_true": 0.3, "ami_prev": 0.6,
                           "label_change": 0.1}]}

    assert "kNN 0.000, AMI to the classes 0.250" in this_run({"odc": history(0.0)})
    assert "kNN 0.500" in this_run({"odc": history(None)})  # not measured: the last measured one
