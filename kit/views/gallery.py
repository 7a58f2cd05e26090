"""Clusters as images (static matplotlib figures, for the report and slides), both algorithms side
by side:

- `clusters_figure`: per cluster, the images nearest its centroid, its size and its purity;
- `confusion_figure`: the cluster x class table, clusters matched to their majority class;
- `moved_figure`: the images that changed cluster most often, with their from -> to clusters.

Centroids come from the features saved for the UMAP subset at a chosen epoch and the clusters those
images had in the same epoch's snapshot (`RunData.gallery_epoch` picks one both algorithms
clustered).
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..algorithms import NAMES
from ..analysis import flows
from ..analysis.rundata import RunData
from ..parts.metrics import contingency
from .palette import COLOURS, class_colour, text_colour


def mosaic(imgs: np.ndarray, cols: int, pad: int = 2) -> np.ndarray:
    """Images (B, C, H, W) uint8 tiled row by row into one (rows*(H+pad), cols*(W+pad), C) array on
    white, so a row of a gallery is one imshow (a figure of 160 small axes takes ~10 s to lay
    out)."""
    b, c, h, w = imgs.shape
    rows = -(-b // cols)
    out = np.full((rows * (h + pad), cols * (w + pad), c), 255, dtype=np.uint8)
    for i, img in enumerate(imgs):
        r, k = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, k * (w + pad) : k * (w + pad) + w] = img.transpose(
            1, 2, 0
        )
    return out


def show_tiles(ax, tiles: np.ndarray) -> None:
    """A `mosaic` (H, W, C) uint8 on `ax`, grey for one channel, without axes."""
    ax.imshow(tiles[..., 0] if tiles.shape[-1] == 1 else tiles, cmap="gray", vmin=0, vmax=255)
    ax.axis("off")


def clusters_figure(
    data: RunData, epoch: int | None = None, n_clusters: int = 10, n_images: int = 10
) -> Figure:
    """The `n_clusters` largest clusters of each algorithm at `epoch` (of the subset), each as a row
    of its `n_images` images nearest the centroid, titled with size, purity and majority class."""
    epoch = data.gallery_epoch() if epoch is None else epoch
    f = data.epochs.index(epoch)
    fig = Figure(
        figsize=(0.62 * n_images * len(data.algos) + 0.5, 0.95 * n_clusters + 0.7),
        layout="constrained",
    )
    subfigs = fig.subfigures(1, len(data.algos), squeeze=False)[0]
    classes = data.classes[data.subset]
    for sub, algo in zip(subfigs, data.algos):
        labels = data.clusters(algo, epoch)  # (n,) carried ids of the subset
        major, size, purity = flows.majority_class(labels, classes)
        nearest = flows.nearest_to_centroid(data.features[algo][f], labels, n_images)
        picks = np.argsort(-size, kind="stable")[:n_clusters]
        for ax, c in zip(sub.subplots(len(picks), 1, squeeze=False)[:, 0], picks):
            show_tiles(ax, mosaic(data.images[data.subset[nearest[int(c)]]], n_images))
            ax.set_xlim(-0.5, n_images * (data.images.shape[-1] + 2) - 0.5)
            ax.set_title(
                f"cluster {c}: {size[c]} images, purity {purity[c]:.2f} (mostly "
                f"{data.name(int(major[c]))})",
                fontsize=10,
                loc="left",
                color=text_colour(class_colour(int(major[c]))),
            )
        s = data.snapshot(algo, epoch)
        sub.suptitle(
            f"{NAMES[algo]} after {epoch} epoch{'s' * (epoch != 1)}"
            + ("" if s == epoch else f" (clusters of epoch {s})")
            + f": {len(picks)} largest clusters of the subset,\nimages nearest the centroid first",
            color=text_colour(COLOURS[algo]),
            fontsize=11,
        )
    return fig


def confusion_figure(data: RunData, epoch: int | None = None) -> Figure:
    """Cluster x class counts for all training images, one panel per algorithm; clusters are matched
    to their majority class (many-to-one) and ordered by it, so a good clustering is
    block-diagonal."""
    s = {a: data.snapshot(a, data.gallery_epoch() if epoch is None else epoch) for a in data.algos}
    n_classes = int(data.classes.max()) + 1
    fig = Figure(figsize=(11, 2.4 * len(data.algos) + 0.4), layout="constrained")
    axes = fig.subplots(len(data.algos), 1, squeeze=False)[:, 0]
    for ax, algo in zip(axes, data.algos):
        labels = data.labels[algo][s[algo]]
        order = flows.cluster_order(labels, data.classes)
        k = int(labels.max()) + 1
        table = contingency(labels, data.classes, k, n_classes)[order].T  # (C, K used)
        major, size, purity = flows.majority_class(labels, data.classes, k, n_classes)
        im = ax.imshow(table, aspect="auto", cmap="Greys", interpolation="nearest")
        ax.set_yticks(range(n_classes), [data.name(c) for c in range(n_classes)], fontsize=9)
        ax.set_xticks([])
        # a strip under the table: each cluster's matched class
        for x, c in enumerate(major[order]):
            ax.add_patch(_strip(x, n_classes, class_colour(int(c))))
        ax.set_ylim(n_classes + 0.2, -0.5)
        ax.set_ylabel("true class")
        ax.set_xlabel(f"{len(order)} non-empty clusters, ordered by matched class, then size")
        weighted = float((purity * size).sum() / size.sum())
        ax.set_title(
            f"{NAMES[algo]}, clusters after {s[algo]} epoch{'s' * (s[algo] != 1)}: "
            f"majority-matched accuracy (size-weighted mean purity) {weighted:.3f}",
            color=text_colour(COLOURS[algo]),
            fontsize=11,
        )
        fig.colorbar(im, ax=ax, label="images", shrink=0.8)
    return fig


def _strip(x: int, y: int, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.45), 1, 0.6, facecolor=colour, linewidth=0)


def moved_figure(data: RunData, n_images: int = 16, cols: int = 8) -> Figure:
    """The training images that changed cluster most often, per algorithm, counted over the same
    transitions for both (snapshots 0 -> 1 -> ... -> S-1, S = `common_snapshots`); each shown with
    from -> to (its cluster in snapshot 0 and in snapshot S-1, ids carried) and its flips, in its
    class's colour (darkened to read on white)."""
    s = data.common_snapshots()
    h, w = data.images.shape[-2:]
    fig = Figure(
        figsize=(1.0 * cols + 0.3, (1.05 * -(-n_images // cols) + 0.6) * len(data.algos)),
        layout="constrained",
    )
    axes = fig.subplots(len(data.algos), 1, squeeze=False)[:, 0]
    # equal flips: a fixed shuffle, not class order
    tie = np.random.default_rng(0).permutation(len(data.classes))
    for ax, algo in zip(axes, data.algos):
        count = flows.flips(data.labels[algo], upto=s)  # (N,)
        first, last = flows.carry_ids([data.labels[algo][0], data.labels[algo][s - 1]])
        # most flips, then ended elsewhere
        top = np.lexsort((tie, first == last, -count))[:n_images]
        show_tiles(ax, mosaic(data.images[top], cols, pad=w // 2))
        for k, i in enumerate(top):
            r, c = divmod(k, cols)
            x, y = c * (w + w // 2) + w / 2, r * (h + h // 2)
            ax.text(
                x,
                y - 1,
                f"{first[i]}→{last[i]} ×{count[i]}",
                ha="center",
                va="bottom",
                fontsize=9,
                # coloured by the image's true class
                color=text_colour(class_colour(int(data.classes[i]))),
            )
        ax.set_ylim(ax.get_ylim()[0], -h * 0.45)
        ax.set_title(
            f"{NAMES[algo]}: {count.mean():.2f} flips per image on average over the {s - 1} "
            f"transitions 0→{s - 1}\n(the same for both); above each image: its cluster at "
            f"snapshot 0 → at {s - 1}, ×times it changed",
            color=text_colour(COLOURS[algo]),
            fontsize=10,
        )
    return fig


def classes_figure(dataset, per_class: int = 10) -> Figure:
    """The first `per_class` images of each class of a tensor dataset, a row per class named by the
    dataset's class names: what the images are, before anything is trained on them."""
    names = getattr(dataset, "classes", None) or [
        str(c) for c in range(int(dataset.targets.max()) + 1)
    ]
    rows = [np.flatnonzero(dataset.targets.numpy() == c)[:per_class] for c in range(len(names))]
    h, w = dataset.image_shape[1:]
    fig = Figure(figsize=(0.55 * per_class + 1.6, 0.58 * len(names) + 0.5), layout="constrained")
    ax = fig.subplots()
    show_tiles(ax, mosaic(dataset.images[np.concatenate(rows)].numpy(), per_class, pad=w // 7))
    ax.axis("on")
    ax.set_xticks([])
    ax.set_yticks([(h + w // 7) * (r + 0.45) for r in range(len(names))], names, fontsize=9)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.suptitle(f"{dataset.name}: the first {per_class} images of each class", fontsize=10)
    return fig
