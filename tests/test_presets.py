"""Every preset has one source: each algorithm's config (`.small()`, `.fast()`), `CompareConfig` and
`SweepConfig`. Change a preset there and the command line's help, the playground's controls and the
example run follow it."""
import pytest

import kit
from kit.__main__ import main
from kit.compare import CompareConfig
from kit.example import notebook_config


@pytest.fixture
def moved_presets(monkeypatch):
    """DeepCluster's small preset at lr 0.07 (its fast one builds on it) and ODC's fast preset at K = 35 (the
    playground's K reaches 40 on the fast preset's 400 images)."""
    small, fast = kit.DeepClusterConfig.small.__func__, kit.ODCConfig.fast.__func__
    monkeypatch.setattr(kit.DeepClusterConfig, "small", classmethod(lambda cls, **kw: small(cls, **{"lr": 0.07, **kw})))
    monkeypatch.setattr(kit.ODCConfig, "fast", classmethod(lambda cls, **kw: fast(cls, **{"n_clusters": 35, **kw})))


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_the_command_line_help_reads_the_presets(moved_presets, capsys):
    text = _help("compare", capsys)
    assert "DeepCluster 0.07, ODC 0.1, DeepCluster-v2 0.003" in text  # --lr: every registered algorithm's
    assert "preset, 30; DeepCluster 20, ODC 35, DeepCluster-v2 20 with KIT_FAST=1" in text  # --n-clusters: one K said once


def test_the_playground_starts_at_the_presets(moved_presets, monkeypatch):
    from kit.widgets import Playground

    for fast in ("", "1"):
        monkeypatch.setenv("KIT_FAST", fast)
        presets = {"deepcluster": kit.DeepClusterConfig.fast() if fast else kit.DeepClusterConfig.small(),
                   "odc": kit.ODCConfig.fast() if fast else kit.ODCConfig.small()}
        pg = Playground()
        assert pg.lr.value == pytest.approx(0.07)  # "both" shows DeepCluster's preset, and trains each at its own
        assert {a: pg.config(a)[1] for a in presets} == presets
        pg.algorithm.value = "odc"
        assert pg.n_clusters.value == presets["odc"].n_clusters == (35 if fast else 30)
        assert pg.memory_momentum.value == presets["odc"].memory_momentum


def test_the_example_run_trains_the_presets(moved_presets):
    for fast, preset in ((False, "small"), (True, "fast")):
        cfg = notebook_config(fast).algo_configs()
        assert cfg["deepcluster"] == getattr(kit.DeepClusterConfig, preset)() and cfg["deepcluster"].lr == 0.07
        assert cfg["odc"] == getattr(kit.ODCConfig, preset)()
    assert notebook_config(True).algo_configs()["odc"].n_clusters == 35
    assert notebook_config(True) == CompareConfig.fast()


def test_both_mode_trains_each_algorithm_at_its_preset_until_a_shared_knob_moves():
    from kit.widgets import Playground

    pg = Playground()
    assert "each algorithm trains at its own preset" in pg.preset_note.value
    assert "DeepCluster-v2" not in pg.preset_note.value  # "both" trains the compared pair: the note names those two
    assert pg.config("odc")[1].lr == kit.ODCConfig.fast().lr != pg.config("deepcluster")[1].lr
    pg.lr.value = 0.01  # moved: now for both
    assert [pg.config(a)[1].lr for a in ("deepcluster", "odc")] == [pytest.approx(0.01)] * 2
    assert "lr" not in pg.preset_note.value.split("preset for")[-1]


def test_the_new_playground_controls_build_the_configs_they_say():
    from kit.widgets import Playground

    pg = Playground()
    assert pg.uniform_sampling.value and pg.reweight.value and "size^-0.5" in pg.reweight.description
    assert pg.config("deepcluster")[1].uniform_sampling and pg.config("odc")[1].reweight_power == 0.5
    pg.uniform_sampling.value, pg.reweight.value = False, False  # the failure cases a student can make
    assert not pg.config("deepcluster")[1].uniform_sampling and pg.config("odc")[1].reweight_power == 0.0
    assert pg.settings("deepcluster")["uniform sampling"] is False and pg.settings("odc")["reweight"] is False


def test_the_playground_sweeps_the_sweeps_own_k_and_lr(monkeypatch):
    from kit.sweep import SweepConfig
    from kit.widgets import Playground

    monkeypatch.setenv("KIT_FAST", "")
    pg, built = Playground(), []
    monkeypatch.setattr(pg, "_start", lambda target, cfg: built.append(cfg))
    monkeypatch.setattr(pg, "_start_check", lambda: True)
    pg.sweep()
    assert built[0].n_clusters == SweepConfig().n_clusters and max(built[0].n_clusters) <= 100  # a lecture's size
    assert built[0].lr == SweepConfig().lr  # "both", lr unmoved: the sweep's own, as the command line's
    pg.lr.value = 0.01
    pg.sweep()
    assert built[1].lr == [0.01]
