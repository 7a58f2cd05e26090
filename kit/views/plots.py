"""Figures: pure functions from histories to matplotlib Figures, both algorithms on shared axes.

One colour per algorithm everywhere: DeepCluster blue, ODC orange. The x-axis counts epochs of
training behind each value: 0 is the untrained network.
Uses matplotlib's object API (no pyplot state), so figures can be built in a worker thread.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, ScalarFormatter

from ..algorithms import NAMES, SPECS
from ..analysis import flows
from . import palette
from .palette import COLOURS

PLAIN = "#1f77b4"  # one colour where a figure shows no algorithm's run (a spectrum, bars)


def legend_name(algo: str, h: dict | None = None) -> str:
    """The algorithm's name with its K ("ODC (K = 30)"): two runs at different K are not compared
    like for like, so every legend says which K each line had (a history saved before configs were
    kept shows the name only)."""
    k = (h or {}).get("config", {}).get("n_clusters")
    return f"{NAMES[algo]} (K = {k})" if k else NAMES[algo]


# The metrics of an epoch's labels. An algorithm that clusters at the *start* of epoch t
# (DeepCluster, `Spec.labels_at_epoch_start`) has them after t epochs of training, so they belong at
# x = t; everything measured after an epoch (ODC's labels, losses, the monitor) belongs at
# x = t + 1. x is always "epochs of training behind the value".
LABEL_METRICS = (
    "nmi_prev",
    "nmi_prev_chance",
    "ami_prev",
    "ari_prev",
    "label_change",
    "nmi_pseudo_true",
    "nmi_pseudo_true_chance",
    "ami_pseudo_true",
    "ari_pseudo_true",
    "empty",
    "min_size",
    "max_size",
    "largest_share",
    "nonempty",
    "feature_std_ratio",
    "rankme",
)


def at_epoch_start(h: dict) -> bool:
    """Whether a history's label metrics describe the labels clustered at each epoch's start."""
    spec = SPECS.get(h.get("algo", ""))
    return bool(spec and spec.labels_at_epoch_start)


def epoch_series(h: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, values) of `key` over a history's epochs that have it, x the epochs of training behind
    each value."""
    shift = 0 if key in LABEL_METRICS and at_epoch_start(h) else 1
    pts = [(r["epoch"] + shift, r[key]) for r in h["epoch"] if r.get(key) is not None]
    return (
        (np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
        if pts
        else (np.array([]), np.array([]))
    )


def _smooth(y: np.ndarray, w: int) -> np.ndarray:
    if len(y) < w or w <= 1:
        return y
    return np.convolve(y, np.ones(w) / w, mode="valid")


def smoothed(y: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(iteration, running mean) with each mean placed at the last iteration it covers."""
    ys = _smooth(y, w)
    return np.arange(len(ys)) + (len(y) - len(ys)) + 1, ys


def note(ax, text: str) -> None:
    """A grey line in the middle of an axis that has nothing to draw yet, or cannot."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="grey",
            fontsize=9)


def style_axes(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def chance_floor(
    ax, h: dict, key: str, colour: str, label: str | None = "chance level (one side shuffled)"
) -> None:
    """The chance level of an NMI curve, dotted in its colour: the NMI of the same two labellings
    with one shuffled (`metrics.nmi_chance`, stored as `<key>_chance`). It climbs with K, so it is
    drawn wherever NMI is."""
    x, y = with_init(h, key + "_chance")
    if len(x):
        ax.plot(x, y, ":", lw=1.4, color=colour, label=label)


def stability(histories: dict[str, dict]) -> Figure:
    """AMI(t-1, t) between consecutive epochs' labels (chance-corrected: 0 = no more agreement than
    chance, at any K), NMI(t-1, t) with its chance level, and the fraction of samples that changed
    cluster between epochs (after matching cluster ids)."""
    fig = Figure(figsize=(14, 3.8), layout="constrained")
    a, n, b = fig.subplots(1, 3)
    for algo, h in histories.items():
        a.plot(
            *epoch_series(h, "ami_prev"),
            "o-",
            ms=3,
            color=COLOURS[algo],
            label=legend_name(algo, h),
        )
        n.plot(
            *epoch_series(h, "nmi_prev"),
            "o-",
            ms=3,
            color=COLOURS[algo],
            label=legend_name(algo, h),
        )
        chance_floor(n, h, "nmi_prev", COLOURS[algo], f"{legend_name(algo, h)}: chance level")
        b.plot(
            *epoch_series(h, "label_change"),
            "o-",
            ms=3,
            color=COLOURS[algo],
            label=legend_name(algo, h),
        )
    style_axes(
        a, "Stability, chance-corrected: AMI(t-1, t)", "epoch", "AMI (0 = chance, 1 = same labels)"
    )
    style_axes(n, "NMI(t-1, t), dotted: its chance level", "epoch", "NMI(t-1, t)")
    style_axes(
        b, "Samples that changed cluster since the last epoch", "epoch", "fraction of samples"
    )
    for ax in (a, n, b):
        ax.set_ylim(0, 1)
    a.legend()
    n.legend(fontsize=9)
    return fig


def reassignment(histories: dict[str, dict], smooth: int = 10) -> Figure:
    """Label reassignment: per iteration where an algorithm records it (ODC's change_ratio), every
    one per epoch."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    a, b = fig.subplots(1, 2)
    per_step = [(algo, SPECS[algo].reassigned_per_step) for algo in histories
                if algo in SPECS and SPECS[algo].reassigned_per_step]
    for algo, key in per_step:
        if not histories[algo]["step"].get(key):
            continue
        r = np.asarray(histories[algo]["step"][key])
        ep = np.asarray(histories[algo]["step"]["epoch"])
        per_epoch = len(r) / max(len(set(ep.tolist())), 1)
        x = (np.arange(len(r)) + 1) / per_epoch
        a.plot(x, r, color=COLOURS[algo], alpha=0.25, lw=0.8)
        it, mean = smoothed(r, smooth)
        a.plot(it / per_epoch, mean, color=COLOURS[algo],
               label=f"{legend_name(algo, histories[algo])} {key} ({smooth}-iteration mean)")
        a.legend()
    who = " and ".join(NAMES[algo] for algo, _ in per_step) or " and ".join(
        NAMES[s.name] for s in SPECS.values() if s.reassigned_per_step)
    style_axes(a, f"{who}: batch labels changed per iteration", "epoch", "fraction of the batch")
    a.set_ylim(0, 1)
    for algo, h in histories.items():
        b.plot(
            *epoch_series(h, "label_change"),
            "o-",
            ms=3,
            color=COLOURS[algo],
            label=legend_name(algo, h),
        )
    style_axes(b, "Per epoch: samples reassigned (ids matched)", "epoch", "fraction of samples")
    b.set_ylim(0, 1)
    b.legend()
    return fig


def cluster_sizes(histories: dict[str, dict], n_clusters: dict[str, int]) -> Figure:
    """Sorted cluster sizes at a few epochs (log scale), one panel per algorithm, both on one y
    axis."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, len(histories), squeeze=False, sharey=True)[0]
    for ax, (algo, h) in zip(axes, histories.items()):
        snaps = h.get("labels", [])
        picks = sorted({0, len(snaps) // 2, len(snaps) - 1}) if snaps else []
        for j, i in enumerate(picks):  # snapshot i of either algorithm follows i epochs of training
            sizes = np.sort(np.bincount(snaps[i], minlength=n_clusters[algo]))[::-1]
            # the line style says when, the colour who
            style = (":", "--", "-")[j] if len(picks) == 3 else "-"
            label = "initial k-means (untrained)" if i == 0 else f"after {i} epoch{'s' * (i != 1)}"
            ax.plot(
                np.arange(1, len(sizes) + 1),
                np.maximum(sizes, 0.8),
                style,
                lw=1.8,
                color=COLOURS[algo],
                alpha=0.55 + 0.45 * j / max(len(picks) - 1, 1),
                label=label,
            )
        ax.set_yscale("log")
        # 10, 20, 50, 100, ...: sizes read off the axis
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ylabel = "members (log)" if ax is axes[0] else ""  # the axis is shared
        style_axes(
            ax,
            f"{NAMES[algo]} (K = {n_clusters[algo]}): cluster sizes, largest first",
            "cluster rank",
            ylabel,
        )
        ax.legend(fontsize=9)
    return fig


def learning(histories: dict[str, dict], baselines: dict | None = None) -> Figure:
    """kNN accuracy, NMI (with its chance level) and AMI to the true classes over epochs
    (epoch 0 = random init)."""
    fig = Figure(figsize=(14, 3.8), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    for ax, key, title in (
        (a, "knn", "kNN accuracy (eval split)"),
        (b, "nmi_true", "NMI to true classes (eval split)"),
        (c, "ami_true", "AMI to true classes (chance-corrected)"),
    ):
        for algo, h in histories.items():
            x, y = with_init(h, key)
            ax.plot(x, y, "o-", ms=3, color=COLOURS[algo], label=legend_name(algo, h))
            # a 10-means of the features against the classes: its chance level, not the run's K's
            if key == "nmi_true":
                chance_floor(ax, h, key, COLOURS[algo], f"{NAMES[algo]}: chance level")
        raw_pixels_line(ax, key, baselines)
        style_axes(
            ax, title, "epoch", {"knn": "accuracy", "nmi_true": "NMI", "ami_true": "AMI"}[key]
        )
        if not any(len(line.get_xdata()) for line in ax.lines):  # a run from before kit logged it
            note(ax, f"not in this run's history:\nthe run predates kit's {key}")
            ax.set_xticks([])
            ax.set_yticks([])
        # below: clear of curves
        ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    return fig


def losses(histories: dict[str, dict], smooth: int = 20) -> Figure:
    """Training loss per iteration (running mean), against epochs."""
    fig = Figure(figsize=(6, 3.8), layout="constrained")
    ax = fig.subplots()
    for algo, h in histories.items():
        y = np.asarray(h["step"].get("loss", []))
        if not len(y):
            continue
        ep = np.asarray(h["step"]["epoch"])
        per_epoch = len(y) / max(len(set(ep.tolist())), 1)
        it, ys = smoothed(y, smooth)
        ax.plot(
            it / per_epoch,
            ys,
            color=COLOURS[algo],
            label=f"{legend_name(algo, h)} ({SPECS[algo].loss})",
        )
    style_axes(
        ax, "Training loss (the head is reset every DeepCluster epoch)", "epoch", "cross-entropy"
    )
    ax.legend()
    return fig


def embeddings(
    layouts: dict[str, list[np.ndarray]],
    epochs: list[int],
    classes: np.ndarray,
    clusters: dict[str, list[np.ndarray]],
    labelled_at: dict[str, list[int]] | None = None,
) -> Figure:
    """UMAP layouts side by side: rows = algorithm x (true class, cluster), columns = epochs. Up to
    30 clusters each has a colour of its own (`palette.cluster_colours`); above 30 each point takes
    the colour of its cluster's majority class, and the figure says so. `labelled_at[algo][c]`: the
    epoch whose clustering colours column c where it is not that column's (DeepCluster's last
    k-means is the one at the start of its last epoch)."""
    algos = list(layouts)
    fig = Figure(figsize=(3 * len(epochs), 2.9 * 2 * len(algos) + 0.4), layout="constrained")
    axes = fig.subplots(2 * len(algos), len(epochs), squeeze=False)
    by_class = []
    for r, algo in enumerate(algos):
        k = max(int(c.max()) for c in clusters[algo]) + 1
        if palette.cluster_colours(k) is None:
            by_class.append(f"{NAMES[algo]} K = {k}")
        for c, ep in enumerate(epochs):
            for row, (colours, what) in enumerate(
                (
                    (palette.class_colours(classes), " true class"),
                    _cluster_colours(clusters[algo][c], classes, k),
                )
            ):
                ax = axes[2 * r + row, c]
                # big enough to show a colour
                ax.scatter(*layouts[algo][c].T, c=colours, s=5, linewidths=0)
                ax.set_xticks([])
                ax.set_yticks([])
                at = (labelled_at or {}).get(algo, epochs)[c]
                when = f" (of epoch {at})" if row == 1 and at != ep else ""
                ax.set_title(f"{NAMES[algo]}, epoch {ep}:{what}{when}", fontsize=9,
                             color=palette.text_colour(COLOURS[algo]))
    if by_class:
        fig.suptitle(
            f"{', '.join(by_class)}: more clusters than colours a reader can tell apart (30), so "
            "in a cluster row each point\ntakes the colour of its cluster's majority true class",
            fontsize=10,
        )
    return fig


def _cluster_colours(labels: np.ndarray, classes: np.ndarray, k: int) -> tuple[list[str], str]:
    """A colour per point and what it shows (the end of the panel's title): its cluster's own colour
    (K <= 30), or its cluster's majority class's (on a line of its own: the panel is narrow)."""
    colours = palette.cluster_colours(k)
    if colours is not None:
        return [colours[i] for i in labels], " cluster"
    major = flows.majority_class(labels, classes, k)[0]  # (K,)
    return palette.class_colours(major[labels]), "\ncolour of its cluster's majority class"


# -- several seeds, and sweeps: a mean with a band ----------------------------------------------
PANELS = {  # a history key -> (panel title, y label) of the seeded curves
    "knn": ("kNN accuracy (eval split)", "accuracy"),
    "nmi_true": ("NMI to true classes (eval split)", "NMI"),
    "ami_true": ("AMI to true classes (chance-corrected)", "AMI"),
    "ami_prev": ("Stability, chance-corrected: AMI(t-1, t)", "AMI (0 = chance)"),
    "nmi_prev": ("NMI(t-1, t), dotted: its chance level", "NMI(t-1, t)"),
    "label_change": ("Samples that changed cluster since the last epoch", "fraction of samples"),
}
_BASELINES = {
    "knn": ("raw_pixels_knn", "kNN on raw pixels"),
    "nmi_true": ("raw_pixels_nmi", "k-means on raw pixels"),
    "ami_true": ("raw_pixels_ami", "k-means on raw pixels"),
}


def raw_pixels_line(ax, key: str, baselines: dict | None) -> None:
    """The same measure on raw pixels (baselines.json), grey and dashed, on a panel of `key` where
    there is one."""
    floor, label = _BASELINES.get(key, ("", ""))
    if baselines and floor in baselines:
        ax.axhline(baselines[floor], color="grey", ls="--", lw=1, label=label)


def with_init(h: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    """`epoch_series`, with the untrained network's monitor value at x = 0 where there is one."""
    x, y = epoch_series(h, key)
    init = h.get("monitor_init", {}).get(key)
    return (np.r_[0, x], np.r_[init, y]) if init is not None else (x, y)


def _band(ax, curves: list[tuple[np.ndarray, np.ndarray]], colour: str, label: str) -> None:
    """Several seeds' (x, y) curves: each one thin, and at the x values all of them have, their mean
    as a line and ±1 sample standard deviation (n - 1; none for one curve) as a band."""
    common = sorted(set.intersection(*[set(np.asarray(x).tolist()) for x, _ in curves]))
    ys = np.array(
        [[dict(zip(np.asarray(x).tolist(), y))[c] for c in common] for x, y in curves], dtype=float
    )
    mean = ys.mean(0)  # (T,)
    std = ys.std(0, ddof=1) if len(ys) > 1 else np.zeros_like(mean)
    for x, y in curves:
        ax.plot(x, y, color=colour, lw=0.7, alpha=0.35)
    ax.fill_between(common, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
    ax.plot(
        common,
        mean,
        "o-",
        ms=3,
        color=colour,
        label=f"{label} ({len(curves)} seed{'s' * (len(curves) > 1)})",
    )


def seeded(
    per_seed: list[dict[str, dict]], keys=("knn", "nmi_true"), baselines: dict | None = None
) -> Figure:
    """`learning` (keys knn, nmi_true) or `stability` (nmi_prev, label_change) over several seeds:
    per algorithm the mean over seeds as a line, ±1 standard deviation as a band, each seed thin.
    `per_seed` holds one {algo: history} per seed."""
    fig = Figure(figsize=(5 * len(keys), 3.8), layout="constrained")
    for ax, key in zip(fig.subplots(1, len(keys), squeeze=False)[0], keys):
        for algo in NAMES:
            curves = [
                c for c in (with_init(h[algo], key) for h in per_seed if algo in h) if len(c[0])
            ]
            if curves:
                _band(
                    ax,
                    curves,
                    COLOURS[algo],
                    legend_name(algo, next(h[algo] for h in per_seed if algo in h)),
                )
            floors = [
                c
                for c in (with_init(h[algo], key + "_chance") for h in per_seed if algo in h)
                if len(c[0])
            ]
            if key.startswith("nmi") and floors:  # the chance level, as the mean over seeds
                common = sorted(set.intersection(*[set(x.tolist()) for x, _ in floors]))
                ax.plot(
                    common,
                    [np.mean([dict(zip(x.tolist(), y))[c] for x, y in floors]) for c in common],
                    ":",
                    color=COLOURS[algo],
                    lw=1.4,
                    label=f"{NAMES[algo]}: chance level",
                )
        raw_pixels_line(ax, key, baselines)
        style_axes(ax, PANELS[key][0], "epoch", PANELS[key][1])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key in ("nmi_prev", "ami_prev", "label_change"):
            ax.set_ylim(0, 1)
        ax.legend(fontsize=9)
    fig.suptitle(
        f"{len(per_seed)} seeds: mean (line), ±1 standard deviation (band, n - 1), "
        "each seed (thin)",
        fontsize=10,
    )
    return fig


def sweep(curves: dict[str, dict[str, dict[str, list]]], titles: dict[str, str]) -> Figure:
    """Final metrics against each swept setting: a column per setting, a row per metric in `titles`.
    `curves[setting][metric][algo]` holds one (values, metric) curve per seed, drawn as `seeded`
    draws epochs: mean over seeds, ±1 standard deviation band, each seed thin. A metric "<m>_chance"
    in `titles` is not a row of its own: it is drawn dotted on the row of <m>, as that metric's
    chance level."""
    settings = list(curves)
    titles = {m: t for m, t in titles.items() if not m.endswith("_chance")}
    fig = Figure(figsize=(3.8 * len(settings), 2.8 * len(titles)), layout="constrained")
    axes = fig.subplots(len(titles), len(settings), squeeze=False)
    for c, setting in enumerate(settings):
        for r, metric in enumerate(titles):
            ax = axes[r, c]
            # {} where no cell has the metric (one epoch: no NMI(t-1, t))
            drawn = curves[setting].get(metric, {})
            for algo, seeds in drawn.items():
                _band(ax, seeds, COLOURS[algo], NAMES[algo])
            # the mean over seeds, dotted
            for algo, seeds in curves[setting].get(metric + "_chance", {}).items():
                ax.plot(
                    seeds[0][0],
                    np.mean([y for _, y in seeds], axis=0),
                    ":",
                    lw=1.4,
                    color=COLOURS[algo],
                    label=f"{NAMES[algo]}: chance level",
                )
            xs = sorted({v for seeds in drawn.values() for x, _ in seeds for v in x})
            if xs and xs[0] > 0 and xs[-1] >= 10 * xs[0]:  # K and lr span decades
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(ScalarFormatter())
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xticks(xs)
            style_axes(ax, "", setting, titles[metric])
    axes[0, 0].legend(fontsize=9)
    return fig


def save(fig: Figure, path) -> None:
    """Write a figure atomically in the format its extension names: .png at 110 dpi (96 on screen),
    or .svg / .pdf as vector graphics for slides. No pyplot; no date in the metadata."""
    import io

    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ..store.files import atomic_write_bytes

    kind = Path(path).suffix.lower().lstrip(".")
    if kind == "png":
        atomic_write_bytes(path, png(fig, dpi=110))
        return
    meta = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}
    if kind not in meta:
        raise ValueError(f"cannot save a figure as {Path(path).name!r}: name it .png, .svg or .pdf")
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    with rc_context({"svg.hashsalt": "kit"}):  # fixed element ids, so a saved SVG is reproducible
        fig.savefig(buf, format=kind, metadata=meta[kind])
    atomic_write_bytes(path, buf.getvalue())


# -- teaching figures for the walkthrough notebooks ---------------------------------------------
def spectrum(before: np.ndarray, after: np.ndarray) -> Figure:
    """Eigenvalues of the feature covariance before and after PCA-whitening (log scale)."""
    fig = Figure(figsize=(10, 3.5), layout="constrained")
    # one scale: whitening turns the slope into a flat line at 1
    a, b = fig.subplots(1, 2, sharey=True)
    for ax, x, title in ((a, before, "raw features"), (b, after, "PCA-whitened")):
        ev = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False)))[::-1]
        ax.semilogy(np.arange(1, len(ev) + 1), np.maximum(ev, 1e-12), color=PLAIN)
        style_axes(ax, f"Covariance spectrum: {title}", "component", "eigenvalue (log)")
    return fig


def bars(values, title: str, xlabel: str, ylabel: str, sort: bool = True, colour: str | None = None,
         hline: float | None = None) -> Figure:
    """A bar chart of one value per cluster (sizes, draws, weights), largest first if `sort`."""
    v = np.asarray(values, dtype=float)
    v = np.sort(v)[::-1] if sort else v
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.bar(np.arange(len(v)), v, width=0.8, color=colour or PLAIN)  # gaps: each bar reads as one
    if hline is not None:
        ax.axhline(hline, color="black", ls="--", lw=1)
    style_axes(ax, title, xlabel, ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # a cluster's rank is a whole number
    if np.allclose(v, np.round(v)):  # sizes and draws are counts; weights stay fractional
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def images(
    imgs: np.ndarray, titles: list[str] | None = None, cols: int = 10, title: str = ""
) -> Figure:
    """A grid of images (N, C, H, W) in [0, 1] or uint8."""
    imgs = np.asarray(imgs)
    rows = int(np.ceil(len(imgs) / cols))
    fig = Figure(figsize=(1.1 * cols, 1.25 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(imgs):
            im = imgs[i].transpose(1, 2, 0)
            ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray")
            if titles:
                ax.set_title(titles[i], fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def draw(path: str | Path, make, again: bool = True) -> None:
    """Save the figure `make()` returns at `path`; with `again` off, only if the file is not there
    yet (the report's page rewritten around figures already drawn)."""
    if again or not Path(path).exists():
        save(make(), path)


def png(
    fig: Figure, dpi: int = 96  # 96: a CSS inch, so a 9-pt font shows at 9 pt at 100% zoom
) -> bytes:
    """PNG bytes of a figure; no timestamp or version in the metadata, so saved files are
    reproducible."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def show(fig: Figure) -> None:
    """Display a figure in a notebook as a PNG (works without pyplot or an active backend), at its
    own size: unconfined, JupyterLab does not shrink a wide figure (and its 9-pt text) to the
    notebook's width."""
    from IPython.display import Image, display

    display(Image(png(fig), unconfined=True))
