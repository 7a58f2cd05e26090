"""Every static figure kit draws, read as a lecturer reads it on a slide: no text cut off by the
canvas or run into another title, nothing under 9 pt, no text too pale for white paper, and clusters
that a reader can tell apart by colour. The inputs are small synthetic histories and `RunData`: no
training, seconds."""
import functools
import re

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.text import Text

from kit.views import ablations, alluvial, gallery, lifecycle, plots
from kit.analysis.rundata import RunData

MIN_PT = 9  # the smallest font a slide or a printed report stays readable at
MIN_CONTRAST = 3.0  # WCAG 2's least ratio against white, for large text (kit darkens text to 4.5)
TOLERANCE_PX = 2.0
# between two cluster colours: tab20's closest pair is 0.05, nipy_spectral's 0.02 at 30 samples
MIN_OKLAB = 0.08


# -- colour maths: the WCAG and OKLab definitions, written out so that the test does not trust kit's
# own ----------
def _linear(rgb):
    rgb = np.asarray(rgb, float)
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def on_white(colour, alpha=None) -> np.ndarray:
    """The sRGB colour a (possibly translucent) colour shows on white paper."""
    r, g, b, a = to_rgba(colour, alpha)
    return np.array([r, g, b]) * a + (1 - a)


def contrast_on_white(rgb) -> float:
    """WCAG 2 contrast ratio of an sRGB colour against white: 21 for black, 1 for white."""
    return 1.05 / (float(_linear(rgb) @ [0.2126, 0.7152, 0.0722]) + 0.05)


def oklab(rgb) -> np.ndarray:
    """(..., 3) sRGB in [0, 1] -> OKLab (Ottosson 2020): Euclidean distance there tracks how
    different colours look."""
    lms = _linear(rgb) @ np.array([[0.4122214708, 0.5363325363, 0.0514459929],
                                   [0.2119034982, 0.6806995451, 0.1073969566],
                                   [0.0883024619, 0.2817188376, 0.6299787005]]).T
    return np.cbrt(lms) @ np.array([[0.2104542553, 0.7936177850, -0.0040720468],
                                    [1.9779984951, -2.4285922050, 0.4505937099],
                                    [0.0259040371, 0.7827717662, -0.8086757660]]).T


def closest_pair(colours) -> float:
    lab = oklab(np.array([to_rgba(c)[:3] for c in colours]))
    d = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    return float((d + np.eye(len(d)) * 1e9).min())


def test_the_colour_maths_against_known_values():
    assert contrast_on_white(on_white("black")) == pytest.approx(21.0)
    # WCAG's usual AA grey
    assert contrast_on_white(on_white("#767676")) == pytest.approx(4.54, abs=0.01)
    assert contrast_on_white(on_white("#bcbd22")) < MIN_CONTRAST  # tab10's olive
    assert oklab(np.ones(3)) == pytest.approx([1.0, 0.0, 0.0], abs=1e-3)


# -- small inputs for every figure -----------------------------------------------------------------
# a 30-epoch run, as the report draws it
N_CLASSES, N_TRAIN, N_SUBSET, EPOCHS = 10, 600, 200, [0, 10, 30]


def history(algo: str, k: int, epochs: int = 30, seed: int = 0) -> dict:
    """A history with every key the figures read, values in their usual ranges."""
    rng = np.random.default_rng(seed)
    shift = 0 if algo == "deepcluster" else 1
    rows = []
    for e in range(epochs):
        t, first = (e + 1) / epochs, e + shift == 0  # the first clustering has no previous one
        rows.append(
            {
                "epoch": e,
                "knn": 0.5 + 0.4 * t,
                "nmi_true": 0.3 + 0.4 * t,
                "nmi_true_chance": 0.02,
                "ami_true": 0.25 + 0.4 * t,
                "nmi_prev": None if first else 0.5 + 0.3 * t,
                "nmi_prev_chance": None if first else 0.1,
                "ami_prev": None if first else 0.4 + 0.3 * t,
                "label_change": None if first else 0.5 - 0.3 * t,
                "loss": 2.0 - t,
            }
        )
    steps = 5 * epochs
    classes = np.arange(N_TRAIN) % N_CLASSES
    near_class = lambda: (classes * 7 + rng.integers(0, 3, N_TRAIN)) % k  # noqa: E731 - a few clusters per class
    labels = [np.where(rng.random(N_TRAIN) < 0.3, rng.integers(0, k, N_TRAIN), near_class())
              for _ in range(epochs + shift)]  # 30% scattered at random
    return {
        "algo": algo,
        "config": {"n_clusters": k},
        "epoch": rows,
        "monitor_init": {"knn": 0.4, "nmi_true": 0.2},
        "step": {
            "loss": list(np.linspace(3, 1, steps) + rng.normal(0, 0.05, steps)),
            "change_ratio": list(np.linspace(0.8, 0.1, steps)),
            "epoch": [i * epochs // steps for i in range(steps)],
        },
        "labels": labels,
    }


@functools.lru_cache(maxsize=None)
def histories(k: int = 30) -> dict:
    return {"deepcluster": history("deepcluster", k), "odc": history("odc", k, seed=1)}


@functools.lru_cache(maxsize=None)
def variants() -> dict:
    """Notebook 05's runs: two DeepClusters and four ODCs, each with the collapse signals it
    draws."""
    out = {}
    for i, label in enumerate(
        [
            "DeepCluster",
            "DeepCluster, head kept, ids aligned",
            *(f"ODC, momentum {m}" for m in (0.0, 0.2, 0.5, 0.9)),
        ]
    ):
        h = history(
            "deepcluster" if label.startswith("DeepCluster") else "odc", 30, epochs=10, seed=i
        )
        for e, r in enumerate(h["epoch"]):
            r.update(
                largest_share=0.05 + 0.08 * e * (i == 3),
                nonempty=30 - 2 * e * (i == 3),
                loss_ln_k=1 - e / 20,
            )
        out[label] = h
    return out


def run_data(k: int = 30) -> RunData:
    """A run of 600 images after 30 epochs at K = k: DeepCluster 30 snapshots, ODC 31, UMAP frames
    0, 10, 30."""
    rng = np.random.default_rng(k)
    h = histories(k)
    subset = rng.permutation(N_TRAIN)[:N_SUBSET]
    return RunData(
        epochs=EPOCHS,
        layouts={a: [rng.normal(size=(N_SUBSET, 2)) for _ in EPOCHS] for a in h},
        labels={a: h[a]["labels"] for a in h},
        subset=subset,
        classes=np.arange(N_TRAIN) % N_CLASSES,
        images=rng.integers(0, 255, (N_TRAIN, 1, 28, 28), dtype=np.uint8),
        features={a: [rng.normal(size=(N_SUBSET, 16)) for _ in EPOCHS] for a in h},
        class_names=[str(c) for c in range(N_CLASSES)],
    )


def embeddings(k: int = 30):
    d = run_data(k)
    return plots.embeddings(
        d.layouts,
        d.epochs,
        d.classes[d.subset],
        {a: [d.labels[a][d.snapshot(a, e)][d.subset] for e in d.epochs] for a in d.algos},
    )


def board():
    from kit.views.live import Trace, board

    settings = {"dataset": "mnist5k", "images": 4000, "K": 30, "lr": 0.3, "batch": 64, "epochs": 30}
    current = [Trace(a, settings, histories()[a]) for a in ("deepcluster", "odc")]
    earlier = [
        Trace(
            a, {**settings, "images": 1000, "K": 100, "lr": 0.03, "batch": 128}, histories(100)[a]
        )
        for a in ("deepcluster", "odc")
    ]  # the legend names four settings that differ
    return board(current, earlier, epochs=30)


def seeded(keys):
    return plots.seeded(
        [histories(), histories(100)], keys, {"raw_pixels_nmi": 0.5, "raw_pixels_knn": 0.9}
    )


def sweep():
    from kit.commands.sweep import METRICS

    ks, lrs = [10, 30, 100], [0.01, 0.1, 1.0]
    line = lambda x: [(x, list(np.linspace(0.3, 0.8, len(x)) + s / 50)) for s in range(2)]  # noqa: E731
    return plots.sweep(
        {
            "n_clusters": {m: {a: line(ks) for a in ("deepcluster", "odc")} for m in METRICS},
            "lr": {m: {a: line(lrs) for a in ("deepcluster", "odc")} for m in METRICS},
        },
        METRICS,
    )


FIGURES = {  # every function in kit/views that returns a matplotlib figure, on small inputs
    "stability": lambda: plots.stability(histories()),
    "reassignment": lambda: plots.reassignment(histories()),
    "cluster_sizes": lambda: plots.cluster_sizes(histories(), {"deepcluster": 30, "odc": 30}),
    "learning": lambda: plots.learning(histories(), {"raw_pixels_nmi": 0.5, "raw_pixels_knn": 0.9}),
    # 02's figure
    "learning, one algorithm": lambda: plots.learning(
        {"deepcluster": histories()["deepcluster"]}, {"raw_pixels_nmi": 0.5, "raw_pixels_knn": 0.9}
    ),
    "losses": lambda: plots.losses(histories()),
    "embeddings": lambda: embeddings(30),
    "embeddings K=100": lambda: embeddings(100),
    "seeded learning": lambda: seeded(("knn", "nmi_true", "ami_true")),
    "seeded stability": lambda: seeded(("ami_prev", "nmi_prev", "label_change")),
    "sweep": sweep,
    "spectrum": lambda: plots.spectrum(
        *np.random.default_rng(0).normal(size=(2, 200, 16)) * [[[3]], [[1]]]
    ),
    "bars": lambda: plots.bars(
        np.arange(30), "Cluster sizes at the first k-means", "cluster rank", "members"
    ),
    "images": lambda: plots.images(
        np.random.default_rng(0).integers(0, 255, (20, 1, 28, 28), dtype=np.uint8),
        [f"cluster {i}" for i in range(20)],
        title="the images of a batch",
    ),
    "live board": board,
    "flows": lambda: alluvial.flows_figure(run_data(30)),
    "flows K=100": lambda: alluvial.flows_figure(run_data(100)),
    "clusters": lambda: gallery.clusters_figure(run_data()),
    "confusion": lambda: gallery.confusion_figure(run_data()),
    "moved": lambda: gallery.moved_figure(run_data()),
    "transitions": lambda: lifecycle.transitions_figure(run_data()),
    "stability map": lambda: lifecycle.stability_map_figure(run_data()),
    "churn runs": lambda: ablations.runs_figure(variants()),
    "safeguards": lambda: ablations.safeguards_figure(variants(), 30),
}


@functools.lru_cache(maxsize=None)
def drawn(name: str):
    """The figure and the texts the canvas actually drew (a tick label outside the view is never
    drawn), each with its extent in display pixels after layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = FIGURES[name]()
    FigureCanvasAgg(fig)
    texts, draw = [], Text.draw

    def recording(self, renderer):
        draw(self, renderer)
        if self.get_visible() and self.get_text().strip():
            texts.append((self, self.get_window_extent(renderer)))

    Text.draw = recording
    try:
        fig.canvas.draw()
    finally:
        Text.draw = draw
    return fig, texts


def _say(t: Text) -> str:
    return repr(t.get_text()[:60])


@pytest.mark.parametrize("name", FIGURES)
def test_no_text_is_cut_off_by_the_canvas(name):
    fig, texts = drawn(name)
    box = fig.bbox
    cut = [
        f"{_say(t)} spans x {e.x0:.0f}..{e.x1:.0f}, y {e.y0:.0f}..{e.y1:.0f} of {box.width:.0f} x "
        f"{box.height:.0f}"
        for t, e in texts
        if e.x0 < -TOLERANCE_PX
        or e.y0 < -TOLERANCE_PX
        or e.x1 > box.width + TOLERANCE_PX
        or e.y1 > box.height + TOLERANCE_PX
    ]
    assert not cut, f"{name}: text outside the figure:\n" + "\n".join(cut)


def _clashes(boxes) -> list[str]:
    return [f"{_say(a)} and {_say(b)}" for i, (a, ea) in enumerate(boxes) for b, eb in boxes[i + 1:]
            if ea.x0 < eb.x1 - TOLERANCE_PX and eb.x0 < ea.x1 - TOLERANCE_PX
            and ea.y0 < eb.y1 - TOLERANCE_PX and eb.y0 < ea.y1 - TOLERANCE_PX]


@pytest.mark.parametrize("name", FIGURES)
def test_no_title_label_or_tick_label_runs_into_another(name):
    """Titles, axis labels, suptitles and figure legends clear each other; an axis's tick labels
    clear each other."""
    fig, texts = drawn(name)
    heads = {id(t) for ax in fig.axes
             for t in (ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label)}
    for f in [fig, *fig.subfigs]:  # suptitles, and legends outside the axes
        heads |= {
            id(t) for t in [*f.texts, *(t for legend in f.legends for t in legend.get_texts())]
        }
    clash = _clashes([(t, e) for t, e in texts if id(t) in heads])
    for axis in (axis for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)):
        ticks = {id(t) for t in axis.get_ticklabels()}
        clash += _clashes([(t, e) for t, e in texts if id(t) in ticks])
    assert not clash, f"{name}: overlapping titles, labels or tick labels:\n" + "\n".join(clash)


@pytest.mark.parametrize("name", FIGURES)
def test_no_text_is_under_9_pt(name):
    _, texts = drawn(name)
    small = sorted(
        {
            f"{t.get_fontsize():g} pt: {_say(t)}"
            for t, _ in texts
            if t.get_fontsize() < MIN_PT - 1e-6
        }
    )
    assert not small, f"{name}: text under {MIN_PT} pt:\n" + "\n".join(small)


@pytest.mark.parametrize("name", FIGURES)
def test_no_text_is_too_pale_for_white_paper(name):
    _, texts = drawn(name)
    ratios = [(t, contrast_on_white(on_white(t.get_color(), t.get_alpha()))) for t, _ in texts]
    pale = sorted(
        {f"{t.get_color()} (contrast {r:.2f}): {_say(t)}" for t, r in ratios if r < MIN_CONTRAST}
    )
    assert not pale, (
        f"{name}: text too pale on white (WCAG contrast < {MIN_CONTRAST}):\n" + "\n".join(pale)
    )


@pytest.mark.parametrize("name", FIGURES)
def test_no_thin_opaque_line_is_yellow_on_white(name):
    """Lines under 2 pt in a colour paler than tab10's orange (contrast 2.5) vanish on white:
    yellow, olive, light grey. Faded lines (alpha below 1) are faint on purpose and not held to
    it."""
    fig, _ = drawn(name)
    pale = sorted(
        {
            f"{line.get_label()!r} {line.get_color()}"
            for ax in fig.axes
            for line in ax.lines
            if line.get_visible()
            and line.get_linewidth() < 2
            and (line.get_alpha() or 1) >= 1
            and line.get_linestyle() != "None"
            and contrast_on_white(on_white(line.get_color())) < 2.0
        }
    )
    assert not pale, f"{name}: thin pale lines:\n" + "\n".join(pale)


# -- clusters told apart by colour -----------------------------------------------------------------
def _cluster_panels(fig):
    """(title, {cluster: colours}) of each cluster panel of `plots.embeddings` (every second
    row)."""
    out = []
    for ax in fig.axes:
        if "cluster" in ax.get_title():
            (points,) = ax.collections
            out.append((ax.get_title(), points.get_facecolors()))
    return out


def test_thirty_clusters_get_thirty_colours_a_reader_can_tell_apart():
    fig, _ = drawn("embeddings")
    d = run_data(30)
    for (title, colours), labels in zip(
        _cluster_panels(fig),
        [d.labels[a][d.snapshot(a, e)][d.subset] for a in d.algos for e in d.epochs],
    ):
        per_cluster = {
            int(k): tuple(np.round(colours[labels == k][0], 4)) for k in np.unique(labels)
        }
        # a cluster may miss the subset
        assert len(set(per_cluster.values())) == len(per_cluster) >= 25, title
        assert closest_pair(list(per_cluster.values())) > MIN_OKLAB, title


def test_the_cluster_palette_tells_thirty_apart_and_reads_on_white():
    from kit.views import palette

    colours = palette.cluster_colours(30)
    assert len(colours) == 30 and closest_pair(colours) > MIN_OKLAB
    # no near-white dot on a white page
    assert all(contrast_on_white(on_white(c)) > 1.3 for c in colours)
    assert palette.cluster_colours(31) is None  # above 30: colour by class instead


def test_above_thirty_clusters_the_embedding_colours_by_class_and_says_so():
    fig, _ = drawn("embeddings K=100")
    panels = _cluster_panels(fig)
    assert panels
    for title, colours in panels:
        assert len({tuple(np.round(c, 4)) for c in colours}) <= N_CLASSES, title
    words = " ".join([t.get_text() for t in fig.texts] + [title for title, _ in panels])
    assert re.search(r"majority class", words) and "100" in words


def test_flows_above_thirty_clusters_draw_only_the_largest_moves_and_say_so():
    # per alluvial panel, the colours of the bands between cluster columns, stays (faint) left out
    def moves(fig):
        return [
            [
                tuple(c[:3])
                for bands in ax.collections[1:]
                for c in bands.get_facecolors()
                if c[3] > 0.3
            ]
            for ax in fig.axes
            if len(ax.collections) > 1
        ]

    grey = tuple(to_rgba(alluvial.OTHER)[:3])
    few, many = drawn("flows")[0], drawn("flows K=100")[0]
    assert all(grey in m for m in moves(few))  # K <= 30: every other move, in grey, as before
    # K = 100: the 8 largest moves of each of the 2 steps, split by class, and nothing else
    for m in moves(many):
        assert m and grey not in m and len(m) <= 2 * 8 * N_CLASSES
    words = " ".join(t.get_text() for t in [*many.texts, *(ax.title for ax in many.axes)])
    assert "8 largest moves" in words and re.search(r"K = \d+ > 30", words)


# -- the flight recorder (bokeh): titles that fit their views, clusters told apart -----------------
def _flight(k: int):
    from bokeh.models import CustomJS, RadioButtonGroup

    from kit.views.flight import flight_recorder

    page = flight_recorder(run_data(k), width=500)
    update = next(
        m for m in page.model.references() if isinstance(m, CustomJS) and "titles" in m.args
    )
    radio = next(m for m in page.model.references() if isinstance(m, RadioButtonGroup))
    return update.args, radio.labels


def title_px(line: str, size_px: float = 13) -> float:
    """A bokeh title line's width: DejaVu Sans Bold, a little wider than the browser's Helvetica
    Bold."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    bold = FontProperties(family="DejaVu Sans", weight="bold")
    return TextPath((0, 0), line, size=size_px, prop=bold).get_extents().width


def test_the_flight_recorders_titles_fit_their_views():
    args, _ = _flight(30)
    # every saved epoch's title, as the slider shows them
    for fig, titles in zip(args["figs"], args["titles"]):
        size = float(fig.title.text_font_size.rstrip("px"))
        widths = {line: title_px(line, size) for t in titles for line in t.split("\n")}
        assert max(widths.values()) <= 500 - 10, widths  # the view's width, less bokeh's border
        # two lines at every epoch: the view keeps its height
        assert {t.count("\n") for t in titles} == {1}
        assert contrast_on_white(on_white(fig.title.text_color)) >= 4.5


def test_the_flight_recorder_colours_thirty_clusters_apart_and_more_by_class():
    args, labels = _flight(30)
    # per algorithm, per saved epoch: the colour of each carried cluster id
    for per_epoch in args["kcol"]:
        for colours in per_epoch:
            assert len(set(colours)) == len(colours) == 30 and closest_pair(colours) > MIN_OKLAB
    assert not args["by_class"] and labels[1] == "matched cluster"
    args, labels = _flight(100)
    assert args["by_class"] and "majority class" in labels[1] and "K > 30" in labels[1]
    for per_epoch in args["kcol"]:
        assert all(len(set(colours)) <= N_CLASSES for colours in per_epoch)


def test_the_flight_recorder_of_one_saved_epoch_has_nothing_to_slide_and_passes_bokehs_checks():
    """A run shorter than the second UMAP epoch (`compare --epochs 2`: frames [0]) saved one layout:
    bokeh logged E-1021 for a slider from 0 to 0. The slider and the play button are hidden
    instead."""
    from bokeh.core.validation import check_integrity
    from bokeh.models import Button, Slider

    from kit.views.flight import flight_recorder

    d = run_data(30)
    one = RunData(
        epochs=[0],
        layouts={a: v[:1] for a, v in d.layouts.items()},
        labels=d.labels,
        subset=d.subset,
        classes=d.classes,
        images=d.images,
        features={a: v[:1] for a, v in d.features.items()},
        class_names=d.class_names,
    )
    for data, shown in ((one, False), (d, True)):
        models = flight_recorder(data, width=500).model.references()
        assert not check_integrity(models).error
        slider, play = (next(m for m in models if isinstance(m, t)) for t in (Slider, Button))
        assert slider.visible is play.visible is shown and slider.start < slider.end


def test_the_hover_card_names_every_algorithm_and_reads_only_columns_of_the_source():
    """The card named DeepCluster and ODC whatever the run held; a third algorithm's name has a
    hyphen, which bokeh reads as the end of a field unless it is in braces."""
    import re

    from bokeh.models import ColumnDataSource, HoverTool

    from kit.views.flight import flight_recorder

    d = run_data(k=10)
    third = RunData(epochs=d.epochs, layouts={**d.layouts, "deepcluster-v2": d.layouts["odc"]},
                    labels={**d.labels, "deepcluster-v2": d.labels["odc"]}, subset=d.subset,
                    classes=d.classes, images=d.images,
                    features={**d.features, "deepcluster-v2": d.features["odc"]},
                    class_names=d.class_names)
    models = flight_recorder(third, width=300).model.references()
    source = next(m for m in models if isinstance(m, ColumnDataSource) and "cls" in m.data)
    cards = [m.tooltips for m in models if isinstance(m, HoverTool)]
    assert len(cards) == 3
    for card in cards:
        assert all(name in card for name in ("DeepCluster", "ODC", "DeepCluster-v2"))
        fields = re.findall(r"@\{([^}]+)\}|@(\w+)", card)
        assert {a or b for a, b in fields} <= set(source.data), card
        assert not re.search(r"@\w+-", card), card  # bokeh would read the field up to the hyphen
