"""What the equal-K comparison found, as numbers and one ranking sentence computed from them.

`headline.json`, beside this file, holds the per-seed numbers of the 3-seed comparison at one K on
the demo's dataset (`python -m kit compare --n-clusters 30 --seeds 3`, bench/equal_k.md;
`bench/make_headline.py` writes it). Two things shape the ranking. Stability is ranked only between
runs at the same K, because how many images change cluster depends on K, in either direction
(notebook 05). And it is read chance-corrected, as AMI between consecutive epochs' pseudo-labels
of the training images, because NMI's chance level climbs with K. The features are ranked by kNN
accuracy and AMI to the true classes, on held-out images. The ranking compares means; whether a
difference is larger than the spread over seeds, the pages that state it say (bench/equal_k.md).
Nothing here names an algorithm: the names come from the file and the registry. The lesson
(kit/teaching/lesson.py) words the takeaway around these numbers; the report states the sentence
and the numbers and ranks the run it shows against them.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..algorithms import NAMES
from .history import last, series
from .seeds import mean_std

HEADLINE = Path(__file__).parent / "headline.json"
# agreement with the classes: AMI of a 10-means of the test features, last 5 epochs' mean
AGREEMENT = "ami_true_last5"


@lru_cache(maxsize=1)
def headline() -> dict:
    """{measure: {algo: (mean, std over seeds)}} of the equal-K comparison, plus its "n_clusters",
    "epochs", "seeds", "source" and "dataset". Measures: knn, ami_true, nmi_true, ami_pseudo_true
    (final epoch), ami_true_last5, ami_prev, nmi_prev, nmi_prev_chance, label_change (means of the
    last 5 epochs), knn_init; and "odc_paper_momentum": {measure: (mean, std)} of ODC at the
    reference config's memory momentum 0.5, where measured."""
    data = json.loads(HEADLINE.read_text())
    out = {k: data[k] for k in ("n_clusters", "epochs", "seeds", "source", "dataset")}
    first = next(iter(data["per_seed"].values()))[0]
    for measure in first:
        out[measure] = {
            algo: mean_std([s[measure] for s in seeds]) for algo, seeds in data["per_seed"].items()
        }
    paper = data.get("odc_paper_momentum")
    out["odc_paper_momentum"] = (
        {m: mean_std([s[m] for s in paper]) for m in paper[0] if m != "seed"} if paper else None
    )
    return out


def _higher(values: dict) -> str:
    return max(values, key=lambda algo: values[algo][0])


def ranking(h: dict | None = None) -> dict:
    """Who leads on each count: {"steadier": algo with the higher AMI(t-1, t), "better": algo with
    the higher kNN accuracy, or "neither" where kNN and AMI to the true classes (the mean over the
    last 5 epochs, where the history has it, else the last epoch's) disagree}."""
    h = h or headline()
    agreement = h.get(AGREEMENT) or h["ami_true"]
    better = _higher(h["knn"]) if _higher(h["knn"]) == _higher(agreement) else "neither"
    return {"steadier": _higher(h["ami_prev"]), "better": better}


def ranking_sentence(h: dict | None = None) -> str:
    """The ranking in one sentence, word for word the same on every page that states the takeaway.
    It names the features' measures (kNN accuracy and agreement with the classes); "steadier" is
    the higher AMI(t-1, t), which each page states beside it with the images reassigned."""
    r = ranking(h)
    features = (
        f"{NAMES[r['better']]}'s features score higher in kNN accuracy and agreement with the "
        "classes"
        if r["better"] != "neither"
        else "kNN accuracy and agreement with the classes do not rank the features alike"
    )
    steadier = NAMES[r["steadier"]]
    return (f"At equal K, {steadier}'s labels are the steadier from one epoch to the next, "
            f"and {features}.")


def stated(h: dict, measure: str, digits: int = 2) -> str:
    """One measure for every algorithm of the headline,
    "DeepCluster 0.80 ± 0.00, ODC 0.95 ± 0.01"."""
    return ", ".join(
        f"{NAMES[a]} {m:.{digits}f} ± {s:.{digits}f}" for a, (m, s) in h[measure].items()
    )


def this_run(histories: dict, label: str = "This run") -> str:
    """One paragraph on the run a page shows: its own numbers on the takeaway's measures (final kNN;
    AMI to the classes as the mean of the last 5 epochs or fewer; the two stability measures as the
    mean of the same number of last transitions for each, at most 5), and whether it ranks the
    algorithms as the headline does. A run whose kNN is not yet past the untrained network's ranks
    nothing; a run at unequal K ranks the features only; a run at another K than the headline's can
    agree with it, not test it."""
    k = {a: int(h.get("config", {}).get("n_clusters", 0)) for a, h in histories.items()}
    epochs = max(len(h["epoch"]) for h in histories.values())
    n = min(5, *(len(series(h, "ami_prev")) for h in histories.values()))

    def mean(h, m, count):
        values = series(h, m)[-count:] if count else []
        return float(np.mean(values)) if values else float("nan")

    def final(h, m):
        v = last(h, m)
        return float("nan") if v is None else v

    got = {"knn": {a: (final(h, "knn"), 0.0) for a, h in histories.items()},
           AGREEMENT: {a: (mean(h, "ami_true", 5), 0.0) for a, h in histories.items()},
           **{m: {a: (mean(h, m, n), 0.0) for a, h in histories.items()}
              for m in ("ami_prev", "label_change")}}
    line = ", ".join(
        f"{NAMES[a]} (K = {k[a]}): kNN {got['knn'][a][0]:.3f}, AMI to the classes "
        f"{got[AGREEMENT][a][0]:.3f}"
        + (f", AMI(t−1, t) {got['ami_prev'][a][0]:.3f}, {got['label_change'][a][0]:.3f} of the "
           "images reassigned per epoch" if n else "")
        for a in histories
    )
    span = ("no transition yet" if n == 0 else "each one's last transition" if n == 1
            else f"the mean of each one's last {n} transitions")
    said = (f"{label} ({epochs} epochs; stability: {span}; AMI to the classes: the mean of the "
            "last 5 epochs or fewer)")
    if len(histories) < 2:
        return f"{said}: {line}."
    untrained = {a: h.get("monitor_init", {}).get("knn") for a, h in histories.items()}
    short = [a for a in histories if untrained[a] is not None and got["knn"][a][0] <= untrained[a]]
    if short:
        names = " and ".join(NAMES[a] for a in short)
        scores = ", ".join(f"{untrained[a]:.3f}" for a in short)
        return (f"{said}: {line}. It ranks nothing yet: on kNN, {names} "
                f"{'is' if len(short) == 1 else 'are'} not past the untrained network "
                f"({scores}).")
    r, ref = ranking(got), ranking()
    if len(set(k.values())) > 1 or n == 0:
        why = ("its K differ, so its stability numbers rank nothing (how many images change "
               "cluster depends on K, in either direction: notebook 05)" if len(set(k.values())) > 1
               else "it has no transition yet")
        same = ("as the takeaway does" if r["better"] == ref["better"]
                else "not as the takeaway does")
        return f"{said}: {line}. Its features rank {same}; {why}."
    same = ("ranks them as the takeaway does" if r == ref
            else "does not rank them as the takeaway does")
    other_k = next(iter(k.values())) != headline()["n_clusters"]
    return f"{said}: {line}. It {same}" + (
        f" (at K = {next(iter(k.values()))}, not the takeaway's {headline()['n_clusters']}: it "
        "can agree with the takeaway, not test it)." if other_k else ".")
