"""The three algorithms at one K, 3 seeds (issue 30): print the markdown table of
bench/three_algorithms.md from a seeded comparison run.

    # 32 min on 2 cores
    python -m kit compare --algos deepcluster,odc,deepcluster-v2 --seeds 3 --name three-k30
    python bench/three_algorithms.py runs/three-k30

Per algorithm, mean ± sample std (n - 1) over the seeds of: kNN accuracy of the untrained and the
trained network, AMI of a 10-means of the test features to the classes (final, and the mean of the
last 5 epochs), AMI(t-1, t) and the share of images reassigned per epoch (means of the last 5
epochs), the epochs the collapse alarm flagged, and the seconds of training a seed.
"""
import sys
from pathlib import Path

import numpy as np

from kit.parts import collapse
from kit.algorithms import NAMES
from kit.analysis.history import last, mean_last
from kit.store.runs import Run, read_config
from kit.analysis.seeds import seed_folders

ROWS = [  # (what the table says, how one seed's history gives it)
    ("kNN accuracy (k = 20), untrained network", lambda h: h["monitor_init"]["knn"]),
    ("kNN accuracy, final", lambda h: last(h, "knn")),
    ("AMI to true classes, final (10-means of the test features)", lambda h: last(h, "ami_true")),
    ("AMI to true classes, mean of the last 5 epochs", lambda h: mean_last(h, "ami_true")),
    ("**AMI(t−1, t), mean of the last 5 epochs**", lambda h: mean_last(h, "ami_prev")),
    (
        "samples reassigned per epoch, mean of the last 5 epochs",
        lambda h: mean_last(h, "label_change"),
    ),
    (
        "collapse alarms (epochs flagged)",
        lambda h: float(
            sum(
                bool(collapse.alarms(r, h["config"]["n_clusters"], p))
                for p, r in zip([None, *h["epoch"]], h["epoch"])
            )
        ),
    ),
    (
        "seconds of clustering and training a seed (`time_extract` + `time_cluster` + "
        "`time_train`: DeepCluster's feature extraction is the monitor's, not counted, and "
        "DeepCluster-v2's first pass that fills its memory is not timed; shared 2-core machine)",
        lambda h: float(
            sum(
                r.get("time_extract", 0) + r.get("time_cluster", 0) + r.get("time_train", 0)
                for r in h["epoch"]
            )
        ),
    ),
]


def main(run: Path) -> None:
    cfg, folders = read_config(run)["compare"], seed_folders(run)
    histories = {a: [Run(f / a).load_history() for f in folders] for a in cfg["algos"]}
    ks = {a: hs[0]["config"]["n_clusters"] for a, hs in histories.items()}
    print(
        f"`{run}`: {', '.join(NAMES[a] for a in histories)} at K = {sorted(set(ks.values()))}, "
        f"{cfg['epochs']} epochs, seeds {', '.join(f.name.split('-')[1] for f in folders)}\n"
    )
    print("| | " + " | ".join(f"{NAMES[a]} (K = {ks[a]})" for a in histories) + " |")
    print("|---" * (len(histories) + 1) + "|")
    for label, of in ROWS:
        cells = []
        for hs in histories.values():
            v = np.array([of(h) for h in hs], dtype=float)
            if label.startswith(("collapse", "seconds")):  # counts and times: whole numbers
                cells.append(
                    f"{v.sum():.0f} in all"
                    if label.startswith("collapse")
                    else f"{v.mean():.0f} ± {v.std(ddof=1):.0f}"
                )
            else:
                cells.append(
                    f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"
                )
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/three-k30"))
