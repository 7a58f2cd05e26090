"""The collapse alarm: five numbers per epoch that show a clustering run falling into a trivial
solution, and the thresholds that raise the alarm.

The DeepCluster paper (Sec. 3.3, "Avoiding trivial solutions") names two trivial solutions of
learning from one's own clusters: empty clusters (a centroid that no image joins; the paper's
k-means refills it with a non-empty cluster's centroid, slightly perturbed), and a trivial
parametrisation, where most images fall into a few clusters that the network then learns to tell
apart and nothing else (its cure: sampling images uniformly over the clusters, or weighting the loss
by cluster size). kit watches for both, as a giant cluster or dead clusters, and for a failure of
its own reading: a head that learns nothing, whose loss stays at ln K, the chance level of a K-way
cross-entropy. Features that shrink to a few directions can come with any of them, and two more
numbers watch for that. Each epoch record carries:

    loss_ln_k          the epoch's mean loss / ln K      ~1: the head predicts no better than chance
    largest_share      the largest cluster's share of N  1: one cluster holds everything
    nonempty           clusters with at least one image  << K: most clusters died
    feature_std_ratio  std of the L2-normalised features over the images, mean over dims,
                       x sqrt(D) (1/sqrt(D) is the std of features spread evenly over the
                       sphere; 0 = one vector for all; SimSiam, Chen & He 2021, Sec. 4.1)
    rankme             effective rank of the features: exp(entropy of the normalised singular
                       values) (RankMe, Garrido et al. ICML 2023); ~1 = every feature on one line

`alarms(record)` names the symptoms whose threshold a record crosses; `Watch` turns a run's records
into at most one printed line per new symptom (the CLI and the playground use it).

Thresholds, from what healthy runs measured. The example run (30 epochs, 4,000 digits): loss / ln K
0.94 in DeepCluster's first epoch, lower after; largest cluster <= 8% of the images; no empty
cluster; feature_std_ratio 0.15 for the untrained ConvNet, 0.34-0.82 once trained; RankMe 31-101.
The tests' tiny presets (400 digits, 7 steps an epoch): loss / ln K 1.01, 1.00, 0.95 over
DeepCluster's first three epochs (a head reset every epoch learns little in 7 steps),
feature_std_ratio >= 0.15, RankMe >= 20. With lr = 10 the same presets measured loss / ln K 2.8
(DeepCluster) and 8,600 (ODC) in epoch 1, then ~1.02 and 1.1-1.3, and DeepCluster's RankMe fell to
5-7. So the loss is judged "at chance" only when it stays above 0.97 ln K for two epochs after the
first, and the feature numbers likewise must stay under their thresholds for two epochs after the
first (DeepCluster's first epoch measures the untrained network, and the playground's smallest
healthy run, 200 digits and 4 steps an epoch, dipped once to std x sqrt(D) = 0.04 and RankMe 7.6
after its first epoch). The cluster sizes and an exploding loss are judged in every epoch.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .metrics import cluster_sizes

LOSS_NEAR_CHANCE = 0.97  # loss / ln K above this for two epochs after the first: nothing is learned
# loss / ln K above this in any epoch: far worse than guessing, training diverges
LOSS_EXPLODING = 2.0
LARGEST_SHARE = 0.5  # one cluster holding more than half of the images
NONEMPTY_SHARE = 0.5  # fewer than half of the K clusters hold an image
# std x sqrt(D) below this (untrained ConvNet: 0.15): the features are nearly one vector
FEATURE_STD_RATIO = 0.1
# effective rank below this: the features span a handful of directions (healthy: 20-110)
RANKME_MIN = 8.0
# RankMe on at most this many rows (a fixed, evenly spaced subset): an SVD of N x D is costly
RANKME_ROWS = 4096
STEP_WINDOW = 10  # the live board judges the mean loss of the last 10 steps
CAUSES = (
    "usual causes: a learning rate too high, a safeguard switched off (uniform sampling, "
    "reweighting, the small-cluster fix), too few images per cluster"
)

SYMPTOMS = {  # key -> what the CLI line says
    "loss_exploding": "the loss is far above ln K (training diverges)",
    "loss_at_chance": "the loss stays at ln K (the head predicts its pseudo-labels no better than "
                      "chance)",
    "giant_cluster": "one cluster holds most images",
    "dead_clusters": "most clusters are empty",
    "feature_collapse": "the L2-normalised features barely vary (std far below 1/sqrt(D))",
    "low_rank": "the features span only a few directions (RankMe)",
}


def _rows(features) -> torch.Tensor:
    """(N, D) float32 tensor on the features' own device, at most RANKME_ROWS evenly spaced rows."""
    x = torch.as_tensor(features).float()
    if len(x) > RANKME_ROWS:
        x = x[torch.linspace(0, len(x) - 1, RANKME_ROWS, device=x.device).long()]
    return x


def feature_std_ratio(features) -> float:
    """Std over the images of the L2-normalised features, averaged over dims, times sqrt(D).
    (N, D) -> float."""
    x = torch.nn.functional.normalize(_rows(features), dim=1)
    return float(x.std(0).mean() * math.sqrt(x.shape[1]))


def rankme(features, eps: float = 1e-7) -> float:
    """Effective rank exp(H(p)), p = singular values / their sum (Garrido et al. 2023, eq. 1).
    (N, D) -> float."""
    s = torch.linalg.svdvals(_rows(features))
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


def signals(loss: float, labels, n_clusters: int, features=None) -> dict:
    """The five numbers for one epoch: loss (its mean), labels (N,), features (N, D) or None (the
    two feature numbers are then left out)."""
    sizes = cluster_sizes(labels, n_clusters)
    out = {
        "loss_ln_k": float(loss) / math.log(n_clusters),
        "largest_share": sizes["max_size"] / len(labels),
        "nonempty": n_clusters - sizes["empty"],
    }
    if features is not None:
        out |= {"feature_std_ratio": feature_std_ratio(features), "rankme": rankme(features)}
    return out


def alarms(record: dict, n_clusters: int, prev: dict | None = None) -> list[str]:
    """The SYMPTOMS an epoch record shows (empty for a healthy epoch); `prev` is the record of the
    epoch before it (None for the first). See the module docstring for why the first epoch is judged
    less."""
    def over(r, key, limit):
        return r is not None and r.get(key) is not None and r[key] > limit

    def under(r, key, limit):
        return r is not None and r.get(key) is not None and r[key] < limit

    def held(test, key, limit):  # in this epoch and the one before, neither of them the first
        return (
            record["epoch"] > 0
            and prev is not None
            and prev["epoch"] > 0
            and test(record, key, limit)
            and test(prev, key, limit)
        )

    checks = {"loss_exploding": over(record, "loss_ln_k", LOSS_EXPLODING),
              "loss_at_chance": held(over, "loss_ln_k", LOSS_NEAR_CHANCE),
              "giant_cluster": over(record, "largest_share", LARGEST_SHARE),
              "dead_clusters": under(record, "nonempty", NONEMPTY_SHARE * n_clusters),
              "feature_collapse": held(under, "feature_std_ratio", FEATURE_STD_RATIO),
              "low_rank": held(under, "rankme", RANKME_MIN)}
    return [name for name, crossed in checks.items() if crossed]


def step_alarms(losses, n_clusters: int, labels=None) -> tuple[list[str], dict]:
    """Between epochs, for the live board: the mean of the last STEP_WINDOW losses (only
    "exploding": a head just reset sits at ln K by design) and, where the labels trained on are
    known mid-epoch (ODC's memory), the cluster sizes. Returns (symptoms, the numbers they were read
    from)."""
    values = signals(0.0, labels, n_clusters) if labels is not None else {}
    values.pop("loss_ln_k", None)  # the loss comes from the steps
    if len(losses) >= STEP_WINDOW:
        values["loss_ln_k"] = float(np.mean(losses[-STEP_WINDOW:])) / math.log(n_clusters)
    # as a first epoch: no trend judged on a few steps
    found = alarms({"epoch": 0, **values}, n_clusters)
    return found, values


def describe(algo: str, epoch: int, record: dict, symptoms: list[str]) -> str:
    """One line: which algorithm, when, each symptom with its number, and the usual causes."""
    values = {
        "loss_exploding": f"loss / ln K = {record.get('loss_ln_k', 0):.3g}",
        "loss_at_chance": f"loss / ln K = {record.get('loss_ln_k', 0):.2f}",
        "giant_cluster": f"largest cluster {record.get('largest_share', 0):.0%} of the images",
        "dead_clusters": f"{record.get('nonempty')} clusters hold images",
        "feature_collapse": f"std x sqrt(D) = {record.get('feature_std_ratio', 0):.3f}",
        "low_rank": f"RankMe {record.get('rankme', 0):.1f}",
    }
    what = "; ".join(f"{SYMPTOMS[s]} ({values[s]})" for s in symptoms)
    return f"collapse alarm, {algo} epoch {epoch + 1}: {what}. {CAUSES}"


class Watch:
    """Reads a run's epoch records and says each new symptom once: `line = watch(record)` is None
    for a healthy epoch or a symptom already reported, else one line for `describe`. `raised` keeps
    every (epoch, symptoms) seen."""

    def __init__(self, algo: str, n_clusters: int):
        self.algo, self.n_clusters = algo, n_clusters
        self.reported: set[str] = set()
        self.raised: list[tuple[int, list[str]]] = []
        self.prev: dict | None = None

    def __call__(self, record: dict) -> str | None:
        if record.get("kind", "epoch") != "epoch":
            return None
        found, self.prev = alarms(record, self.n_clusters, self.prev), record
        if found:
            self.raised.append((record["epoch"], found))
        new = [s for s in found if s not in self.reported]
        self.reported.update(new)
        return describe(self.algo, record["epoch"], record, new) if new else None

    def saying(self, log):
        """A fit callback (`fit(..., callbacks=[...])`) that says each new symptom through `log`
        (the CLI's line)."""
        def call(record: dict) -> None:
            line = self(record)
            if line:
                log(line)
        return call

    def steps(self, epoch: int, losses, labels=None) -> str | None:
        """`step_alarms` on the steps so far; one line for a symptom not reported yet, else None."""
        found, values = step_alarms(losses, self.n_clusters, labels)
        new = [s for s in found if s not in self.reported]
        self.reported.update(new)
        return describe(self.algo, epoch, values, new) if new else None


def flagged(history: dict) -> list[tuple[int, list[str]]]:
    """Every (epoch, symptoms) of a saved history that crosses a threshold (the report flags
    these)."""
    k = int(history.get("config", {}).get("n_clusters") or 0) or None
    out, prev = [], None
    for r in history["epoch"]:
        found, prev = alarms(r, k or r.get("nonempty", 0) + r.get("empty", 0), prev), r
        if found:
            out.append((r["epoch"], found))
    return out
