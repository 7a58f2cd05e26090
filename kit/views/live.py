"""The playground's live board: the runs of this press of Train in full colour, earlier runs faded
and labelled with the settings that differed ("ODC, K=30"), so "K=30 against K=100" is one look.

Three panels share one legend: loss per iteration, kNN accuracy per epoch (0 = the untrained
network), and label stability per epoch: AMI(t-1, t), chance-corrected so that runs at different K
compare, with the current runs' NMI(t-1, t) thin and its chance level dotted (it climbs with K). The
per-epoch panels span the epochs asked for from the first draw, and say when their first point will
come, so they are never an empty axis with odd ticks. matplotlib's object API only: the board is
drawn in the training thread.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..algorithms import NAMES
from .palette import COLOURS
from .plots import chance_floor, note, smoothed, style_axes, with_init

# faded runs per algorithm; older ones leave the board (they stay in `Playground.runs`)
EARLIER_SHOWN = 3


@dataclass
class Trace:
    """One training run as the board draws it: its algorithm, its settings and its history so
    far."""

    algo: str
    settings: dict
    history: dict = field(default_factory=lambda: {"epoch": [], "step": {}})


def differing(settings: dict, reference: dict) -> str:
    """The settings of an earlier run that differ from the current ones, e.g. "K=30, lr=0.3"."""
    keys = [k for k in settings if k in reference and settings[k] != reference[k]]
    return ", ".join(f"{k}={_fmt(settings[k])}" for k in keys) or "same settings"


def _fmt(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def _faded(earlier: list[Trace]) -> list[Trace]:
    return [t for algo in NAMES for t in [e for e in earlier if e.algo == algo][-EARLIER_SHOWN:]]


def board_labels(current: list[Trace], earlier: list[Trace]) -> dict[str, list[str]]:
    """The legend of `board`:
    {"current": ["DeepCluster", "ODC"], "earlier": ["ODC, earlier: K=30", ...]}. An earlier run
    names the settings where it differs from the current run of its own algorithm (the algorithms'
    presets differ, in lr for one: against the other's run, every earlier run would name its own
    lr)."""
    own = {t.algo: t.settings for t in current}
    last = current[-1].settings if current else {}
    return {"current": [NAMES[t.algo] for t in current],
            "earlier": [f"{NAMES[t.algo]}, earlier: {differing(t.settings, own.get(t.algo, last))}"
                        for t in _faded(earlier)]}


def board(current: list[Trace], earlier: list[Trace], epochs: int) -> Figure:
    """The live figure: `current` runs drawn strong, the last few `earlier` runs of each algorithm
    faded."""
    fig = Figure(figsize=(13, 4.6), layout="constrained")
    loss, knn, nmi = fig.subplots(1, 3)
    faded, labels = _faded(earlier), board_labels(current, earlier)
    for t, label in zip(faded, labels["earlier"]):
        _draw(t, (loss, knn, nmi), label, strong=False)
    for t, label in zip(current, labels["current"]):
        _draw(t, (loss, knn, nmi), label, strong=True)
    style_axes(loss, "Training loss", "iteration", "cross-entropy (smoothed)")
    style_axes(knn, "kNN accuracy on held-out images", "epoch", "accuracy (higher is better)")
    style_axes(nmi, "Stability: AMI(t-1, t)\nNMI thin, its chance level dotted", "epoch",
               "AMI (0 = chance, higher is steadier)")
    for ax, key in ((knn, "knn"), (nmi, "ami_prev")):
        ax.set_xlim(-0.3, max(epochs, 1) + 0.3)
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if not any(len(with_init(t.history, key)[0]) for t in current + faded):
            first = "after the untrained network is measured" if key == "knn" else "after epoch 1"
            note(ax, f"first point {first}")
    if not any(t.history["step"].get("loss") for t in current + faded):
        note(loss, "first point after iteration 1")
    loss.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    handles, labels = knn.get_legend_handles_labels()
    if handles:  # below the panels, so that long "earlier: ..." labels take no width from them
        fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=9, frameon=False)
    return fig


def _draw(t: Trace, axes, label: str, strong: bool) -> None:
    loss, knn, nmi = axes
    style = dict(color=COLOURS[t.algo], alpha=1.0 if strong else 0.35, lw=1.6 if strong else 1.0,
                 ls="-" if strong else "--")
    y = np.asarray(t.history["step"].get("loss", []))
    if len(y):
        if strong:
            loss.plot(np.arange(1, len(y) + 1), y, color=COLOURS[t.algo], alpha=0.15, lw=0.6)
        # a short run still shows its start
        loss.plot(*smoothed(y, max(1, min(10, len(y) // 4))), **style)
    for ax, key, marker in ((knn, "knn", "s"), (nmi, "ami_prev", "o")):
        x, v = with_init(t.history, key)
        # every trace gets a legend entry in the kNN panel, even before its first point
        ax.plot(
            x,
            v,
            marker=marker,
            ms=4 if strong else 3,
            label=label if key == "knn" else None,
            **style,
        )
    if strong:  # the uncorrected NMI and its chance level, for the runs of this press only
        nmi.plot(*with_init(t.history, "nmi_prev"), color=COLOURS[t.algo], lw=0.8, alpha=0.6)
        chance_floor(nmi, t.history, "nmi_prev", COLOURS[t.algo], label=None)
