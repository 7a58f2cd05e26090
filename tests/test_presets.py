"""Every preset has one source: each algorithm's config (`.small()`, `.fast()`), `CompareConfig` and
`SweepConfig`. Change a preset there and the command line's help, the playground's controls and the
example run follow it."""
import pytest

import kit
from kit.__main__ import main
from kit.commands.compare import CompareConfig
from kit.algorithms import CONFIGS
from kit.teaching.example import notebook_config


@pytest.fixture
def moved_presets(monkeypatch):
    """DeepCluster's small preset at lr 0.07 (its fast one builds on it) and ODC's fast preset at K
    = 35 (the playground's K reaches 40 on the fast preset's 400 images)."""
    small, fast = kit.DeepClusterConfig.small.__func__, kit.ODCConfig.fast.__func__
    monkeypatch.setattr(
        kit.DeepClusterConfig,
        "small",
        classmethod(lambda cls, **kw: small(cls, **{"lr": 0.07, **kw})),
    )
    monkeypatch.setattr(
        kit.ODCConfig, "fast", classmethod(lambda cls, **kw: fast(cls, **{"n_clusters": 35, **kw}))
    )


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_the_command_line_help_reads_the_presets(moved_presets, capsys):
    text = _help("compare", capsys)
    # --lr: every registered algorithm's
    assert "DeepCluster 0.07, ODC 0.1, DeepCluster-v2 0.003" in text
    # --n-clusters: one K said once
    assert "preset, 30; DeepCluster 20, ODC 35, DeepCluster-v2 20 with KIT_FAST=1" in text


def test_the_playground_starts_at_the_presets(moved_presets, monkeypatch):
    from kit.teaching.widgets import Playground

    for fast in ("", "1"):
        monkeypatch.setenv("KIT_FAST", fast)
        presets = {
            "deepcluster": kit.DeepClusterConfig.fast() if fast else kit.DeepClusterConfig.small(),
            "odc": kit.ODCConfig.fast() if fast else kit.ODCConfig.small(),
        }
        pg = Playground()
        # "both" shows DeepCluster's preset, and trains each at its own
        assert pg.lr.value == pytest.approx(0.07)
        assert {a: pg.config(a)[1] for a in presets} == presets
        pg.algorithm.value = "odc"
        assert pg.n_clusters.value == presets["odc"].n_clusters == (35 if fast else 30)
        assert pg.memory_momentum.value == presets["odc"].memory_momentum


def test_the_example_run_trains_the_presets(moved_presets):
    for fast, preset in ((False, "small"), (True, "fast")):
        cfg = notebook_config(fast).algo_configs()
        assert (
            cfg["deepcluster"] == getattr(kit.DeepClusterConfig, preset)()
            and cfg["deepcluster"].lr == 0.07
        )
        assert cfg["odc"] == getattr(kit.ODCConfig, preset)()
    assert notebook_config(True).algo_configs()["odc"].n_clusters == 35
    assert notebook_config(True) == CompareConfig.fast()


def test_both_mode_trains_each_algorithm_at_its_preset_until_a_shared_knob_moves():
    from kit.teaching.widgets import Playground

    pg = Playground()
    assert "each algorithm trains at its own preset" in pg.preset_note.value
    # "both" trains the compared pair: the note names those two
    assert "DeepCluster-v2" not in pg.preset_note.value
    assert pg.config("odc")[1].lr == kit.ODCConfig.fast().lr != pg.config("deepcluster")[1].lr
    pg.lr.value = 0.01  # moved: now for both
    assert [pg.config(a)[1].lr for a in ("deepcluster", "odc")] == [pytest.approx(0.01)] * 2
    assert "lr" not in pg.preset_note.value.split("preset for")[-1]


def test_the_new_playground_controls_build_the_configs_they_say():
    from kit.teaching.widgets import Playground

    pg = Playground()
    assert (
        pg.uniform_sampling.value and pg.reweight.value and "size^-0.5" in pg.reweight.description
    )
    assert (
        pg.config("deepcluster")[1].uniform_sampling and pg.config("odc")[1].reweight_power == 0.5
    )
    # the failure cases a student can make
    pg.uniform_sampling.value, pg.reweight.value = False, False
    assert (
        not pg.config("deepcluster")[1].uniform_sampling
        and pg.config("odc")[1].reweight_power == 0.0
    )
    assert (
        pg.settings("deepcluster")["uniform sampling"] is False
        and pg.settings("odc")["reweight"] is False
    )


def test_the_playground_sweeps_the_sweeps_own_k_and_lr(monkeypatch):
    from kit.commands.sweep import SweepConfig
    from kit.teaching.widgets import Playground

    monkeypatch.setenv("KIT_FAST", "")
    pg, built = Playground(), []
    monkeypatch.setattr(pg, "_start", lambda target, cfg: built.append(cfg))
    monkeypatch.setattr(pg, "_start_check", lambda: True)
    pg.sweep()
    # a lecture's size
    assert built[0].n_clusters == SweepConfig().n_clusters and max(built[0].n_clusters) <= 100
    # "both", lr unmoved: the sweep's own, as the command line's
    assert built[0].lr == SweepConfig().lr
    pg.lr.value = 0.01
    pg.sweep()
    assert built[1].lr == [0.01]


@pytest.fixture
def fashion_tuned(monkeypatch):
    """fashion5k's own settings moved away from the digits' for every algorithm, so a test sees
    which were read."""
    moved = {"deepcluster": dict(lr=0.05, pca_dim=16), "odc": dict(lr=0.02, memory_momentum=0.7),
             "deepcluster-v2": dict(lr=0.02)}
    for algo, settings in moved.items():
        monkeypatch.setattr(CONFIGS[algo], "TUNED", {"fashion5k": settings})
    return moved


def test_each_dataset_has_its_presets_in_one_place_and_every_command_reads_them(fashion_tuned):
    from kit.commands.sweep import SweepConfig

    for algo, settings in fashion_tuned.items():
        digits, clothes = CONFIGS[algo].small(), CONFIGS[algo].small(dataset="fashion5k")
        assert (
            {k: getattr(clothes, k) for k in settings}
            == settings
            != {k: getattr(digits, k) for k in settings}
        )
        # no sweep of its own: the digits' settings
        assert CONFIGS[algo].small(dataset="cifar10") == digits
        assert CONFIGS[algo].fast(dataset="fashion5k").lr == settings["lr"]  # fast builds on small
        assert CONFIGS[algo].small(dataset="fashion5k", lr=0.5).lr == 0.5  # an override still wins
    run = CompareConfig(dataset="fashion5k", algos=list(fashion_tuned)).algo_configs()
    assert {a: run[a].lr for a in run} == {a: s["lr"] for a, s in fashion_tuned.items()}
    sweep = SweepConfig(dataset="fashion5k", n_clusters=[30])
    # each knob's default: the dataset's preset
    assert (sweep.pca_dim, sweep.memory_momentum) == ([16], [0.7])
    assert SweepConfig(n_clusters=[30]).pca_dim == [CONFIGS["deepcluster"].small().pca_dim]
    cell = next(c for c in sweep.cells() if c.algo == "odc")
    assert sweep.algo_config(cell).memory_momentum == 0.7


def test_the_playground_switches_to_a_datasets_presets(fashion_tuned, monkeypatch):
    from kit.teaching.widgets import Playground

    monkeypatch.setenv("KIT_FAST", "")
    pg = Playground()
    assert (
        pg.n_train.max == 4000
        and pg.memory_momentum.value == CONFIGS["odc"].small().memory_momentum
    )
    pg.dataset.value = "fashion5k"
    assert pg.n_train.max == 5000  # all of fashion5k's train split
    assert (pg.memory_momentum.value, pg.pca_dim.value, pg.lr.value) == (
        0.7,
        16,
        pytest.approx(0.05),
    )
    assert {a: pg.config(a)[1] for a in ("deepcluster", "odc")} == {
        a: CONFIGS[a].small(dataset="fashion5k") for a in ("deepcluster", "odc")}
    # switching moved no knob of the user's
    assert pg.settings("odc")["dataset"] == "fashion5k" and not pg.moved
    pg.lr.value = 0.2  # a knob the user moves stays moved through the next switch
    pg.dataset.value = "mnist5k"
    assert (
        pg.lr.value == pytest.approx(0.2)
        and pg.config("odc")[1].memory_momentum == CONFIGS["odc"].small().memory_momentum
    )
