"""Figures of notebook 05's short runs (kit/teaching/ablations.py): several variants of one
algorithm on shared axes.

A run's colour says its algorithm (DeepCluster blues, ODC oranges, as everywhere in kit), its shade
the variant; each legend entry is the run's label.
"""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..algorithms import Field
from .palette import text_colour
from .plots import epoch_series, style_axes

SHADES = Field("shades")
# a second cue beside the shade: the n-th run of an algorithm gets the n-th marker
MARKERS = "osD^vP"


def _styles(histories: dict[str, dict]) -> dict[str, dict]:
    """Per run: a shade of its algorithm's colour map, dark to light, darkened until a thin line of
    it reads on white (contrast 3), and a marker of its own."""
    out = {}
    for algo, cmap in SHADES.items():
        labels = [label for label, h in histories.items() if h.get("algo") == algo]
        for i, label in enumerate(labels):
            colour = text_colour(colormaps[cmap](0.95 - 0.4 * i / max(len(labels) - 1, 1)), 3.0)
            out[label] = dict(color=colour, marker=MARKERS[i % len(MARKERS)], ms=4, lw=1.6)
    return out


def _axes(ax, title: str, ylabel: str) -> None:
    style_axes(ax, title, "epoch", ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def runs_figure(
    histories: dict[str, dict],
    keys=(
        ("ami_prev", "Stability, chance-corrected: AMI(t-1, t)", "AMI (1 = the same labels)"),
        ("label_change", "Images reassigned per epoch", "fraction of the images"),
    ),
) -> Figure:
    """Each of `keys` (key, title, y label) per epoch, one line per run: {label: history} -> a row
    of panels."""
    styles = _styles(histories)
    fig = Figure(figsize=(6.2 * len(keys), 4.2), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, (key, title, ylabel) in zip(axes, keys):
        for label, h in histories.items():
            ax.plot(*epoch_series(h, key), label=label, **styles[label])
        _axes(ax, title, ylabel)
        ax.set_ylim(0, 1)
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False
    )
    return fig


def safeguards_figure(histories: dict[str, dict], n_clusters: int) -> Figure:
    """What a collapse looks like, per epoch and per run: the largest cluster's share of the images,
    the share of the K clusters that hold any image, and the loss over ln K (1 = the head predicts
    no better than chance)."""
    keys = (("largest_share", "Largest cluster's share of the images"),
            ("nonempty", f"Clusters that hold an image, of K = {n_clusters}"),
            ("loss_ln_k", "Loss / ln K (1 = chance)"))
    styles = _styles(histories)
    fig = Figure(figsize=(14, 4.4), layout="constrained")
    axes = fig.subplots(1, len(keys))
    for ax, (key, title) in zip(axes, keys):
        for label, h in histories.items():
            x, y = epoch_series(h, key)
            if key == "nonempty":
                y = np.asarray(y) / n_clusters
            ax.plot(x, y, label=label, **styles[label])
        _axes(ax, title, "share" if key != "loss_ln_k" else "loss / ln K")
        ax.set_ylim(0, 1.05 if key != "loss_ln_k" else max(1.2, ax.get_ylim()[1]))
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False
    )
    return fig
