"""The algorithms: each in a module of this package (DeepCluster, ODC with its memory,
DeepCluster-v2), and here, by name, each written once as a `Spec`: the one place the rest of kit
reads them from.

    TRAINERS["odc"](ODCConfig.small()).fit(train, epochs=10)
    CONFIGS["deepcluster"].fast()        # each config owns its presets: .small(), .fast()
    SPECS["odc"].colour                  # what a view needs: names, colour, when its label
                                         # metrics are taken

A spec is plain data, read by the command line before torch loads (kit/__main__.py); `TRAINERS` and
`CONFIGS` import the algorithms' modules on first use (PEP 562) for the same reason. A view, the
report, the flight recorder, the sweep loop over `SPECS` (the run store over the algorithms a run
holds) and name no algorithm.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module


@dataclass(frozen=True)
class Control:
    """One of an algorithm's own knobs in the playground: a slider from `low` to `high`, or a
    checkbox where `low` is None. A `switch` is a checkbox over a number: ticked, the field takes
    the preset's value (or the config class's default where the preset's is 0), unticked 0."""
    field: str  # the config field it sets, and the playground's attribute (`name` where given)
    label: str  # the control's description ("{value}" in a switch's: the value it sets when ticked)
    short: str  # how the live board's run labels name it
    low: float | None = None
    high: float | None = None
    step: float | None = None
    switch: bool = False
    name: str = ""

    @property
    def attribute(self) -> str:
        return self.name or self.field


@dataclass(frozen=True)
class Spec:
    name: str  # as in commands, folders and histories ("odc")
    title: str  # as written for people ("ODC")
    short: str  # where room is short (the flight recorder's selection grid)
    module: str  # the module of this package that defines the trainer and the config
    trainer: str  # the trainer's class name there
    config: str  # the config's class name there (its presets: .small(), .fast())
    colour: str  # its colour in every figure
    shades: str  # a matplotlib colour map for a family of its runs (notebook 05's ablations)
    # the settings a sweep varies; every other setting is the algorithm's preset
    # (kit/commands/sweep.py)
    grid: tuple[str, ...]
    loss: str  # its training loss, as a legend names it
    # True: an epoch's record describes the labels the epoch trained on, clustered at its start
    # (DeepCluster's k-means), so its label metrics sit at x = t epochs of training; False: the
    # labels at the epoch's end (ODC's memory), x = t+1. The label snapshots follow: snapshot s
    # follows s epochs, and ODC's snapshot 0 is its initial k-means.
    labels_at_epoch_start: bool
    # the step record of labels changed in each iteration's batch, if it has one
    reassigned_per_step: str | None
    controls: tuple[Control, ...] = ()  # its own knobs in the playground, in the order shown
    # in what kit compares unless told otherwise (`compare`, the playground's "both", a sweep): the
    # lesson's pair; another algorithm runs where named (`compare --algos`, `sweep --algo`, the
    # playground's toggle)
    compared: bool = True


SPECS = {
    spec.name: spec
    for spec in (
        Spec("deepcluster", "DeepCluster", "DC", "deepcluster", "DeepCluster", "DeepClusterConfig",
             colour="#1f77b4", shades="Blues", grid=("n_clusters", "lr", "pca_dim"), loss="CE",
             labels_at_epoch_start=True, reassigned_per_step=None,
             controls=(Control("pca_dim", "PCA dim (-1: none)", "PCA", -1, 256, 1),
                       Control("sobel", "Sobel front-end", "Sobel"),
                       # off: batches are a plain shuffle, so the big clusters fill them and the
                       # small ones starve
                       Control("uniform_sampling", "sample clusters uniformly",
                               "uniform sampling"))),
        Spec("odc", "ODC", "ODC", "odc", "ODC", "ODCConfig", colour="#ff7f0e", shades="Oranges",
             grid=("n_clusters", "lr", "memory_momentum"), loss="weighted CE",
             labels_at_epoch_start=False, reassigned_per_step="change_ratio",
             controls=(Control("memory_momentum", "memory momentum", "momentum", 0.0, 1.0, 0.05),
                       Control("centroid_interval", "centroid interval", "centroid interval", 1,
                               100, 1),
                       Control("min_cluster_size", "min cluster size", "min size", 0, 100, 1),
                       # off: every cluster weighs the same in the loss, so a few big clusters can
                       # take over
                       Control("reweight_power", "reweight by size^-{value:g}", "reweight",
                               switch=True, name="reweight"))),
        # the successor (SwAV paper, 2020): run where named, `compare --algos ...,deepcluster-v2`
        Spec("deepcluster-v2", "DeepCluster-v2", "DCv2", "deepcluster_v2", "DeepClusterV2",
             "DeepClusterV2Config", colour="#2ca02c", shades="Greens", grid=("n_clusters", "lr"),
             loss="CE over heads", labels_at_epoch_start=True, reassigned_per_step=None,
             controls=(Control("temperature", "softmax temperature", "T", 0.05, 1.0, 0.05),),
             compared=False),
    )
}


class Field(Mapping):
    """{name: one field of its spec}, read from SPECS at each look-up: a spec registered later is in
    it too."""

    def __init__(self, attribute: str):
        self.attribute = attribute

    def __getitem__(self, name: str):
        return getattr(SPECS[name], self.attribute)

    def __iter__(self):
        return iter(SPECS)

    def __len__(self) -> int:
        return len(SPECS)

    def __repr__(self) -> str:
        return repr(dict(self))


def compared() -> list[str]:
    """The algorithms kit compares by default, in registry order: those whose spec says
    `compared`."""
    return [name for name, spec in SPECS.items() if spec.compared]


NAMES = Field("title")  # as in commands and folders -> as written for people
GRID = Field("grid")
# n_clusters, lr, pca_dim, memory_momentum: read once, at import (a sweep's knobs are SweepConfig's
# fields, fixed too)
GRID_KEYS = tuple(dict.fromkeys(key for keys in GRID.values() for key in keys))


def check_controls() -> None:
    """Two algorithms' playground controls may share a name only if they set the same field: one
    widget then serves both (K, lr and the like are the playground's own). Run at import and by the
    playground as it builds its knobs."""
    seen: dict[str, str] = {}
    for spec in SPECS.values():
        for c in spec.controls:
            if seen.setdefault(c.attribute, c.field) != c.field:
                raise ValueError(
                    f"{spec.name}'s control {c.attribute!r} sets {c.field}, another's sets "
                    f"{seen[c.attribute]}: give it a name of its own (Control(name=...))"
                )


check_controls()


def _classes(attribute: str) -> dict:
    return {name: getattr(import_module(f"{__package__}.{spec.module}"), getattr(spec, attribute))
            for name, spec in SPECS.items()}


def __getattr__(name: str):
    if name == "TRAINERS":
        return _classes("trainer")
    if name == "CONFIGS":
        return _classes("config")
    raise AttributeError(f"module 'kit.algorithms' has no attribute {name!r}")
