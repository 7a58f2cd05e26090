"""Write kit/analysis/headline.json: the numbers of the lesson's one takeaway
(kit/analysis/findings.py), taken from the 3-seed comparison at equal K that bench/equal_k.md
reports.

    # ~30 min on 2 cores (both at K = 30)
    python -m kit compare --seeds 3 --name equal-k30
    # ODC at momentum 0.5, ~12 min
    python bench/odc_paper_momentum.py > runs/odc-m05.jsonl
    python bench/make_headline.py runs/equal-k30 runs/odc-m05.jsonl

Per seed and algorithm it keeps the final kNN accuracy and AMI/NMI to the true classes, the AMI to
the true classes averaged over the last 5 epochs (each epoch's is one 10-means of the test features,
and a k-means seed moves it by several hundredths: the mean is what the ranking reads), the
pseudo-labels' AMI to the true classes, and the means over the last 5 epochs of AMI(t-1, t),
NMI(t-1, t), NMI's chance level and the samples reassigned per epoch; with the second file, the same
for ODC at the paper's memory momentum 0.5. kit/analysis/findings.py turns them into mean ± std and
the ranking."""
import json
import sys
from pathlib import Path

from kit.analysis.history import last, mean_last
from kit.store.runs import Run, read_config
from kit.analysis.seeds import seed_folders

FINAL = ("knn", "ami_true", "nmi_true", "ami_pseudo_true")  # the last epoch's value
# the mean over the last 5 epochs
LAST5 = ("ami_prev", "nmi_prev", "nmi_prev_chance", "label_change")


def numbers(history: dict) -> dict:
    out = {k: last(history, k) for k in FINAL}
    out.update({k: mean_last(history, k) for k in LAST5})
    out["ami_true_last5"] = mean_last(history, "ami_true")
    out["knn_init"] = history["monitor_init"]["knn"]
    return out


def main(run: Path, paper_momentum: Path | None = None) -> None:
    cfg = read_config(run)["compare"]
    folders = seed_folders(run)
    per_seed = {algo: [numbers(Run(f / algo).load_history()) for f in folders]
                for algo in ("deepcluster", "odc")}
    k = {algo: Run(folders[0] / algo).load_history()["config"]["n_clusters"]
         for algo in per_seed}
    if len(set(k.values())) != 1:
        sys.exit(f"{run} compares different K ({k}): the takeaway is read at one K (--n-clusters)")
    out = {
        "source": f"python -m kit compare --n-clusters {k['odc']} --seeds {len(folders)}",
        "dataset": cfg["dataset"],
        "n_clusters": k["odc"],
        "epochs": cfg["epochs"],
        "seeds": [int(f.name.split("-")[1]) for f in folders],
        "per_seed": per_seed,
    }
    if paper_momentum is not None:  # bench/odc_paper_momentum.py: one JSON line per seed
        out["odc_paper_momentum"] = [
            json.loads(line) for line in paper_momentum.read_text().splitlines() if line.strip()
        ]
    target = Path(__file__).resolve().parents[1] / "kit" / "analysis" / "headline.json"
    target.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", target)


if __name__ == "__main__":
    main(
        Path(sys.argv[1] if len(sys.argv) > 1 else "runs/equal-k30"),
        Path(sys.argv[2]) if len(sys.argv) > 2 else None,
    )
