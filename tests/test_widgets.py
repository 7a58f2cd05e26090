"""The playground's callbacks driven directly (no frontend): config, Train, live plot, Stop."""
import time

import pytest

from kit.memory import ODCMemory
from kit.widgets import Playground


def _small(pg):
    pg.n_train.value, pg.n_clusters.value, pg.epochs.value, pg.pca_dim.value = 400, 20, 2, 16
    pg.redraw_seconds = 0.0
    return pg


def test_widgets_build_the_config_they_show():
    pg = Playground()
    pg.algorithm.value, pg.n_clusters.value, pg.lr.value, pg.memory_momentum.value = "odc", 50, 0.01, 0.3
    pg.centroid_interval.value, pg.min_cluster_size.value, pg.batch_size.value = 5, 7, 32
    algo, cfg = pg.config()
    assert algo == "odc" and (cfg.n_clusters, cfg.memory_momentum, cfg.centroid_interval, cfg.min_cluster_size,
                              cfg.batch_size) == (50, 0.3, 5, 7, 32)
    assert cfg.lr == pytest.approx(0.01)
    pg.algorithm.value, pg.pca_dim.value, pg.sobel.value = "deepcluster", 32, True
    algo, cfg = pg.config()
    assert algo == "deepcluster" and cfg.pca_dim == 32 and cfg.sobel


def test_train_runs_in_the_background_updates_the_plot_and_finishes():
    pg = _small(Playground())
    pg.train_button.click()
    assert pg.train_button.disabled and not pg.stop_button.disabled  # returned at once, thread running
    h = pg.wait(timeout=300)
    assert len(h["epoch"]) == 2 and pg.status.value == "done: 2 epochs"
    assert pg.progress.value == pg.progress.max == 14
    assert pg.draws >= 2 and "image/png" in pg.plot.outputs[0]["data"]
    assert not pg.train_button.disabled and pg.stop_button.disabled
    assert any("nmi_prev" in o.get("text", "") for o in pg.log.outputs)


def test_stop_ends_training_at_the_next_iteration_and_keeps_the_history(monkeypatch):
    pg = _small(Playground())
    pg.algorithm.value, pg.epochs.value = "odc", 50
    pg.train_button.click()
    deadline = time.time() + 120
    while time.time() < deadline and not (pg.history and len(pg.history["step"].get("loss", [])) >= 3):
        time.sleep(0.05)
    pg.stop_button.click()
    h = pg.wait(timeout=60)
    assert not pg.running
    n = len(h["step"]["loss"])
    assert 3 <= n < 50 * 7 and len(h["epoch"]) < 50
    assert pg.status.value.startswith("stopped after")


def test_errors_in_the_thread_land_in_the_log(monkeypatch):
    pg = _small(Playground())
    pg.algorithm.value = "odc"

    def boom(self, idx, z):
        raise RuntimeError("boom in the memory")

    monkeypatch.setattr(ODCMemory, "update", boom)
    pg.train_button.click()
    pg.wait(timeout=120)
    assert "failed" in pg.status.value
    assert any("boom in the memory" in o.get("text", "") for o in pg.log.outputs)
    assert not pg.train_button.disabled
