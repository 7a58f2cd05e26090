"""Figures of notebook 05's short runs (kit/ablations.py): several variants of one algorithm on shared axes.

A run's colour says its algorithm (DeepCluster blues, ODC oranges, as everywhere in kit), its shade the variant;
each legend entry is the run's label.
"""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .palette import text_colour
from .plots import epoch_series, style_axes

SHADES = {"deepcluster": "Blues", "odc": "Oranges"}


def _colours(histories: dict[str, dict]) -> dict[str, str]:
    """One shade per run, dark to light within its algorithm's colour map, each darkened until a thin line of it
    reads on white (contrast 3)."""
    out = {}
    for algo, cmap in SHADES.items():
        labels = [label for label, h in histories.items() if h.get("algo") == algo]
        for i, label in enumerate(labels):
            out[label] = text_colour(colormaps[cmap](0.95 - 0.4 * i / max(len(labels) - 1, 1)), 3.0)
    return out


def runs_figure(histories: dict[str, dict], keys=(("ami_prev", "AMI(t-1, t), chance-corrected"),
                                                  ("label_change", "Images reassigned per epoch"))) -> Figure:
    """Each of `keys` per epoch, one line per run: {label: history} -> a row of panels."""
    colours = _colours(histories)
    fig = Figure(figsize=(6.2 * len(keys), 4.2), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, (key, title) in zip(axes, keys):
        for label, h in histories.items():
            ax.plot(*epoch_series(h, key), "o-", ms=3, lw=1.6, color=colours[label], label=label)
        style_axes(ax, title, "epoch", key.replace("_", " "))
        ax.set_ylim(0, 1)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False)
    return fig


def safeguards_figure(histories: dict[str, dict], n_clusters: int) -> Figure:
    """What a collapse looks like, per epoch and per run: the largest cluster's share of the images, the share of
    the K clusters that hold any image, and the loss over ln K (1 = the head predicts no better than chance)."""
    keys = (("largest_share", "Largest cluster's share of the images"),
            ("nonempty", f"Clusters that hold an image, of K = {n_clusters}"),
            ("loss_ln_k", "Loss / ln K (1 = chance)"))
    colours = _colours(histories)
    fig = Figure(figsize=(16, 4.4), layout="constrained")
    axes = fig.subplots(1, len(keys))
    for ax, (key, title) in zip(axes, keys):
        for label, h in histories.items():
            x, y = epoch_series(h, key)
            if key == "nonempty":
                y = np.asarray(y) / n_clusters
            ax.plot(x, y, "o-", ms=3, lw=1.6, color=colours[label], label=label)
        style_axes(ax, title, "epoch", "share" if key != "loss_ln_k" else "loss / ln K")
        ax.set_ylim(0, 1.05 if key != "loss_ln_k" else max(1.2, ax.get_ylim()[1]))
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=4, frameon=False)
    return fig
