"""Reassignment flows as a static figure (matplotlib, for the report and slides): a class-level
alluvial (true class -> cluster at t -> cluster at t' -> ...) and the largest cluster-to-cluster
moves, DeepCluster and ODC side by side.

Each band is the images of one true class that go from one cluster to another; it takes the class's
colour. Between cluster columns, images that stay in their (carried) cluster are drawn faint, the
`top` largest moves in full colour, and every other move in grey: the "other" band. Above 30
clusters the other moves would be thousands of crossing bands, so they are left out (the bars below
count them) and the figure says so. Clusters in a column are stacked by majority class, then size,
so a well-separated class reads as one block.
"""
from __future__ import annotations

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from ..algorithms import NAMES
from ..analysis import flows
from ..analysis.rundata import RunData
from .palette import COLOURS, class_colour, text_colour

OTHER = "#9a9a9a"
NODE_W = 0.05  # node bar width, in units of the distance between columns
# a number of clusters; above it, only the `top` largest moves are drawn: the rest is a hairball
ALL_MOVES_UP_TO = 30


def _stack(labels: np.ndarray, order: np.ndarray, n: int, gaps: float) -> tuple[np.ndarray, float]:
    """Top y of each node of a column (indexed by id), stacked from 1 downwards in `order`, and the
    height of one image; the nodes fill 1 - gaps of the height, the rest is equal gaps between
    them."""
    scale = (1 - gaps) / n
    sizes = np.bincount(labels, minlength=int(order.max()) + 1)
    tops = np.full(len(sizes), np.nan)
    tops[order] = 1 - np.concatenate(
        [[0], np.cumsum(sizes[order][:-1] * scale + gaps / max(len(order) - 1, 1))]
    )
    return tops, scale


def _ends(node: np.ndarray, keys: tuple, height: np.ndarray, tops: np.ndarray) -> np.ndarray:
    """Where each band meets its node (top y): bands stacked inside a node in the order of
    `keys`."""
    order = np.lexsort(keys[::-1] + (node,))  # by node, then keys (lexsort: last key first)
    h, nodes = height[order], node[order]
    before = np.cumsum(h) - h  # height of all earlier bands
    first = np.r_[True, nodes[1:] != nodes[:-1]]
    # earlier bands in the same node
    within = before - np.maximum.accumulate(np.where(first, before, 0))
    y = np.empty(len(h))
    y[order] = tops[nodes] - within
    return y


def _bands(x0: float, x1: float, top0, top1, h0, h1, steps: int = 16) -> np.ndarray:
    """S-shaped bands from heights h0 at (x0, top0) to h1 at (x1, top1): (B, 2 * steps, 2)
    vertices."""
    t = np.linspace(0, 1, steps)
    s = t * t * (3 - 2 * t)  # smoothstep: flat where a band leaves and enters its nodes
    top = top0[:, None] + (top1 - top0)[:, None] * s  # (B, steps)
    bottom = top - (h0[:, None] + (h1 - h0)[:, None] * s)
    x = np.broadcast_to(x0 + (x1 - x0) * t, top.shape)
    upper, lower = np.stack([x, top], -1), np.stack([x, bottom], -1)[:, ::-1]
    return np.concatenate([upper, lower], axis=1)


def _step(classes, a, b, rank_a, rank_b, ends_a, ends_b, j: int, top: int,
          other_moves: bool) -> tuple[np.ndarray, list]:
    """The bands between column j and j + 1 (class-split; the small cluster-to-cluster moves merged
    into one grey band per pair of clusters, or left out if not `other_moves`) and their colours."""
    rows, counts = flows.alluvium(classes, a, b)  # (class, node at j, node at j + 1)
    big = {(i, k) for i, k, _ in flows.top_flows(a, b, top)["moves"]} if j else set()
    if j:
        other = np.array([i != k and (i, k) not in big for _, i, k in rows.tolist()], dtype=bool)
        if not other_moves:
            rows, counts, other = rows[~other], counts[~other], other[~other]
        rows[other, 0] = -1
        rows, inverse = np.unique(rows, axis=0, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=counts).astype(np.int64)
    c, i, k = rows.T
    (tops_a, scale_a), (tops_b, scale_b) = ends_a, ends_b
    y0 = _ends(i, (rank_b[k], c), counts * scale_a, tops_a)
    y1 = _ends(k, (rank_a[i], c), counts * scale_b, tops_b)
    verts = _bands(j + NODE_W / 2, j + 1 - NODE_W / 2, y0, y1, counts * scale_a, counts * scale_b)
    def alpha(ci, ii, ki):
        return 0.5 if j == 0 else (0.18 if ii == ki else (0.95 if (ii, ki) in big else 0.55))

    colours = [
        to_rgba(class_colour(ci) if ci >= 0 else OTHER, alpha(ci, ii, ki))
        for ci, ii, ki in rows.tolist()
    ]
    return verts, colours


def alluvial(ax, classes: np.ndarray, chain: list[np.ndarray], titles: list[str], top: int = 8,
             class_names=None, other_moves: bool = True) -> None:
    """Draw column 0 = true classes, then one column per (carried) cluster snapshot in `chain`;
    between cluster columns the stays, the `top` largest moves and, if `other_moves`, all other
    moves in grey."""
    columns = [classes, *chain]
    orders = [np.unique(classes)] + [flows.cluster_order(c, classes) for c in chain]
    ends = [
        _stack(c, o, len(classes), gaps=0.12 if j == 0 else 0.2)
        for j, (c, o) in enumerate(zip(columns, orders))
    ]
    ranks = []
    for c, o in zip(columns, orders):
        r = np.zeros(int(c.max()) + 1, dtype=np.int64)
        r[o] = np.arange(len(o))
        ranks.append(r)
    for j in range(len(columns) - 1):
        verts, colours = _step(
            classes,
            columns[j],
            columns[j + 1],
            ranks[j],
            ranks[j + 1],
            ends[j],
            ends[j + 1],
            j,
            top,
            other_moves,
        )
        ax.add_collection(PolyCollection(verts, facecolors=colours, linewidths=0))
    for j, (col, order) in enumerate(zip(columns, orders)):
        major = flows.majority_class(col, classes)[0] if j else np.arange(order.max() + 1)
        (tops, scale), sizes = ends[j], np.bincount(col, minlength=int(order.max()) + 1)
        for node in order:
            h = sizes[node] * scale
            ax.add_patch(
                _rect(j - NODE_W / 2, tops[node] - h, NODE_W, h, class_colour(int(major[node])))
            )
            if j == 0:
                ax.text(
                    -NODE_W,
                    tops[node] - h / 2,
                    class_names[node] if class_names else str(node),
                    ha="right",
                    va="center",
                    fontsize=11,
                )
        ax.text(j, 1.03, titles[j], ha="center", va="bottom", fontsize=11)
    ax.set_xlim(-0.25, len(columns) - 1 + 0.1)
    ax.set_ylim(-0.02, 1.1)
    ax.axis("off")


def _rect(x, y, w, h, colour):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor=colour, edgecolor="black", linewidth=0.2)


def top_flow_bars(
    ax, a: np.ndarray, b: np.ndarray, classes: np.ndarray, top: int, title: str, class_names=None
) -> None:
    """Horizontal bars: images that stayed, the `top` largest moves (from -> to, with the clusters'
    majority classes) and all other moves; they add up to N."""
    f = flows.top_flows(a, b, top)
    major_a, major_b = flows.majority_class(a, classes)[0], flows.majority_class(b, classes)[0]
    name = (lambda c: class_names[c]) if class_names else str  # noqa: E731
    labels = ["stayed in its cluster"] + [
        f"{i} ({name(major_a[i])}) → {j} ({name(major_b[j])})" for i, j, _ in f["moves"]
    ]
    # a move reads "cluster (its majority class) → cluster (its majority class)"
    values = [f["stayed"]] + [m for *_, m in f["moves"]]
    colours = [OTHER] + [class_colour(int(major_a[i])) for i, *_ in f["moves"]]
    labels.append("other moves")
    values.append(f["other"])
    colours.append(OTHER)
    y = np.arange(len(values))[::-1]
    ax.barh(y, values, color=colours, alpha=0.9)
    ax.set_yticks(y, labels, fontsize=10)
    for yi, v in zip(y, values):  # a linear axis: the bars' lengths are the shares the labels give
        ax.text(v + 0.01 * len(a), yi, f"{v} ({v / len(a):.1%})", va="center", fontsize=10)
    ax.set_title(title, fontsize=12)
    ax.set_xlabel("images")
    ax.set_xlim(0, len(a) * 1.3)


def flows_figure(data: RunData, epochs: list[int] | None = None, top: int = 8) -> Figure:
    """The class-level alluvial through the chosen epochs (default: every saved epoch the algorithms
    both clustered, and the last such epoch) and the top moves between the last two of them. Above
    `ALL_MOVES_UP_TO` clusters the alluvial draws only the stays and the `top` largest moves, and
    says so."""
    common = data.common_snapshots()
    snaps = sorted(
        {min(e, common - 1) for e in (epochs if epochs is not None else [*data.epochs, common - 1])}
    )
    fig = Figure(figsize=(6.2 * len(data.algos), 8.2), layout="constrained")
    axes = fig.subplots(2, len(data.algos), squeeze=False, height_ratios=[2.2, 1])
    # short: a slide's columns sit close together
    titles = ["true\nclass"] + [f"epoch\n{s}" for s in snaps]
    grey = False  # whether any panel draws the other moves
    for k, algo in enumerate(data.algos):
        chain = flows.carry_ids([data.labels[algo][s] for s in snaps])
        n_clusters = len(np.unique(data.labels[algo][snaps[-1]]))
        every = n_clusters <= ALL_MOVES_UP_TO
        grey |= every
        alluvial(
            axes[0, k],
            data.classes,
            chain,
            titles,
            top=top,
            class_names=data.class_names,
            other_moves=every,
        )
        axes[0, k].set_title(
            f"{NAMES[algo]} (K = {n_clusters}): where each class's images go"
            + (
                ""
                if every
                else f"\nK = {n_clusters} > {ALL_MOVES_UP_TO}: only the {top} largest moves are "
                     "drawn"
            ),
            color=text_colour(COLOURS[algo]),
            fontsize=14,
            pad=30,
        )
        if len(snaps) >= 2:
            top_flow_bars(
                axes[1, k],
                chain[-2],
                chain[-1],
                data.classes,
                top,
                f"{NAMES[algo]}: the {top} largest moves, after {snaps[-2]} → {snaps[-1]} epochs",
                data.class_names,
            )
        else:
            axes[1, k].axis("off")
    rest = ", grey = other moves" if grey else ", other moves counted below"
    fig.suptitle(
        f"Reassignment flows of all {len(data.classes):,} training images, cluster ids carried by "
        f"Hungarian matching\nfaint = stayed, colour = the {top} largest moves{rest}",
        fontsize=13,
    )
    return fig
