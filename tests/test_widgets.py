"""The playground driven directly (no frontend): config, Train, compare mode, the live board with
faded earlier runs, Stop mid-epoch, errors, datasets that need a download, a sweep drawn cell by
cell."""
import time

import numpy as np
import pytest

from kit.views import live
from kit.algorithms.memory import ODCMemory
from kit.teaching.widgets import Playground


def _small(pg, algo="odc"):
    pg.n_train.value, pg.n_clusters.value, pg.epochs.value, pg.pca_dim.value = 200, 10, 2, 16
    pg.algorithm.value, pg.redraw_seconds = algo, 0.0
    return pg


def _legend(pg_or_fig):
    return [t.get_text() for leg in pg_or_fig.legends for t in leg.get_texts()]


def test_widgets_build_the_config_they_show():
    pg = Playground()
    assert pg.algorithm.value == "both" and pg.algos() == ["deepcluster", "odc"]
    pg.n_train.value = 1000  # K = 50 needs the images: its slider reaches N / min_cluster_size
    pg.algorithm.value, pg.n_clusters.value, pg.lr.value, pg.memory_momentum.value = (
        "odc",
        50,
        0.01,
        0.3,
    )
    pg.centroid_interval.value, pg.min_cluster_size.value, pg.batch_size.value = 5, 7, 32
    algo, cfg = pg.config()
    assert algo == "odc" and (
        cfg.n_clusters,
        cfg.memory_momentum,
        cfg.centroid_interval,
        cfg.min_cluster_size,
        cfg.batch_size,
        cfg.eval_every,
    ) == (50, 0.3, 5, 7, 32, 1)
    assert cfg.lr == pytest.approx(0.01)
    pg.algorithm.value, pg.pca_dim.value, pg.sobel.value = "deepcluster", 32, True
    algo, cfg = pg.config()
    assert algo == "deepcluster" and cfg.pca_dim == 32 and cfg.sobel
    assert (
        pg.settings("odc")["K"] == 50
        and "momentum" in pg.settings("odc")
        and "PCA" in pg.settings("deepcluster")
    )


def test_compare_mode_trains_both_with_the_same_settings_and_fades_the_earlier_run(tmp_path):
    pg = _small(Playground(runs_root=str(tmp_path)), "both")
    pg.train_button.click()
    # returned at once, thread running
    assert pg.train_button.disabled and not pg.stop_button.disabled
    pg.wait(timeout=600)
    assert pg.status.value == "done: DeepCluster 2 epochs; ODC 2 epochs", pg.status.value
    # 200 images / batch 64 = 4 iterations per epoch
    assert pg.progress.value == pg.progress.max == 2 * 2 * 4
    assert [t.algo for t in pg.runs] == ["deepcluster", "odc"]
    for t in pg.runs:  # both get live kNN / NMI every epoch, and the same shared settings
        assert len(t.history["epoch"]) == 2 and all(
            r["knn"] is not None for r in t.history["epoch"]
        )
        assert t.history["monitor_init"]["knn"] is not None
        # lr unmoved
        assert (t.settings["K"], t.settings["lr"], t.settings["epochs"]) == (
            10,
            pg.presets[t.algo].lr,
            2,
        )
    assert pg.draws >= 2 and "image/png" in pg.plot.outputs[0]["data"]
    assert not pg.train_button.disabled and pg.stop_button.disabled
    assert any("knn=" in o.get("text", "") for o in pg.log.outputs)

    # a second press: K differs
    pg.algorithm.value, pg.n_clusters.value, pg.epochs.value = "odc", 20, 1
    pg.train_button.click()
    pg.wait(timeout=600)
    fig = live.board(pg._current, pg.runs[:-1], pg.epochs.value)
    assert _legend(fig) == [
        "DeepCluster, earlier: K=10, lr=0.3, epochs=2",
        "ODC, earlier: K=10, epochs=2",
        "ODC",
    ]
    assert pg.caption.value == (
        "<small>on the board: <b>ODC</b>; faded: DeepCluster, earlier: K=10, lr=0.3, epochs=2; "
        "ODC, earlier: K=10, epochs=2</small>"
    )


def test_the_board_is_never_an_empty_axis_and_labels_what_differed():
    fresh = live.board([live.Trace("odc", {"K": 30})], [], epochs=10)
    knn, nmi = fresh.axes[1], fresh.axes[2]
    assert knn.get_xlim()[1] > 10 and all(float(t).is_integer() for t in knn.get_xticks())
    assert any("first point after epoch 1" in t.get_text() for t in nmi.texts)
    assert (
        live.differing({"K": 30, "lr": 0.1, "PCA": 64}, {"K": 100, "lr": 0.1, "momentum": 0.5})
        == "K=30"
    )
    assert live.differing({"K": 30}, {"K": 30}) == "same settings"
    many = [live.Trace("odc", {"K": k}) for k in (10, 20, 30, 40, 50)]
    assert (
        len(_legend(live.board([live.Trace("odc", {"K": 60})], many, 3))) == live.EARLIER_SHOWN + 1
    )


def test_stop_mid_epoch_reports_the_iterations_done_and_rolls_the_epoch_back(tmp_path):
    pg = _small(Playground(runs_root=str(tmp_path)), "both")
    pg.n_train.value, pg.epochs.value = 2000, 50  # 32 iterations per epoch
    pg.train_button.click()
    deadline = time.time() + 300
    while time.time() < deadline and not (
        pg.history and len(pg.history["step"].get("loss", [])) >= 3
    ):
        time.sleep(0.02)
    pg.stop_button.click()
    h = pg.wait(timeout=120)
    assert not pg.running and len(pg.runs) == 2
    # the steps the board saw; the trainer rolled the stopped epoch back (issue 31, item 4)
    n = pg._iters
    assert 3 <= n < 32 and h["epoch"] == [] and h["step"]["loss"] == []
    assert pg.status.value == (
        f"stopped: DeepCluster stopped after 0 epochs; epoch 1 rolled back after {n} of 32 "
        "iterations; ODC not started"
    )


def test_errors_show_one_line_and_the_traceback_in_the_collapsed_log(monkeypatch, tmp_path):
    pg = _small(Playground(runs_root=str(tmp_path)))

    def boom(self, idx, z):
        raise RuntimeError("boom in the memory\nsecond line")

    monkeypatch.setattr(ODCMemory, "update", boom)
    pg.train_button.click()
    pg.wait(timeout=300)
    assert (
        "RuntimeError: boom in the memory</span>" in pg.status.value
        and "second line" not in pg.status.value
    )
    log = "".join(o.get("text", "") for o in pg.log.outputs)
    assert "Traceback" in log and "second line" in log and pg.log_box.selected_index is None
    assert not pg.train_button.disabled


def test_a_dataset_that_needs_a_download_says_so_and_starts_nothing(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no data/cifar-10-batches-py here
    pg = Playground(runs_root=str(tmp_path))
    assert dict((v, k) for k, v in pg.dataset.options)["cifar10"] == "cifar10 (needs a download)"
    pg.dataset.value = "cifar10"
    pg.train_button.click()
    assert not pg.running and pg.runs == []
    assert "download=True" in pg.status.value and "170 MB" in pg.status.value
    pg.sweep_button.click()
    assert not pg.running and pg.sweep_path is None


def test_a_sweep_draws_each_cell_as_it_finishes_and_refuses_a_bad_grid(tmp_path):
    pg = _small(Playground(runs_root=str(tmp_path)))
    pg.n_train.value, pg.epochs.value, pg.sweep_k.value = 400, 1, "10, 20"
    pg.sweep_button.click()
    pg.wait(timeout=600)
    assert pg.status.value.startswith("sweep done: 2 of 2 cells"), pg.status.value
    assert pg.plot.outputs[0]["data"]["text/plain"] == "sweep, 2 of 2 cells" and pg.draws == 2
    cells = sorted(p.name for p in pg.sweep_path.iterdir() if p.is_dir())
    assert [c.split(",")[1] for c in cells] == ["n_clusters=10", "n_clusters=20"]
    assert (pg.sweep_path / "sweep.md").exists()
    pg.sweep_k.value = "ten"
    pg.sweep_button.click()
    assert not pg.running and "sweep K over" in pg.status.value


def test_a_collapse_shows_in_the_status_every_few_steps_and_after_an_epoch():
    import types

    import torch

    from kit.parts import collapse

    pg = Playground()
    pg.trainer = types.SimpleNamespace(
        algo="odc", memory=types.SimpleNamespace(labels=torch.tensor([0] * 90 + [1] * 10))
    )
    pg._watch, pg._losses = collapse.Watch("ODC", 10), []
    for _ in range(collapse.STEP_WINDOW - 1):
        pg._on_record({"kind": "step", "algo": "odc", "epoch": 0, "loss": 1.0})
    assert "⚠" not in pg.status.value  # judged every STEP_WINDOW steps
    pg._on_record({"kind": "step", "algo": "odc", "epoch": 0, "loss": 1.0})
    assert pg.status.value.startswith("ODC: epoch 1, loss 1.000<br>")
    assert (
        "collapse alarm, ODC epoch 1: one cluster holds most images (largest cluster 90%"
        in pg.status.value
    )
    pg._on_record(
        {
            "kind": "epoch",
            "epoch": 0,
            "loss": 30.0,
            "loss_ln_k": 13.0,
            "largest_share": 0.9,
            "nonempty": 2,
        }
    )
    # only the new symptom is added
    assert pg.alarm.count("collapse alarm") == 2 and "training diverges" in pg.alarm
    pg._on_record({"kind": "step", "algo": "odc", "epoch": 1, "loss": 1.0})
    assert "⚠" in pg.status.value  # the alarm stays under the status while the run goes on


def test_the_board_reads_stability_as_ami_with_nmi_and_its_chance_level_beside_it():
    h = {"algo": "odc", "step": {"loss": [2.0, 1.9]}, "epoch": [
        {"epoch": e, "ami_prev": a, "nmi_prev": n, "nmi_prev_chance": c}
        for e, a, n, c in ((0, 0.5, 0.6, 0.04), (1, 0.7, 0.75, 0.05))]}
    ax = live.board([live.Trace("odc", {"K": 30}, h)], [], epochs=4).axes[2]
    ys = {tuple(np.round(line.get_ydata(), 2)): line.get_linestyle() for line in ax.lines}
    # AMI, NMI (thin), its chance level dotted
    assert ys == {(0.5, 0.7): "-", (0.6, 0.75): "-", (0.04, 0.05): ":"}
    assert "AMI" in ax.get_title() and "chance" in ax.get_title()


def test_the_tensorboard_box_logs_each_run_of_the_playground(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    pg = Playground(redraw_seconds=60, runs_root=str(tmp_path))
    pg.algorithm.value, pg.n_train.value, pg.epochs.value, pg.tensorboard.value = (
        "odc",
        200,
        1,
        True,
    )
    pg.train()
    h = pg.wait(timeout=300)
    folder = next((tmp_path / "playground" / "tb").iterdir())
    ea = EventAccumulator(str(folder))
    ea.Reload()
    assert folder.name.endswith("-odc") and len(h["step"]["loss"]) >= 3
    assert [e.value for e in ea.Scalars("step/loss")] == pytest.approx(h["step"]["loss"], rel=1e-6)


def test_an_earlier_run_names_what_differs_from_the_current_run_of_its_own_algorithm():
    """Both on the board at K 50, both earlier at K 30, each at its preset lr: only K differed.
    Against the last current run (ODC, lr 0.1), the earlier DeepCluster at lr 0.3 was labelled
    "K=30, lr=0.3" (review round 6)."""
    now = [live.Trace("deepcluster", {"K": 50, "lr": 0.3}), live.Trace("odc", {"K": 50, "lr": 0.1})]
    before = [
        live.Trace("deepcluster", {"K": 30, "lr": 0.3}),
        live.Trace("odc", {"K": 30, "lr": 0.1}),
    ]
    assert live.board_labels(now, before)["earlier"] == [
        "DeepCluster, earlier: K=30",
        "ODC, earlier: K=30",
    ]
    # an algorithm not on the board now: against the newest run there is
    assert live.board_labels(now[1:], before)["earlier"] == [
        "DeepCluster, earlier: K=30, lr=0.3",
        "ODC, earlier: K=30",
    ]


def test_the_k_slider_reaches_as_far_as_the_images_allow():
    """Issue 31, item 10: K's slider reached 1,000 whatever the images, and ODC at K = 1,000 on
    4,000 digits crawled (~240 s an epoch). Its top is now N / min_cluster_size (10 at least), as
    ODC refuses more."""
    pg = Playground()
    pg.n_train.value, pg.min_cluster_size.value = 4000, 10
    assert pg.n_clusters.max == 400
    pg.n_clusters.value = 300
    pg.n_train.value = 1000
    assert pg.n_clusters.max == 100 and pg.n_clusters.value == 100  # clipped to the new top
    pg.min_cluster_size.value = 20
    assert pg.n_clusters.max == 50
    # no small-cluster fix: the top stays N / 10, DeepCluster's clusters as large
    pg.min_cluster_size.value = 0
    assert pg.n_clusters.max == 100
