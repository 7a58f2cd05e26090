"""The lives of clusters and of images, as static figures (matplotlib), DeepCluster beside ODC:

- `transitions_figure`: per transition, the share of clusters that survived, were absorbed
  (merged), split, shrank or died, the clusters born, and the fraction of images reassigned
  (`transitions.strip`);
- `stability_map_figure`: each image of the UMAP subset by how often it kept its cluster against its
  distance to its centroid, and the images that kept theirs least, as thumbnails.

Both count over the snapshots both algorithms have (`RunData.common_snapshots`): the same
transitions.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..algorithms import NAMES
from ..analysis import transitions as tr
from ..analysis.rundata import RunData
from .gallery import mosaic, show_tiles
from .palette import COLOURS, class_colours, text_colour

KIND_COLOURS = {
    "survived": "#2ca02c",
    "merged": "#9467bd",
    "split": "#ffbf00",
    "shrank": "#ff9896",
    "died": "#d62728",
    "born": "#17becf",
}


def transitions_figure(data: RunData) -> Figure:
    """One row per algorithm: stacked bars of the previous epoch's clusters by what became of them
    (upwards, as shares), the clusters born (downwards, as a share of the new epoch's), and the
    fraction of images reassigned (black line): the reassignment curve beside what it did to
    clusters."""
    s = data.common_snapshots()
    fig = Figure(figsize=(11, 2.9 * len(data.algos) + 0.3), layout="constrained")
    axes = fig.subplots(len(data.algos), 1, squeeze=False, sharex=True, sharey=True)[:, 0]
    for ax, algo in zip(axes, data.algos):
        rows = tr.strip(data.labels[algo], upto=s)
        # the transition into snapshot x, after x epochs of training
        x = np.arange(1, len(rows) + 1)
        bottom = np.zeros(len(rows))
        for kind in tr.KINDS[:-1]:
            share = np.array([r[kind] / max(r["of"], 1) for r in rows])
            ax.bar(x, share, bottom=bottom, color=KIND_COLOURS[kind], width=0.8, label=kind)
            bottom += share
        born = np.array([r["born"] / max(r["new"], 1) for r in rows])
        ax.bar(x, -born, color=KIND_COLOURS["born"], width=0.8, label="born (downwards)")
        ax.plot(x, [r["reassigned"] for r in rows], "k.-", lw=1.2, label="images reassigned")
        ax.axhline(0, color="black", lw=0.6)
        # shared: the lower reach
        ax.set_ylim(min(ax.get_ylim()[0], -max(0.25, born.max(initial=0) + 0.05)), 1.02)
        ax.set_ylabel("share of clusters")
        k = rows[-1]["of"] if rows else 0
        ax.set_title(
            f"{NAMES[algo]} ({k} clusters): what each epoch did to the previous epoch's clusters",
            color=text_colour(COLOURS[algo]),
            fontsize=11,
            loc="left",
        )
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xlabel("transition into the clusters after this many epochs")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    fig.suptitle(
        f"survived: >= {tr.SURVIVE:.0%} of its members stay together and lead their new cluster; "
        "merged: the same, inside a cluster led by another;\nsplit: >= 2 parts of >= "
        f"{tr.PART:.0%} each; shrank: one part of {tr.PART:.0%}-{tr.SURVIVE:.0%}, the rest "
        f"scattered; died: no part of {tr.PART:.0%}; born: no old cluster gave it {tr.PART:.0%} of "
        "itself",
        fontsize=10,
    )
    return fig


def stability_map(data: RunData, algo: str) -> tuple[np.ndarray, np.ndarray]:
    """(kept share, distance to centroid), (n,) each for the subset: the share of the common
    transitions in which each image kept its cluster, and its distance to its cluster's centroid at
    `gallery_epoch`."""
    epoch = data.gallery_epoch()
    kept = tr.kept_share(data.labels[algo], upto=data.common_snapshots())[data.subset]
    labels = data.labels[algo][data.snapshot(algo, epoch)][data.subset]
    return kept, tr.centroid_distance(data.features[algo][data.epochs.index(epoch)], labels)


def stability_map_figure(data: RunData, n_hardest: int = 12) -> Figure:
    """Top: every image of the subset, its distance to its centroid (x) against the share of
    transitions it kept its cluster (y, jittered), coloured by true class; DeepCluster | ODC.
    Bottom: the images that kept theirs least."""
    s, epoch = data.common_snapshots(), data.gallery_epoch()
    fig = Figure(figsize=(11, 6.8 if data.images is not None else 4.6), layout="constrained")
    rows = 2 if data.images is not None else 1
    axes = fig.subplots(rows, len(data.algos), squeeze=False, height_ratios=[3, 1.3][:rows])
    for ax in axes[0, 1:]:
        ax.sharex(axes[0, 0])  # one distance scale for both
    # equal shares overlap otherwise
    jitter = np.random.default_rng(0).uniform(-0.012, 0.012, len(data.subset))
    classes = data.classes[data.subset]
    for c, algo in enumerate(data.algos):
        kept, dist = stability_map(data, algo)
        ax = axes[0, c]
        ax.scatter(dist, kept + jitter, c=class_colours(classes), s=5, alpha=0.6, linewidths=0)
        # Spearman
        corr = np.corrcoef(np.argsort(np.argsort(dist)), np.argsort(np.argsort(kept)))[0, 1]
        ax.set_title(
            f"{NAMES[algo]}: {kept.mean():.2f} of the {s - 1} transitions kept on average;\n"
            f"rank correlation with distance {corr:+.2f}",
            color=text_colour(COLOURS[algo]),
            fontsize=10,
        )
        ax.set_xlabel(
            f"distance to its cluster's centroid after {epoch} "
            f"epoch{'s' * (epoch != 1)}\n(L2-normalised features)"
        )
        ax.set_ylabel("share of transitions it kept its cluster" if c == 0 else "")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        if rows == 2:
            top = tr.hardest(kept, dist, n_hardest)
            show_tiles(axes[1, c], mosaic(data.images[data.subset[top]], n_hardest // 2))
            axes[1, c].set_title(
                f"kept their cluster least: {', '.join(f'{v:.2f}' for v in kept[top[:4]])}, ...",
                fontsize=10,
                color=text_colour(COLOURS[algo]),
            )
    fig.suptitle(
        f"Per-image stability over the same {s - 1} transitions for both (subset of "
        f"{len(data.subset)} images, coloured by true class)",
        fontsize=11,
    )
    return fig
