"""The evaluation of a run as the benchmark pages lay it out: linear (Feature1-5, AvgPool), kNN, SVM
and low-shot SVM, semi-supervised fine-tuning. `python -m kit evaluate` writes the numbers to
`evaluation.json`; `tables` turns that file's contents into one list of tables, which `markdown`
writes as `evaluation.md` and the report draws as HTML, so the two always agree.
"""
from __future__ import annotations

from ..analysis.evaluate import STAGES

# how each fine-tuning result's setting was chosen (`FinetuneResult.selected_on`,
# kit/analysis/evaluate.py)
SELECTION = {
    "validation": "each model's setting chosen by top-1 on a validation split carved from the "
                  "train split; the test split only scores the chosen setting",
    "test": "each model's best setting by test top-1, as the benchmark pages report it (an "
            "optimistic choice: the test split picks the setting)",
}


def tables(results: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for each protocol. `results` is `evaluation.json`'s contents: {model:
    {"linear": {stage: {"top1"}}, "knn": {k: top1}, "svm": {"SVM": top1, k: [mean, std]}, "semi":
    {fraction: {"setting", "top1", "top5", "selected_on"}}}}, top-1 in %."""
    names = list(results)
    first = next(iter(results.values()))
    f = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    out = [
        (
            "Linear classification, top-1 % (frozen backbone, one linear head per stage)",
            ["Model", *STAGES],
            [[n, *(f(results[n]["linear"][s]["top1"]) for s in STAGES)] for n in names],
        )
    ]
    ks = list(first["knn"])
    out.append(("kNN on the pooled feature, top-1 %", ["Model", *(f"k={k}" for k in ks)],
                [[n, *(f(results[n]["knn"][k]) for k in ks)] for n in names]))
    lows = [k for k in first["svm"] if k != "SVM"]
    out.append(
        (
            "SVM and low-shot SVM (k labelled images per class; mean ± std over draws), top-1 %",
            ["Model", "SVM", *(f"k={k}" for k in lows)],
            [
                [
                    n,
                    f(results[n]["svm"]["SVM"]),
                    *(
                        f"{results[n]['svm'][k][0]:.1f} ± {results[n]['svm'][k][1]:.1f}"
                        for k in lows
                    ),
                ]
                for n in names
            ],
        )
    )
    fractions = list(first["semi"])
    header = ["Model"] + [
        f"{float(x):.0%} {col}" for x in fractions for col in ("top-1", "top-5", "setting")
    ]
    out.append(
        (
            f"Semi-supervised fine-tuning, top-1 / top-5 % ({selection(results)})",
            header,
            [
                [
                    n,
                    *(
                        v
                        for x in fractions
                        for v in (
                            f(results[n]["semi"][x]["top1"]),
                            f(results[n]["semi"][x]["top5"]),
                            results[n]["semi"][x]["setting"],
                        )
                    ),
                ]
                for n in names
            ],
        )
    )
    return out


def selection(results: dict) -> str:
    """How the fine-tuning settings were chosen, in words."""
    said = {
        r.get("selected_on", "test") for model in results.values() for r in model["semi"].values()
    }
    return "; ".join(SELECTION[s] for s in sorted(said))


def markdown(results: dict) -> str:
    """`tables` as Markdown: a heading and a pipe table each."""
    lines = []
    for title, header, rows in tables(results):
        lines += [f"### {title}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|",
                  *("| " + " | ".join(row) + " |" for row in rows), ""]
    return "\n".join(lines)

