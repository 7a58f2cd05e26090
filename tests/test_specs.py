"""One spec per algorithm (issue 30): a third algorithm registered in kit/algorithms/__init__.py
alone is drawn by the report, its figures and the seeds' table with no change of their own."""
import dataclasses
import json
import shutil

import pytest

from kit import algorithms
from kit.views import ablations as ablation_views
from kit.views import plots


@pytest.fixture
def third(monkeypatch):
    """A third algorithm in the registry, and nowhere else: ODC's spec under another name, title and
    colour."""
    spec = dataclasses.replace(
        algorithms.SPECS["odc"],
        name="third",
        title="Third",
        short="3rd",
        colour="#2ca02c",
        shades="Greens",
        labels_at_epoch_start=True,
    )
    monkeypatch.setitem(algorithms.SPECS, "third", spec)
    # read through the registry
    assert algorithms.NAMES["third"] == "Third" and plots.COLOURS["third"] == "#2ca02c"
    assert ablation_views.SHADES["third"] == "Greens"
    return spec


def _with_third(run, tmp_path):
    """A copy of the session's finished comparison with a third algorithm's folder (ODC's files,
    renamed)."""
    copy = shutil.copytree(run, tmp_path / "three")
    shutil.copytree(copy / "odc", copy / "third")
    history = json.loads((copy / "third" / "history.json").read_text())
    (copy / "third" / "history.json").write_text(json.dumps({**history, "algo": "third"}))
    return copy


def test_the_report_draws_a_third_algorithm_registered_only_in_the_registry(
    third, fast_compare, tmp_path
):
    from kit.commands.report import build_report, load_histories, summary

    run = _with_third(fast_compare.path, tmp_path)
    histories = load_histories(run)
    assert list(histories) == ["deepcluster", "odc", "third"]
    rows = summary(histories, {})
    assert all(len(row) == 4 for row in rows)  # the metric and a column per algorithm
    # the third is ODC's files: the same numbers
    assert [r[3] for r in rows] == [r[2] for r in rows]
    html = build_report(run, log=lambda *_: None, umap=False).read_text()
    assert "<h1>DeepCluster vs ODC vs Third</h1>" in html
    assert "<th class=third>Third</th>" in html and "th.third { color: #2ca02c }" in html
    # its label metrics are drawn where its spec says: at x = t (clustered at an epoch's start),
    # ODC's at t + 1
    h = histories["third"]
    assert list(plots.epoch_series(h, "label_change")[0]) == [r["epoch"] for r in h["epoch"]]
    assert list(plots.epoch_series(histories["odc"], "label_change")[0]) == [
        r["epoch"] + 1 for r in h["epoch"]
    ]
    legend = [t.get_text() for t in plots.losses(histories).axes[0].get_legend().get_texts()]
    assert [t.split(" (K")[0] for t in legend] == ["DeepCluster", "ODC", "Third"]


def test_two_controls_of_one_name_must_set_one_field(monkeypatch):
    clash = dataclasses.replace(
        algorithms.SPECS["odc"],
        name="clash",
        controls=(algorithms.Control("memory_momentum", "m", "m", 0.0, 1.0, 0.1, name="pca_dim"),),
    )
    monkeypatch.setitem(algorithms.SPECS, "clash", clash)
    with pytest.raises(ValueError, match="give it a name of its own"):
        algorithms.check_controls()


def test_the_seeds_spread_has_a_column_per_algorithm():
    from kit.analysis import seeds

    per_seed = [[("kNN", 0.9, 0.8, 0.7)], [("kNN", 0.92, 0.81, 0.71)]]
    assert seeds.spread_rows(per_seed) == [
        ("kNN", "0.910 ± 0.014", "0.805 ± 0.007", "0.705 ± 0.007")
    ]
