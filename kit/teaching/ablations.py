"""The short runs notebook 05 takes apart, all at one K on the same digits.

Where the churn comes from: DeepCluster as published, DeepCluster with its head kept and the new
cluster ids aligned to the last epoch's (the ablation the reference's head reset invites), ODC at
four memory momenta, and k-means run twice with two seeds on DeepCluster's final features, at the
run's K and at K = the number of classes (seed noise alone). `churn_runs` trains them and returns
what the notebook shows: `{"table": {row: measures}, "histories": {row: history}, "settings": ...}`.

The safeguards: each algorithm with every guard against a trivial solution, then with one switched
off (`safeguard_configs`, `safeguard_runs`).

`save` / `load` keep a result as one JSON file (the histories without their label snapshots), so the
example run ships the full-size result (bench/make_example_run.py) and the notebook reads it with
USE_EXAMPLE_RUN = True instead of training.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..algorithms.deepcluster import DeepCluster, DeepClusterConfig
from ..algorithms.odc import ODC, ODCConfig
from ..parts import collapse
from ..parts.clustering import KMeans, preprocess_features
from ..parts.metrics import agreement, label_change, within_class_moves

# the sizes notebook 05 trains at (the example run ships their results): each algorithm's preset K,
# one K for all
CHURN = {
    "n_images": None,  # None: all 4,000 digits
    "n_clusters": ODCConfig.small().n_clusters,
    "epochs": 10,
}
SAFEGUARDS = {"n_images": 2000, "n_clusters": ODCConfig.small().n_clusters, "epochs": 20}
# KIT_FAST, for both
FAST = {"n_images": 400, "n_clusters": ODCConfig.fast().n_clusters, "epochs": 2}
# ODC's memory momentum: 0 = a row never takes in the new feature; 0.5 the paper's
MOMENTA = (0.0, 0.2, 0.5, 0.9)
SEEDS_AT_K = "same features, two k-means seeds"
SEEDS_AT_CLASSES = "same features, two k-means seeds, K = classes"
# what a saved history keeps (no label snapshots, no steps)
KEPT = ("algo", "config", "monitor_init", "epoch")


def _presets(fast: bool):
    """DeepCluster's and ODC's preset for the runs here: KIT_FAST's, or the notebooks' `small`."""
    if fast:
        return DeepClusterConfig.fast, ODCConfig.fast
    return DeepClusterConfig.small, ODCConfig.small


def churn_configs(n_clusters: int, epochs: int, fast: bool = False) -> dict:
    """{row label: config}: each algorithm's preset at one K, monitored after the first and last
    epochs."""
    # kNN of the untrained network and after the last epoch
    preset = dict(n_clusters=n_clusters, eval_every=epochs)
    dc, odc = _presets(fast)
    # 400 digits at K = 20: 20 a cluster, the preset's 10 is too many
    extra = dict(min_cluster_size=5) if fast else {}
    return {"DeepCluster": dc(**preset),
            "DeepCluster, head kept, ids aligned": dc(**preset, head="aligned"),
            **{f"ODC, momentum {m}": odc(**preset, **extra, memory_momentum=m) for m in MOMENTA}}


def _trainer(cfg):
    return DeepCluster(cfg) if isinstance(cfg, DeepClusterConfig) else ODC(cfg)


def _mean_last(history: dict, key: str, n: int = 3) -> float | None:
    values = [r[key] for r in history["epoch"] if r.get(key) is not None][-n:]
    return float(np.mean(values)) if values else None


def churn_runs(
    digits, held_out, n_clusters: int, epochs: int, fast: bool = False, progress: bool = True
) -> dict:
    """Train every row of `churn_configs` on `digits` (scored on `held_out`) and measure seed noise
    on DeepCluster's final features. Returns {"table", "histories", "settings"}; the table's trained
    rows hold ami_prev and label_change (means of the last 3 epochs), pseudo_first / pseudo_last
    (AMI of the pseudo-labels to the classes, first and last labelling), knn (final) and
    within_class (of the images that changed cluster between the last two labellings, the share that
    stayed among clusters of their own class); the two seed rows ami_prev, label_change,
    within_class and their n_clusters."""
    y = np.asarray(digits.targets)
    table, histories, trainers = {}, {}, {}
    for label, cfg in churn_configs(n_clusters, epochs, fast).items():
        trainers[label] = trainer = _trainer(cfg)
        h = trainer.fit(digits, epochs=epochs, eval_dataset=held_out, progress=progress)
        table[label] = {
            "ami_prev": _mean_last(h, "ami_prev"),
            "label_change": _mean_last(h, "label_change"),
            "pseudo_first": agreement(h["labels"][0], y)["ami"],
            "pseudo_last": agreement(h["labels"][-1], y)["ami"],
            "knn": h["epoch"][-1]["knn"],
            "within_class": within_class_moves(h["labels"][-2], h["labels"][-1], y),
        }
        histories[label] = {k: h[k] for k in KEPT if k in h}
    # its last features, clustered as its next epoch would be, with two seeds
    dc = trainers["DeepCluster"]
    x = preprocess_features(dc.extract(dc.model, digits), dc.config.pca_dim)
    n_classes = len(np.unique(y))
    for label, k in ((SEEDS_AT_K, n_clusters), (SEEDS_AT_CLASSES, n_classes)):
        a, b = (KMeans(k, n_iter=dc.config.kmeans_iters, seed=s).fit(x).labels_ for s in (1, 2))
        table[label] = {
            "ami_prev": agreement(a, b)["ami"],
            "label_change": label_change(a, b),
            "n_clusters": k,
            "within_class": within_class_moves(a, b, y),
        }
    return {
        "table": table,
        "histories": histories,
        "settings": {
            "n_images": len(digits),
            "n_clusters": n_clusters,
            "epochs": epochs,
            "n_classes": n_classes,
            "n_test": len(held_out),
        },
    }


# -- the safeguards -------------------------------------------------------------------------------
# ODC's memory momentum for the safeguard runs: a row takes in 90% of each new feature (kit's
# preset: 20%), so the labels follow the features fast and what a safeguard holds back shows within
# 20 epochs. Measured on 2,000 digits at K = 30 (seed 31): with every safeguard on, all 30
# clusters live to the end; without the small-cluster fix, 12 of 30 are left; at kit's momentum
# 0.2, no run here lost a cluster in 20 epochs, with or without either guard.
SAFEGUARD_MOMENTUM = 0.9


def safeguard_configs(n_clusters: int, epochs: int, fast: bool = False) -> dict:
    """{row label: config}: each algorithm with all its safeguards, then with one of them off."""
    preset = dict(n_clusters=n_clusters, eval_every=epochs)
    dc, odc = _presets(fast)
    fix = dict(min_cluster_size=5) if fast else {}
    memory = dict(preset, memory_momentum=SAFEGUARD_MOMENTUM)
    return {"DeepCluster, every safeguard": dc(**preset),
            "DeepCluster, no uniform sampling": dc(**preset, uniform_sampling=False),
            f"ODC (momentum {SAFEGUARD_MOMENTUM}), every safeguard": odc(**memory, **fix),
            "ODC, no small-cluster fix": odc(**memory, min_cluster_size=0),
            "ODC, no reweighting": odc(**memory, **fix, reweight_power=0.0)}


def alarm_lines(history: dict) -> list[str]:
    """The collapse alarm's lines for a saved history, as the CLI would have printed them while it
    trained."""
    watch = collapse.Watch(history["algo"], history["config"]["n_clusters"])
    return [line for line in map(watch, history["epoch"]) if line]


def symptoms(row: dict) -> str:
    """The symptoms a row of `safeguard_runs`' table names, each with the epoch the alarm first saw
    it."""
    return ", ".join(f"{collapse.SYMPTOMS[s]} (from epoch {e})" for s, e in row["symptoms"].items())


def safeguard_runs(
    digits, held_out, n_clusters: int, epochs: int, fast: bool = False, progress: bool = True
) -> dict:
    """Train every row of `safeguard_configs`. Returns {"table", "histories", "alarms", "settings"};
    the table holds, per run, the last epoch's largest cluster share and clusters that hold an
    image, the symptoms the alarm named (each with the first epoch it was seen) and the kNN accuracy
    of the untrained network and after the last epoch."""
    table, histories, alarms = {}, {}, {}
    for label, cfg in safeguard_configs(n_clusters, epochs, fast).items():
        h = _trainer(cfg).fit(digits, epochs=epochs, eval_dataset=held_out, progress=progress)
        histories[label] = {k: h[k] for k in KEPT if k in h}
        alarms[label] = alarm_lines(h)
        first = {}
        for epoch, found in collapse.flagged(h):
            for symptom in found:
                first.setdefault(symptom, epoch + 1)
        last = h["epoch"][-1]
        table[label] = {
            "largest_share": last["largest_share"],
            "nonempty": last["nonempty"],
            "symptoms": first,
            "knn_first": h["monitor_init"]["knn"],
            "knn": last["knn"],
        }
    return {"table": table, "histories": histories, "alarms": alarms,
            "settings": {"n_images": len(digits), "n_clusters": n_clusters, "epochs": epochs,
                         "memory_momentum": SAFEGUARD_MOMENTUM}}


def save(result: dict, path) -> Path:
    """One JSON file (write-then-rename: a reader never sees half of it)."""
    from ..store.files import atomic_write_json

    path = Path(path)
    atomic_write_json(path, result)
    return path


def load(path) -> dict:
    """A saved result, as `churn_runs` / `safeguard_runs` returned it (histories without label
    snapshots)."""
    from ..store.files import read_json

    return read_json(Path(path))
