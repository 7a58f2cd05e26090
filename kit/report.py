"""Rebuild every figure and `report.html` from a saved comparison run (`python -m kit report RUN`)."""
from __future__ import annotations

import html
import time
from pathlib import Path

import numpy as np

from . import plots, seeds
from .data import load_dataset
from .runs import Run, atomic_write_bytes, atomic_write_npz, read_config, read_json
from .views import build as views

FIGURES = {
    "learning.png": "Do they learn? kNN accuracy and NMI to the true classes (epoch 0 = random init).",
    "stability.png": "How stable are the labels? NMI between consecutive epochs and the fraction of samples that changed cluster.",
    "reassignment.png": "ODC relabels a little every iteration; DeepCluster re-clusters everything once per epoch.",
    "cluster_sizes.png": "Cluster-size distributions at the start, middle and end of training.",
    "loss.png": "Training loss per iteration.",
    "embeddings.png": "UMAP of the same images across epochs (each layout starts from the previous one), coloured by true class and by cluster.",
}
FIGURES.update(views.FIGURES)  # the image-level views: flows, clusters as images (kit/views/)


def load_histories(run_path: str | Path) -> dict[str, dict]:
    run_path = Path(run_path)
    return {algo: Run(run_path / algo).load_history() for algo in ("deepcluster", "odc")
            if (run_path / algo / "history.json").exists()}


def _embeddings(run_path: Path, histories: dict) -> tuple[list[int], dict, dict, np.ndarray] | None:
    """Aligned UMAP layouts per algorithm (computed once, then read from embeddings.npz)."""
    from . import embed

    feats = {a: dict(np.load(run_path / a / "embed_features.npz")) for a in histories
             if (run_path / a / "embed_features.npz").exists()}
    if not feats:
        return None
    epochs = sorted(set.intersection(*[{int(k[6:]) for k in f if k.startswith("epoch_")} for f in feats.values()]))
    subset = next(iter(feats.values()))["subset"]
    cache = run_path / "embeddings.npz"
    key = lambda a, e: f"{a}_{e:04d}"  # noqa: E731
    layouts: dict[str, list[np.ndarray]] = {}
    stored = dict(np.load(cache)) if cache.exists() else {}
    for algo, f in feats.items():
        if all(key(algo, e) in stored for e in epochs):
            layouts[algo] = [stored[key(algo, e)] for e in epochs]
        else:
            layouts[algo] = embed.aligned_embeddings([f[f"epoch_{e:04d}"] for e in epochs])
            stored.update({key(algo, e): y for e, y in zip(epochs, layouts[algo])})
    atomic_write_npz(cache, **stored)
    clusters = {}
    for algo, h in histories.items():
        snaps = h.get("labels", [])
        clusters[algo] = [snaps[min(e, len(snaps) - 1)][subset] for e in epochs]  # labels of those features
    return epochs, layouts, clusters, subset


def summary(histories: dict, baselines: dict, fmt=None) -> list[tuple[str, str, str]]:
    """(metric, DeepCluster, ODC) rows for the report's table; `fmt=lambda v: v` keeps the numbers."""
    def last(h, k):
        vals = [r[k] for r in h["epoch"] if r.get(k) is not None]
        return vals[-1] if vals else None

    def mean_last(h, k, n=5):
        vals = [r[k] for r in h["epoch"] if r.get(k) is not None][-n:]
        return float(np.mean(vals)) if vals else None

    def first(h, k):
        vals = [r[k] for r in h["epoch"] if r.get(k) is not None]
        return vals[0] if vals else None

    rows = [
        ("kNN accuracy, random init", lambda h: h.get("monitor_init", {}).get("knn")),
        ("kNN accuracy, final", lambda h: last(h, "knn")),
        ("NMI to true classes, random init", lambda h: h.get("monitor_init", {}).get("nmi_true")),
        ("NMI to true classes, final", lambda h: last(h, "nmi_true")),
        ("clustering ACC, final", lambda h: last(h, "acc_true")),
        ("NMI(t-1, t), mean of last 5 epochs", lambda h: mean_last(h, "nmi_prev")),
        ("samples reassigned per epoch, first", lambda h: first(h, "label_change")),
        ("samples reassigned per epoch, mean of last 5", lambda h: mean_last(h, "label_change")),
        ("ODC change_ratio per iteration, first / last epoch",
         lambda h: None if first(h, "change_ratio") is None else (first(h, "change_ratio"), last(h, "change_ratio"))),
        ("empty clusters, final", lambda h: last(h, "empty")),
        ("training time per epoch (s)", lambda h: mean_last(h, "time_train", 10**6)),
    ]
    fmt = fmt or (lambda v: "—" if v is None else " / ".join(f"{x:.3f}" for x in v) if isinstance(v, tuple)  # noqa: E731
                  else f"{v:.3f}" if isinstance(v, float) else str(v))
    out = [(name, fmt(f(histories["deepcluster"])) if "deepcluster" in histories else "—",
            fmt(f(histories["odc"])) if "odc" in histories else "—") for name, f in rows]
    if baselines:
        out.append(("k-means / kNN on raw pixels (baseline)",
                    f"NMI {baselines['raw_pixels_nmi']:.3f}", f"kNN {baselines['raw_pixels_knn']:.3f}"))
    return out


def build_report(run_path: str | Path, log=print) -> Path:
    """Draw every figure from the saved histories and write report.html; returns its path."""
    run_path = Path(run_path)
    if not run_path.is_dir():
        raise FileNotFoundError(f"no run folder at {run_path}: pass a folder under runs/, e.g. runs/NAME")
    cfg = read_config(run_path)
    if cfg["command"] != "compare":
        raise ValueError(f"{run_path} is a `{cfg['command']}` run: `report` draws `kit compare` runs "
                         "(python -m kit compare --name NAME)")
    cfg = cfg["compare"]
    if cfg.get("seeds", 1) > 1:
        return _seeded_report(run_path, cfg, log)
    histories = load_histories(run_path)
    if not histories:
        raise FileNotFoundError(f"{run_path} holds no deepcluster/ or odc/ history yet: finish it with "
                                f"python -m kit compare --name {run_path.name} --runs {run_path.parent} --resume")
    baselines = read_json(run_path / "baselines.json") if (run_path / "baselines.json").exists() else {}
    k = {algo: int(cfg.get("n_clusters", 100)) for algo in histories}
    plots.save(plots.learning(histories, baselines), run_path / "learning.png")
    plots.save(plots.stability(histories), run_path / "stability.png")
    plots.save(plots.reassignment(histories), run_path / "reassignment.png")
    plots.save(plots.cluster_sizes(histories, k), run_path / "cluster_sizes.png")
    plots.save(plots.losses(histories), run_path / "loss.png")
    t0 = time.perf_counter()
    emb = _embeddings(run_path, histories)
    interactive = ""
    if emb is not None:
        epochs, layouts, clusters, subset = emb
        classes = load_dataset(cfg.get("dataset", "mnist5k"), "train", root=cfg.get("root", "data"),
                               n=cfg.get("n_train")).targets.numpy()[subset]
        plots.save(plots.embeddings(layouts, epochs, classes, clusters), run_path / "embeddings.png")
        log(f"UMAP layouts in {time.perf_counter() - t0:.1f} s")
        interactive = views.build(run_path, log=log)  # the flight recorder, self-contained HTML
    return _write_html(run_path, cfg, summary(histories, baselines), interactive)


def _seeded_report(run_path: Path, cfg: dict, log=print) -> Path:
    """A run of several seeds: each seed's own report in its folder, then here the curves as mean and
    band and the table as mean ± std over the seeds (kit/seeds.py)."""
    folders = seeds.seed_folders(run_path)
    if not folders:
        raise FileNotFoundError(f"{run_path} holds no seed with a history yet: finish it with "
                                f"python -m kit compare --name {run_path.name} --runs {run_path.parent} --resume")
    for folder in folders:
        build_report(folder, log=log)
    per_seed = [load_histories(f) for f in folders]
    baselines = read_json(run_path / "baselines.json") if (run_path / "baselines.json").exists() else {}
    plots.save(plots.seeded(per_seed, ("knn", "nmi_true"), baselines), run_path / "learning.png")
    plots.save(plots.seeded(per_seed, ("nmi_prev", "label_change")), run_path / "stability.png")
    rows = seeds.spread_rows([summary(h, {}, fmt=lambda v: v) for h in per_seed])
    rows += summary(per_seed[0], baselines)[len(rows):]  # the raw-pixel baseline: the same for every seed
    links = ", ".join(f'<a href="{f.name}/report.html">{html.escape(f.name)}</a>' for f in folders)
    note = (f"<p>{len(folders)} seeds. The table gives mean ± standard deviation over seeds (sample, n - 1); the "
            f"figures draw the mean as a line, ±1 standard deviation as a band and each seed as a thin line. "
            f"Every other figure, per seed: {links}.</p>")
    return _write_html(run_path, cfg, rows, note)


def _write_html(run_path: Path, cfg: dict, rows, interactive: str = "") -> Path:
    table = "\n".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td>{html.escape(c)}</td></tr>" for a, b, c in rows)
    figs = "\n".join(f'<figure><img src="{name}" alt="{name}"><figcaption>{html.escape(cap)}</figcaption></figure>'
                     for name, cap in FIGURES.items() if (run_path / name).exists())
    settings = html.escape(", ".join(f"{k}={v}" for k, v in cfg.items()))
    evaluation = run_path / "evaluation.md"
    if evaluation.exists():  # written by `python -m kit evaluate`
        figs += f"\n<h2>Evaluation protocols</h2>\n<pre>{html.escape(evaluation.read_text())}</pre>"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>kit: DeepCluster vs ODC</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
td:first-child{{text-align:left}}img{{max-width:100%}}figure{{margin:2em 0}}
th.dc{{color:#1f77b4}}th.odc{{color:#ff7f0e}}</style></head><body>
<h1>DeepCluster vs Online Deep Clustering</h1>
<p>Same backbone, data, seed and epoch budget. Settings: {settings}.</p>
<table><tr><th>metric</th><th class="dc">DeepCluster</th><th class="odc">ODC</th></tr>
{table}</table>
{interactive}
{figs}
</body></html>"""
    out = run_path / "report.html"
    atomic_write_bytes(out, page.encode())
    return out
