"""The main job: DeepCluster and ODC trained side by side with the same backbone, data, seed and
budget, then every figure and a report. `python -m kit compare` / `make demo`.

runs/<name>/
    config.json                      what was asked for
    baselines.json                   raw-pixel k-means NMI and kNN (the bar to beat)
    deepcluster/, odc/               each: history.json, epochs.jsonl, steps.jsonl, labels/,
                                     checkpoint.pt, embed_features/ (features of a fixed subset
                                     at chosen epochs, a file each)
    embeddings.npz                   the aligned UMAP layouts
    *.png, report.html               the figures and the page that puts them together

With `seeds=3` (`--seeds 3`) the run trains each algorithm with seeds 31, 32, 33: each seed is a
whole one-seed comparison of its own under `seed-31/`, `seed-32/`, ... (the layout above, so
`kit report runs/<name>/seed-32` draws that seed alone), and the top folder holds config.json,
baselines.json and the seeded report: curves as mean and band, the table as mean ± std.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from ..algorithms import CONFIGS, NAMES, TRAINERS, compared
from ..algorithms.training import check_number
from ..analysis import embed
from ..parts import collapse
from ..parts.clustering import KMeans, check_sizes, l2_normalize
from ..parts.data import DATASETS, ImageTensorDataset, load_dataset, stratified
from ..parts.distributed import SINGLE, Distributed
from ..parts.features import extract_features
from ..parts.metrics import ami, knn_accuracy, nmi
from ..parts.runtime import AUTO, resolve_device
from ..store.files import atomic_write_json
from ..store.runs import Run
from ..views.tensorboard_log import TensorBoardLog, check_available
from .run_setup import check_images, start_run, write_config


@dataclass
class CompareConfig:
    """The comparison's settings for the algorithms in `algos`; each one's `small()` preset for
    `dataset` unless overridden. `n_clusters` and `lr` left at None keep each algorithm's own
    (bench/presets.md); a value applies to every one. `CompareConfig.fast()` is the KIT_FAST smoke
    run."""

    saved_as: ClassVar[str] = "compare"  # its key in config.json (kit/commands/run_setup.py)

    # which algorithms train, in this order, each in its own folder: default the registry's compared
    # pair
    algos: list[str] = field(default_factory=compared)
    dataset: str = "mnist5k"  # any kit dataset name
    epochs: int = 30  # the same budget for each
    # K for all, or {algo: K} (two K rank no stability); None = the presets' K
    n_clusters: int | dict | None = None
    backbone: str = "convnet"
    batch_size: int = 64
    lr: float | None = None  # for all; None = each algorithm's preset
    device: str = AUTO
    seed: int = 31
    # train each algorithm with seed, seed + 1, ...; 1 = one run, in the layout above
    seeds: int = 1
    eval_every: int = 1  # epochs between kNN / NMI-to-truth monitoring
    # UMAP after these epochs (0 = untrained)
    embed_epochs: list[int] = field(default_factory=lambda: [0, 3, 10, 30])
    embed_points: int = 1500  # a fixed class-stratified subset of the train split
    n_train: int | None = None  # keep a stratified subset of the train split (None = all)
    root: str = "data"  # where torchvision datasets live
    # each algorithm's config preset the run starts from: "small", or "fast" (KIT_FAST)
    preset: str = "small"

    @classmethod
    def fast(cls, **overrides) -> "CompareConfig":
        """KIT_FAST=1 (the tests, `make test-fast`): a seconds-long smoke run, 2 epochs on 400
        images, each algorithm at its `fast()` preset, UMAP features of 300 images after every
        epoch."""
        return cls(
            **{
                **dict(
                    epochs=2, n_train=400, embed_points=300, embed_epochs=[0, 1, 2], preset="fast"
                ),
                **overrides,
            }
        )

    def __post_init__(self):
        if self.preset not in ("small", "fast"):
            raise ValueError(f"preset={self.preset!r}: choose small or fast")
        if self.dataset not in DATASETS:
            raise ValueError(
                f"unknown dataset {self.dataset!r}: choose one of {', '.join(DATASETS)} (--dataset)"
            )
        check_number("epochs", self.epochs, 1)
        check_number("seeds", self.seeds, 1)
        check_number("eval_every", self.eval_every, 0)
        check_number("embed_points", self.embed_points, 1)
        if self.n_train is not None:
            check_number("n_train", self.n_train, 2)
        # config.json holds a list; a tuple given here compares equal to it after
        self.algos = list(self.algos)
        if not self.algos or set(self.algos) - set(NAMES) or len(set(self.algos)) < len(self.algos):
            raise ValueError(
                f"algos={','.join(map(str, self.algos))}: name each once, from {', '.join(NAMES)} "
                f"(command line: --algos {','.join(compared())})"
            )
        if isinstance(self.n_clusters, dict) and set(self.n_clusters) != set(self.algos):
            raise ValueError(
                f"n_clusters={self.n_clusters}: give one K for each of {', '.join(self.algos)}, "
                f"e.g. --n-clusters {','.join(f'{a}=30' for a in self.algos)}, or one K for all"
            )
        resolve_device(self.device)  # an unknown or absent device is refused here, not mid-run
        self.algo_configs()  # each algorithm's own checks (n_clusters, batch_size, lr, ...)

    def algo_configs(self) -> dict:
        common = dict(
            backbone=self.backbone,
            batch_size=self.batch_size,
            device=self.device,
            seed=self.seed,
            eval_every=self.eval_every,
        )
        common.update(
            {k: getattr(self, k) for k in ("n_clusters", "lr") if getattr(self, k) is not None}
        )

        def own(algo):
            per_algo = isinstance(self.n_clusters, dict)
            return {"n_clusters": self.n_clusters[algo]} if per_algo else {}

        return {
            algo: getattr(CONFIGS[algo], self.preset)(
                dataset=self.dataset, **{**common, **own(algo)}
            )
            for algo in self.algos
        }

    def seed_values(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]


def load_splits(cfg: CompareConfig):
    """The train and test splits, checked against the settings: nothing is written before this
    passes."""
    # at most n_train images
    train = load_dataset(cfg.dataset, "train", root=cfg.root, n=cfg.n_train)
    test = load_dataset(cfg.dataset, "test", root=cfg.root)
    for split in (train, test):
        check_images(split)
    for algo, algo_cfg in cfg.algo_configs().items():
        check_sizes(len(train), algo_cfg.n_clusters, getattr(algo_cfg, "pca_dim", -1), who=algo)
    return train, test


def seed_run(
    run: Run, cfg: CompareConfig, seed: int, dist: Distributed = SINGLE
) -> tuple[Run, CompareConfig]:
    """Where one seed of a comparison trains, with its settings: the run itself for a one-seed run,
    else `seed-<seed>/`, a one-seed comparison of its own (config and baselines copied in)."""
    if cfg.seeds == 1:
        return run, cfg
    one = replace(cfg, seed=seed, seeds=1)
    if dist.is_writer:
        # a run of its own, which `--name seed-31` may be resuming
        Run(run.path / f"seed-{seed}").check_free()
        sub = Run.create(run.path, f"seed-{seed}", resume=True)
        write_config(sub, "compare", None, one)
        if run.file("baselines.json").exists() and not sub.file("baselines.json").exists():
            shutil.copyfile(run.file("baselines.json"), sub.file("baselines.json"))
    dist.barrier()
    return Run(run.path / f"seed-{seed}"), one


def baselines(train, test) -> dict:
    """What the learned features must beat: k-means and kNN on raw pixels (tensor datasets only)."""
    if not isinstance(train, ImageTensorDataset) or not isinstance(test, ImageTensorDataset):
        return {}  # an image folder would need a decoding pass of its own: no raw-pixel baseline
    xtr = train.images.float().flatten(1).numpy() / 255
    xte = test.images.float().flatten(1).numpy() / 255
    pred = KMeans(int(test.targets.max()) + 1, seed=0).fit(l2_normalize(xte)).labels_
    return {"raw_pixels_nmi": nmi(pred, test.targets), "raw_pixels_ami": ami(pred, test.targets),
            "raw_pixels_knn": knn_accuracy(xtr, train.targets, xte, test.targets, k=20)}


def run_compare(name: str = "compare", config: CompareConfig | None = None,
                runs_root: str | Path = "runs", resume: bool = False, progress: bool = True,
                log=print, explicit=None, dist: Distributed = SINGLE,
                tensorboard: bool = False) -> Path:
    """Train each algorithm (for each seed), embed, draw, report. Interrupted, it keeps what it
    wrote; `resume=True` continues with the run's saved settings (only `epochs` and `device` may
    change), and a seed already trained to `epochs` is not trained again. Under torchrun (`dist`)
    all ranks train, rank 0 alone writes files and the report. `tensorboard`: also log to
    `<run>/tb/<algo>/` (kit/views/tensorboard_log.py)."""
    if tensorboard:
        check_available()  # one line naming the extra, before anything is written
    run, cfg, train, test = start_run(name, "compare", None, config or CompareConfig(), runs_root,
                                      resume, load_splits, explicit, log, dist)
    try:
        return _compare(run, cfg, train, test, progress, log, dist, tensorboard)
    finally:
        run.unlock()


def _compare(run: Run, cfg: CompareConfig, train, test, progress: bool, log, dist: Distributed,
             tensorboard: bool = False) -> Path:
    writer = dist.is_writer
    if writer and not run.file("baselines.json").exists():
        atomic_write_json(run.file("baselines.json"), baselines(train, test))
    if writer:
        embed.warm_up()  # compile UMAP in the background while the networks train
    for seed in cfg.seed_values():
        one_run, one = seed_run(run, cfg, seed, dist)
        _train_each(one_run, one, train, test, progress and writer, log, dist, tensorboard)
        if cfg.seeds > 1:
            log(f"seed {seed}: done ({one_run.path})")
    if not writer:
        return run.file("report.html")
    from .report import build_report, is_current

    if is_current(run.path):
        log(
            "figures and report: up to date with the run, not drawn again (`python -m kit report` "
            "redraws)"
        )
        return run.file("report.html")
    t0 = time.perf_counter()
    build_report(run.path, log=log)
    log(f"figures and report in {time.perf_counter() - t0:.0f} s")
    return run.file("report.html")


def _train_each(run: Run, cfg: CompareConfig, train, test, progress: bool, log, dist: Distributed,
                tensorboard: bool = False) -> None:
    """DeepCluster then ODC with `cfg`'s one seed, each in its own folder under `run`; an algorithm
    already trained to `cfg.epochs` resumes, finds nothing to do and writes nothing."""
    subset = stratified(train.targets, min(cfg.embed_points, len(train)), seed=0)
    epochs = [e for e in cfg.embed_epochs if e <= cfg.epochs]
    for algo, algo_cfg in cfg.algo_configs().items():
        sub = Run.create(run.path, algo, resume=True) if dist.is_writer else Run(run.path / algo)
        dist.barrier()
        t0 = time.perf_counter()
        trainer = TRAINERS[algo](algo_cfg, dist=dist)
        capture = _EmbedCapture(trainer, train, subset, epochs, sub) if dist.is_writer else None
        if capture is not None and not sub.file("checkpoint.pt").exists():
            capture.grab(0, train)  # the untrained network, before any clustering
        callbacks = [capture, *_watching(algo, algo_cfg, trainer, run, log, dist, tensorboard,
                                         # the flight recorder's saved epochs
                                         projector_of=(sub.path, train))]
        trainer.fit(
            train, cfg.epochs, eval_dataset=test, run=sub, progress=progress, callbacks=callbacks
        )
        log(f"{algo}: {cfg.epochs} epochs in {time.perf_counter() - t0:.0f} s")


def run_train(name: str, algo: str, config: CompareConfig | None = None,
              runs_root: str | Path = "runs", resume: bool = False, progress: bool = True,
              log=print, explicit=None, dist: Distributed = SINGLE, tensorboard: bool = False):
    """One algorithm with the comparison's settings (`python -m kit train`); returns (run, history).
    `tensorboard`: also log to `<run>/tb/<algo>/`."""
    if tensorboard:
        check_available()
    run, cfg, train, test = start_run(name, "train", algo, config or CompareConfig(), runs_root,
                                      resume, load_splits, explicit, log, dist)
    # any algorithm, compared or not
    trainer = TRAINERS[algo](replace(cfg, algos=[algo]).algo_configs()[algo], dist=dist)
    try:
        return run, trainer.fit(
            train,
            cfg.epochs,
            eval_dataset=test,
            run=run,
            progress=progress and dist.is_writer,
            callbacks=_watching(algo, trainer.config, trainer, run, log, dist, tensorboard),
        )
    finally:
        run.unlock()


def _watching(
    algo: str,
    algo_cfg,
    trainer,
    run: Run,
    log,
    dist: Distributed,
    tensorboard: bool,
    projector_of=None,
):
    """The callbacks of a command's fit on the writing rank: the collapse alarm (one line per
    symptom through `log`), and with `tensorboard` the TensorBoard log under `<run>/tb/<algo>/`.
    Other ranks watch nothing."""
    if not dist.is_writer:
        return []
    alarm = collapse.Watch(algo, algo_cfg.n_clusters).saying(log)
    return (
        [alarm, TensorBoardLog(run.path / "tb" / algo, algo_cfg.to_dict(), trainer, projector_of)]
        if tensorboard
        else [alarm]
    )


class _EmbedCapture:
    """A fit callback that saves the features of a fixed subset after the chosen epochs, one file
    per epoch (`Run.save_embed_features`): an epoch adds its file and rewrites none."""

    def __init__(self, trainer, dataset, subset, epochs: list[int], run: Run):
        self.trainer, self.dataset, self.subset, self.epochs, self.run = (
            trainer,
            dataset,
            subset,
            epochs,
            run,
        )

    def __call__(self, record: dict) -> None:
        if record["kind"] == "epoch" and record["epoch"] + 1 in self.epochs:
            self.grab(record["epoch"] + 1, self.dataset)

    def grab(self, epoch: int, dataset) -> None:
        if self.trainer.model is None:
            self.trainer.setup(dataset)
        seen = self.trainer.monitor_features
        # the monitor's pass under these weights: rows of it, not a new pass
        if seen is not None and seen[0] == epoch and seen[1] is dataset and seen[2] is not None \
                and len(seen[2]) == len(dataset):
            feats = seen[2][self.subset.numpy()]
        else:
            feats = extract_features(self.trainer.model.backbone, dataset.select(self.subset),
                                     device=self.trainer.device)  # (n, D)
        self.run.save_embed_features(epoch, feats, self.subset.numpy())

