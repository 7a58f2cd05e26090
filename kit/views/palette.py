"""Colours that read on white paper, for classes, clusters and text, shared by every figure and
view.

- Classes take tab10 (`class_colour`), as before: ten hues a reader already knows.
- Clusters take `CLUSTER_COLOURS`, 30 colours a reader can tell apart. A cyclic colormap such as
  `nipy_spectral` gives neighbouring ids neighbouring hues: sampled 30 times, its closest pair is
  0.02 apart in OKLab (a perceptual colour space: about 0.02 is just noticeable), so half the
  clusters look like their neighbours. tab20's closest pair is 0.05 (a dark and light hue pair). The
  first ten colours here are tab10's, so K <= 10 looks as it always did; the other twenty were
  picked greedily, each the colour of an 18-step sRGB grid farthest in OKLab from all the colours
  before it, among those of OKLab lightness 0.40 to 0.80 (darker than the page, lighter than black
  text). Their closest pair is 0.11 apart: tab10's own brown and grey.
- Above 30 clusters no palette keeps them apart (the 31st colour would sit near one of the 30):
  the figures colour each cluster by its majority class instead, and say so (`cluster_colours`
  returns None).
- Text in a colour (an algorithm's title, a class's caption) goes through `text_colour`, which
  darkens it until it reads on white: tab10's olive (#bcbd22) and ODC's orange (#ff7f0e) are too
  pale as text.
- Each algorithm's own colour is its spec's (`COLOURS`, read from kit/algorithms/__init__.py), for
  every figure and view.
"""
from __future__ import annotations

import numpy as np
from matplotlib.colors import to_hex, to_rgb

from ..algorithms import Field

COLOURS = Field("colour")  # each algorithm's colour in every figure, from its spec

TAB10 = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
CLUSTER_COLOURS = TAB10 + [
    "#0000ff",
    "#005a00",
    "#690096",
    "#d200ff",
    "#782dff",
    "#d20096",
    "#00e100",
    "#2d4b69",
    "#d2b4b4",
    "#87003c",
    "#5a96ff",
    "#a58700",
    "#2d3cb4",
    "#c3a5ff",
    "#1e785a",
    "#0069ff",
    "#ff3c78",
    "#a500c3",
    "#ff2dd2",
    "#4bc378",
]
MAX_CLUSTER_COLOURS = len(CLUSTER_COLOURS)  # 30
TEXT_CONTRAST = 4.5  # WCAG 2's ratio for body text against its background (AA)


def class_colour(c: int) -> str:
    """tab10 for the first ten classes, then the cluster palette's other twenty, then round
    again."""
    return CLUSTER_COLOURS[c % len(CLUSTER_COLOURS)]


def class_colours(classes) -> list[str]:
    """One colour per item of an (N,) array of class ids."""
    return [class_colour(int(c)) for c in classes]


def cluster_colours(n_clusters: int) -> list[str] | None:
    """`n_clusters` colours a reader can tell apart (one per cluster id), or None above 30: colour
    by class then."""
    return CLUSTER_COLOURS[:n_clusters] if n_clusters <= MAX_CLUSTER_COLOURS else None


def contrast(colour) -> float:
    """WCAG 2 contrast ratio of a colour against white: 21 for black, 1 for white."""
    rgb = np.asarray(to_rgb(colour))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return 1.05 / (float(linear @ [0.2126, 0.7152, 0.0722]) + 0.05)


def text_colour(colour, ratio: float = TEXT_CONTRAST) -> str:
    """`colour` darkened towards black (same hue) until its contrast against white reaches `ratio`;
    a colour dark enough already comes back unchanged: DeepCluster's blue stays, ODC's orange turns
    brown-orange."""
    rgb = np.asarray(to_rgb(colour))
    for scale in np.linspace(1, 0, 101):
        if contrast(rgb * scale) >= ratio:
            return to_hex(rgb * scale)
    return "#000000"
