"""`python -m kit evaluate RUN`: every protocol of `kit.analysis.evaluate` on the run's DeepCluster
and ODC backbones, beside a random-init floor and a supervised ceiling
(kit/algorithms/supervised.py). Writes the numbers to `RUN/evaluation.json` and the benchmark pages'
tables to `RUN/evaluation.md` (kit/views/evaluation.py); the report draws the same tables from the
JSON.
"""
from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from ..algorithms import NAMES, SPECS
from ..algorithms.supervised import train_supervised
from ..algorithms.training import TrainConfig, check_number
from ..analysis import evaluate as ev
from ..analysis.seeds import seed_folders
from ..parts.data import load_dataset
from ..parts.models import Backbone, build_backbone
from ..parts.runtime import AUTO, resolve_device, seed_everything
from ..store.checkpoints import load_checkpoint
from ..store.files import atomic_write_bytes, atomic_write_json
from ..store.runs import Run, read_config


@dataclass
class EvaluateConfig:
    """What an evaluation spends; `EvaluateConfig.fast()` is the KIT_FAST smoke evaluation."""

    finetune_steps: int = 200  # SGD steps per fine-tuning setting
    # the supervised ceiling's epochs; None = the run's own budget
    supervised_epochs: int | None = None
    draws: int = 5  # low-shot SVM draws per k
    probe_epochs: int = 60  # linear-probe epochs on the cached features
    # the (base lr, head lr multiplier) settings each model is fine-tuned with
    grid: tuple = ev.FINETUNE_GRID
    # what picks each model's fine-tuning setting: "validation", or "test" (the pages' way)
    selection: str = "validation"

    @classmethod
    def fast(cls, **overrides) -> "EvaluateConfig":
        """KIT_FAST=1 (and a KIT_EPOCHS rehearsal): a few steps of everything and a 2-setting grid,
        to show the tables fill in; their numbers rank nothing."""
        return cls(**{**dict(finetune_steps=5, supervised_epochs=1, draws=2, probe_epochs=5,
                             grid=((0.01, 1), (0.1, 10))), **overrides})

    def __post_init__(self):
        check_number("finetune_steps", self.finetune_steps, 1)
        check_number("draws", self.draws, 1)
        check_number("probe_epochs", self.probe_epochs, 1)
        if self.supervised_epochs is not None:
            check_number("supervised_epochs", self.supervised_epochs, 1)
        if self.selection not in ev.SELECTIONS:
            raise ValueError(
                f"selection={self.selection!r}: choose {' or '.join(ev.SELECTIONS)} (--select-on)"
            )


def check_compare_run(run_path: Path) -> dict:
    """The settings of a finished `kit compare` run; one line for anything else."""
    cfg = read_config(run_path)
    if cfg["command"] != "compare":
        raise ValueError(
            f"{run_path} is a `{cfg['command']}` run: report and evaluate read `kit compare` runs "
            "(python -m kit compare --name NAME)"
            + (f"; a sweep's table is {run_path / 'sweep.md'}" if cfg["command"] == "sweep" else "")
        )
    check_saved_settings(run_path, cfg["compare"])
    seeds = cfg["compare"].get("seeds", 1)
    if seeds > 1:  # one evaluation takes minutes: the seeds are evaluated one by one, when asked
        seed = (seed_folders(run_path) or [run_path / f"seed-{cfg['compare'].get('seed', 31)}"])[0]
        raise ValueError(
            f"{run_path} holds {seeds} seeds, each a run of its own: evaluate one, e.g. "
            f"python -m kit evaluate {seed}"
        )
    if not any((run_path / algo / "checkpoint.pt").exists() for algo in SPECS):
        raise FileNotFoundError(
            f"{run_path} is not a finished `kit compare` run (no algorithm's checkpoint): finish "
            f"it with python -m kit compare --name {run_path.name} --runs {run_path.parent} "
            "--resume"
        )
    return cfg["compare"]


def check_saved_settings(run_path: Path, saved) -> None:
    """A hand-edited config.json (`"n_clusters": "abc"`) is refused in one line naming the file, as
    the command line refuses the same value, before any data is loaded or network built."""
    from .compare import CompareConfig

    try:
        # the device is this machine's choice, not the file's
        CompareConfig(**{**(saved or {}), "device": "cpu"})
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{run_path / 'config.json'} holds settings kit cannot use ({str(e).splitlines()[0]}): "
            "restore the file from a copy"
        ) from None


def load_backbone(run: Path, algo: str, dataset) -> tuple[Backbone, TrainConfig]:
    """The trained backbone of `run/algo/checkpoint.pt`, and the settings it was trained with."""
    path = run / algo / "checkpoint.pt"
    state = load_checkpoint(path)
    if state.get("algo") != algo:
        raise ValueError(
            f"{path} holds a {state.get('algo')} checkpoint, not {algo}: restore the run's own file"
        )
    common = {f.name for f in fields(TrainConfig)}  # the algorithm's own fields are not needed here
    cfg = TrainConfig.from_dict({k: v for k, v in state["config"].items() if k in common})
    c, h, _ = dataset.image_shape
    backbone = build_backbone(cfg.backbone, in_channels=c, sobel=cfg.sobel, image_size=h)
    # the backbone's weights alone: what the protocols judge, whatever neck and head the algorithm
    # trained with
    weights = {
        k.removeprefix("backbone."): v
        for k, v in state["model"].items()
        if k.startswith("backbone.")
    }
    try:
        backbone.load_state_dict(weights)
    except RuntimeError as e:
        raise ValueError(
            f"{path} does not fit this run's network ({str(e).splitlines()[0]})"
        ) from None
    return backbone, cfg


def evaluate_backbones(
    backbones: dict[str, Backbone], train, test, config: EvaluateConfig, log=print
) -> dict:
    """All protocols for each named backbone, as `evaluation.json` holds them:
    {name: {"linear", "knn", "svm", "semi"}}, keys as strings."""
    results = {}
    for name, bb in backbones.items():
        t0 = time.perf_counter()
        ftr, fte = ev.stage_features(bb, train), ev.stage_features(bb, test)
        ytr, yte = train.targets, test.targets
        semi = ev.semi_supervised(bb, train, test, grid=config.grid, steps=config.finetune_steps,
                                  selection=config.selection)
        results[name] = {
            "linear": ev.linear_probe(ftr, ytr, fte, yte, epochs=config.probe_epochs),
            "knn": {str(k): v for k, v in ev.knn_table(ftr[-1], ytr, fte[-1], yte).items()},
            "svm": {
                str(k): v
                for k, v in ev.svm_table(ftr[-1], ytr, fte[-1], yte, draws=config.draws).items()
            },
            "semi": {str(f): asdict(r) for f, r in semi.items()},
        }
        log(f"evaluated {name} in {time.perf_counter() - t0:.0f} s")
    return results


def evaluate_run(run_path: str | Path, config: EvaluateConfig | None = None, log=print, device=AUTO,
                 **settings) -> Path:
    """Evaluate a `kit compare` run's backbones beside random-init and supervised ones; write
    `evaluation.json` and `evaluation.md`, and return the latter's path. A report.html current with
    the run gains the tables around its figures (the evaluation feeds none); an older one is left to
    `python -m kit report`, which redraws it (the line logged says which). `settings` are
    `EvaluateConfig` fields (`evaluate_run(run, finetune_steps=100)`). Every model's features and
    fine-tunings run on `device` ("auto": the GPU where there is one)."""
    from .report import build_report, is_current

    config = config or EvaluateConfig(**settings)
    device = resolve_device(device)
    run_path = Path(run_path)
    cfg = check_compare_run(run_path)
    run = Run(run_path)
    run.lock()  # no `compare --resume` may train the weights while they are scored, or add an epoch
    try:  # to the histories while the page is written
        current = is_current(run_path)
        out = _evaluate(run_path, cfg, config, log, device)
        page = run_path / "report.html"
        redraw = f"python -m kit report {run_path} draws it with the tables"
        if not current:
            log(f"{page} is older than the run or missing: {redraw}")
            return out
        # the page as it was, with the tables: a page left older than evaluation.json would be
        # redrawn whole by the next `compare` that reopens the run (notebook 04 evaluates the
        # quickstart run that 01, or 04 run again, reopens)
        try:
            build_report(run_path, log=lambda *_: None, figures=False,
                         umap=(run_path / "embeddings.png").exists())  # a later seed's has no UMAP
        except Exception as e:  # the tables are written; the page is derived from the run's files
            log(f"{page} not rewritten ({type(e).__name__}: {e}): {redraw}")
        else:
            log(f"the tables added to {page} (its figures unchanged)")
        return out
    finally:
        run.unlock()


def _evaluate(run_path: Path, cfg: dict, config: EvaluateConfig, log, device) -> Path:
    from ..views.evaluation import markdown

    train = load_dataset(
        cfg["dataset"], "train", root=cfg.get("root", "data"), n=cfg.get("n_train")
    )
    test = load_dataset(cfg["dataset"], "test", root=cfg.get("root", "data"))
    first, *others = [algo for algo in SPECS if (run_path / algo / "checkpoint.pt").exists()]
    learned, base = load_backbone(run_path, first, train)
    seed_everything(base.seed)  # the same initial weights the trainers started from
    c, h, _ = train.image_shape
    backbones = {
        "random init": build_backbone(base.backbone, c, base.sobel, h),
        NAMES[first]: learned,
    }
    for algo in others:
        backbones[NAMES[algo]] = load_backbone(run_path, algo, train)[0]
    t0 = time.perf_counter()
    backbones["supervised"] = train_supervised(
        base, train, config.supervised_epochs or cfg["epochs"], device
    )
    log(f"supervised baseline trained in {time.perf_counter() - t0:.0f} s")
    # every protocol runs where its model is
    backbones = {name: bb.to(device) for name, bb in backbones.items()}
    results = evaluate_backbones(backbones, train, test, config, log)
    for algo, name in NAMES.items():
        # which weights were scored: a report after more training says these tables are older
        if name in results:
            results[name]["weights"] = {"epoch": trained_epochs(run_path / algo)}
    atomic_write_json(run_path / "evaluation.json", results)
    md = (
        f"# Evaluation of {run_path.name}\n\n{cfg['dataset']}: {len(train)} train / {len(test)} "
        "test images.\n\n"
        + markdown(results)
    )
    atomic_write_bytes(run_path / "evaluation.md", md.encode())
    return run_path / "evaluation.md"


def trained_epochs(algo_run: Path) -> int:
    """The epochs an algorithm's checkpoint has trained (its weights, memory-mapped: nothing else is
    read)."""
    state = torch.load(algo_run / "checkpoint.pt", map_location="cpu", weights_only=True, mmap=True)
    return int(state["epoch"])


def save_torchvision(run_path: str | Path, algo: str, out: str | Path) -> Path:
    """Write the run's `algo` backbone as a torchvision ResNet state dict (`torch.save`)."""
    run_path = Path(run_path)
    cfg = check_compare_run(run_path)
    train = load_dataset(
        cfg["dataset"], "train", root=cfg.get("root", "data"), n=cfg.get("n_train")
    )
    sd = ev.export_torchvision(load_backbone(run_path, algo, train)[0])
    buf = io.BytesIO()
    torch.save(sd, buf)
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)
