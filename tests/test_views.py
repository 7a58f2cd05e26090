"""The image-level views (kit/views/): the flow maths, galleries, flips, and the flight recorder as
a self-contained page, on label arrays and on a small run folder written without training."""
import html
import os
import re
from pathlib import Path

import numpy as np
import pytest

from kit.views import plots
from kit.analysis.evaluate import STAGES
from kit.parts.metrics import changed, label_change
from kit.analysis import flows
from kit.analysis.rundata import RunData
from test_browser import CHROMIUM, FLAGS, jupyterlab, open_and_run_all  # noqa: F401 - the JupyterLab server fixture, reused


# -- the maths -------------------------------------------------------------------------------------
def test_carried_ids_turn_a_relabelled_clustering_into_a_perfect_flow():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 20, 500)
    b = rng.permutation(20)[a]  # the same clustering, every id renamed
    chain = flows.carry_ids([a, b])
    assert np.array_equal(chain[1], a)  # ids carried back onto the first snapshot's
    table = flows.flow_table(*chain)
    assert np.trace(table) == 500 and table.sum() == 500  # all mass on the diagonal
    assert not changed(a, b).any()
    assert flows.top_flows(*chain, m=5) == {"stayed": 500, "moves": [], "other": 0}


def test_carried_ids_follow_a_cluster_through_several_epochs():
    a = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    b = np.array([5, 5, 5, 3, 3, 0, 1, 1, 1])  # renamed; image 5 leaves for a cluster of its own
    c = np.array([2, 2, 4, 4, 4, 4, 0, 0, 0])  # renamed again; image 5 comes back, image 2 joins it
    chain = flows.carry_ids([a, b, c], n_clusters=6)
    assert chain[1].tolist() == [0, 0, 0, 1, 1, chain[1][5], 2, 2, 2] and chain[1][5] not in (
        0,
        1,
        2,
    )
    assert chain[2].tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert flows.flips([a, b, c]).tolist() == [0, 0, 1, 0, 0, 2, 0, 0, 0]


def test_flow_counts_sum_to_n_and_agree_with_the_label_change_metric():
    rng = np.random.default_rng(1)
    classes = rng.integers(0, 10, 1000)
    a = (classes * 3 + rng.integers(0, 3, 1000)) % 30
    # 20% move
    b = np.where(rng.random(1000) < 0.2, rng.integers(0, 30, 1000), rng.permutation(30)[a])
    chain = flows.carry_ids([a, b])
    assert flows.flow_table(*chain).sum() == 1000
    for m in (0, 1, 8, 1000):
        f = flows.top_flows(*chain, m=m)
        assert f["stayed"] + sum(n for *_, n in f["moves"]) + f["other"] == 1000
        assert len(f["moves"]) <= m and all(i != j for i, j, _ in f["moves"])
        assert [n for *_, n in f["moves"]] == sorted((n for *_, n in f["moves"]), reverse=True)
    rows, counts = flows.alluvium(classes, *chain)
    assert counts.sum() == 1000 and len(np.unique(rows, axis=0)) == len(rows)
    assert changed(a, b).mean() == pytest.approx(label_change(a, b))  # the history's label_change
    assert 0.1 < changed(a, b).mean() < 0.3


def test_majority_class_and_purity():
    labels = np.array([0, 0, 0, 0, 2, 2])
    classes = np.array([1, 1, 1, 3, 0, 0])
    major, size, purity = flows.majority_class(labels, classes, n_clusters=3)
    assert major[[0, 2]].tolist() == [1, 0] and size.tolist() == [4, 0, 2]
    assert purity.tolist() == [0.75, 0.0, 1.0]
    # non-empty clusters, by matched class
    assert flows.cluster_order(labels, classes).tolist() == [2, 0]


def test_gallery_images_are_the_nearest_to_their_centroid():
    from sklearn.metrics import pairwise_distances
    from sklearn.preprocessing import normalize

    rng = np.random.default_rng(2)
    # norms vary: rows are normalised
    features = rng.normal(size=(300, 8)) * rng.uniform(0.5, 3, size=(300, 1))
    labels = rng.integers(0, 6, 300)
    got = flows.nearest_to_centroid(features, labels, n=5)
    x = normalize(features)
    for c in range(6):
        members = np.flatnonzero(labels == c)
        d = pairwise_distances(x[members], x[members].mean(0, keepdims=True)).ravel()
        assert got[c].tolist() == members[np.argsort(d)[:5]].tolist()
    # by hand: three unit vectors at -40, 0 and +40 degrees; the middle one is nearest their mean
    angles = np.radians([-40, 0, 40])
    pts = np.stack([np.cos(angles), np.sin(angles)], 1) * [[1], [7], [3]]
    assert flows.nearest_to_centroid(pts, np.zeros(3, int), n=1)[0].tolist() == [1]


def test_flips_are_counted_over_the_same_transitions_for_both_algorithms():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 5, 60)
    dc = [a, rng.permutation(5)[a], a]  # 3 epochs: 3 k-means, each a relabelling: no image moved
    # initial + after each epoch; the last epoch scrambles everything
    odc = [a, a, a, rng.integers(0, 5, 60)]
    data = RunData(
        epochs=[0, 3],
        layouts={
            "deepcluster": [rng.normal(size=(60, 2))] * 2,
            "odc": [rng.normal(size=(60, 2))] * 2,
        },
        labels={"deepcluster": dc, "odc": odc},
        subset=np.arange(60),
        classes=a,
        images=rng.integers(0, 255, (60, 1, 8, 8), dtype=np.uint8),
    )
    s = data.common_snapshots()
    assert s == 3  # DeepCluster never clusters the features of its last epoch
    assert flows.flips(dc, upto=s).sum() == 0 and flows.flips(odc, upto=s).sum() == 0
    assert flows.flips(odc).sum() > 0  # the transition DeepCluster has no counterpart for
    assert data.snapshot("deepcluster", 3) == 2 and data.snapshot("odc", 3) == 3
    from kit.views.gallery import moved_figure

    titles = [ax.get_title() for ax in moved_figure(data, n_images=4).axes if ax.get_title()]
    assert len(titles) == 2 and all("over the 2 transitions 0→2" in t for t in titles)


def test_plots_save_writes_the_format_its_extension_names(tmp_path):
    fig = plots.bars(np.arange(5), "sizes", "cluster", "members")
    for ext, magic in (("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")):
        plots.save(fig, tmp_path / f"f.{ext}")
        assert (tmp_path / f"f.{ext}").read_bytes().startswith(magic)
    first = (tmp_path / "f.svg").read_bytes()
    plots.save(plots.bars(np.arange(5), "sizes", "cluster", "members"), tmp_path / "f.svg")
    assert (tmp_path / "f.svg").read_bytes() == first  # reproducible, like the PNGs
    assert b"<svg" in first and b"<path" in first
    with pytest.raises(ValueError, match=r"\.png, \.svg or \.pdf"):
        plots.save(fig, tmp_path / "f.jpg")


# -- a run folder written without training ---------------------------------------------------------
EPOCHS, N_TRAIN, N_SUBSET, K = [0, 1, 3], 60, 30, 6
# evaluation.json's contents
EVALUATION = {
    name: {
        "linear": {s: {"top1": 90.0 + i} for i, s in enumerate(STAGES)},
        "knn": {20: 95.5},
        "svm": {"SVM": 96.0, 1: (50.0, 5.0)},
        "semi": {0.01: {"top1": 80.0, "top5": 99.0, "setting": "lr 0.01"}},
    }
    for name in ("random init", "DeepCluster", "ODC", "supervised")
}


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    """A `kit compare` folder after 3 epochs, written with kit.store.runs helpers: 60 digits, K = 6,
    DeepCluster with 3 label snapshots and ODC with 4, features and UMAP layouts of 30 of them at
    epochs 0, 1, 3."""
    from kit.parts.data import load_dataset
    from kit.commands.report import build_report
    from kit.store.runs import Run
    from kit.store.files import atomic_write_bytes, atomic_write_json, atomic_write_npz
    from kit.views.evaluation import markdown

    rng = np.random.default_rng(0)
    classes = load_dataset("mnist5k", n=N_TRAIN).targets.numpy()
    run = Run.create(tmp_path_factory.mktemp("runs"), "fake")
    atomic_write_json(
        run.file("config.json"),
        {
            "command": "compare",
            "algo": None,
            "compare": {
                "dataset": "mnist5k",
                "n_train": N_TRAIN,
                "n_clusters": K,
                "epochs": 3,
                "embed_epochs": EPOCHS,
            },
        },
    )
    subset = rng.permutation(N_TRAIN)[:N_SUBSET]
    layouts = {}
    for algo, n_snaps in (("deepcluster", 3), ("odc", 4)):
        labels = [
            np.where(rng.random(N_TRAIN) < 0.3, rng.integers(0, K, N_TRAIN), classes % K)
            for _ in range(n_snaps)
        ]
        Run.create(run.path, algo, resume=True).save_history(
            {"algo": algo, "epoch": [{"epoch": e, "loss": 2.0 - e / 2} for e in range(3)],
             "step": {"loss": [2.0, 1.5, 1.0], "epoch": [0, 1, 2]}, "labels": labels})
        for e in EPOCHS:
            Run(run.path / algo).save_embed_features(
                e, rng.normal(size=(N_SUBSET, 16)).astype(np.float32), subset
            )
        layouts.update(
            {f"{algo}_{e:04d}": rng.normal(size=(N_SUBSET, 2)).astype(np.float32) for e in EPOCHS}
        )
    atomic_write_npz(run.file("embeddings.npz"), **layouts)  # as if the report had run UMAP already
    atomic_write_json(
        run.file("baselines.json"), {"raw_pixels_nmi": 0.532, "raw_pixels_knn": 0.943}
    )
    # what `kit evaluate` writes, and the report reads
    atomic_write_json(run.file("evaluation.json"), EVALUATION)
    atomic_write_bytes(
        run.file("evaluation.md"), ("# Evaluation of fake\n\n" + markdown(EVALUATION)).encode()
    )
    build_report(run.path, log=lambda *_: None)
    return run.path


def test_run_data_reads_the_run_folder(fake_run):
    data = RunData.load(fake_run)
    assert data.epochs == EPOCHS and data.algos == ["deepcluster", "odc"]
    assert [len(data.labels[a]) for a in data.algos] == [3, 4]
    assert data.images.shape == (N_TRAIN, 1, 28, 28) and data.classes.shape == (N_TRAIN,)
    assert data.gallery_epoch() == 1  # the last saved epoch both algorithms clustered
    assert data.clusters("odc", 3).shape == (N_SUBSET,)


def test_report_shows_the_new_figures_with_captions(fake_run):
    from kit.views.build import FIGURES

    page = (fake_run / "report.html").read_text()
    for name, caption in FIGURES.items():
        assert (fake_run / name).read_bytes()[:4] == b"\x89PNG", name
        assert f'src="{name}"' in page and html.escape(caption) in page


def test_the_report_reads_as_tables_with_a_guide_under_every_figure(fake_run):
    from kit.commands.report import GUIDES

    page = (fake_run / "report.html").read_text()
    assert "|---" not in page and "<pre>" not in page  # no Markdown left for the reader to parse
    summary = re.search(r"<table>.*?</table>", page, re.S).group(0)  # the first table: the summary
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", summary, re.S)
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r) for r in rows]
    names = [c[0] for c in cells]
    # its own row, under the metric it bounds
    knn = names.index("kNN accuracy on raw pixels (baseline, no training)")
    assert names[knn - 1] == "kNN accuracy, final" and cells[knn][1:] == ["0.943"]
    assert "NMI to true classes, k-means on raw pixels (baseline)" in names
    assert '<td colspan="2" class="span" style="text-align:center">0.532</td>' in summary
    # the settings
    assert "<th>setting</th><th>value</th>" in page and "<td>n_clusters</td><td>6</td>" in page
    assert "<h2>Evaluation protocols</h2>" in page and "<th>Feature3</th>" in page
    assert "<tr><td>supervised</td><td>90.00</td>" in page  # an evaluation table row, as HTML cells
    figures = re.findall(r'<figure><img src="([^"]+)".*?</figure>', page, re.S)
    assert set(figures) >= {"learning.png", "cluster_sizes.png", "flows.png"}
    for name in figures:  # a reading guide under each figure
        assert name in GUIDES and html.escape(GUIDES[name]) in page, name


def test_the_flight_recorder_in_the_report_is_self_contained(fake_run):
    page = (fake_run / "report.html").read_text()
    assert page.count("<iframe srcdoc=") == 1
    # the standalone bokeh page
    inner = html.unescape(re.search(r'<iframe srcdoc="([^"]*)"', page).group(1))
    tags = re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", inner)
    # nothing fetched
    assert tags and not [t for t in tags if re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", t)]
    assert "Bokeh.embed.embed_items" in inner  # BokehJS itself is inline
    for algo in ("deepcluster", "odc"):  # the data of every saved epoch, for both views
        assert all(
            f'"x_{algo}_{f}"' in inner and f'"k_{algo}_{f}"' in inner for f in range(len(EPOCHS))
        )
    assert inner.count('"name":"Figure"') == 2 and '"name":"kit-flight-slider"' in inner
    assert inner.count('"data:image/png;base64,') >= N_SUBSET  # a thumbnail per point for the hover


# Browser checks: BokehJS's own models and views, read from inside the page
MODEL = "(name) => Bokeh.documents[0].get_model_by_name(name)"
XS = f"() => Array.from(({MODEL})('kit-flight-source').data.x_odc)"
SET = f"([name, key, value]) => {{ ({MODEL})(name)[key] = value }}"
FIRST_VIEW = "[...Bokeh.index.all_views()].find(v => v.model.type == 'Figure')"  # DeepCluster's
SCREEN = f"""(i) => {{  // where image i is drawn in the DeepCluster view, in the frame's pixels
  const view = {FIRST_VIEW}, d = ({MODEL})('kit-flight-source').data,
    r = view.canvas_view.el.getBoundingClientRect();
  return [r.left + view.frame.x_scale.compute(d.x_deepcluster[i]),
    r.top + view.frame.y_scale.compute(d.y_deepcluster[i])];
}}"""
AREA = f"""() => {{  // the DeepCluster view's plotting area, in the frame's pixels, and its x range
  const view = {FIRST_VIEW}, r = view.canvas_view.el.getBoundingClientRect(), b = view.frame.bbox;
  return [r.left + b.x0, r.top + b.y0, r.left + b.x1, r.top + b.y1,
    view.model.x_range.start, view.model.x_range.end];
}}"""


def _drive(page, frame, data: RunData) -> None:
    """Slide, recolour, hover and box-select the flight recorder in `frame` (a page or an iframe in
    it)."""
    from kit.views.flight import thumbnail

    frame.wait_for_function(
        "() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.index", timeout=60_000
    )
    frame.wait_for_timeout(500)
    element = frame.frame_element() if frame.parent_frame else None
    dx, dy = (lambda b: (b["x"], b["y"]))(element.bounding_box()) if element else (0, 0)
    # opens on the last epoch
    assert np.allclose(frame.evaluate(XS), data.layouts["odc"][-1][:, 0], atol=1e-5)
    # half-way from the first saved epoch to the second
    frame.evaluate(SET, ["kit-flight-slider", "value", 0.5])
    assert np.allclose(
        frame.evaluate(XS),
        (data.layouts["odc"][0][:, 0] + data.layouts["odc"][1][:, 0]) / 2,
        atol=1e-5,
    )
    frame.evaluate(SET, ["kit-flight-colour", "active", 2])  # changed since the previous epoch
    frame.evaluate(SET, ["kit-flight-slider", "value", len(data.epochs) - 1])
    colours = frame.evaluate(f"() => Array.from(({MODEL})('kit-flight-source').data.c_odc)")
    assert {c for c, moved in zip(colours, data.changed("odc", data.epochs[-1])) if moved} == {
        "#d62728"
    }
    frame.evaluate(SET, ["kit-flight-colour", "active", 0])
    x, y = frame.evaluate(SCREEN, 0)  # hover image 0 in the DeepCluster view: its thumbnail shows
    page.mouse.move(dx + x - 15, dy + y - 15)
    page.mouse.move(dx + x, dy + y, steps=3)
    tooltip = frame.locator("img[src^='data:image/png']").first
    tooltip.wait_for(state="visible", timeout=10_000)
    assert tooltip.get_attribute("src") == thumbnail(data.images[data.subset[0]])
    # drag a box over the left half of the DeepCluster view
    x0, y0, x1, y1, start, end = frame.evaluate(AREA)
    page.mouse.move(dx + x0 + 2, dy + y0 + 2)
    page.mouse.down()
    page.mouse.move(dx + (x0 + x1) / 2, dy + (y0 + y1) / 2, steps=5)
    page.mouse.move(dx + (x0 + x1) / 2, dy + y1 - 2, steps=5)
    page.mouse.up()
    selected = frame.evaluate(f"() => ({MODEL})('kit-flight-source').selected.indices.length")
    expected = (data.layouts["deepcluster"][-1][:, 0] < (start + end) / 2).sum()
    # one source behind both views: the ODC view selects the same images
    assert 0 < selected == expected
    grid = frame.evaluate(f"() => ({MODEL})('kit-flight-selection').text")
    assert f"{selected} images selected" in grid and grid.count("<img") == min(selected, 60)
    assert grid.count("ODC ") >= min(selected, 60)  # each image with its cluster history


needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian chromium is not installed (apt-get install chromium)",
)


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
@pytest.mark.timeout(180)
def test_the_flight_recorder_moves_hovers_and_links_in_a_browser(fake_run, tmp_path):
    from playwright.sync_api import sync_playwright

    from kit.views.flight import flight_recorder

    data = RunData.load(fake_run)
    path = flight_recorder(data).save(tmp_path / "flight.html")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        urls = []
        page.on("request", lambda r: urls.append(r.url))
        page.goto(path.resolve().as_uri())
        _drive(page, page.main_frame, data)
        # offline
        assert not [u for u in urls if not u.startswith(("file:", "data:", "about:", "blob:"))]
        browser.close()


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
@pytest.mark.timeout(300)
def test_the_flight_recorder_works_in_a_real_jupyterlab(jupyterlab, fake_run, tmp_path):  # noqa: F811 - the fixture
    import nbformat
    from playwright.sync_api import expect, sync_playwright

    cell = (
        "from kit.analysis.rundata import RunData\nfrom kit.views.flight import flight_recorder\n\n"
        f"flight_recorder(RunData.load({str(fake_run)!r}))"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, tmp_path / "nb" / "flight.ipynb")  # the root the jupyterlab fixture serves
    with sync_playwright() as p:
        browser, page = open_and_run_all(p, f"{jupyterlab}/lab/tree/flight.ipynb")
        iframe = page.locator("iframe[title^='kit flight recorder']")
        expect(iframe).to_be_attached(timeout=120_000)
        iframe.scroll_into_view_if_needed()
        frame = next(
            f for f in page.frames if f.parent_frame is not None and f.url == "about:srcdoc"
        )
        _drive(page, frame, RunData.load(fake_run))
        if "KIT_SCREENSHOTS" in os.environ:
            page.screenshot(path=str(Path(os.environ["KIT_SCREENSHOTS"]) / "flight_jupyterlab.png"))
        browser.close()


# -- what clusters do between epochs, and which images keep theirs ---------------------------------
def test_each_transition_kind_on_a_hand_made_pair_of_clusterings():
    from kit.analysis import transitions as tr

    prev = np.repeat([0, 1, 2, 3, 4, 5], 10)  # six clusters of ten images
    cur = np.concatenate([
        [7] * 10,  # 0 keeps all its members, and leads its new cluster: survived (renamed 0 -> 7)
        [7] * 8 + [1] * 2,  # 1 keeps 80% together, inside the cluster 0 leads: merged (absorbed)
        [2] * 5 + [3] * 5,  # 2 in two halves: split
        # 3 keeps a core of 40% together, the rest scattered: shrank
        [4, 4, 4, 4, 5, 5, 6, 6, 8, 9],
        [5, 5, 6, 6, 8, 8, 9, 9, 1, 1],  # 4: died, its pieces all under 30%
        [10] * 10])  # 5: survived
    assert tr.classify(prev, cur) == {
        "survived": 2,
        "merged": 1,
        "split": 1,
        "shrank": 1,
        "died": 1,
        "born": 5,
        "of": 6,
        "new": 10,
    }
    # born: 1, 5, 6, 8 and 9 hold at most 20% of any old cluster; 4 holds 40% of cluster 3, so it is
    # not new
    # ids are names
    assert tr.classify(prev, np.random.default_rng(0).permutation(11)[cur]) == tr.classify(
        prev, cur
    )


def test_the_strip_of_a_steady_run_is_all_survivors_and_its_reassignment_is_label_change():
    from kit.analysis import transitions as tr

    rng = np.random.default_rng(4)
    a = rng.integers(0, 10, 500)
    # ~9% move
    b = np.where(rng.random(500) < 0.1, rng.integers(0, 10, 500), rng.permutation(10)[a])
    rows = tr.strip([a, rng.permutation(10)[a], b])
    assert rows[0] == {
        "survived": 10,
        "merged": 0,
        "split": 0,
        "shrank": 0,
        "died": 0,
        "born": 0,
        "of": 10,
        "new": 10,
        "reassigned": 0.0,
    }
    assert rows[1]["survived"] == 10 and rows[1]["reassigned"] == pytest.approx(label_change(a, b))
    kept = tr.kept_share([a, a, b])
    assert set(np.unique(kept)) <= {0.5, 1.0} and (kept == 0.5).mean() == pytest.approx(
        label_change(a, b)
    )


def test_centroid_distance_and_the_hardest_images():
    from kit.analysis import transitions as tr

    # normalised: (1, 0), (0, 1), (.71, .71); one cluster
    x = np.array([[1.0, 0.0], [0.0, 5.0], [3.0, 3.0]])
    centroid = np.array([1 + 0.7071, 1 + 0.7071]) / 3
    d = tr.centroid_distance(x, np.zeros(3, int))
    assert d == pytest.approx(
        [
            np.hypot(1 - centroid[0], centroid[1]),
            np.hypot(centroid[0], 1 - centroid[1]),
            np.hypot(*(0.7071 - centroid)),
        ],
        abs=1e-4,
    )
    assert tr.hardest(
        np.array([1.0, 0.5, 0.5, 0.0]), np.array([0.1, 0.2, 0.9, 0.3]), n=3
    ).tolist() == [3, 2, 1]


def test_the_report_has_the_transitions_strip_the_stability_map_and_agreement_in_the_captions(
    fake_run,
):
    from kit.views import flight

    page = (fake_run / "report.html").read_text()
    assert 'src="transitions.png"' in page and 'src="stability_map.png"' in page
    assert "Collapse alarm" in page  # a section, flagged or not
    data = RunData.load(fake_run)
    titles = flight._titles(data, "odc")  # epochs 0, 1, 3: snapshots 0, 1, 3
    assert "AMI" not in titles[0]  # the initial k-means has no previous epoch
    from kit.parts.metrics import agreement

    m = agreement(data.labels["odc"][2], data.labels["odc"][3])
    assert (
        f"AMI(t-1, t) {m['ami']:.2f} · NMI {m['nmi']:.2f}, chance {m['nmi_chance']:.2f}"
        in titles[2]
    )


def test_the_report_warns_when_the_two_algorithms_ran_at_different_k():
    from kit.commands.report import _unequal_k

    h = lambda k: {"config": {"n_clusters": k}, "epoch": []}  # noqa: E731
    warning = _unequal_k({"deepcluster": h(100), "odc": h(30)})
    assert "DeepCluster K = 100 and ODC K = 30" in warning and "do not rank" in warning
    assert "--n-clusters 30" in warning
    assert (
        _unequal_k({"deepcluster": h(30), "odc": h(30)}) == "" and _unequal_k({"odc": h(30)}) == ""
    )


def test_a_report_on_other_data_says_nothing_measured_on_digits(fast_compare, tmp_path):
    """The takeaway and the digits' words belong to the demo's dataset (issue 30): a run on other
    data gets the guides in terms of classes and no takeaway; the demo's own run keeps both."""
    import json
    import shutil

    from kit.commands.report import GUIDES, build_report, guide

    assert any("digit" in text for text in GUIDES.values())
    assert not any("digit" in guide(name, "cifar10") for name in GUIDES)
    assert guide("confusion.png", "mnist5k") == GUIDES["confusion.png"]
    run = shutil.copytree(fast_compare.path, tmp_path / "other")
    mine = (run / "report.html").read_text()
    assert "<h3>Takeaway</h3>" in mine and "digit" in mine
    cfg = json.loads((run / "config.json").read_text())
    # the page is rewritten around the figures drawn; no image is read
    cfg["compare"]["dataset"] = "imagefolder"
    (run / "config.json").write_text(json.dumps(cfg))
    page = build_report(run, log=lambda *_: None, umap=False, figures=False).read_text()
    assert "<h3>Takeaway</h3>" not in page and "digit" not in page.lower()
