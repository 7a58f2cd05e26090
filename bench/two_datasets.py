"""The headline on two datasets: DeepCluster and ODC at one K, 3 seeds, on digits (mnist5k) and on clothes
(fashion5k), beside each dataset's floors (raw pixels, and the untrained network). bench/two_datasets.md reports it.

    python -m kit compare --seeds 3 --name digits-k30                        # ~30 min on 2 cores
    python -m kit compare --seeds 3 --dataset fashion5k --name fashion-k30   # ~35 min
    python bench/two_datasets.py runs/digits-k30 runs/fashion-k30            # writes bench/two_datasets.json
    python bench/two_datasets.py                                             # prints the table from that file

Per seed and algorithm it keeps bench/make_headline.py's numbers (final kNN accuracy; AMI to the true classes, the
mean of the last 5 epochs' 10-means of the test features; AMI(t-1, t) and the samples reassigned per epoch, means of
the last 5 epochs; the untrained network's kNN and AMI). The raw-pixel floors are the run's baselines.json: kNN
(k = 20) and a 10-means on the L2-normalised pixels of the same splits.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.make_headline import numbers  # noqa: E402
from kit.algorithms import NAMES  # noqa: E402
from kit.runs import Run, read_config  # noqa: E402
from kit.seeds import mean_std, seed_folders  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULT = HERE / "two_datasets.json"
ALGOS = ("deepcluster", "odc")
DATASETS = {"mnist5k": "digits (mnist5k)", "fashion5k": "clothes (fashion5k)"}
# (row, measure, whose): whose is an algorithm, "raw" (baselines.json) or "init" (the untrained network, every seed)
ROWS = [(f"kNN accuracy, final: {NAMES[a]}", "knn", a) for a in ALGOS] + [
    ("kNN accuracy: raw pixels", "raw_pixels_knn", "raw"), ("kNN accuracy: untrained network", "knn_init", "init")] + [
    (f"AMI to true classes, last 5 epochs: {NAMES[a]}", "ami_true_last5", a) for a in ALGOS] + [
    ("AMI to true classes: k-means on raw pixels", "raw_pixels_ami", "raw"),
    ("AMI to true classes: untrained network", "ami_true_init", "init")] + [
    (f"AMI(t−1, t), last 5 epochs: {NAMES[a]}", "ami_prev", a) for a in ALGOS] + [
    (f"samples reassigned per epoch, last 5 epochs: {NAMES[a]}", "label_change", a) for a in ALGOS]


def collect(run: Path) -> dict:
    cfg = read_config(run)["compare"]
    folders = seed_folders(run)
    histories = {a: [Run(f / a).load_history() for f in folders] for a in ALGOS}
    per_seed = {a: [{**numbers(h), "ami_true_init": h["monitor_init"]["ami_true"]} for h in hs]
                for a, hs in histories.items()}
    k = {h[0]["config"]["n_clusters"] for h in histories.values()}
    if len(k) != 1:
        sys.exit(f"{run} compares different K ({k}): the headline is read at one K (--n-clusters)")
    return {"source": f"python -m kit compare --seeds {len(folders)} --dataset {cfg['dataset']}",
            "dataset": cfg["dataset"], "n_clusters": k.pop(), "epochs": cfg["epochs"],
            "seeds": [int(f.name.split("-")[1]) for f in folders], "per_seed": per_seed,
            "baselines": json.loads((run / "baselines.json").read_text())}


def cell(result: dict, measure: str, whose: str) -> tuple[float, float]:
    """(mean, std over seeds) of one row on one dataset; a raw-pixel floor has no spread (one deterministic run)."""
    if whose == "raw":
        return result["baselines"][measure], 0.0
    seeds = [s for a in ALGOS for s in result["per_seed"][a]] if whose == "init" else result["per_seed"][whose]
    return mean_std([s[measure] for s in seeds])


def table(results: dict) -> str:
    """The Markdown table: a row per measure, a column per dataset."""
    first = next(iter(results.values()))
    head = f"| K = {first['n_clusters']}, {first['epochs']} epochs, {len(first['seeds'])} seeds (floors in italics) |"
    lines = [head + "".join(f" {DATASETS[d]} |" for d in results), "|---|" + "---|" * len(results)]
    for row, measure, whose in ROWS:
        values = []
        for result in results.values():
            m, s = cell(result, measure, whose)
            values.append(f"{m:.3f}" if whose == "raw" else f"{m:.3f} ± {s:.3f}")
        name = row if whose in ALGOS else f"*{row}*"
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def main(runs: list[str]) -> None:
    if runs:
        results = {r["dataset"]: r for r in map(collect, map(Path, runs))}
        if set(results) != set(DATASETS) or len({(r["n_clusters"], r["epochs"]) for r in results.values()}) != 1:
            sys.exit("give one run on each of mnist5k and fashion5k, at the same K and epochs")
        RESULT.write_text(json.dumps({d: results[d] for d in DATASETS}, indent=1) + "\n")
        print("wrote", RESULT)
    print(table(json.loads(RESULT.read_text())))


if __name__ == "__main__":
    main(sys.argv[1:])
