"""The headline on two datasets: DeepCluster and ODC at one K, 3 seeds, on digits (mnist5k) and on
clothes (fashion5k), beside each dataset's floors (raw pixels, and the untrained network).
bench/two_datasets.md reports it.

    python -m kit compare --seeds 3 --name digits-k30                        # ~15 min on 2 cores
    python -m kit compare --seeds 3 --dataset fashion5k --name fashion-k30   # ~17 min
    # writes bench/two_datasets.json
    python bench/two_datasets.py runs/digits-k30 runs/fashion-k30
    # prints the table from that file
    python bench/two_datasets.py

Per seed and algorithm it keeps bench/make_headline.py's numbers (final kNN accuracy; AMI to the
true classes, the mean of the last 5 epochs' 10-means of the test features; AMI(t-1, t) and the
samples reassigned per epoch, means of the last 5 epochs; the untrained network's kNN and AMI). The
raw-pixel baselines are the run's baselines.json: kNN (k = 20) and a 10-means on the L2-normalised
pixels of the same splits. Rows of what no training gives (raw pixels, the untrained network) say so
in their name.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.make_headline import numbers  # noqa: E402
from kit.algorithms import NAMES  # noqa: E402
from kit.store.runs import Run, read_config  # noqa: E402
from kit.analysis.seeds import mean_std, seed_folders  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULT = HERE / "two_datasets.json"
ALGOS = ("deepcluster", "odc")
DATASETS = {"mnist5k": "digits (mnist5k)", "fashion5k": "clothes (fashion5k)"}
# (row, measure, whose): whose is an algorithm, "raw" (baselines.json) or "init" (the untrained
# network, every seed)
ROWS = (
    [(f"kNN accuracy, final: {NAMES[a]}", "knn", a) for a in ALGOS]
    + [
        ("kNN accuracy: raw pixels", "raw_pixels_knn", "raw"),
        ("kNN accuracy: the untrained network", "knn_init", "init"),
    ]
    + [(f"AMI to true classes, last 5 epochs: {NAMES[a]}", "ami_true_last5", a) for a in ALGOS]
    + [
        ("AMI to true classes: a 10-means of raw pixels, one seed", "raw_pixels_ami", "raw"),
        ("AMI to true classes: the untrained network", "ami_true_init", "init"),
    ]
    + [(f"AMI(t−1, t), last 5 epochs: {NAMES[a]}", "ami_prev", a) for a in ALGOS]
    + [
        (f"samples reassigned per epoch, last 5 epochs: {NAMES[a]}", "label_change", a)
        for a in ALGOS
    ]
)


# what notebook 04 draws, per epoch
CURVES = ("knn", "ami_true", "nmi_true", "ami_prev", "label_change")


def curve(history: dict) -> dict:
    """A history cut to what the seeded figures draw (config, the untrained network's scores, the
    CURVES)."""
    keep = {"epoch", *CURVES}
    return {
        "algo": history["algo"],
        "config": history["config"],
        "monitor_init": history["monitor_init"],
        "epoch": [{k: v for k, v in r.items() if k in keep} for r in history["epoch"]],
    }


def collect(run: Path) -> dict:
    cfg = read_config(run)["compare"]
    folders = seed_folders(run)
    histories = {a: [Run(f / a).load_history() for f in folders] for a in ALGOS}
    per_seed = {a: [{**numbers(h), "ami_true_init": h["monitor_init"]["ami_true"]} for h in hs]
                for a, hs in histories.items()}
    k = {h[0]["config"]["n_clusters"] for h in histories.values()}
    if len(k) != 1:
        sys.exit(f"{run} compares different K ({k}): the headline is read at one K (--n-clusters)")
    return {
        "source": f"python -m kit compare --seeds {len(folders)} --dataset {cfg['dataset']}",
        "dataset": cfg["dataset"],
        "n_clusters": k.pop(),
        "epochs": cfg["epochs"],
        "seeds": [int(f.name.split("-")[1]) for f in folders],
        "per_seed": per_seed,
        "curves": [{a: curve(hs[i]) for a, hs in histories.items()} for i in range(len(folders))],
        "baselines": json.loads((run / "baselines.json").read_text()),
    }


def cell(result: dict, measure: str, whose: str) -> tuple[float, float]:
    """(mean, std over seeds) of one row on one dataset; a raw-pixel floor has no spread (one
    deterministic run)."""
    if whose == "raw":
        return result["baselines"][measure], 0.0
    # each seed's untrained network, as its algorithms measured it (the same network: one value)
    if whose == "init":
        return mean_std([sum(result["per_seed"][a][i][measure] for a in ALGOS) / len(ALGOS)
                         for i in range(len(result["seeds"]))])
    return mean_std([s[measure] for s in result["per_seed"][whose]])


def rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows): a row per measure, a column per dataset; a row of no training says "(no
    training)"."""
    first = next(iter(results.values()))
    header = [f"K = {first['n_clusters']}, {first['epochs']} epochs, {len(first['seeds'])} seeds",
              *(DATASETS[d] for d in results)]
    out = []
    for row, measure, whose in ROWS:
        values = []
        for result in results.values():
            m, s = cell(result, measure, whose)
            values.append(f"{m:.3f}" if whose == "raw" else f"{m:.3f} ± {s:.3f}")
        out.append([row if whose in ALGOS else f"{row} (no training)", *values])
    return header, out


def table(results: dict) -> str:
    """The Markdown table of `rows`, as the README and bench/two_datasets.md show it."""
    header, body = rows(results)
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])


def _versus(result: dict, measure: str) -> tuple[str, bool]:
    """(the algorithm with the higher mean of `measure`, whether it is ahead by more than the
    spread: the two mean ± std intervals over seeds do not overlap)."""
    (m1, s1), (m2, s2) = (cell(result, measure, a) for a in ALGOS)
    return (ALGOS[0] if m1 >= m2 else ALGOS[1]), abs(m1 - m2) > s1 + s2


ASPECTS = {
    "knn": "kNN accuracy",
    "ami_true_last5": "agreement with the classes",
    "ami_prev": "steadier labels",
}


def _ahead(result: dict, measure: str) -> str:
    lead, clear = _versus(result, measure)
    name = NAMES[lead] + ("'s" if measure == "ami_prev" else "")
    if measure == "ami_prev":
        return (f"{name} labels are the steadier by more than the spread (AMI(t−1, t))" if clear
                else f"AMI(t−1, t) does not separate the two ({name} higher, within the spread)")
    return (
        f"{name} leads in {ASPECTS[measure]} by more than the spread"
        if clear
        else f"{ASPECTS[measure]} does not separate the two ({NAMES[lead]} higher, within the "
             "spread)"
    )


def findings(results: dict) -> list[str]:
    """What the table says, one sentence per dataset and one on what changes between them, each
    decided by the numbers (the notebook's answer, the README and bench/two_datasets.md state
    these)."""
    said = []
    for d, result in results.items():
        gains = {m: {a: cell(result, m, a)[0] - result["baselines"][floor] for a in ALGOS}
                 for m, floor in (("knn", "raw_pixels_knn"), ("ami_true_last5", "raw_pixels_ami"))}
        # each algorithm's gain, and whether its spread over seeds reaches back to the raw pixels'
        def over(m):
            return ", ".join(f"{NAMES[a]} {v:+.3f}".replace("-", "−")
                             + (" (within its spread)" if abs(v) <= cell(result, m, a)[1] else "")
                             for a, v in gains[m].items())

        said.append(
            f"On {DATASETS[d]}, "
            + "; ".join(_ahead(result, m) for m in ASPECTS)
            + ". Beside raw pixels: "
            f"kNN accuracy {over('knn')} over kNN on the raw pixels; agreement with the classes "
            f"{over('ami_true_last5')} over a 10-means of the raw pixels (AMI)."
        )
    (d1, r1), (d2, r2) = results.items()
    moves = []
    for m, aspect in ASPECTS.items():
        (l1, c1), (l2, c2) = _versus(r1, m), _versus(r2, m)
        if not (c1 or c2):
            moves.append(f"{aspect}: within the spread on both")
        elif c1 and c2:
            moves.append(
                f"{aspect}: {NAMES[l1]} on both"
                if l1 == l2
                else f"{aspect}: {NAMES[l1]} on one, "
                f"{NAMES[l2]} on the other (the ranking reverses)"
            )
        else:
            lead, clear_on, not_on = (l1, d1, d2) if c1 else (l2, d2, d1)
            moves.append(
                f"{aspect}: {NAMES[lead]} by more than the spread on {DATASETS[clear_on]}, within "
                f"it on {DATASETS[not_on]}"
            )
    said.append(f"From {DATASETS[d1]} to {DATASETS[d2]}, who is ahead: " + "; ".join(moves) + ".")
    return said


def main(runs: list[str]) -> None:
    if runs:
        results = {r["dataset"]: r for r in map(collect, map(Path, runs))}
        if (
            set(results) != set(DATASETS)
            or len({(r["n_clusters"], r["epochs"]) for r in results.values()}) != 1
        ):
            sys.exit("give one run on each of mnist5k and fashion5k, at the same K and epochs")
        RESULT.write_text(json.dumps({d: results[d] for d in DATASETS}, indent=1) + "\n")
        print("wrote", RESULT)
    results = json.loads(RESULT.read_text())
    print(table(results), "", *findings(results), sep="\n")


if __name__ == "__main__":
    main(sys.argv[1:])
