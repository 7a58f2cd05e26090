"""Online Deep Clustering (Zhan et al., CVPR 2020), as OpenSelfSup does it (ALGORITHMS.md §2).

Once, before training: extract neck features of all N images, L2-normalise (no PCA), k-means,
fill the memories. Then every iteration, top to bottom in `ODC._epoch`:
    forward -> weighted CE on the labels as they were *before* this batch -> step
    -> memory.update(idx, z) (momentum features, relabel the batch) -> every 10th iteration
    recompute centroids -> fix small clusters -> new class weights
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from ..parts.clustering import KMeans, check_sizes, l2_normalize
from ..parts.distributed import all_gather_batch
from ..parts.metrics import cluster_sizes
from ..parts.runtime import Diverged, autocast
from ..parts.sampling import replacement_indices
from .memory import ODCMemory
from .training import TrainConfig, Trainer, check_number, labels_snapshot


@dataclass
class ODCConfig(TrainConfig):
    """ODC settings; defaults = OpenSelfSup `odc/r50_v1.py` (§2.10)."""

    # fashion5k's validation sweep chose the digits' values again (bench/presets.md, "fashion5k");
    # said here so that the choice is recorded, not inherited
    TUNED: ClassVar[dict[str, dict]] = {"fashion5k": dict(lr=0.1, memory_momentum=0.2)}

    lr: float = 0.06  # SGD lr (head momentum 0)
    lr_decay_epochs: tuple[int, ...] = (400,)  # lr x lr_decay at these epochs; 440 epochs in all
    lr_decay: float = 0.4  # 0.06 -> 0.024 at epoch 400
    memory_momentum: float = 0.5  # new = normalise(0.5 old + 0.5 current) (§2.3)
    min_cluster_size: int = 20  # smaller clusters are dissolved every iteration (§2.7)
    centroid_interval: int = 10  # iterations between full centroid recomputes (§2.4)
    reweight_power: float = 0.5  # class weight ∝ size^-0.5 (§2.6)
    kmeans_iters: int = 20  # the initial faiss k-means, as DeepCluster's (§2.2)

    def __post_init__(self):
        super().__post_init__()
        check_number("memory_momentum", self.memory_momentum, 0, 1, integer=False)
        check_number("min_cluster_size", self.min_cluster_size, 0)
        check_number("centroid_interval", self.centroid_interval, 1)
        check_number("reweight_power", self.reweight_power, 0, integer=False)
        check_number("lr_decay", self.lr_decay, 0, integer=False, strict=True)
        check_number("kmeans_iters", self.kmeans_iters, 1)

    @classmethod
    def small(cls, dataset: str = "mnist5k", **overrides) -> "ODCConfig":
        """A kit dataset on a laptop CPU: small ConvNet, K = 30, min cluster 10. K, lr and
        memory_momentum were chosen by a sweep on a validation split (bench/presets.md), the digits'
        below and fashion5k's in `TUNED`."""
        base = dict(
            n_clusters=30,  # ~130 images per cluster on average
            backbone="convnet",
            sobel=False,
            lr=0.1,
            lr_decay_epochs=(),
            memory_momentum=0.2,
            min_cluster_size=10,
            batch_size=64,
            eval_every=1,
            seed=31,
        )
        return cls.preset(base, dataset, overrides)

    @classmethod
    def fast(cls, **overrides) -> "ODCConfig":
        """KIT_FAST=1: `small()` at K = 20 and min cluster 5, for a seconds-long smoke run on a few
        hundred images (the tests, `make test-fast`: 400 images, 20 a cluster, clear of
        `check_cluster_room`'s warning); it shows the machinery works, not what the algorithm
        learns."""
        return cls.small(**{**dict(n_clusters=20, min_cluster_size=5), **overrides})

    def lr_at(self, epoch: int) -> float:
        """The step schedule as a function you can plot."""
        return self.lr * self.lr_decay ** sum(epoch >= e for e in self.lr_decay_epochs)


def check_cluster_room(n: int, k: int, min_size: int) -> None:
    """Refuse K where the average cluster is below `min_size`: the small-cluster fix (§2.7) would
    dissolve and re-split clusters in every iteration, and an epoch crawls (K = 1,000 on 4,000
    digits took ~240 s an epoch against 3.7 s at K = 30 before the splits were batched). Under twice
    `min_size`, warn: K = 300 on 4,000 digits (13 a cluster, 10 the minimum) refills ~800 cluster
    ids an epoch and takes 1.3x to 1.4x a K = 30 epoch (bench/small_clusters.py)."""
    if min_size <= 0:
        return
    if n < k * min_size:
        raise ValueError(
            f"n_clusters={k} leaves {n / k:.1f} images a cluster on average, below ODC's "
            f"min_cluster_size {min_size}: every iteration would dissolve and re-split clusters. "
            f"Use n_clusters <= {n // min_size} for {n:,} images, or a smaller min_cluster_size "
            "(command line: --n-clusters)"
        )
    if n < 2 * k * min_size:
        warnings.warn(
            f"ODC: n_clusters={k} leaves {n / k:.1f} images a cluster, under twice "
            f"min_cluster_size {min_size}: many iterations will re-split small clusters, and "
            f"epochs slow down (n_clusters <= {n // (2 * min_size)} avoids it)",
            RuntimeWarning,
            stacklevel=3,
        )


class ODC(Trainer):
    """ODC trainer; `fit(dataset, epochs, ...)` (in `Trainer`) initialises the memories once, runs
    `_epoch` below until done and returns the history. `gather` is passed to the memory
    (identity in one process; an all-gather of the batch under torch.distributed)."""

    algo = "odc"
    uses_neck = True
    config: ODCConfig

    def __init__(self, config: ODCConfig | None = None, gather=None, dist=None):
        super().__init__(config or ODCConfig(), dist)
        # replicated memories: every rank applies the all-gathered batch (distributed.py)
        self.gather = gather or (self._gather_batch if self.dist.world > 1 else None)
        self.memory: ODCMemory | None = None
        self.iteration = 0  # iterations completed, over all epochs

    progress_keys = ("loss", "change_ratio", "knn")

    def _gather_batch(self, idx, z):
        """Every rank's batch, each padded to a global batch's largest share (the same number on
        every rank)."""
        return all_gather_batch(idx, z, rows=-(-self.config.batch_size // self.dist.world))

    def _check(self, dataset) -> None:
        check_sizes(len(dataset), self.config.n_clusters)
        check_cluster_room(len(dataset), self.config.n_clusters, self.config.min_cluster_size)

    def _prepare(self, dataset) -> None:
        if self.memory is None:  # once per run; a resumed run has its memory from the checkpoint
            self._init_memory(dataset)

    def _init_memory(self, dataset) -> None:
        """§2.2: one k-means over all N samples with the untrained network; no PCA, L2 only."""
        cfg, t0 = self.config, time.perf_counter()
        # (N, 256) on rank 0
        x = l2_normalize(self.extract(self.model, dataset, batch_size=max(256, cfg.batch_size)))
        seed = self._next_seed()  # drawn on every rank, so their generators stay in step
        # one rank clusters (torch k-means on CUDA), every rank gets its labels
        labels, km = self.dist.cluster(
            lambda: KMeans(cfg.n_clusters, cfg.kmeans_iters, seed).fit(
                torch.as_tensor(x, device=self.device)
            ),
            len(dataset),
        )
        # the memory is replicated: every rank starts from rank 0's features
        x = self.dist.share(x, len(dataset))
        # 2-means seed 0, as the reference (§2.1)
        self.memory = ODCMemory(len(dataset), x.shape[1], cfg.n_clusters, cfg.memory_momentum,
                                cfg.min_cluster_size, gather=self.gather).to(self.device)
        moved = self.memory.init(x, labels)
        self.reset_head()
        self.history["labels"].append(labels_snapshot(self.memory.labels))
        self.history["init"] = {"kmeans_seed": seed, "inertia": getattr(km, "inertia_", None),
                                "empty_filled": getattr(km, "n_empty_", None),
                                "moved": moved, "time": time.perf_counter() - t0,
                                **cluster_sizes(self.memory.labels.cpu(), cfg.n_clusters)}

    def _epoch(
        self, dataset, callback, stop, features=None  # the memory holds ODC's features
    ) -> dict | None:
        cfg, model, opt, mem = self.config, self.net, self.optimizer, self.memory
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(self.epoch)
        # with replacement (§2.9)
        order = replacement_indices(len(dataset), generator=self.generator)
        weight = mem.class_weights(cfg.reweight_power)
        model.train()
        losses, changes, moved_total = [], [], 0
        for x, idx in self._batches(dataset, order, stop):
            idx = idx.to(self.device)
            with autocast(self.device):
                z, logits = model(x)  # (B, 256), (B, K)
            y = mem.labels[idx]  # the labels as they were before this batch's update
            # mean normalised by the targets' weights
            loss, value = self.dist.cross_entropy(logits.float(), y, weight)
            self._optimise(loss)
            # momentum features, relabel the batch (NaN z: nothing written)
            change_ratio = mem.update(idx, z.detach())
            self.iteration += 1
            if self.iteration % cfg.centroid_interval == 0:
                mem.recompute_centroids()
            # the one wait for the device per iteration: the two logged numbers and the count the
            # loop branches on
            loss_value, change_ratio, n_small = torch.stack(
                [value.float(), change_ratio.float(), mem.small_clusters().sum().float()]).tolist()
            if not math.isfinite(change_ratio):
                raise Diverged(
                    f"NaN/inf in the neck features at iteration {self.iteration - 1} (epoch "
                    f"{self.epoch}); nothing of this batch reached the memory, and a fit rolls the "
                    "epoch back to its start: lower lr or resume from the last checkpoint"
                )
            # labels moved here are not in change_ratio (§2.11)
            moved = mem.fix_small_clusters() if n_small else 0
            weight = mem.class_weights(cfg.reweight_power)
            losses.append(loss_value)
            changes.append(change_ratio)
            moved_total += moved
            self._log_step(
                epoch=self.epoch, loss=losses[-1], change_ratio=change_ratio, moved_small=moved
            )
            self._emit(
                callback,
                {
                    "kind": "step",
                    "algo": self.algo,
                    "epoch": self.epoch,
                    "loss": losses[-1],
                    "change_ratio": change_ratio,
                    "step": self._steps_logged(),
                },
            )
        if self.stopped:
            return None
        drift = mem.agree(self.dist)  # every rank's memory holds rank 0's labels (0 in one process)
        if drift and self.dist.is_writer:
            tqdm.write(
                f"epoch {self.epoch}: the ranks' ODC memories disagreed on up to {drift} labels; "
                "every rank now holds rank 0's"
            )
        loss = float(np.mean(losses))
        record = {
            "epoch": self.epoch,
            "loss": loss,
            "change_ratio": float(np.mean(changes)),
            "moved_small": moved_total,
            **self._labels_record(
                dataset,
                self.history["labels"][-1],
                mem.labels.cpu(),
                loss,
                mem.features,  # collapse: the memory's features
            ),
            "lr": cfg.lr_at(self.epoch),
            "time_train": time.perf_counter() - t0,
        }
        self.epoch += 1
        return record

    # -- checkpoint ----------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {"memory": self.memory.state_dict(), "iteration": self.iteration}

    def load_extra_state(self, state: dict) -> None:
        cfg, buf = self.config, state["memory"]
        n, d = buf["features"].shape
        # 2-means seed 0, as the reference (§2.1)
        self.memory = ODCMemory(n, d, cfg.n_clusters, cfg.memory_momentum, cfg.min_cluster_size,
                                gather=self.gather).to(self.device)
        self.memory.load_state_dict(buf)
        self.iteration = int(state["iteration"])

    def _snapshots_at(self, epoch: int) -> int:
        return epoch + 1  # the initial assignment, then one per epoch
