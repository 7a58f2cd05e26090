"""A sweep: both algorithms over a small grid of settings, judged on a validation split carved out
of the train split (the test split is never loaded), every cell with the same epoch budget.
`python -m kit sweep`.

runs/<name>/
    config.json            the grid and the data settings
    deepcluster,n_clusters=10,lr=0.1,pca_dim=64,seed=31/
    odc,n_clusters=10,lr=0.1,memory_momentum=0.2,seed=31/
                           one cell each: history files, checkpoint.pt and, once it is trained,
                           result.json
    sweep.md, sweep.csv    final kNN / NMI to truth / NMI(t-1, t), mean ± std over seeds
    sweep.png              each metric against each swept setting

A cell whose result.json holds the sweep's epoch target is finished and never trained again; an
interrupted cell resumes from its checkpoint. What each algorithm's cells sweep is `GRID`
(kit/algorithms/__init__.py); everything else is the algorithm's `.small()` preset.
"""
from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, NamedTuple

from ..algorithms import CONFIGS, GRID, GRID_KEYS, NAMES, TRAINERS, compared
from ..algorithms.training import check_number
from ..analysis.seeds import mean_std
from ..parts.clustering import check_sizes
from ..parts.data import DATASETS, load_dataset, validation_split
from ..parts.runtime import AUTO, Diverged, resolve_device
from ..store.files import atomic_write_bytes, atomic_write_json, read_json
from ..store.runs import Run
from ..views.tensorboard_log import TensorBoardLog, check_available
from .run_setup import start_run

METRICS = {  # after the last epoch
    "knn": "kNN accuracy",
    "nmi_true": "NMI to true classes",
    "ami_true": "AMI to true classes",
    "nmi_prev": "NMI(t-1, t)",
    "nmi_prev_chance": "its chance level",
    "ami_prev": "AMI(t-1, t)",
}
# NMI(t-1, t) climbs with K by chance alone (kit/parts/metrics.py): AMI(t-1, t) is the stability
# read across K


@dataclass
class SweepConfig:
    """The grid (one list of values per setting) and the data every cell shares.
    `SweepConfig.fast()` is the KIT_FAST smoke sweep."""

    saved_as: ClassVar[str] = "sweep"  # its key in config.json (kit/commands/run_setup.py)

    algos: list[str] = field(default_factory=compared)  # the registry's compared pair
    # K, both algorithms: three cells per algorithm that fit a lecture (ODC at K = 300 takes 6-7 min
    # a cell on 2 cores)
    n_clusters: list[int] = field(default_factory=lambda: [10, 30, 100])
    lr: list[float] = field(default_factory=lambda: [0.1])  # SGD learning rate, both
    # the algorithm whose knob it is only; None: the dataset's preset (the digits' for a dataset
    # without its own)
    pca_dim: list[int] | None = None
    memory_momentum: list[float] | None = None
    epochs: int = 10  # the same budget for every cell
    seed: int = 31
    seeds: int = 1  # each cell with seed, seed + 1, ...
    n_val: int = 1000  # validation images carved from the train split (class-stratified, fixed)
    # images each cell fits on, from the rest of the train split (None = all)
    n_train: int | None = None
    dataset: str = "mnist5k"
    root: str = "data"
    backbone: str = "convnet"
    batch_size: int = 64
    device: str = AUTO

    @classmethod
    def fast(cls, **overrides) -> "SweepConfig":
        """KIT_FAST=1 (the tests, `make test-fast`): two K values, 2 epochs a cell on 300 images."""
        return cls(**{**dict(epochs=2, n_train=300, n_val=100, n_clusters=[10, 20]), **overrides})

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(
                f"unknown dataset {self.dataset!r}: choose one of {', '.join(DATASETS)} (--dataset)"
            )
        for knob in ("pca_dim", "memory_momentum"):
            if getattr(self, knob) is None:
                setattr(self, knob, _preset(knob, self.dataset))
        if not self.algos or set(self.algos) - set(NAMES):
            raise ValueError(
                f"algos={self.algos!r}: choose from {', '.join(NAMES)} (command line: --algo)"
            )
        for key in GRID_KEYS:
            if not getattr(self, key):
                raise ValueError(
                    f"{key} has no value to sweep: give at least one (command line: "
                    f"--{key.replace('_', '-')})"
                )
        check_number("epochs", self.epochs, 1)
        check_number("seeds", self.seeds, 1)
        check_number("n_val", self.n_val, 2)
        if self.n_train is not None:
            check_number("n_train", self.n_train, 2)
        resolve_device(self.device)
        for cell in self.cells():  # every value of the grid, checked by the algorithms' own configs
            self.algo_config(cell)

    def cells(self) -> list["Cell"]:
        """Every (algorithm, settings, seed) of the grid, one seed at a time, without repeats."""
        out = [Cell(algo, tuple(zip(GRID[algo], values)), seed)
               for seed in range(self.seed, self.seed + self.seeds) for algo in self.algos
               for values in itertools.product(*(getattr(self, k) for k in GRID[algo]))]
        return list(dict.fromkeys(out))

    def algo_config(self, cell: "Cell"):
        """The cell's algorithm settings: the dataset's `.small()` preset with the cell's values."""
        return CONFIGS[cell.algo].small(
            dataset=self.dataset,
            **dict(cell.settings),
            seed=cell.seed,
            backbone=self.backbone,
            batch_size=self.batch_size,
            device=self.device,
            eval_every=1,
        )


class Cell(NamedTuple):
    algo: str
    settings: tuple[tuple[str, int | float], ...]  # (("n_clusters", 30), ("lr", 0.1), ...)
    seed: int

    @property
    def name(self) -> str:
        """The cell's folder: its algorithm, every setting and the seed, e.g.
        odc,n_clusters=30,lr=0.1,...,seed=31."""
        values = [f"{k}={_fmt(v)}" for k, v in self.settings]
        return ",".join([self.algo, *values, f"seed={self.seed}"])


def _preset(knob: str, dataset: str) -> list:
    """The small preset's value of `knob` on `dataset`, from the algorithm whose grid varies it: a
    sweep's default."""
    return [
        getattr(CONFIGS[algo].small(dataset=dataset), knob)
        for algo, keys in GRID.items()
        if knob in keys
    ][:1]


def _fmt(value) -> str:
    """A setting as written in folder names and tables: 0.1, 1e-05, 300."""
    return format(value, "g") if isinstance(value, float) else str(value)


def load_splits(cfg: SweepConfig):
    """(fit, val) for every cell, checked against every cell's K and PCA size before anything is
    written."""
    # never "test": that split is for claims, not choices
    train = load_dataset(cfg.dataset, "train", root=cfg.root)
    fit, val = validation_split(train, cfg.n_val)
    if cfg.n_train is not None and cfg.n_train < len(fit):
        fit = fit.subset(cfg.n_train)
    for cell in cfg.cells():
        settings = dict(cell.settings)
        check_sizes(
            len(fit),
            settings["n_clusters"],
            settings.get("pca_dim", -1),
            who=cell.algo,
            pca_flag="--pca-dim",
        )
    return fit, val


def run_sweep(name: str = "sweep", config: SweepConfig | None = None,
              runs_root: str | Path = "runs", resume: bool = False, progress: bool = True,
              log=print, explicit=None, on_cell=None, stop=None,
              tensorboard: bool = False) -> Path | None:
    """Train every cell not finished yet, then write the table and the figure; returns sweep.md.
    `resume=True` continues with the saved grid (only `epochs` and `device` may change).
    `on_cell(results, cells)` is called after each cell (the playground redraws there); a set `stop`
    Event ends the sweep after the cell under way, with the table of the cells done (None when there
    are none). `tensorboard`: each cell trained now also logs to `<sweep>/tb/<cell>/`, its settings
    as hparams, so TensorBoard's HPARAMS tab compares the cells."""
    if tensorboard:
        check_available()
    run, cfg, fit, val = start_run(
        name, "sweep", None, config or SweepConfig(), runs_root, resume, load_splits, explicit, log
    )
    try:
        return _sweep(run, cfg, fit, val, progress, log, on_cell, stop, tensorboard)
    finally:
        run.unlock()


def _sweep(run: Run, cfg: SweepConfig, fit, val, progress: bool, log, on_cell, stop,
           tensorboard: bool = False) -> Path | None:
    cells = cfg.cells()
    results = []
    for i, cell in enumerate(cells, 1):
        if stop is not None and stop.is_set():
            break
        result, trained = train_cell(run, cfg, cell, fit, val, progress, tensorboard)
        results.append(result)
        log(
            f"cell {i}/{len(cells)} {cell.name}: "
            + ("trained" if trained else "finished earlier, kept")
            + ", "
            + (
                f"diverged ({result['diverged']})"
                if result.get("diverged")
                else ", ".join(f"{k} {result[k]:.3f}" for k in METRICS if result.get(k) is not None)
            )
        )
        if on_cell is not None:
            on_cell(results, cells)
    return write_results(run.path, cfg, results, len(fit), len(val)) if results else None


def train_cell(run: Run, cfg: SweepConfig, cell: Cell, fit, val, progress: bool = False,
               tensorboard: bool = False) -> tuple[dict, bool]:
    """One cell to `cfg.epochs` epochs in its folder; returns (its result, whether it trained
    now)."""
    done = run.path / cell.name / "result.json"
    result = read_json(done, "cell's result", dict) if done.exists() else {}
    if result and not isinstance(result.get("algo"), str):
        raise ValueError(
            f"{done}: algo is {result.get('algo')!r}, not the algorithm's name kit writes: delete "
            "the file to train the cell again"
        )
    if result.get("epochs") == cfg.epochs:  # finished: kept
        return result, False
    sub = Run.create(run.path, cell.name, resume=True)
    trainer, diverged = TRAINERS[cell.algo](cfg.algo_config(cell)), None
    tb = (
        [
            TensorBoardLog(
                run.path / "tb" / cell.name, {"algo": cell.algo, **dict(cell.settings)}, trainer
            )
        ]
        if tensorboard
        else []
    )
    try:
        trainer.fit(fit, cfg.epochs, eval_dataset=val, run=sub, progress=progress, callbacks=tb)
    except Diverged as e:  # a setting that diverges is a result of the sweep, not its end
        diverged = str(e).splitlines()[0]
    records = trainer.history["epoch"][: cfg.epochs]  # a lowered target reads the epoch it names
    result = {
        "algo": cell.algo,
        **dict(cell.settings),
        "seed": cell.seed,
        "epochs": cfg.epochs,
        **{k: None if diverged else records[-1].get(k) for k in METRICS},
        "diverged": diverged,
        "train_s": sum(r.get("time_train", 0) + r.get("time_eval", 0) for r in records),
    }
    atomic_write_json(done, result)
    return result, True


def summarise(results: list[dict]) -> list[dict]:
    """One row per (algorithm, settings): every metric's mean and std over seeds (sample, n - 1)."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["algo"], *((k, r[k]) for k in GRID[r["algo"]])), []).append(r)
    rows = []
    for (algo, *settings), rs in groups.items():
        row = {
            "algo": algo,
            **dict(settings),
            "seeds": len(rs),
            "diverged": sum(bool(r.get("diverged")) for r in rs),
        }
        for k in (*METRICS, "train_s"):
            # a cell from before a metric existed has none
            vals = [r[k] for r in rs if r.get(k) is not None]
            row[f"{k}_mean"], row[f"{k}_std"] = mean_std(vals) if vals else (None, None)
        rows.append(row)
    return rows


def best(rows: list[dict], metric: str = "knn") -> dict[str, dict]:
    """Per algorithm, the row with the highest mean `metric` on the validation split."""
    out = {}
    for row in rows:
        if row[f"{metric}_mean"] is not None and row[f"{metric}_mean"] > out.get(
            row["algo"], {}
        ).get(f"{metric}_mean", -1):
            out[row["algo"]] = row
    return out


def write_results(
    path: Path, cfg: SweepConfig, results: list[dict], n_fit: int, n_val: int
) -> Path:
    """sweep.csv (numbers), sweep.md (mean ± std, the best cell of each algorithm in bold),
    sweep.png."""
    rows = summarise(results)
    columns = ["algo", *GRID_KEYS, "seeds", "diverged",
               *(f"{k}_{s}" for k in (*METRICS, "train_s") for s in ("mean", "std"))]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path / "sweep.csv", buf.getvalue().encode())
    top = best(rows)
    def cell(row, k):
        if row[f"{k}_mean"] is None:
            return "—"
        return f"{row[f'{k}_mean']:.3f}" + (f" ± {row[f'{k}_std']:.3f}" if row["seeds"] > 1 else "")

    lines = [
        f"Sweep of {', '.join(cfg.algos)} on {cfg.dataset}: {cfg.epochs} epochs per cell, fit on "
        f"{n_fit} train images, judged on {n_val} validation images carved from the train split "
        "(the test split is never read). Values after the last epoch, mean ± std over seeds "
        "(sample, n - 1). Bold: each algorithm's best validation kNN.",
        "",
        "| " + " | ".join(["algo", *GRID_KEYS, "seeds", *METRICS.values(), "train s"]) + " |",
        "|---" * (3 + len(GRID_KEYS) + len(METRICS)) + "|",
    ]
    for row in rows:
        b = "**" if top.get(row["algo"]) is row else ""
        seeds = f"{row['seeds']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{b}{row['algo']}{b}",
                    *(_fmt(row.get(k, "—")) for k in GRID_KEYS),
                    seeds,
                    *(cell(row, k) for k in METRICS),
                    f"{row['train_s_mean']:.1f}",
                ]
            )
            + " |"
        )
    atomic_write_bytes(path / "sweep.md", ("\n".join(lines) + "\n").encode())
    from ..views import (
        plots,  # the figure only; a sweep that trains does not need matplotlib before this
    )

    plots.save(plots.sweep(curves(results), METRICS), path / "sweep.png")
    return path / "sweep.md"


def curves(results: list[dict]) -> dict:
    """`plots.sweep`'s input: per swept setting, metric and algorithm, one (values, metric) curve
    per seed; each point is the mean over the cells of the other settings at that value."""
    swept = [k for k in GRID_KEYS
             if len({r[k] for r in results if k in r}) > 1] or ["n_clusters"]
    out: dict = {}
    for k, m in itertools.product(swept, METRICS):
        for algo in dict.fromkeys(r["algo"] for r in results if k in r):
            mine = [r for r in results if r["algo"] == algo and r.get(m) is not None]
            values = sorted({r[k] for r in mine})
            per_seed = []
            for seed in sorted({r["seed"] for r in mine}):
                # cells per value
                at = [[r[m] for r in mine if r["seed"] == seed and r[k] == v] for v in values]
                if all(at):
                    per_seed.append((values, [mean_std(a)[0] for a in at]))
            if per_seed:
                out.setdefault(k, {}).setdefault(m, {})[algo] = per_seed
    return out
