"""The main job: DeepCluster and ODC trained side by side with the same backbone, data, seed and
budget, then every figure and a report. `python -m kit compare` / `make demo`.

runs/<name>/
    config.json                      what was asked for
    baselines.json                   raw-pixel k-means NMI and kNN (the bar to beat)
    deepcluster/, odc/               each: config, history.json, labels.npz, checkpoint.pt,
                                     embed_features.npz (features of a fixed subset at chosen epochs)
    embeddings.npz                   the aligned UMAP layouts
    *.png, report.html               the figures and the page that puts them together
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import embed
from .clustering import KMeans, l2_normalize
from .data import _stratified, load_dataset
from .deepcluster import DeepCluster, DeepClusterConfig
from .features import extract_features
from .metrics import knn_accuracy, nmi
from .odc import ODC, ODCConfig
from .runs import Run, atomic_write_json, atomic_write_npz


@dataclass
class CompareConfig:
    """The comparison's settings; `small()` presets of both algorithms unless overridden."""

    dataset: str = "mnist5k"  # any kit dataset name
    epochs: int = 30  # the same budget for both
    n_clusters: int = 100  # K for both (10x over-clustering of the 10 digit classes)
    backbone: str = "convnet"
    batch_size: int = 64
    lr: float = 0.1
    device: str = "auto"
    seed: int = 31
    eval_every: int = 1  # epochs between kNN / NMI-to-truth monitoring
    embed_epochs: list[int] = field(default_factory=lambda: [0, 3, 10, 30])  # UMAP after these epochs (0 = untrained)
    embed_points: int = 1500  # a fixed class-stratified subset of the train split
    n_train: int | None = None  # keep a stratified subset of the train split (None = all)
    root: str = "data"  # where torchvision datasets live

    def algo_configs(self) -> dict:
        common = dict(n_clusters=self.n_clusters, backbone=self.backbone, batch_size=self.batch_size, lr=self.lr,
                      device=self.device, seed=self.seed, eval_every=self.eval_every)
        return {"deepcluster": DeepClusterConfig.small(**common), "odc": ODCConfig.small(**common)}


def baselines(train, test) -> dict:
    """What the learned features must beat: k-means and kNN on raw pixels."""
    xtr = train.images.float().flatten(1).numpy() / 255
    xte = test.images.float().flatten(1).numpy() / 255
    pred = KMeans(int(test.targets.max()) + 1, seed=0).fit(l2_normalize(xte)).labels_
    return {"raw_pixels_nmi": nmi(pred, test.targets),
            "raw_pixels_knn": knn_accuracy(xtr, train.targets, xte, test.targets, k=20)}


def run_compare(name: str = "compare", config: CompareConfig | None = None, runs_root: str | Path = "runs",
                resume: bool = False, progress: bool = True, log=print) -> Path:
    """Train both, embed, draw, report. Interrupted, it keeps what it wrote; `resume=True` continues."""
    cfg = config or CompareConfig()
    run = Run.create(runs_root, name, resume=resume)
    atomic_write_json(run.file("config.json"), {"compare": cfg.__dict__})
    train = load_dataset(cfg.dataset, "train", root=cfg.root, n=cfg.n_train)
    test = load_dataset(cfg.dataset, "test", root=cfg.root)
    if not run.file("baselines.json").exists():
        atomic_write_json(run.file("baselines.json"), baselines(train, test))
    embed.warm_up()  # compile UMAP in the background while the networks train
    subset = _stratified(train.targets, min(cfg.embed_points, len(train)), seed=0)
    epochs = [e for e in cfg.embed_epochs if e <= cfg.epochs]
    trainers = {"deepcluster": DeepCluster, "odc": ODC}
    for algo, algo_cfg in cfg.algo_configs().items():
        sub = Run.create(run.path, algo, resume=True)
        t0 = time.perf_counter()
        trainer = trainers[algo](algo_cfg)
        capture = _EmbedCapture(trainer, train, subset, epochs, sub)
        if not sub.file("checkpoint.pt").exists():
            capture.grab(0, train)  # the untrained network, before any clustering
        trainer.fit(train, cfg.epochs, callback=capture, eval_dataset=test, run=sub, progress=progress)
        log(f"{algo}: {cfg.epochs} epochs in {time.perf_counter() - t0:.0f} s")
    from .report import build_report

    t0 = time.perf_counter()
    build_report(run.path, log=log)
    log(f"figures and report in {time.perf_counter() - t0:.0f} s")
    return run.file("report.html")


class _EmbedCapture:
    """A fit callback that saves the features of a fixed subset after the chosen epochs."""

    def __init__(self, trainer, dataset, subset, epochs: list[int], run: Run):
        self.trainer, self.dataset, self.subset, self.epochs, self.run = trainer, dataset, subset, epochs, run
        path = run.file("embed_features.npz")
        self.saved = dict(np.load(path)) if path.exists() else {}

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

