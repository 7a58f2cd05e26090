"""Every config field is actually read somewhere in kit (STYLE.md principle 6), and the defaults
are the published values."""
import ast
import functools
import re
from dataclasses import fields
from pathlib import Path

import pytest

import kit
from kit.commands.compare import CompareConfig
from kit.commands.evaluate_run import EvaluateConfig
from kit.commands.sweep import SweepConfig

CONFIGS = [kit.DeepClusterConfig, kit.ODCConfig, CompareConfig, SweepConfig, EvaluateConfig]
# cfg, config, odc_cfg, self.config, trainer.config, ...
CONFIG_NAME = re.compile(r"(?:\w+_)?(?:cfg|config)$")


def config_reads(source: str, config_classes=()) -> set[str]:
    """The attribute names read off a config object in `source`: `cfg.x`, `config.x`,
    `self.config.x`, `odc_cfg.x`, and `self.x` inside a method of a config class (its own `lr_at`,
    say) other than `__post_init__`, where the settings are only checked. A write (`cfg.x = 1`) is
    not a read."""
    reads = set()

    def visit(node, in_config_method=False):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                method = isinstance(item, ast.FunctionDef) and item.name != "__post_init__"
                visit(item, node.name in config_classes and method)
            return
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            v = node.value
            owner = (
                v.id if isinstance(v, ast.Name) else v.attr if isinstance(v, ast.Attribute) else ""
            )
            if CONFIG_NAME.match(owner) or (in_config_method and owner == "self"):
                reads.add(node.attr)
        for child in ast.iter_child_nodes(node):
            visit(child, in_config_method)

    visit(ast.parse(source))
    return reads


def test_the_field_reader_counts_config_objects_only():
    source = """
class ODCConfig:
    def __post_init__(self):
        check(self.checked_only)
    def lr_at(self, epoch):
        return self.own_method
class Trainer:
    def fit(self):
        self.same_name_elsewhere, self.config.nested, cfg.plain, odc_cfg.prefixed
        cfg.written = 1
        return helper.not_a_config
"""
    assert config_reads(source, ["ODCConfig"]) == {"own_method", "nested", "plain", "prefixed"}


@functools.cache
def kit_reads() -> set[str]:
    names = [c.__name__ for c in CONFIGS]
    return set().union(
        *(config_reads(p.read_text(), names) for p in Path(kit.__file__).parent.rglob("*.py"))
    )


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_is_read(cls):
    reads = kit_reads()
    unread = [f.name for f in fields(cls) if f.name not in reads]
    assert not unread, f"{cls.__name__} fields never read off a config object in kit/: {unread}"


def test_defaults_are_the_published_values():
    dc, odc = kit.DeepClusterConfig(), kit.ODCConfig()
    assert (dc.n_clusters, dc.pca_dim, dc.kmeans_iters, dc.lr, dc.momentum, dc.weight_decay) == (
        10_000,
        256,
        20,
        0.1,
        0.9,
        1e-5,
    )
    assert dc.sobel and dc.uniform_sampling and not dc.reweight and dc.backbone == "resnet50"
    assert (
        odc.n_clusters,
        odc.lr,
        odc.memory_momentum,
        odc.min_cluster_size,
        odc.centroid_interval,
    ) == (10_000, 0.06, 0.5, 20, 10)
    assert odc.lr_decay_epochs == (400,) and odc.lr_decay == 0.4 and odc.reweight_power == 0.5


def test_unknown_fields_in_a_saved_config_are_refused():
    with pytest.raises(ValueError, match="unknown DeepClusterConfig fields: typo"):
        kit.DeepClusterConfig.from_dict({"typo": 1})


def test_small_presets_are_the_swept_values_and_compare_keeps_each_unless_typed(capsys):
    from kit.__main__ import main

    dc, odc = kit.DeepClusterConfig.small(), kit.ODCConfig.small()
    # bench/presets.md: one K for both, each its lr
    assert (dc.n_clusters, dc.lr, dc.pca_dim) == (30, 0.3, 64)
    assert (odc.n_clusters, odc.lr, odc.memory_momentum) == (30, 0.1, 0.2)
    own = CompareConfig().algo_configs()
    assert own["deepcluster"] == dc and own["odc"] == odc
    # a typed --n-clusters / --lr applies to both
    typed = CompareConfig(n_clusters=50, lr=0.05).algo_configs()
    assert [(c.n_clusters, c.lr) for c in typed.values()] == [(50, 0.05), (50, 0.05)]
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    said = " ".join(capsys.readouterr().out.split())  # what --help says, lines unwrapped
    # one K: said once
    assert f"preset, {dc.n_clusters}" in said and f"DeepCluster {dc.lr}, ODC {odc.lr}" in said


def test_a_run_saved_with_one_k_and_lr_resumes_with_them(tmp_path):
    """Runs from before per-algorithm presets saved one K and one lr: they resume with those, for
    both."""
    from kit.commands.run_setup import resumed_config
    from kit.store.runs import Run
    from kit.store.files import atomic_write_json

    run = Run.create(tmp_path, "old")
    saved = {k: v for k, v in vars(CompareConfig()).items()} | {"n_clusters": 100, "lr": 0.1}
    atomic_write_json(
        run.file("config.json"), {"command": "compare", "algo": None, "compare": saved}
    )
    cfg = resumed_config(run.path, "compare", None, CompareConfig(), explicit=[])
    assert [(c.n_clusters, c.lr) for c in cfg.algo_configs().values()] == [(100, 0.1), (100, 0.1)]


def test_a_comparison_at_two_k_is_typed_per_algorithm():
    """`--n-clusters deepcluster=100,odc=30`: each algorithm its own K (the report then says
    stability ranks nothing); one K for both stays the plain number; a partial or misspelt list is
    refused."""
    import argparse

    from kit.__main__ import cluster_counts
    from kit.commands.compare import CompareConfig

    assert cluster_counts("30") == 30
    both = CompareConfig.fast(n_clusters=cluster_counts("deepcluster=40,odc=20"))
    assert {a: c.n_clusters for a, c in both.algo_configs().items()} == {
        "deepcluster": 40,
        "odc": 20,
    }
    for bad in ("deepclustr=40,odc=20", "abc", "odc=x"):
        with pytest.raises(argparse.ArgumentTypeError, match="one per algorithm"):
            cluster_counts(bad)
    with pytest.raises(ValueError, match="one K for each of deepcluster, odc"):
        CompareConfig.fast(n_clusters={"odc": 20})


def test_a_comparison_trains_the_algorithms_it_names_each_once(tmp_path):
    """`--algos`: the registry's compared pair by default, any registered ones in the order typed;
    an unknown, repeated or empty list is refused in one line; a run saved before `algos` existed
    reads as the pair; K per algorithm must name the algorithms compared. `train --algo` takes any
    registered algorithm."""
    from kit.__main__ import _parser, _compare_config
    from kit.algorithms import compared
    from kit.store.files import atomic_write_json
    from kit.commands.run_setup import resumed_config
    from kit.store.runs import Run

    assert CompareConfig().algos == compared() == ["deepcluster", "odc"]
    assert list(CompareConfig.fast(algos=("odc",)).algo_configs()) == ["odc"]
    cfg, typed = _compare_config(_parser().parse_args(["compare", "--algos", "odc, deepcluster"]))
    assert cfg.algos == ["odc", "deepcluster"] and "algos" in typed
    for bad, said in (("odc,odc", "algos=odc,odc"), ("odc,dc", "algos=odc,dc"), (",", "algos=")):
        with pytest.raises(ValueError, match=f"{said}: name each once, from deepcluster, odc"):
            _compare_config(_parser().parse_args(["compare", "--algos", bad]))
    with pytest.raises(ValueError, match="one K for each of odc"):
        CompareConfig.fast(algos=["odc"], n_clusters={"odc": 20, "deepcluster": 20})
    run = Run.create(tmp_path, "old")
    saved = {k: v for k, v in CompareConfig().__dict__.items() if k != "algos"}
    atomic_write_json(
        run.file("config.json"), {"command": "compare", "algo": None, "compare": saved}
    )
    assert resumed_config(run.path, "compare", None, CompareConfig(), explicit=[]).algos == [
        "deepcluster",
        "odc",
    ]
