"""The main job: DeepCluster and ODC trained side by side with the same backbone, data, seed and
budget, then every figure and a report. `python -m kit compare` / `make demo`.

runs/<name>/
    config.json                      what was asked for
    baselines.json                   raw-pixel k-means NMI and kNN (the bar to beat)
    deepcluster/, odc/               each: history.json, epochs.jsonl, steps.jsonl, labels/, checkpoint.pt,
                                     embed_features.npz (features of a fixed subset at chosen epochs)
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
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from . import collapse
from .clustering import KMeans, check_sizes, l2_normalize
from .data import DATASETS, ImageTensorDataset, _stratified, load_dataset
from .deepcluster import DeepCluster, DeepClusterConfig
from .distributed import SINGLE, Distributed
from .features import extract_features
from .metrics import knn_accuracy, nmi
from .odc import ODC, ODCConfig
from .runs import Run, atomic_write_json, atomic_write_npz, check_name, read_config
from .runtime import resolve_device
from .tensorboard_log import TensorBoardLog, check_available
from .training import check_number
from .views import embed

TRAINERS = {"deepcluster": DeepCluster, "odc": ODC}


@dataclass
class CompareConfig:
    """The comparison's settings; each algorithm's `small()` preset unless overridden. `n_clusters`
    and `lr` left at None keep each algorithm's own (bench/presets.md); a value applies to both."""

    dataset: str = "mnist5k"  # any kit dataset name
    epochs: int = 30  # the same budget for both
    n_clusters: int | None = None  # K for both; None = each preset's (DeepCluster 100, ODC 30)
    backbone: str = "convnet"
    batch_size: int = 64
    lr: float | None = None  # for both; None = each preset's (DeepCluster 0.3, ODC 0.1)
    device: str = "auto"
    seed: int = 31
    seeds: int = 1  # train each algorithm with seed, seed + 1, ...; 1 = one run, in the layout above
    eval_every: int = 1  # epochs between kNN / NMI-to-truth monitoring
    embed_epochs: list[int] = field(default_factory=lambda: [0, 3, 10, 30])  # UMAP after these epochs (0 = untrained)
    embed_points: int = 1500  # a fixed class-stratified subset of the train split
    n_train: int | None = None  # keep a stratified subset of the train split (None = all)
    root: str = "data"  # where torchvision datasets live

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}: choose one of {', '.join(DATASETS)} (--dataset)")
        check_number("epochs", self.epochs, 1)
        check_number("seeds", self.seeds, 1)
        check_number("eval_every", self.eval_every, 0)
        check_number("embed_points", self.embed_points, 1)
        if self.n_train is not None:
            check_number("n_train", self.n_train, 2)
        resolve_device(self.device)  # an unknown or absent device is refused here, not mid-run
        self.algo_configs()  # both algorithms' own checks (n_clusters, batch_size, lr, ...)

    def algo_configs(self) -> dict:
        common = dict(backbone=self.backbone, batch_size=self.batch_size, device=self.device, seed=self.seed,
                      eval_every=self.eval_every)
        common.update({k: getattr(self, k) for k in ("n_clusters", "lr") if getattr(self, k) is not None})
        return {"deepcluster": DeepClusterConfig.small(**common), "odc": ODCConfig.small(**common)}

    def seed_values(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]


def load_splits(cfg: CompareConfig):
    """The train and test splits, checked against the settings: nothing is written before this passes."""
    train = load_dataset(cfg.dataset, "train", root=cfg.root, n=cfg.n_train)  # at most n_train images
    test = load_dataset(cfg.dataset, "test", root=cfg.root)
    for split in (train, test):
        check_images(split)
    for algo, algo_cfg in cfg.algo_configs().items():
        check_split_size(len(train), algo, algo_cfg.n_clusters, getattr(algo_cfg, "pca_dim", -1))
    return train, test


def check_split_size(n: int, algo: str, n_clusters: int, pca_dim: int = -1, pca_flag: str | None = None) -> None:
    """`check_sizes` in the command line's words: what to type, never a setting it has no flag for."""
    if n < max(2, n_clusters):
        raise ValueError(f"{algo} needs at least {max(2, n_clusters)} train images for K={n_clusters} clusters, and "
                         f"the train split has {n}: give more images" + (
                             f" or --n-clusters from 2 to {n}" if n >= 2 else ""))
    if pca_dim > 0 and n < pca_dim:
        raise ValueError(f"{algo} whitens features to {pca_dim} PCA dims, which needs at least {pca_dim} train images; "
                         f"the train split has {n}: give more images" + (f" or {pca_flag} {n} or less" if pca_flag else ""))
    check_sizes(n, n_clusters, pca_dim)


def check_images(dataset) -> None:
    """An image folder read through before anything is written: every file must open as an image, and
    the kNN / NMI monitor needs two classes (sub-folders) at least. Tensor datasets pass as they are."""
    from .data import IndexedImageFolder

    if not isinstance(dataset, IndexedImageFolder):
        return
    from PIL import Image

    folder = dataset.folder.root
    if len(dataset.classes) < 2:
        raise ValueError(f"{folder} holds one class folder ({dataset.classes[0]}/): kit's kNN and NMI monitor "
                         "needs two class sub-folders at least; put each kind of image in its own sub-folder")
    for path, _ in dataset.folder.samples:
        try:
            with Image.open(path) as im:
                im.verify()  # the file's structure and checksums, without decoding every pixel
        except Exception as e:  # noqa: BLE001 - PIL raises many kinds; name the file, not PIL's internals
            raise ValueError(f"cannot read image {path} ({type(e).__name__}): remove or replace the file; "
                             "nothing was written") from None


def resumed_config(path: Path, command: str, algo: str | None, requested: CompareConfig,
                   explicit=None, log=print) -> CompareConfig:
    """The settings a run was started with: a resume continues with exactly those. Only `epochs`
    (the target) and `device` (the machine) may change; any other differing setting in `explicit`
    (default: all) is listed as ignored. A missing run or a run of another command is refused."""
    if not Run(path).exists():
        raise FileNotFoundError(f"no run named {path.name!r} under {path.parent} to resume: drop --resume to start it")
    saved = read_config(path)
    if saved["command"] != command or saved.get("algo") != algo:
        how = f"train --algo {saved.get('algo')}" if saved["command"] == "train" else saved["command"]
        raise ValueError(f"{path} is a `{how}` run: resume it with python -m kit {how} --name {path.name} "
                         f"--runs {path.parent} --resume")
    key = "sweep" if command == "sweep" else "compare"  # compare and train runs save a CompareConfig
    if saved[key] is None:  # kit 0.1 train runs saved no data settings: the command line's are used
        return requested
    try:
        cfg = type(requested)(**saved[key])
    except TypeError as e:
        raise ValueError(f"{path / 'config.json'} does not match this kit version ({e})") from None
    explicit = [f.name for f in fields(requested)] if explicit is None else explicit
    uses = lambda v: "each algorithm's preset" if v is None else v  # noqa: E731 - n_clusters / lr left to the presets
    ignored = [f"--{k.replace('_', '-')} {getattr(requested, k)} (the run uses {uses(getattr(cfg, k))})" for k in explicit
               if k not in ("epochs", "device") and getattr(requested, k) != getattr(cfg, k)]
    if ignored:
        log(f"resuming {path} with its saved settings; ignored: {', '.join(ignored)}")
    for k in ("epochs", "device"):
        if k in explicit:
            setattr(cfg, k, getattr(requested, k))
    return cfg


def start_run(name: str, command: str, algo: str | None, cfg: CompareConfig, runs_root, resume: bool,
              explicit=None, log=print, dist: Distributed = SINGLE, load=load_splits):
    """Every check of a `compare`, `train` or `sweep` command, then the run folder and its config;
    returns (run, cfg, train, test) (`load(cfg)` gives the last two: a sweep's are fit and validation).
    A resume reads back every file it will read first. A refused command writes nothing. The writer
    holds the run's lock from here (`Run.lock`; `run.unlock()` when done): a second writer is refused.
    Under torchrun every rank checks, rank 0 writes, the others wait."""
    path = Path(runs_root) / check_name(name)
    if resume:
        cfg = resumed_config(path, command, algo, cfg, explicit, log)
    Run(path).check_ours()
    if Run(path).exists() and not resume:
        raise FileExistsError(f"{path} already holds a run: pass --resume to continue it, or choose another name")
    train, test = load(cfg)
    if resume:
        Run(path).check(n_samples=len(train))  # a damaged file is named now, not after DeepCluster has trained
    if dist.is_writer:
        run = Run.create(runs_root, name, resume=resume, lock=True)
        try:
            write_config(run, command, algo, cfg)
        except BaseException:
            run.unlock()
            raise
    dist.barrier()
    return Run(path), cfg, train, test


def write_config(run: Run, command: str, algo: str | None, cfg) -> None:
    """`config.json`, written when new or changed (a new epoch target); the sweep's settings are saved
    under "sweep", a compare or train run's under "compare"."""
    config = {"command": command, "algo": algo, "sweep" if command == "sweep" else "compare": asdict(cfg)}
    if not run.file("config.json").exists() or read_config(run.path) != config:
        atomic_write_json(run.file("config.json"), config)


def seed_run(run: Run, cfg: CompareConfig, seed: int, dist: Distributed = SINGLE) -> tuple[Run, CompareConfig]:
    """Where one seed of a comparison trains, with its settings: the run itself for a one-seed run,
    else `seed-<seed>/`, a one-seed comparison of its own (config and baselines copied in)."""
    if cfg.seeds == 1:
        return run, cfg
    one = replace(cfg, seed=seed, seeds=1)
    if dist.is_writer:
        Run(run.path / f"seed-{seed}").check_free()  # a run of its own, which `--name seed-31` may be resuming
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
    return {"raw_pixels_nmi": nmi(pred, test.targets),
            "raw_pixels_knn": knn_accuracy(xtr, train.targets, xte, test.targets, k=20)}


def run_compare(name: str = "compare", config: CompareConfig | None = None, runs_root: str | Path = "runs",
                resume: bool = False, progress: bool = True, log=print, explicit=None,
                dist: Distributed = SINGLE, tensorboard: bool = False) -> Path:
    """Train both (for each seed), embed, draw, report. Interrupted, it keeps what it wrote; `resume=True`
    continues with the run's saved settings (only `epochs` and `device` may change), and a seed
    already trained to `epochs` is not trained again. Under torchrun (`dist`) all ranks train, rank 0
    alone writes files and the report. `tensorboard`: also log to `<run>/tb/<algo>/` (kit/tensorboard_log.py)."""
    if tensorboard:
        check_available()  # one line naming the extra, before anything is written
    run, cfg, train, test = start_run(name, "compare", None, config or CompareConfig(), runs_root, resume,
                                      explicit, log, dist)
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
        _train_both(one_run, one, train, test, progress and writer, log, dist, tensorboard)
        if cfg.seeds > 1:
            log(f"seed {seed}: done ({one_run.path})")
    if not writer:
        return run.file("report.html")
    from .views.report import build_report

    t0 = time.perf_counter()
    build_report(run.path, log=log)
    log(f"figures and report in {time.perf_counter() - t0:.0f} s")
    return run.file("report.html")


def _train_both(run: Run, cfg: CompareConfig, train, test, progress: bool, log, dist: Distributed,
                tensorboard: bool = False) -> None:
    """DeepCluster then ODC with `cfg`'s one seed, each in its own folder under `run`; an algorithm
    already trained to `cfg.epochs` resumes, finds nothing to do and writes nothing."""
    subset = _stratified(train.targets, min(cfg.embed_points, len(train)), seed=0)
    epochs = [e for e in cfg.embed_epochs if e <= cfg.epochs]
    for algo, algo_cfg in cfg.algo_configs().items():
        sub = Run.create(run.path, algo, resume=True) if dist.is_writer else Run(run.path / algo)
        dist.barrier()
        t0 = time.perf_counter()
        trainer = TRAINERS[algo](algo_cfg, dist=dist)
        capture = _EmbedCapture(trainer, train, subset, epochs, sub) if dist.is_writer else None
        if capture is not None and not sub.file("checkpoint.pt").exists():
            capture.grab(0, train)  # the untrained network, before any clustering
        alarm = collapse.Watch(algo, algo_cfg.n_clusters).around(capture, log) if dist.is_writer else capture
        tb = TensorBoardLog(run.path / "tb" / algo, algo_cfg.to_dict(), trainer) if tensorboard and dist.is_writer else None
        try:
            trainer.fit(train, cfg.epochs, callback=tb.around(alarm) if tb else alarm, eval_dataset=test, run=sub,
                        progress=progress)
            if tb:
                tb.projector(sub.path, train)  # the flight recorder's saved epochs, with thumbnails and labels
        finally:
            if tb:
                tb.close()
        log(f"{algo}: {cfg.epochs} epochs in {time.perf_counter() - t0:.0f} s")


def run_train(name: str, algo: str, config: CompareConfig | None = None, runs_root: str | Path = "runs",
              resume: bool = False, progress: bool = True, log=print, explicit=None, dist: Distributed = SINGLE,
              tensorboard: bool = False):
    """One algorithm with the comparison's settings (`python -m kit train`); returns (run, history).
    `tensorboard`: also log to `<run>/tb/<algo>/`."""
    if tensorboard:
        check_available()
    run, cfg, train, test = start_run(name, "train", algo, config or CompareConfig(), runs_root, resume, explicit,
                                      log, dist)
    trainer, tb = TRAINERS[algo](cfg.algo_configs()[algo], dist=dist), None
    try:
        alarm = collapse.Watch(algo, trainer.config.n_clusters).around(None, log) if dist.is_writer else None  # one line per symptom
        tb = TensorBoardLog(run.path / "tb" / algo, trainer.config.to_dict(), trainer) if tensorboard and dist.is_writer else None
        return run, trainer.fit(train, cfg.epochs, callback=tb.around(alarm) if tb else alarm, eval_dataset=test,
                                run=run, progress=progress and dist.is_writer)
    finally:
        if tb:
            tb.close()
        run.unlock()


class _EmbedCapture:
    """A fit callback that saves the features of a fixed subset after the chosen epochs."""

    def __init__(self, trainer, dataset, subset, epochs: list[int], run: Run):
        self.trainer, self.dataset, self.subset, self.epochs, self.run = trainer, dataset, subset, epochs, run
        path = run.file("embed_features.npz")
        self.saved = dict(np.load(path, allow_pickle=False)) if path.exists() else {}  # checked by Run.check

    def __call__(self, record: dict) -> None:
        if record["kind"] == "epoch" and record["epoch"] + 1 in self.epochs:
            self.grab(record["epoch"] + 1, self.dataset)

    def grab(self, epoch: int, dataset) -> None:
        if self.trainer.model is None:
            self.trainer._setup(dataset)
        model = self.trainer.model.backbone
        feats = extract_features(model, dataset.select(self.subset), device=self.trainer.device)
        self.saved[f"epoch_{epoch:04d}"] = feats
        self.saved["subset"] = self.subset.numpy()
        atomic_write_npz(self.run.file("embed_features.npz"), **self.saved)

