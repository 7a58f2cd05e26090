"""Rebuild every figure and `report.html` from a saved comparison run
(`python -m kit report RUN`)."""
from __future__ import annotations

import html
import re
import time
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from ..algorithms import NAMES, SPECS
from ..analysis import findings, flows, seeds
from ..analysis.history import last, mean_last, series
from ..parts import collapse
from ..parts.data import load_dataset
from ..parts.metrics import agreement
from ..store.files import (
    atomic_write_bytes,
    atomic_write_npz,
    check_fields,
    read_json,
    read_layouts,
)
from ..store.runs import Run, read_config
from ..views import build as views
from ..views import plots
from .compare import CompareConfig

# report.html's look: one rule a line; each algorithm's table heading takes its colour (_write_html)
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222 }
table { border-collapse: collapse; margin: 0.5em 0 1em }
td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: right }
td:first-child, th:first-child { text-align: left }
td { white-space: nowrap }
td:first-child { white-space: normal }
img { max-width: 100% }
figure { margin: 2em 0 }
figcaption p { max-width: 80ch; line-height: 1.4 }
tr.baseline td { color: #666; font-style: italic }
td.span { text-align: center }
h3.alarm { color: #c00 }
p.warn { background: #fff4e0; padding: 6px 10px; max-width: 80ch }
details { margin: 0.5em 0 1em }
"""

FIGURES = {
    "learning.png": "Do they learn? kNN accuracy and NMI to the true classes (epoch 0 = random "
                    "init).",
    "stability.png": "How stable are the labels? AMI and NMI between consecutive epochs (NMI with "
                     "its chance level) and the fraction of samples that changed cluster.",
    "reassignment.png": "ODC relabels a little every iteration; DeepCluster re-clusters "
                        "everything once per epoch.",
    "cluster_sizes.png": "Cluster-size distributions at the start, middle and end of training.",
    "loss.png": "Training loss per iteration.",
    "embeddings.png": "UMAP of the same images across epochs (each layout starts from the "
                      "previous one), coloured by true class and by cluster.",
}
FIGURES.update(views.FIGURES)  # the image-level views: flows, clusters as images (kit/views/)

# How to read each figure, and which direction is better: one paragraph under it in report.html
GUIDES = {
    "learning.png": "Each line is one algorithm, measured on the held-out test images after each "
                    "epoch (epoch 0: the untrained network). Left, kNN accuracy (k = 20, the "
                    "training images as the bank): how often an image's nearest features share "
                    "its digit. Middle, NMI between a k-means of the features (one cluster a "
                    "class) and the true digits, its chance level dotted; right, the same "
                    "agreement as AMI (chance-corrected, 0 = chance). Higher is better in all "
                    "three. The grey dashed line is the same measure on raw pixels: a curve below "
                    "it has not yet beaten no training at all.",
    "stability.png": "Left, AMI between each epoch's cluster labels and the previous epoch's: 1 = "
                     "the same partition again, 0 = no more alike than two random partitions with "
                     "the same cluster sizes, at any K. Middle, the uncorrected NMI and, dotted, "
                     "its chance level: the NMI of the same two labellings with one shuffled. "
                     "That floor climbs with K (about 0.25 at K = 100 on 4,000 images, 0.03 at K "
                     "= 30), so read NMI only as its height above its own floor, and compare "
                     "algorithms at equal K. Right, the fraction of training images whose cluster "
                     "changed (cluster ids matched first). Higher on the left and lower on the "
                     "right mean steadier pseudo-labels, a target the network can learn; steadier "
                     "is not the same as better clusters (see the figure above). How many images "
                     "change depends on K too, so check K in the settings before comparing.",
    "reassignment.png": "Left, ODC only: the share of each batch whose label changed when it "
                        "updated the memory, per iteration (faint) and as a running mean. It "
                        "falls as the features settle; lower means a steadier memory. Right, for "
                        "each algorithm, the fraction of all training images with a new cluster "
                        "per epoch (lower = steadier).",
    "cluster_sizes.png": "Each panel sorts one algorithm's clusters from largest to smallest "
                         "(members, log scale, the same for every panel) for the initial k-means, "
                         "mid-way and at the end. A flat line means clusters of similar size; a "
                         "steep drop means a few giant clusters and many tiny ones, the collapse "
                         "DeepCluster and ODC guard against (DeepCluster samples uniformly over "
                         "clusters, ODC dissolves clusters below min_cluster_size; DeepCluster-v2 "
                         "has no such guard: an empty cluster keeps its old centroid). Flatter is "
                         "healthier.",
    "loss.png": "Cross-entropy of the head against the current pseudo-labels, per iteration "
                "(running mean). Lower means the network predicts its own labels better, but one "
                "algorithm's curve is not comparable with another's (ODC's loss is "
                "class-weighted, DeepCluster-v2's scores prototypes at a temperature, and K may "
                "differ), and DeepCluster's and DeepCluster-v2's jump each epoch because their "
                "labels and head (DeepCluster-v2's: the prototypes) are renewed. Read it for "
                "trouble (a rising loss, NaN), not as a score.",
    "embeddings.png": "UMAP of the same training images at a few epochs, each layout started from "
                      "the previous one so that points move no more than they must. For each "
                      "algorithm, one row coloured by true digit, one by its own cluster (above "
                      "30 clusters, too many to tell apart by colour, each point takes its "
                      "cluster's majority digit's colour). Better: the digits form tight, "
                      "separate islands and the cluster colours follow them. Distances between "
                      "islands mean little in UMAP.",
    "flows.png": "Columns are saved epochs, each bar a cluster (stacked by majority class), each "
                 "band the images of one digit moving from one cluster to the next, in the "
                 "digit's colour; images that stay are faint, the largest moves bright, other "
                 "moves grey (above 30 clusters the other moves are left out and only counted in "
                 "the bars below). Few bright bands mean stable clusters; a bar of one colour is "
                 "a pure cluster. Fewer moves and purer bars are better.",
    "flows_last.png": "The same drawing for the last epoch only, so that the algorithms' moves "
                      "over the same transition can be compared directly. Fewer bright and grey "
                      "bands = steadier labels.",
    "clusters.png": "Each row is one of the largest clusters, shown as the images nearest its "
                    "centroid, titled with its size, purity (share of its majority digit) and "
                    "that digit. Better: rows of one digit each and purity near 1; a row that "
                    "mixes digits is a cluster built on something else (stroke width, slant).",
    "confusion.png": "Rows of each panel are the digits, columns the clusters, ordered by the "
                     "digit each cluster holds most; the shade counts images. Better: a block "
                     "diagonal, every digit covered by its own clusters, little mass off the "
                     "blocks.",
    "moved.png": "The training images that changed cluster most often, each with its first and "
                 "last cluster and its number of changes, in its digit's colour. With more "
                 "clusters than classes, clear and typical images can be among them: a boundary "
                 "drawn through the middle of a class, which a fresh k-means redraws, moves them; "
                 "ambiguous images move across classes.",
    "transitions.png": "One bar per epoch: the previous epoch's clusters by what became of them, "
                       "as shares (upwards), and the clusters born (downwards). Survived: at "
                       "least 70% of its members stay together and lead their new cluster; "
                       "merged: the same inside a cluster led by another (absorbed); split: two "
                       "or more parts of at least 30%; shrank: one part of 30-70% kept, the rest "
                       "scattered; died: no part of 30% kept; born: no old cluster gave it 30% of "
                       "itself. The black line is the fraction of images reassigned (the "
                       "reassignment curve). More green and less red means clusters that live on; "
                       "shares of clusters depend on K, so compare the algorithms at equal K.",
    "stability_map.png": "Each dot is one image of the UMAP subset: how far it lies from its "
                         "cluster's centroid (x) and the share of the transitions in which it "
                         "kept its cluster (y). Images near their centroid should keep their "
                         "cluster; a negative rank correlation says the ones on the edges move. "
                         "Below, the images that kept their cluster least: clear ones among them "
                         "point to boundaries redrawn inside a class, ambiguous ones to images "
                         "between classes.",
}


def _clean_killed_writes(run_path: Path) -> None:
    """Temporary files a killed report (or run) left, removed when no live process writes the
    run."""
    from ..store.runs import RunInUse

    try:
        Run(run_path).check_free()
    except RunInUse:
        return  # a writer's temporaries are its own
    for folder in [run_path, *(p for p in run_path.iterdir() if p.is_dir())]:
        Run(folder).clean_temporaries()


def read_baselines(run_path: Path) -> dict:
    """`baselines.json` ({} where there is none): {name: number or {metric: number}}, checked."""
    file = run_path / "baselines.json"
    if not file.exists():
        return {}
    baselines = read_json(file, "baselines", dict)
    for name, value in baselines.items():
        numbers = value.values() if isinstance(value, dict) else [value]
        if not all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in numbers
        ):
            raise ValueError(
                f"{file}: {name} is {value!r}, not a number or a table of numbers: delete the file "
                f"(python -m kit compare --name {run_path.name} --resume writes it again)"
            )
    return baselines


def read_evaluation(file: Path) -> dict:
    """`evaluation.json` as `python -m kit evaluate` writes it, or one line naming what is
    missing."""
    scored = read_json(file, "evaluation", dict)
    again = f"run python -m kit evaluate {file.parent} again"
    if not scored:
        raise ValueError(f"{file} holds no model: {again}")
    for model, table in scored.items():
        missing = (
            [
                k
                for k in ("linear", "knn", "svm", "semi")
                if not isinstance((table or {}).get(k), dict)
            ]
            if isinstance(table, dict)
            else ["linear"]
        )
        if missing:
            raise ValueError(f"{file}: {model} has no {missing[0]} table: {again}")
    return scored


def load_histories(run_path: str | Path) -> dict[str, dict]:
    run_path = Path(run_path)
    return {algo: with_agreement(Run(run_path / algo).load_history()) for algo in SPECS
            if (run_path / algo / "history.json").exists()}


def with_agreement(h: dict) -> dict:
    """A history from before kit logged AMI, ARI and NMI's chance level between epochs gets them
    from its label snapshots (record t compares snapshots t-1 and t for DeepCluster, t and t+1 for
    ODC, whose snapshot 0 is the initial k-means). Agreement with the true classes needs the
    features: not filled."""
    shift = 0 if plots.at_epoch_start(h) else 1
    snaps = h.get("labels", [])
    for r in h["epoch"]:
        t = r["epoch"] + shift
        if "ami_prev" not in r and r.get("nmi_prev") is not None and 1 <= t < len(snaps):
            r.update(agreement(snaps[t - 1], snaps[t], suffix="_prev"))
    return h


def _embeddings(
    run_path: Path, histories: dict
) -> tuple[list[int], dict, dict, np.ndarray, dict] | None:
    """Aligned UMAP layouts per algorithm (computed once, then read from embeddings.npz)."""
    from ..analysis import embed

    feats = {a: f for a in histories if (f := Run(run_path / a).embed_features())}
    if not feats:
        return None
    epochs = sorted(
        set.intersection(
            *[{int(k[6:]) for k in f if k.startswith("epoch_")} for f in feats.values()]
        )
    )
    subset = next(iter(feats.values()))["subset"]
    cache = run_path / "embeddings.npz"
    key = lambda a, e: f"{a}_{e:04d}"  # noqa: E731
    layouts: dict[str, list[np.ndarray]] = {}
    stored = read_layouts(cache)
    for algo, f in feats.items():
        if all(key(algo, e) in stored for e in epochs):
            layouts[algo] = [stored[key(algo, e)] for e in epochs]
        else:
            layouts[algo] = embed.aligned_embeddings([f[f"epoch_{e:04d}"] for e in epochs])
            stored.update({key(algo, e): y for e, y in zip(epochs, layouts[algo])})
    atomic_write_npz(cache, **stored)
    clusters, labelled_at = {}, {}
    for algo, h in histories.items():
        # ids carried across the snapshots (Hungarian matching, as the flows and the flight
        # recorder): a cluster that lives on keeps its colour, whatever number a fresh k-means
        # gave it
        snaps = flows.carry_ids(
            h.get("labels", []), int(h.get("config", {}).get("n_clusters") or 0) or None
        )
        # labels of those features
        clusters[algo] = [snaps[min(e, len(snaps) - 1)][subset] for e in epochs]
        labelled_at[algo] = [min(e, len(snaps) - 1) for e in epochs]
    return epochs, layouts, clusters, subset, labelled_at


def algos_of(histories: dict) -> list[str]:
    """The algorithms of a run's histories, in the registry's order: the report's columns."""
    return [a for a in SPECS if a in histories]


def _pair(first_of, second_of):
    """A table cell of two numbers, (first, second), or None where the run has no second."""
    return lambda h: None if second_of(h) is None else (first_of(h), second_of(h))


def summary(histories: dict, baselines: dict, fmt=None) -> list[tuple]:
    """(metric, one value per algorithm of `algos_of(histories)`) rows for the report's table;
    `fmt=lambda v: v` keeps the numbers."""

    def first(h, k):
        values = series(h, k)
        return values[0] if values else None

    rows = [
        ("kNN accuracy, random init", lambda h: h.get("monitor_init", {}).get("knn")),
        ("kNN accuracy, final", lambda h: last(h, "knn")),
        ("NMI to true classes, random init", lambda h: h.get("monitor_init", {}).get("nmi_true")),
        ("NMI to true classes, final", lambda h: last(h, "nmi_true")),
        ("AMI to true classes, final (chance-corrected)", lambda h: last(h, "ami_true")),
        ("ARI to true classes, final", lambda h: last(h, "ari_true")),
        ("clustering ACC, final", lambda h: last(h, "acc_true")),
        ("pseudo-labels (own K) to true classes: NMI / its chance level, final",
         _pair(lambda h: last(h, "nmi_pseudo_true"), lambda h: last(h, "nmi_pseudo_true_chance"))),
        ("pseudo-labels (own K) to true classes: AMI, final", lambda h: last(h, "ami_pseudo_true")),
        ("AMI(t-1, t), mean of last 5 epochs (chance-corrected stability)",
         lambda h: mean_last(h, "ami_prev")),
        ("ARI(t-1, t), mean of last 5 epochs", lambda h: mean_last(h, "ari_prev")),
        ("NMI(t-1, t), mean of last 5 epochs", lambda h: mean_last(h, "nmi_prev")),
        ("NMI(t-1, t)'s chance level, mean of last 5 epochs",
         lambda h: mean_last(h, "nmi_prev_chance")),
        ("samples reassigned per epoch, first", lambda h: first(h, "label_change")),
        ("samples reassigned per epoch, mean of last 5", lambda h: mean_last(h, "label_change")),
        ("ODC change_ratio per iteration, first / last epoch",
         _pair(lambda h: first(h, "change_ratio"), lambda h: last(h, "change_ratio"))),
        ("empty clusters, final", lambda h: last(h, "empty")),
        ("collapse alarms (epochs flagged)",
         lambda h: len(collapse.flagged(h)) if h["epoch"] else None),
        ("training time per epoch (s)", lambda h: mean_last(h, "time_train", 10**6)),
    ]
    fmt = fmt or (
        lambda v: (
            "—"
            if v is None
            else " / ".join(f"{x:.3f}" for x in v)
            if isinstance(v, tuple)
            else f"{v:.3f}"
            if isinstance(v, float)
            else str(v)
        )
    )
    out = [(name, *(fmt(f(histories[a])) for a in algos_of(histories))) for name, f in rows]
    return with_baselines(out, baselines)


BASELINE_ROWS = {  # a summary row -> (baselines.json key, the baseline's own row just below it)
    "kNN accuracy, final": ("raw_pixels_knn", "kNN accuracy on raw pixels (baseline, no training)"),
    "NMI to true classes, final": (
        "raw_pixels_nmi",
        "NMI to true classes, k-means on raw pixels (baseline)",
    ),
    "AMI to true classes, final (chance-corrected)": (
        "raw_pixels_ami",
        "AMI to true classes, k-means on raw pixels (baseline)",
    ),
}


def with_baselines(rows: list[tuple], baselines: dict) -> list[tuple]:
    """`rows` with each raw-pixel baseline as a (name, value) row of its own under the metric it is
    the bar for."""
    out = []
    for row in rows:
        out.append(row)
        key, name = BASELINE_ROWS.get(row[0], (None, None))
        if key in baselines:
            out.append((name, f"{baselines[key]:.3f}"))
    return out


# what build_report writes; every other file of a run (a dot-file aside) is something it draws from
DRAWN = ("report.html", "embeddings.npz", "*.png")


def is_current(run_path: str | Path) -> bool:
    """Whether `report.html` was written after every file it draws from changed (histories, labels,
    features, baselines, settings, evaluation): `compare --resume` on a finished run, or a second
    notebook reopening it, then skips the ~10 s of drawing. `python -m kit report RUN` always draws
    again."""
    run_path = Path(run_path)
    report = run_path / "report.html"
    if not report.is_file():
        return False
    shown = re.findall(r'src="([^":/]+\.png)"', report.read_text(errors="replace"))
    # a figure the page shows was deleted
    if not all((run_path / name).is_file() for name in shown):
        return False
    drawn = report.stat().st_mtime_ns
    for f in run_path.rglob("*"):
        if f.name.startswith(".") or "tb" in f.relative_to(run_path).parts[:-1] or not f.is_file():
            continue  # run markers, locks, temporaries; TensorBoard's event files feed no figure
        if not any(fnmatch(f.name, p) for p in DRAWN) and f.stat().st_mtime_ns > drawn:
            return False
    return True


def build_report(run_path: str | Path, log=print, umap: bool = True, figures: bool = True) -> Path:
    """Draw every figure from the saved histories and write report.html; returns its path.
    `umap=False` skips the UMAP layouts and the image-level views (the seeds after the first of a
    several-seed run). `figures=False` keeps the figures already drawn and rewrites the page around
    them (after `evaluate`, whose tables are all that changed: ~10 s of drawing saved); a missing
    one is drawn."""
    run_path = Path(run_path)
    if not run_path.is_dir():
        raise FileNotFoundError(
            f"no run folder at {run_path}: pass a folder under runs/, e.g. runs/NAME"
        )
    cfg = read_config(run_path)
    _clean_killed_writes(run_path)
    if cfg["command"] != "compare":
        raise ValueError(
            f"{run_path} is a `{cfg['command']}` run: `report` draws `kit compare` runs "
            "(python -m kit compare --name NAME)"
        )
    cfg = cfg["compare"]
    check_fields(CompareConfig, cfg, run_path / "config.json", "compare")
    if (run_path / "evaluation.json").exists():
        # a damaged one is named now, before minutes of drawing
        read_evaluation(run_path / "evaluation.json")
    if cfg.get("seeds", 1) > 1:
        return _seeded_report(run_path, cfg, log, figures)
    histories = load_histories(run_path)
    if not histories:
        raise FileNotFoundError(
            f"{run_path} holds no algorithm's history yet ({', '.join(f'{a}/' for a in SPECS)}): "
            f"finish it with python -m kit compare --name {run_path.name} --runs {run_path.parent} "
            "--resume"
        )
    baselines = read_baselines(run_path)
    # each algorithm's own K; runs from before per-algorithm K have no config in history.json, and
    # one K
    k = {
        algo: int(h.get("config", {}).get("n_clusters") or cfg["n_clusters"])
        for algo, h in histories.items()
    }
    plots.draw(run_path / "learning.png", lambda: plots.learning(histories, baselines), figures)
    plots.draw(run_path / "stability.png", lambda: plots.stability(histories), figures)
    plots.draw(run_path / "reassignment.png", lambda: plots.reassignment(histories), figures)
    plots.draw(run_path / "cluster_sizes.png", lambda: plots.cluster_sizes(histories, k), figures)
    plots.draw(run_path / "loss.png", lambda: plots.losses(histories), figures)
    t0 = time.perf_counter()
    emb = _embeddings(run_path, histories) if umap else None
    interactive = ""
    if emb is not None:
        epochs, layouts, clusters, subset, labelled_at = emb
        classes = load_dataset(cfg.get("dataset", "mnist5k"), "train", root=cfg.get("root", "data"),
                               n=cfg.get("n_train")).targets.numpy()[subset]
        plots.draw(
            run_path / "embeddings.png",
            lambda: plots.embeddings(layouts, epochs, classes, clusters, labelled_at),
            figures,
        )
        log(f"UMAP layouts in {time.perf_counter() - t0:.1f} s")
        # the flight recorder, self-contained HTML
        interactive = views.build(run_path, log=log, figures=figures)
    return _write_html(run_path, cfg, summary(histories, baselines), histories, interactive)


def _seeded_report(run_path: Path, cfg: dict, log=print, figures: bool = True) -> Path:
    """A run of several seeds: each seed's own report in its folder, then here the curves as mean
    and band and the table as mean ± std over the seeds (kit/analysis/seeds.py)."""
    folders = seeds.seed_folders(run_path)
    if not folders:
        raise FileNotFoundError(
            f"{run_path} holds no seed with a history yet: finish it with "
            f"python -m kit compare --name {run_path.name} --runs {run_path.parent} --resume"
        )
    # UMAP and the image-level views for one seed: ~10 s saved per other seed
    for i, folder in enumerate(folders):
        build_report(folder, log=log, umap=i == 0, figures=figures)
    per_seed = [load_histories(f) for f in folders]
    baselines = read_baselines(run_path)
    plots.draw(
        run_path / "learning.png",
        lambda: plots.seeded(per_seed, ("knn", "nmi_true", "ami_true"), baselines),
        figures,
    )
    plots.draw(
        run_path / "stability.png",
        lambda: plots.seeded(per_seed, ("ami_prev", "nmi_prev", "label_change")),
        figures,
    )
    values = [summary(h, {}, fmt=lambda v: v) for h in per_seed]
    names = [NAMES[a] for a in algos_of(per_seed[0])]
    rows = seeds.spread_rows(values)
    larger = []
    if len(names) == 2:  # a difference column when two algorithms are compared
        rows = [(*row, seeds.difference([r[i][1] for r in values], [r[i][2] for r in values]))
                for i, row in enumerate(rows)]
        larger = [f"{row[0]} ({names[0] if row[-1].startswith('+') else names[1]} higher)"
                  for row in rows if "larger than the spread" in row[-1]]
    links = ", ".join(f'<a href="{f.name}/report.html">{html.escape(f.name)}</a>' for f in folders)
    note = (
        (
            f"<p>{len(folders)} seeds ({', '.join(f.name for f in folders)}). The table gives mean "
            "± standard deviation over seeds (sample, n - 1)."
        )
        + (
            " A difference is called larger than the spread when the two mean ± std intervals do "
            "not overlap (|difference| > the sum of the two standard deviations); with "
            f"{len(folders)} seeds this is a rough guide, not a test. Larger than the spread here: "
            f"{html.escape('; '.join(larger) or 'none')}."
            if len(names) == 2
            else ""
        )
        + "</p>"
    )
    figs = (
        "<p>The figures draw the mean over seeds as a line, ±1 standard deviation as a band and "
        f"each seed as a thin line. Every other figure, per seed: {links} (UMAP and the "
        f"image-level views for {html.escape(folders[0].name)}; <code>python -m kit report "
        f"{html.escape(str(folders[-1]))}</code> draws them for another seed).</p>"
    )
    return _write_html(run_path, cfg, with_baselines(rows, baselines), per_seed[0], figs, note,
                       run_label=f"Its first seed ({folders[0].name})")


def html_table(header: list[str], rows, classes: list[str] | None = None) -> str:
    """An HTML table; a row shorter than the header spans its last cell over the remaining
    columns."""
    classes = classes or [""] * len(header)
    head = "".join(
        f"<th{f' class={c}' if c else ''}>{html.escape(h)}</th>" for h, c in zip(header, classes)
    )
    body = []
    for row in rows:
        cells = [f"<td>{html.escape(str(v))}</td>" for v in row]
        if len(row) < len(header):
            cells[-1] = (
                f'<td colspan="{len(header) - len(row) + 1}" class="span" '
                f'style="text-align:center">{html.escape(str(row[-1]))}</td>'
            )
        body.append(
            f"<tr{' class=baseline' if len(row) < len(header) else ''}>{''.join(cells)}</tr>"
        )
    return f"<table><tr>{head}</tr>\n" + "\n".join(body) + "</table>"


def _settings(cfg: dict, histories: dict) -> str:
    """The comparison's settings, then each algorithm's own (from its history: what it trained
    with)."""
    unset = {
        "n_clusters": "each algorithm's preset",
        "lr": "each algorithm's preset",
        "n_train": "all",
    }

    def shown(v, k=""):
        return (
            unset.get(k, "—")
            if v is None
            else ", ".join(map(str, v))
            if isinstance(v, (list, tuple))
            else v
        )

    out = "<h3>Settings</h3>\n" + html_table(
        ["setting", "value"], [(k, shown(v, k)) for k, v in cfg.items()]
    )
    own = {algo: h["config"] for algo, h in histories.items() if h.get("config")}
    if own:
        keys = list(dict.fromkeys(k for c in own.values() for k in c))
        algos = algos_of(histories)
        rows = [(k, *(shown(own[a].get(k, "—")) if a in own else "—" for a in algos)) for k in keys]
        out += (
            "\n<details><summary>Each algorithm's settings, as trained</summary>\n"
            + html_table(["setting", *(NAMES[a] for a in algos)], rows, ["", *algos])
            + "</details>"
        )
    return out


def _unequal_k(histories: dict) -> str:
    """A warning under the table when the algorithms ran with different K: their stability rows then
    compare different numbers of clusters (how many images change depends on K), so the table must
    not rank them."""
    k = {algo: h.get("config", {}).get("n_clusters") for algo, h in histories.items()}
    if len(k) < 2 or None in k.values() or len(set(k.values())) == 1:
        return ""
    ks = " and ".join(f"{NAMES[a]} K = {v}" for a, v in k.items())
    return (
        f'<p class="warn"><b>Different K</b> ({ks}): the stability rows compare different numbers '
        "of clusters, and how many images change depends on K, so they do not rank the algorithms' "
        "stability. AMI removes NMI's chance bias, not this one. For a ranking, train them at one "
        f"K: <code>python -m kit compare --n-clusters {min(k.values())}</code>.</p>"
    )


DIGIT_DATASETS = ("mnist5k", "digits")  # the datasets whose classes the guides may call digits


def _takeaway(histories: dict, run_label: str = "This run", dataset: str | None = None) -> str:
    """On the dataset the equal-K comparison was measured on, for a run of its algorithms, what it
    found (kit/analysis/findings.py: its ranking sentence and the numbers it rests on), then this
    run's own numbers beside it. A run on other data, or of other algorithms, gets none of it."""
    h = findings.headline()
    if dataset != h["dataset"] or set(histories) != set(h["knn"]):
        return ""

    def text(words):  # inside an element: an apostrophe stays one
        return html.escape(words, quote=False)

    measures = [
        ("AMI(t−1, t), last 5 epochs", "ami_prev"),
        ("images reassigned per epoch, last 5 epochs", "label_change"),
        ("kNN accuracy, final", "knn"),
        ("AMI to the true classes, last 5 epochs", findings.AGREEMENT),
    ]
    items = "".join(f"<li>{text(label)}: {text(findings.stated(h, key, 3))}</li>"
                    for label, key in measures)
    r = findings.ranking(h)
    together = ("did not come with the better features" if r["better"] not in (r["steadier"],
                "neither") else "came with the better features" if r["better"] != "neither"
                else "are not ranked on features")
    paper = h.get("odc_paper_momentum")
    momentum = "" if not paper else (
        f" ODC ran at kit's preset memory momentum; at the reference config's 0.5 its AMI(t−1, t) "
        f"is {paper['ami_prev'][0]:.3f} ± {paper['ami_prev'][1]:.3f} (otherwise the same "
        "settings).")
    this_run = findings.this_run(histories, run_label)
    return (
        f"<h3>Takeaway</h3>\n<p><b>{text(findings.ranking_sentence(h))}</b> Measured on "
        f"{text(h['dataset'])}, all at K = {h['n_clusters']} for {h['epochs']} epochs, mean ± std "
        f"over {len(h['seeds'])} seeds (<code>{text(h['source'])}</code>; bench/equal_k.md in "
        f"kit's repository):</p>\n<ul>{items}</ul>\n<p>Here, the steadier labels {together}; the "
        "algorithms differ in more than how they update labels (the comparison's settings are "
        f"the presets at that K, bench/presets.md; this run's are below).{text(momentum)}</p>\n"
        f"<p>{text(this_run)}</p>"
    )


def guide(name: str, dataset: str | None = None) -> str:
    """How to read figure `name`, in words for `dataset`: its classes are digits only on the digit
    datasets."""
    text = GUIDES.get(name, "")
    if dataset in DIGIT_DATASETS:
        return text
    return re.sub(r"\bdigit(s?)\b", lambda m: "classes" if m.group(1) else "class", text)


def _alarms(histories: dict) -> str:
    """The report's collapse section: every epoch that crossed a threshold of kit/parts/collapse.py,
    or a line saying none did."""
    rows = [(NAMES.get(algo, algo), epoch + 1, "; ".join(collapse.SYMPTOMS[s] for s in found))
            for algo, h in histories.items() for epoch, found in collapse.flagged(h)]
    rule = (
        f"Thresholds: loss above {collapse.LOSS_EXPLODING:g} ln K in any epoch, or above "
        f"{collapse.LOSS_NEAR_CHANCE:g} ln K for two epochs after the first; the largest cluster "
        f"over {collapse.LARGEST_SHARE:.0%} of the images; fewer than "
        f"{collapse.NONEMPTY_SHARE:.0%} of the clusters non-empty; the std of the L2-normalised "
        f"features below {collapse.FEATURE_STD_RATIO:g} / sqrt(D); RankMe below "
        f"{collapse.RANKME_MIN:g}."
    )
    if not rows:
        return (f"<h3>Collapse alarm</h3>\n<p>No epoch crossed a collapse threshold. "
                f"{html.escape(rule)}</p>")
    return (
        f'<h3 class="alarm">Collapse alarm: {len(rows)} epoch{"s" * (len(rows) > 1)} flagged</h3>\n'
        f"<p>{html.escape(rule)} {html.escape(collapse.CAUSES.capitalize())}.</p>\n"
        + html_table(["algorithm", "epoch", "symptoms"], rows)
    )


def stale_evaluation(run_path: Path, scored: dict) -> str:
    """A warning when `evaluation.json` scored weights older than the run's checkpoints hold now
    (`compare --resume` trained on after `evaluate`); nothing when they match, or the file predates
    the record, or a checkpoint cannot be read (the evaluation itself would then say so)."""
    from .evaluate_run import trained_epochs

    def now(algo: str) -> int | None:
        try:
            return trained_epochs(run_path / algo)
        except Exception:  # noqa: BLE001 - missing or damaged: nothing to compare with
            return None

    old = [
        f"{name}'s after epoch {scored[name]['weights']['epoch']}; the run has since trained to "
        f"epoch {at}"
        for algo, name in NAMES.items()
        if isinstance(scored.get(name, {}).get("weights"), dict)
        and (at := now(algo)) is not None
        and scored[name]["weights"].get("epoch") != at
    ]
    if not old:
        return ""
    return (
        f'<p class="warn">These tables scored older weights ({"; ".join(old)}): run '
        f"<code>python -m kit evaluate {html.escape(str(run_path))}</code> again for today's.</p>\n"
    )


def _write_html(
    run_path: Path,
    cfg: dict,
    rows,
    histories: dict,
    interactive: str = "",
    note: str = "",
    run_label: str = "This run",
) -> Path:
    algos = algos_of(histories)
    names = [NAMES[a] for a in algos]
    header = ["metric", *names] + (
        [" − ".join(names)] if rows and len(rows[0]) > len(algos) + 1 else []
    )
    table = html_table(header, rows, ["", *algos, ""])
    colours = "".join(f"th.{a} {{ color: {SPECS[a].colour} }}\n" for a in algos)
    figs = "\n".join(
        f'<figure><img src="{name}" alt="{name}"><figcaption><p><b>{html.escape(cap)}</b> '
        f"{html.escape(guide(name, cfg.get('dataset')))}</p></figcaption></figure>"
        for name, cap in FIGURES.items()
        if (run_path / name).exists()
    )
    evaluation = run_path / "evaluation.json"
    # written by `python -m kit evaluate`; evaluation.md holds the same tables
    if evaluation.exists():
        from ..views.evaluation import tables

        scored = read_evaluation(evaluation)
        figs += (
            "\n<h2>Evaluation protocols</h2>\n"
            + stale_evaluation(run_path, scored)
            + "\n".join(
                f"<h3>{html.escape(title)}</h3>\n{html_table(header, rows)}"
                for title, header, rows in tables(scored)
            )
        )
    css = STYLE + colours
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>kit: {" vs ".join(names)}</title>
<style>{css}</style></head><body>
<h1>{" vs ".join(names)}</h1>
<p>Same backbone, data, seed and epoch budget; K, learning rate and each algorithm's own knobs are
its preset unless set for all (settings below). Scores are on the held-out test split.</p>
{table}
{note}
{_unequal_k(histories)}
{_takeaway(histories, run_label, cfg.get("dataset"))}
{_alarms(histories)}
{_settings(cfg, histories)}
{interactive}
{figs}
</body></html>"""
    out = run_path / "report.html"
    atomic_write_bytes(out, page.encode())
    return out
