"""The lesson's one takeaway, and the folded answers of the notebooks, computed from numbers.

Notebooks 01 and 04 end on the takeaway worded here around the numbers and the ranking sentence of
`kit/analysis/findings.py`: the 3-seed comparison at equal K
(`python -m kit compare --n-clusters 30 --seeds 3`, bench/equal_k.md). The README, bench/presets.md
and a report of DeepCluster and ODC on the digits state the same sentence; the report builds its
own takeaway from findings.py (the sentence, the numbers, one caveat and the run it shows), while
the papers' numbers and the longer caveats are the lesson's.

`Answer` is what a notebook's folded answer is: Markdown under a closed "Answer" summary, formatted
by the notebook cell from the run on its page, so the numbers a student reads are the ones just
printed.
"""
from __future__ import annotations

import json

import numpy as np

from ..algorithms import CONFIGS, NAMES, compared  # noqa: F401 - NAMES: the notebooks read it here
# the notebooks read these here too
from ..analysis.findings import (  # noqa: F401
    AGREEMENT, headline, ranking, ranking_sentence, stated, this_run)
from ..analysis.history import last, mean_last, series  # noqa: F401

# ResNet-50 pre-trained on ImageNet, top-1 % (VOC07: mAP): the OpenSelfSup / MMSelfSup benchmark
# pages (docs/ALGORITHMS.md §3.1), not the ODC paper. DeepCluster with Sobel for 200 epochs, ODC for
# 440: not trained alike.
DC, ODC = compared()  # the lesson's pair, in registry order: DeepCluster and ODC

PUBLISHED = {"ImageNet linear probe, pooled feature": {DC: 46.92, ODC: 53.42},
             "VOC07 SVM": {DC: 74.26, ODC: 78.42},
             "Places205 linear probe, best layer": {DC: 47.22, ODC: 49.18},
             "ImageNet fine-tuning, 10% of the labels": {DC: 52.94, ODC: 58.15},
             "ImageNet fine-tuning, 1% of the labels": {DC: 33.44, ODC: 32.39},
             "ImageNet linear probe, best layer": {DC: 57.71, ODC: 57.70}}
BEST = PUBLISHED["ImageNet linear probe, best layer"]


class Answer:
    """A folded answer: `Answer(markdown)` shows as a closed <details> block with `title` as its
    summary. Format the numbers into `markdown` in the cell from the run the page shows, never type
    them."""

    def __init__(self, markdown: str, title: str = "Answer"):
        self.markdown, self.title = markdown.strip(), title

    def _repr_markdown_(self) -> str:
        return f"<details><summary><b>{self.title}</b></summary>\n\n{self.markdown}\n\n</details>"

    def __str__(self) -> str:
        return self.markdown


def _after_ten_epochs() -> str:
    """Notebook 05's 10-epoch runs (the example run's churn.json, one seed): ODC at momentum 0.5
    against DeepCluster on both stability measures, each in the direction its numbers give; ""
    without the file."""
    from .example import EXAMPLE_RUN

    path = EXAMPLE_RUN / "churn.json"
    if not path.exists():
        return ""
    table = json.loads(path.read_text())["table"]
    odc, dc = table.get("ODC, momentum 0.5"), table.get("DeepCluster")
    if not odc or not dc:
        return ""
    ami = "lower" if odc["ami_prev"] < dc["ami_prev"] else "higher"
    moved = "fewer" if odc["label_change"] < dc["label_change"] else "more"
    return (
        f"; after 10 epochs (notebook 05, one seed) its AMI(t−1, t) was the {ami} "
        f"({odc['ami_prev']:.2f} against DeepCluster's {dc['ami_prev']:.2f}), "
        f"{'though' if (ami == 'lower') == (moved == 'fewer') else 'and'} it reassigned {moved} "
        f"images an epoch ({odc['label_change']:.2f} against {dc['label_change']:.2f})"
    )


def takeaway(h: dict | None = None, markup: str = "markdown") -> str:
    """The notebooks' takeaway as Markdown (or `markup="html"`): the ranking sentence, then the
    numbers it rests on and what it means."""
    h = h or headline()
    bold, code = (
        (("<b>", "</b>"), ("<code>", "</code>")) if markup == "html" else (("**", "**"), ("`", "`"))
    )

    def both(measure, digits=2):
        return stated(h, measure, digits)

    item = (lambda t: f"<li>{t}</li>") if markup == "html" else (lambda t: f"- {t}")
    paper, steady = h.get("odc_paper_momentum"), h["ami_prev"][DC][0]
    caution = (
        ""
        if not paper
        else (
            "At the reference config's memory momentum 0.5 instead of kit's 0.2, ODC's AMI(t−1, "
            f"t) is {paper['ami_prev'][0]:.2f} ± {paper['ami_prev'][1]:.2f} after {h['epochs']} "
            "epochs (same settings otherwise, 3 seeds): "
            + (
                "still the steadier"
                if paper["ami_prev"][0] > steady
                else "no longer steadier than DeepCluster's"
            )
            + f", with kNN accuracy {paper['knn'][0]:.3f} ± {paper['knn'][1]:.3f}"
            + _after_ten_epochs()
            + ". "
        )
    )
    ahead = {
        a: [k for k, v in PUBLISHED.items() if v[a] > v[b] + 0.05 and v is not BEST]
        for a, b in ((ODC, DC), (DC, ODC))
    }

    def said(keys):
        return "; ".join(
            f"{k} (ODC {PUBLISHED[k][ODC]:.2f}, DeepCluster {PUBLISHED[k][DC]:.2f})" for k in keys
        )

    lines = [
        f"Labels, over the last 5 epochs: AMI(t−1, t) {both('ami_prev')}; images reassigned per "
        f"epoch {both('label_change')}.",
        f"Features, at the end: kNN accuracy {both('knn', 3)}; AMI to the true classes (a 10-means "
        f"of the test features, mean of the last 5 epochs) {both(AGREEMENT)}. The pseudo-labels' "
        f"own AMI to the classes differs less: {both('ami_pseudo_true')}.",
        f"{caution}Steadier labels are not better features, and the two runs differ in more than "
        "how they update labels (ODC's neck and loss weights, the features each clusters, lr, "
        "sampler: notebook 04's first table); kit does not isolate which of these makes the "
        "feature gap.",
        "The published benchmark (ResNet-50 pre-trained on ImageNet; ODC against DeepCluster) "
        f"puts ODC ahead on {said(ahead[ODC])}; DeepCluster on {said(ahead[DC])}; the two are "
        f"level on the ImageNet linear probe's best layer (ODC {BEST[ODC]:.2f}, DeepCluster "
        f"{BEST[DC]:.2f}). But ODC trained 440 epochs and DeepCluster 200 with the Sobel filter, "
        "so these do not rank the two like for like either (docs/ALGORITHMS.md §3.1).",
    ]
    body = (
        ("<ul>" + "".join(map(item, lines)) + "</ul>")
        if markup == "html"
        else "\n".join(map(item, lines))
    )
    return (
        f"{bold[0]}{ranking_sentence(h)}{bold[1]} Measured on the embedded digits, both at K = "
        f"{h['n_clusters']} for {h['epochs']} epochs, ODC at kit's memory momentum 0.2, mean ± std "
        f"over {len(h['seeds'])} seeds ({code[0]}{h['source']}{code[1]}, bench/equal_k.md; on "
        f"clothes, where the features' half is within the spread: bench/two_datasets.md):\n\n{body}"
    )


def settings(histories: dict) -> list[tuple[str, str, str, str]]:
    """(setting, DeepCluster, ODC, the published default for each) for how the two networks and
    their inputs differ by design, then every setting the two runs trained with differently, an
    algorithm's own knob included ("—" where the other has none). The published defaults are the
    configs' own (the reference ResNet-50 / ImageNet settings, docs/ALGORITHMS.md)."""
    published = {algo: CONFIGS[algo]().to_dict() for algo in (DC, ODC)}
    own = {algo: histories[algo].get("config", {}) for algo in (DC, ODC)}
    # how it ran, not what it learned
    skip = {"device", "num_workers", "eval_every", "sync_batchnorm"}

    def shown(cfg, key):
        v = cfg.get(key, "—")
        return ", ".join(map(str, v)) or "none" if isinstance(v, (list, tuple)) else str(v)

    if not own[ODC].get("lr_decay_epochs"):
        skip.add("lr_decay")  # no step in the schedule: its factor is never applied
    keys = [k for k in dict.fromkeys([*own[DC], *own[ODC]]) if k not in skip]
    dc = own[DC]
    pca = f"PCA-whitened to {dc.get('pca_dim')} dims, " if dc.get("pca_dim", -1) != -1 else ""
    built = [  # how the two networks and their labels differ by design, before any setting
        ("network", "backbone + head", "backbone + neck (2 layers) + head", "the same / the same"),
        (
            "features clustered",
            f"the backbone's, {pca}L2-normalised",
            "the neck's, L2-normalised (no PCA)",
            "PCA 256, whitened / no PCA",
        ),
        (
            "images drawn",
            "uniform over clusters" if dc.get("uniform_sampling", True) else "plain shuffle",
            "with replacement",
            "the same / the same",
        ),
    ]
    return built + [(k, shown(own[DC], k), shown(own[ODC], k),
                     f"{shown(published[DC], k)} / {shown(published[ODC], k)}")
                    for k in keys if shown(own[DC], k) != shown(own[ODC], k)]


# (protocol, how to read it from evaluation.json): the single-number columns of the benchmark pages'
# tables
PROTOCOLS = [
    *(
        (f"linear probe, {f}", ("linear", f, "top1"))
        for f in ("Feature1", "Feature2", "Feature3", "Feature4", "Feature5", "AvgPool")
    ),
    ("kNN (k = 20)", ("knn", "20")),
    ("SVM", ("svm", "SVM")),
    ("low-shot SVM, 1 label a class", ("svm", "1", 0)),
    ("low-shot SVM, 8 labels a class", ("svm", "8", 0)),
    ("fine-tuning with 1% of the labels", ("semi", "0.01", "top1")),
    ("fine-tuning with 10% of the labels", ("semi", "0.1", "top1")),
]


def protocols(evaluation: dict, n_test: int = 1000) -> str:
    """One paragraph ranking DeepCluster against ODC on every protocol of an evaluation
    (evaluation.json: top-1 % per model), with ties named: a difference smaller than two standard
    errors of the difference of two accuracies on `n_test` images,
    2 * sqrt(p1 (1 - p1) / n + p2 (1 - p2) / n), is "not shown to differ" (not shown equal either).
    The two models are scored on the same images, so a paired test (McNemar's) would be sharper; kit
    keeps no per-image predictions, and this rule errs towards "not shown to differ". Seed-to-seed
    variation is not in it."""
    def score(model, path):
        v = evaluation[model]
        for key in path:
            v = v[key]
        return float(v)

    ahead = {"DeepCluster": [], "ODC": [], "level": []}
    for name, path in PROTOCOLS:
        try:
            dc, odc = score("DeepCluster", path), score("ODC", path)
        except (KeyError, IndexError, TypeError):
            continue
        p1, p2 = dc / 100, odc / 100
        margin = 200 * float(  # in points
            np.sqrt((max(p1 * (1 - p1), 1e-4) + max(p2 * (1 - p2), 1e-4)) / n_test)
        )
        who = "level" if abs(dc - odc) < margin else ("DeepCluster" if dc > odc else "ODC")
        # a pretrained backbone that fine-tunes below the untrained one says more about the budget
        # than itself
        try:
            floor = score("random init", path)
        except (KeyError, IndexError, TypeError):
            floor = None
        below = [
            m for m, v in (("DeepCluster", dc), ("ODC", odc)) if floor is not None and v < floor
        ]
        note = (
            f"; {' and '.join(below)} below the untrained network's {floor:.1f}, so it ranks little"
            if below
            else ""
        )
        ahead[who].append(f"{name} ({dc:.1f} against {odc:.1f}{note})")
    said = [
        f"{who} is ahead on {'; '.join(ahead[who])}."
        for who in ("DeepCluster", "ODC")
        if ahead[who]
    ]
    said += (
        [f"They are not shown to differ on {'; '.join(ahead['level'])}."] if ahead["level"] else []
    )
    return (
        f"**This run's benchmark protocols** (top-1 %, DeepCluster against ODC, {n_test:,} test "
        "images). A difference counts when it is larger than two standard errors of the "
        "difference of two accuracies (an unpaired rule on paired scores, so it errs towards no "
        "difference). "
        + " ".join(said)
        + " These are one seed's numbers, and a seed moves them too; the takeaway above rests on "
          "three seeds."
    )
