"""The flight recorder: every image of the subset moving through the aligned UMAP layouts,
DeepCluster | ODC side by side, with an epoch slider, a thumbnail on hover and linked selection.

Why bokeh: it is kit's one library for interactive views. A bokeh document is data plus small
JavaScript callbacks that run in the browser, so the very same object is a self-contained offline
page in report.html and a notebook output (`page.Page`), with no kernel or server behind it. It does
all of this view client-side: hover tooltips holding base64 PNG thumbnails, a `CustomJS` slider that
moves the points, and one `ColumnDataSource` shared by both plots, so a box or lasso selection in
one view selects the same images in the other. matplotlib stays for static figures; ipywidgets for
the playground, which needs a kernel to train.

Between two saved epochs the slider interpolates each point's position linearly, so points glide
from one layout to the next; colours switch at the nearest saved epoch. Cluster ids are carried
across epochs (`flows.carry_ids`), so a colour follows a cluster, not a k-means id. Up to 30
clusters each has a colour of its own (`palette.cluster_colours`); above 30, a cluster takes its
majority class's colour, and the colour button says so.
"""
from __future__ import annotations

import base64
import io

import numpy as np

from ..algorithms import NAMES, SPECS
from ..analysis import flows
from ..analysis.rundata import RunData
from ..parts.metrics import agreement
from .page import Page
from .palette import COLOURS, class_colour, cluster_colours, text_colour

CHANGED, KEPT = "#d62728", "#c7c7c7"
def tooltip(algos) -> str:
    """The hover card: the image, its class, and per algorithm its cluster now and its history.
    Column names go in braces: bokeh reads `@k_deepcluster-v2` as the column `k_deepcluster`."""
    rows = "".join(f'<br>{NAMES[a]} <b>@{{k_{a}}}</b> <span style="color:#888">@{{hist_{a}}}</span>'
                   for a in algos)
    return ('<div style="display:flex;gap:6px;width:250px"><img src="@thumb" width="48" '
            'height="48" style="image-rendering:pixelated;border:1px solid #ccc">'
            f"<div>class <b>@cls_name</b>{rows}</div></div>")


def thumbnail(img: np.ndarray) -> str:
    """A (C, H, W) uint8 image as a PNG data URI (a 28 x 28 digit is ~300 bytes)."""
    from PIL import Image

    im = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(im)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def cluster_colours_per_epoch(data: RunData, algo: str) -> tuple[list[list[str]], bool]:
    """Per saved epoch, the colour of each carried cluster id, and whether they are class colours: a
    colour per cluster up to 30 clusters; above, each cluster's majority class's colour (over all
    training images)."""
    k = max(int(c.max()) for c in data.carried[algo]) + 1
    own = cluster_colours(k)
    if own is not None:
        return [list(own)] * len(data.epochs), False
    return [[class_colour(int(c)) for c in flows.majority_class(labels, data.classes, k)[0]]
            for labels in data.carried[algo]], True


def _columns(data: RunData, frame: int, class_pal) -> dict:
    """The shared source: one row per image; per algo and saved epoch f its x_, y_, k_ (carried
    cluster) and ch_ (changed in the transition into that snapshot); the shown x, y, colour."""
    cls = data.classes[data.subset]
    cols = {
        "cls": cls,
        "cls_name": [data.name(c) for c in cls],
        "thumb": [thumbnail(im) for im in data.images[data.subset]]
        if data.images is not None
        else [""] * len(cls),
    }
    for a in data.algos:
        ks = [data.clusters(a, e) for e in data.epochs]
        for f, e in enumerate(data.epochs):
            y = data.layouts[a][f]
            cols[f"x_{a}_{f}"], cols[f"y_{a}_{f}"] = (
                y[:, 0].astype(np.float32),
                y[:, 1].astype(np.float32),
            )
            cols[f"k_{a}_{f}"], cols[f"ch_{a}_{f}"] = (
                ks[f].astype(np.int32),
                data.changed(a, e).astype(np.int8),
            )
        cols[f"x_{a}"], cols[f"y_{a}"] = (
            cols[f"x_{a}_{frame}"].copy(),
            cols[f"y_{a}_{frame}"].copy(),
        )
        cols[f"k_{a}"] = ks[frame].astype(np.int32).copy()
        cols[f"c_{a}"] = [class_pal[c % len(class_pal)] for c in cls]
        cols[f"hist_{a}"] = ["→".join(str(k[i]) for k in ks) for i in range(len(cls))]
    for a in SPECS:  # the tooltip names every algorithm
        cols.setdefault(f"k_{a}", np.full(len(cls), -1, np.int32))
        cols.setdefault(f"hist_{a}", [""] * len(cls))
    return cols


def _titles(data: RunData, algo: str) -> list[str]:
    """Per saved epoch, two lines that fit a view's width (every title two lines, so the view keeps
    its height as the slider moves): the algorithm and the epoch, then how much its clusters agree
    with the previous epoch's, chance-corrected first (AMI), then NMI beside its chance level (one
    side shuffled; it climbs with K)."""
    out = []
    for e in data.epochs:
        s = data.snapshot(algo, e)
        title = f"{NAMES[algo]}, after {e} epoch{'s' * (e != 1)}" + (
            "" if s == e else f" (its last k-means: epoch {s})"
        )
        if s > 0:
            m = agreement(data.labels[algo][s - 1], data.labels[algo][s])
            ami = "—" if m["ami"] is None else f"{m['ami']:.2f}"
            title += f"\nAMI(t-1, t) {ami} · NMI {m['nmi']:.2f}, chance {m['nmi_chance']:.2f}"
        else:
            title += "\nthe first k-means: no earlier clusters to compare"
        out.append(title)
    return out


_UPDATE = """
const F = epochs.length, v = slider.value, mode = radio.active;
const f0 = Math.min(Math.floor(v), F - 1), f1 = Math.min(f0 + 1, F - 1);
const w = v - f0, fc = Math.round(v);
const d = src.data, cls = d.cls;
for (let j = 0; j < algos.length; j++) {
  const a = algos[j], x = d['x_' + a], y = d['y_' + a], c = d['c_' + a], k = d['k_' + a];
  const x0 = d[`x_${a}_${f0}`], x1 = d[`x_${a}_${f1}`];
  const y0 = d[`y_${a}_${f0}`], y1 = d[`y_${a}_${f1}`];
  const kk = d[`k_${a}_${fc}`], ch = d[`ch_${a}_${fc}`];
  for (let i = 0; i < x.length; i++) {
    x[i] = (1 - w) * x0[i] + w * x1[i];
    y[i] = (1 - w) * y0[i] + w * y1[i];
    k[i] = kk[i];
    c[i] = mode == 0 ? cpal[cls[i] % cpal.length]
      : mode == 1 ? kcol[j][fc][kk[i]] : (ch[i] ? changed : kept);
  }
  figs[j].title.text = titles[j][fc];
}
slider.title = Number.isInteger(v) || Math.abs(v - fc) < 1e-6 ? `epoch ${epochs[fc]}`
  : `between epoch ${epochs[f0]} and ${epochs[f1]}`;
legends[0].visible = mode == 0 || (mode == 1 && by_class);
legends[1].visible = mode == 2;
src.change.emit();
"""

_PLAY = """
const key = '_kit_play_' + btn.id;
if (window[key]) {
  clearInterval(window[key]); window[key] = null; btn.label = '▶ play'; return;
}
if (slider.value >= slider.end) slider.value = slider.start;
btn.label = '❚❚ pause';
window[key] = setInterval(() => {
  const v = Math.min(Math.round((slider.value + 0.04) * 100) / 100, slider.end);
  slider.value = v;
  if (v >= slider.end) {
    clearInterval(window[key]); window[key] = null; btn.label = '▶ play';
  }
}, 60);
"""

_SELECTED = """
const idx = src.selected.indices, d = src.data, F = epochs.length;
if (!idx.length) { div.text = hint; return; }
let moved = algos.map(
  a => idx.filter(i => d[`k_${a}_0`][i] != d[`k_${a}_${F - 1}`][i]).length);
let html = `<b>${idx.length} images selected</b> (ids carried across epochs; a cluster history`
  + ` lists the clusters after epochs ${epochs.join(', ')}). Ended in another cluster than they`
  + ` started: `
  + algos.map((a, j) => `${names[j]} ${moved[j]}`).join(', ')
  + (idx.length > cap ? `. Showing the first ${cap}.` : '.');
html += '<div style="display:flex;flex-wrap:wrap;gap:6px;margin-top:6px">';
for (const i of idx.slice(0, cap)) {
  html += `<div style="width:170px;font:12px monospace;border:1px solid #ddd;padding:3px">`
    + `<img src="${d.thumb[i]}" width="42" height="42"`
    + ` style="image-rendering:pixelated;float:left;margin-right:4px">`
    + `class ${d.cls_name[i]}`
    + algos.map((a, j) => `<br><span style="color:${colours[j]}">${short[j]} `
                          + `${d['hist_' + a][i]}</span>`).join('')
    + '</div>';
}
div.text = html + '</div>';
"""


def flight_recorder(
    data: RunData, width: int = 500, height: int = 460, max_selected: int = 60
) -> Page:
    """Two linked scatter views of the aligned UMAP layouts (one per algorithm) with an epoch slider
    (and play button), colour by true class / carried cluster / changed since the previous epoch, a
    thumbnail on hover, and box / lasso selection shown as a thumbnail grid with cluster histories.

    Returns a `Page`: the last expression of a notebook cell shows it; `page.iframe()` embeds it.
    """
    from bokeh.layouts import column, row
    from bokeh.models import (
        Button,
        ColumnDataSource,
        CustomJS,
        Div,
        HoverTool,
        RadioButtonGroup,
        Range1d,
        Slider,
    )
    from bokeh.plotting import figure

    frame = len(data.epochs) - 1  # open on the trained networks; play starts from epoch 0
    class_pal = [class_colour(c) for c in range(int(data.classes.max()) + 1)]
    kcol, by_class = zip(*(cluster_colours_per_epoch(data, a) for a in data.algos))
    src = ColumnDataSource(_columns(data, frame, class_pal), name="kit-flight-source")
    figs, titles = [], []
    for j, a in enumerate(data.algos):
        xy = np.concatenate(data.layouts[a])
        lo, hi = xy.min(0), xy.max(0)
        pad = 0.04 * (hi - lo)
        fig = figure(
            width=width + (110 if j == len(data.algos) - 1 else 0),
            height=height,
            tools="pan,wheel_zoom,box_select,lasso_select,reset",
            active_drag="box_select",
            x_range=Range1d(lo[0] - pad[0], hi[0] + pad[0]),
            y_range=Range1d(lo[1] - pad[1], hi[1] + pad[1]),
            title=_titles(data, a)[frame],
        )
        fig.title.text_color = text_colour(COLOURS[a])
        fig.axis.visible, fig.grid.visible = False, False
        r = fig.scatter(f"x_{a}", f"y_{a}", source=src, color=f"c_{a}", size=4, line_color=None,
                        nonselection_fill_alpha=0.08, nonselection_line_alpha=0.0)
        fig.add_tools(HoverTool(renderers=[r], tooltips=tooltip(data.algos)))
        figs.append(fig)
        titles.append(_titles(data, a))
    legends = _legends(figs[-1], data, class_pal)
    # one saved epoch (a run of fewer epochs than the second UMAP epoch): nothing to slide or play,
    # and bokeh refuses a slider whose start is its end
    slider = Slider(
        start=0,
        end=max(frame, 1),
        value=frame,
        step=0.02,
        title=f"epoch {data.epochs[frame]}",
        show_value=False,
        width=420,
        name="kit-flight-slider",
        visible=frame > 0,
    )
    clusters = "cluster's majority class (K > 30)" if any(by_class) else "matched cluster"
    radio = RadioButtonGroup(
        labels=["true class", clusters, "changed since previous epoch"],
        active=0,
        name="kit-flight-colour",
    )
    update = CustomJS(args=dict(src=src, slider=slider, radio=radio, figs=figs, titles=titles,
                                legends=legends, epochs=data.epochs, algos=data.algos,
                                cpal=class_pal, kcol=list(kcol), by_class=any(by_class),
                                changed=CHANGED, kept=KEPT),
                      code=_UPDATE)
    slider.js_on_change("value", update)
    radio.js_on_change("active", update)
    play = Button(label="▶ play", width=90, name="kit-flight-play", visible=frame > 0)
    play.js_on_click(CustomJS(args=dict(btn=play, slider=slider), code=_PLAY))
    hint = ("<i>Box- or lasso-select points in either view: the same images light up in both, "
            "and appear here with their cluster histories.</i>")
    grid = Div(text=hint, width=2 * width + 110, height=240, styles={"overflow-y": "auto"},
               name="kit-flight-selection")
    src.selected.js_on_change(
        "indices",
        CustomJS(args=dict(src=src, div=grid, hint=hint, epochs=data.epochs, algos=data.algos,
                           cap=max_selected, names=[NAMES[a] for a in data.algos],
                           short=[SPECS[a].short for a in data.algos],
                           colours=[text_colour(COLOURS[a]) for a in data.algos]),
                 code=_SELECTED),
    )
    layout = column(row(*figs), row(play, slider, radio), grid)
    return Page(
        layout,
        height=height + 240 + 90,
        title="kit flight recorder: " + " vs ".join(NAMES[a] for a in data.algos),
    )


def _legends(fig, data: RunData, class_pal) -> list:
    """A true-class legend and a changed / kept legend on the right of the last view; the callback
    shows the one that matches the colouring (the class legend for clusters coloured by majority
    class; none for clusters in colours of their own: there are too many to list)."""
    from bokeh.models import Legend, LegendItem

    n_classes = int(data.classes.max()) + 1
    entries = [[(data.name(c), class_pal[c % len(class_pal)]) for c in range(n_classes)],
               [("changed cluster", CHANGED), ("kept its cluster", KEPT)]]
    legends = []
    for i, items in enumerate(entries):
        legend = Legend(
            items=[
                LegendItem(
                    label=label, renderers=[fig.scatter([np.nan], [np.nan], color=colour, size=8)]
                )
                for label, colour in items
            ],
            visible=i == 0,
            location="top_left",
        )
        fig.add_layout(legend, "right")
        legends.append(legend)
    return legends
