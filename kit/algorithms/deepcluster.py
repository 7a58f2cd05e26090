"""DeepCluster (Caron et al., ECCV 2018), as the published code does it (ALGORITHMS.md §1).

One epoch, top to bottom in `DeepCluster._epoch`:
    extract features (eval, in order) -> PCA-whiten + L2 -> k-means (fresh seed)
    -> uniform-over-clusters sample -> reset the head -> one epoch of cross-entropy
    -> log NMI(t-1, t)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..parts.clustering import KMeans, check_sizes, preprocess_features
from ..parts.metrics import match_clusters
from ..parts.runtime import autocast
from ..parts.sampling import uniform_cluster_indices
from .memory import class_weights
from .training import TrainConfig, Trainer, check_number

# What happens to the head when a new clustering arrives. The reference resets it, because k-means
# numbers its clusters at random: keeping the head would keep weights whose outputs now mean other
# clusters. "aligned" keeps the head but first renumbers the new clusters onto the previous epoch's
# by Hungarian matching, so output j goes on meaning (mostly) the same images. (DeepCluster-v2, in
# the SwAV paper's appendix, removes the problem instead: its head is the new centroids themselves,
# so it always matches.)
HEADS = ("reset", "aligned")


@dataclass
class DeepClusterConfig(TrainConfig):
    """DeepCluster settings; defaults = OpenSelfSup `deepcluster/r50.py` (§1.10)."""

    # fashion5k's validation sweep chose the digits' values again (bench/presets.md, "fashion5k");
    # said here so that the choice is recorded, not inherited
    TUNED: ClassVar[dict[str, dict]] = {"fashion5k": dict(lr=0.3, pca_dim=64)}

    sobel: bool = True  # the r50 Sobel config (46.92% AvgPool top-1); False + lr 0.3 gave 50.40%
    lr: float = 0.1  # OpenSelfSup R50 (original AlexNet: 0.05, batch 256)
    pca_dim: int = 256  # PCA-whitening dimensions before k-means; -1 skips PCA (§1.3)
    kmeans_iters: int = 20  # faiss niter (§1.4; faiss's default is 25)
    reassign: float = 1.0  # M = reassign * N samples drawn per epoch (§1.6)
    uniform_sampling: bool = True  # uniform over non-empty clusters; False = a plain shuffle
    # "reset": a fresh head every epoch (§1.7); "aligned": kit's ablation (notebook 05), see below
    head: str = "reset"
    reweight: bool = False  # class-weighted CE (off for DeepCluster, §1.12)

    def __post_init__(self):
        super().__post_init__()
        if self.pca_dim != -1:
            check_number("pca_dim", self.pca_dim, 1, what="an integer >= 1, or -1 for no PCA")
        check_number("kmeans_iters", self.kmeans_iters, 1)
        check_number("reassign", self.reassign, 0, integer=False, strict=True)
        if self.head not in HEADS:
            raise ValueError(f"head={self.head!r}: choose one of {', '.join(HEADS)}")

    @classmethod
    def from_dict(cls, d: dict) -> "DeepClusterConfig":
        """A saved config. One saved before `head` existed says `reset_head`: True was the
        reference's reset, so it reads as head="reset"; False kept a head whose ids the new k-means
        had permuted, which kit no longer does."""
        d = dict(d)
        if "reset_head" in d:
            if not d.pop("reset_head"):
                raise ValueError(
                    "this run kept its head with unaligned cluster ids (reset_head=False), which "
                    "kit no longer trains: start a new run with head='aligned' (notebook 05) or "
                    "'reset'"
                )
            d.setdefault("head", "reset")
        return super().from_dict(d)

    @classmethod
    def small(cls, dataset: str = "mnist5k", **overrides) -> "DeepClusterConfig":
        """A kit dataset on a laptop CPU: small ConvNet, K = 30 (3x over-clustering, §1.5). lr and
        pca_dim were chosen by a sweep on a validation split, the digits' below and fashion5k's in
        `TUNED`; K = 30 is ODC's too, so the two compare at one K by default (bench/presets.md,
        "One K for both")."""
        # batch 64: ~60 steps per epoch on 4k images
        base = dict(n_clusters=30, backbone="convnet", sobel=False, lr=0.3, pca_dim=64,
                    batch_size=64, eval_every=1, seed=31)
        return cls.preset(base, dataset, overrides)

    @classmethod
    def fast(cls, **overrides) -> "DeepClusterConfig":
        """KIT_FAST=1: `small()` at K = 20, for a seconds-long smoke run on a few hundred images
        (the tests, `make test-fast`); it shows the machinery works, not what the algorithm
        learns."""
        return cls.small(**{**dict(n_clusters=20), **overrides})


def align_ids(labels: torch.Tensor, prev, n_clusters: int) -> torch.Tensor:
    """(N,) labels renumbered so that each new cluster takes the id of the previous clustering's
    cluster it shares most images with (one-to-one, Hungarian); the partition itself is
    unchanged."""
    # (K,) permutation
    to_prev = torch.as_tensor(match_clusters(labels.cpu().numpy(), prev, "hungarian", n_clusters))
    return to_prev.to(labels.device)[labels]


class DeepCluster(Trainer):
    """DeepCluster trainer. `fit(dataset, epochs, callback=None, eval_dataset=None, run=None,
    stop=None)` (in `Trainer`) runs `_epoch` below until done and returns the history (a dict of
    lists).

    >>> dc = DeepCluster(DeepClusterConfig.small())
    >>> history = dc.fit(kit.load_dataset("mnist5k"), epochs=10)
    >>> history["epoch"][-1]["nmi_prev"]   # NMI between the last two epochs' assignments
    """

    algo = "deepcluster"
    config: DeepClusterConfig

    def __init__(self, config: DeepClusterConfig | None = None, dist=None):
        super().__init__(config or DeepClusterConfig(), dist)

    progress_keys = ("loss", "nmi_prev", "knn")

    def _check(self, dataset) -> None:
        check_sizes(len(dataset), self.config.n_clusters, self.config.pca_dim)

    def _epoch(self, dataset, callback, stop, features=None) -> dict | None:
        """One epoch; `features` are the monitor's (N, D) train features under the current weights,
        when it has just extracted them. It extracts the backbone's: they are what step 1 extracts
        only because DeepCluster has no neck (`uses_neck = False`), so the network's features are
        the backbone's."""
        cfg, t0 = self.config, time.perf_counter()
        if features is None:
            # 1. (N, D), in dataset order, on rank 0 ((0, D) elsewhere)
            features = self.extract(self.model, dataset)
        t1 = time.perf_counter()
        seed = self._next_seed()  # drawn on every rank, so their generators stay in step
        # 2-3. (N,) pseudo-labels
        labels, km = self.dist.cluster(lambda: self._cluster(features, seed), len(dataset))
        prev = self.history["labels"][-1] if self.history["labels"] else None
        # kit's ablation: new ids renumbered onto the last epoch's
        if cfg.head == "aligned" and prev is not None:
            labels = align_ids(labels, prev, cfg.n_clusters)
        t2 = time.perf_counter()
        m = int(cfg.reassign * len(dataset))
        order = (uniform_cluster_indices(labels, m, self.generator) if cfg.uniform_sampling  # 4.
                 else torch.randperm(len(dataset), generator=self.generator)[:m])
        if cfg.head == "reset" or prev is None:  # the reference always resets (see HEADS)
            self.reset_head()  # 5. cluster ids mean nothing across clusterings
        loss = self._train(dataset, order, labels, callback, stop)  # 6. one epoch of cross-entropy
        if loss is None:
            return None
        t3 = time.perf_counter()
        record = {
            "epoch": self.epoch,
            "loss": loss,
            # nmi_prev (§1.11) and the rest of the labels' record, then k-means'
            **self._labels_record(
                dataset, prev, labels, loss, features if self.dist.is_writer else None
            ),
            "inertia": getattr(km, "inertia_", None),
            "kmeans_seed": seed,
            "kmeans_splits": getattr(km, "n_splits_", None),
            "time_extract": t1 - t0,
            "time_cluster": t2 - t1,
            "time_train": t3 - t2,
        }
        self.epoch += 1
        return record

    def _cluster(self, features, seed: int) -> KMeans:
        """2. PCA-whiten to `pca_dim` and L2-normalise the rows; 3. k-means with a fresh seed (on
        one rank)."""
        x = preprocess_features(features, self.config.pca_dim)
        return KMeans(self.config.n_clusters, self.config.kmeans_iters, seed).fit(
            torch.as_tensor(x, device=self.device)
        )

    def _train(self, dataset, order, labels, callback, stop) -> float | None:
        cfg, model = self.config, self.net
        targets = labels.to(self.device)
        weight = class_weights(labels, cfg.n_clusters).to(self.device) if cfg.reweight else None
        model.train()
        # the steps' losses, read from the device every READ_EVERY steps
        readings = self._loss_readings(callback)
        for x, idx in self._batches(dataset, order, stop):
            with autocast(self.device):
                _, logits = model(x)
            loss, value = self.dist.cross_entropy(
                logits.float(), targets[idx.to(self.device)], weight
            )
            self._optimise(loss)
            # no wait here: the step's loss is read with the next ones
            readings.add(value, len(idx))
        # after a stop too: the steps trained before it are logged, as they were read each step
        readings.read()
        return None if self.stopped else readings.mean()
