"""What DeepCluster and ODC share: the common config fields, the network and optimizer,
evaluation monitoring, and checkpoint/resume. Each algorithm's loop lives in its own file.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import math
import threading
import time
import warnings
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from ..parts import collapse
from ..parts.clustering import KMeans, l2_normalize
from ..parts.data import batches, check_indexed
from ..parts.distributed import Distributed, row_range
from ..parts.features import extract_features
from ..parts.metrics import agreement, cluster_acc, cluster_sizes, knn_accuracy, label_change
from ..parts.models import ClusterNet, ODCNeck, build_backbone
from ..parts.runtime import (
    AUTO,
    Diverged,
    compile_step,
    grad_scaler,
    prepare_model,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
    tuned_convolutions,
)
from ..store.checkpoints import load_checkpoint, save_checkpoint
from ..store.files import read_json, read_lines
from ..store.runs import Run


@dataclass
class TrainConfig:
    """Fields every algorithm reads. Defaults are the published ResNet-50/ImageNet settings."""

    # a dataset's own `small()` settings, chosen by its validation sweep (bench/presets.md):
    # {dataset: {field: value}}
    TUNED: ClassVar[dict[str, dict]] = {}
    n_clusters: int = 10_000  # K: ImageNet over-segmentation, both papers (§1.5, §2.10)
    backbone: str = "resnet50"  # OpenSelfSup/mmselfsup's network
    sobel: bool = False  # fixed grayscale + Sobel front-end (§1.8)
    lr: float = 0.1  # SGD learning rate
    momentum: float = 0.9  # SGD momentum of the body; the head always gets 0 (§1.7)
    weight_decay: float = 1e-5  # on every parameter, head included (OpenSelfSup)
    batch_size: int = 512  # 8 GPUs x 64 in the reference
    eval_every: int = 1  # epochs between kNN / NMI-to-truth monitoring (0: never)
    knn_k: int = 20  # neighbours of the kNN monitor
    seed: int = 31  # the original DeepCluster's seed
    device: str = AUTO  # CUDA where present, else Apple MPS, else the CPU (runtime.resolve_device)
    num_workers: int = 4  # DataLoader workers for image-folder datasets
    # under torchrun with nccl: BatchNorm statistics over the global batch. None: on for ResNet-50,
    # the published recipe's network; off for the others (each SyncBatchNorm layer waits for the
    # host in its forward; what its statistics gain at a given per-GPU batch is not measured in kit)
    sync_batchnorm: bool | None = None

    def __post_init__(self):
        check_number(
            "n_clusters", self.n_clusters, 2, what="an integer >= 2 (k-means needs two clusters)"
        )
        check_number(
            "batch_size",
            self.batch_size,
            2,
            what="an integer >= 2 (BatchNorm cannot train on one image)",
        )
        check_number("lr", self.lr, 0, integer=False, strict=True)
        check_number("momentum", self.momentum, 0, 1, integer=False)
        check_number("weight_decay", self.weight_decay, 0, integer=False)
        check_number("eval_every", self.eval_every, 0)
        check_number("knn_k", self.knn_k, 1)
        check_number("seed", self.seed, 0, 2**32 - 1)  # numpy's and the per-epoch seeds' range
        check_number("num_workers", self.num_workers, 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def preset(cls, base: dict, dataset: str, overrides: dict):
        """A `small()` preset: `base` (the digits', mnist5k), the settings that `dataset`'s own
        validation sweep chose instead (the config's `TUNED[dataset]`, bench/presets.md), then
        `overrides`. A dataset without a sweep of its own starts from the digits' settings."""
        return cls(**{**base, **cls.TUNED.get(dataset, {}), **overrides})

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
        return cls(**d)


def check_number(name: str, value, low=None, high=None, integer: bool = True, strict: bool = False,
                 what: str | None = None) -> None:
    """Refuse a setting outside its range with one line naming it and its command-line flag.
    Every number is checked once, where a config is built; nothing is silently rewritten."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (not integer or float(value).is_integer())
    ok = (
        ok
        and (low is None or (value > low if strict else value >= low))
        and (high is None or value <= high)
    )
    if not ok:
        rule = what or ("an integer" if integer else "a number") + (
            f" {'>' if strict else '>='} {low}" if low is not None else ""
        ) + (f" and <= {high}" if high is not None else "")
        raise ValueError(
            f"{name}={value!r} is out of range: use {rule} (command line: "
            f"--{name.replace('_', '-')})"
        )


def synced_batchnorm(cfg: TrainConfig) -> bool:
    """Whether torchrun on GPUs syncs BatchNorm across ranks: `sync_batchnorm`, or by default for
    ResNet-50 only."""
    return cfg.backbone == "resnet50" if cfg.sync_batchnorm is None else bool(cfg.sync_batchnorm)


def build_network(cfg: TrainConfig, dataset, neck: bool) -> ClusterNet:
    c, h, _ = dataset.image_shape
    backbone = build_backbone(cfg.backbone, in_channels=c, sobel=cfg.sobel, image_size=h)
    return ClusterNet(backbone, cfg.n_clusters, ODCNeck(backbone.feature_dim) if neck else None)


def optimise(
    optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor
) -> None:
    """One SGD step on `loss`, through the loss scaler where the card trains in fp16
    (`runtime.grad_scaler`); the trainers and the supervised baseline step the same way."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


# training steps whose logged numbers wait on the device for one read that fetches them all
READ_EVERY = 16


class Readings:
    """Numbers a training step logs, kept on the device and read together every `every` steps, after
    a second, and at the end: a read waits for the device to finish, so a step that reads its own
    loss keeps a GPU's queue empty (a small network's step is shorter than the time to launch it). A
    number on the CPU costs no wait and is read at once, so step records and stops come a step at a
    time there. `add(value, *context)`; each read calls `on_read(number, *context)` for the steps in
    order."""

    def __init__(self, on_read, every: int | None = None, seconds: float = 1.0):
        self.on_read, self.every, self.seconds, self.pending = (
            on_read,
            every or READ_EVERY,
            seconds,
            [],
        )
        self.last = time.monotonic()

    def add(self, value: torch.Tensor, *context) -> None:
        self.pending.append((value, context))
        if (value.device.type == "cpu" or len(self.pending) >= self.every
                or time.monotonic() - self.last > self.seconds):
            self.read()

    def read(self) -> None:
        if self.pending:
            numbers = torch.stack([v.float() for v, _ in self.pending]).tolist()  # the one wait
            for number, (_, context) in zip(numbers, self.pending):
                self.on_read(number, *context)
            self.pending, self.last = [], time.monotonic()


def build_optimizer(
    model: ClusterNet, cfg: TrainConfig, fused_step: bool = True
) -> torch.optim.SGD:
    """One SGD over everything; the head's group has momentum 0 so a re-initialised head carries no
    stale momentum (OpenSelfSup `paramwise_options={'\\Ahead.': dict(momentum=0.)}`, §1.7). torch's
    fused SGD (`fused_step`), where this torch has it for the device: on the CPU, where the default
    SGD loops over the parameters, it replaces about 60 ops of a DeepCluster step with two
    (bench/step_ops.py; the parameters come out bit for bit the same, tests/test_cuda_faults.py); on
    a card, whose default is already multi-tensor (foreach), it reads fp16's inf check on the
    device, where the default makes `GradScaler.step` wait every step."""
    head = list(model.head.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if id(p) not in head_ids]
    return torch.optim.SGD([{"params": body}, {"params": head, "momentum": 0.0}],
                           lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           **fused(next(model.parameters()).device, fused_step))


def fused(device: torch.device, on: bool = True) -> dict:
    """SGD's `fused=True` where asked and this torch has a fused SGD kernel for `device`'s type
    (CUDA from torch 2.3, the CPU from 2.4); nothing (torch's default SGD) elsewhere."""
    if not on or "fused" not in inspect.signature(torch.optim.SGD).parameters:
        return {}
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # pragma: no cover
        # a torch without the list: only CUDA is sure to have the kernel
        return {"fused": True} if device.type == "cuda" else {}
    return {"fused": True} if device.type in _get_fused_kernels_supported_devices() else {}


def reset_head(model: ClusterNet, optimizer: torch.optim.Optimizer) -> None:
    """Fresh N(0, 0.01) head weights, zero bias, and no optimizer state left for the head."""
    model.head.reset_parameters()
    for p in model.head.parameters():
        optimizer.state.pop(p, None)


class Monitor:
    """kNN accuracy and NMI/ACC against the true classes, computed the same way for both algorithms.

    Features are the backbone's pooled features (not the ODC neck), so the two algorithms are
    judged on the same thing. kNN: the train split (with its labels) is the bank, the eval split
    the queries. NMI/ACC: k-means with K = #classes on the L2-normalised eval features.
    Labels are read here only, never by a training loss.
    """

    def __init__(
        self, train_set, eval_set, k: int = 20, batch_size: int = 256, seed: int = 0, extract=None
    ):
        self.train_set, self.eval_set, self.k, self.batch_size, self.seed = (
            train_set,
            eval_set,
            k,
            batch_size,
            seed,
        )
        self.extract = extract or (
            lambda model, ds, device: extract_features(model, ds, batch_size, device)
        )
        ok = lambda ds: ds is not None and getattr(ds, "targets", None) is not None  # noqa: E731
        self.enabled = ok(train_set) and ok(eval_set)

    def __call__(
        self, model: ClusterNet, device, score: bool = True
    ) -> tuple[dict, np.ndarray | None]:
        """(the scores, the train split's (N, D) backbone features it extracted); with `score=False`
        (torchrun's other ranks) only their share of the extraction; the features then reach rank 0
        alone."""
        if not self.enabled:
            return {}, None
        bb = model.backbone
        ftr = self.extract(bb, self.train_set, device)  # (N, D), as DeepCluster's pass
        fte = self.extract(bb, self.eval_set, device)
        if not score:
            return {}, ftr
        ytr, yte = self.train_set.targets.numpy(), self.eval_set.targets.numpy()
        n_classes = int(max(ytr.max(), yte.max())) + 1
        pred = KMeans(n_classes, n_iter=20, seed=self.seed).fit(l2_normalize(fte)).labels_
        def on(a):  # the kNN search runs on the training device
            return torch.as_tensor(a, device=device)

        return {
            "knn": knn_accuracy(on(ftr), on(ytr), on(fte), on(yte), k=self.k, n_classes=n_classes),
            **agreement(pred, yte, suffix="_true"),  # nmi_true, its floor, AMI, ARI
            "acc_true": cluster_acc(pred, yte),
        }, ftr


class Trainer:
    """The bookkeeping around an algorithm's loop: device, seed, network, optimizer, history,
    callbacks, stop requests, checkpoint and exact resume. Subclasses write `fit`."""

    algo = "base"
    uses_neck = False

    def __init__(self, config: TrainConfig, dist: Distributed | None = None):
        self.config = config
        self.dist = dist or Distributed()  # one process unless torchrun started us (distributed.py)
        self.device = resolve_device(config.device)
        self.model: ClusterNet | None = None
        self.net: torch.nn.Module | None = None  # what trains: the model, or DDP around it
        self.optimizer: torch.optim.SGD | None = None
        # fp16 cards (T4, V100) scale the loss; a pass-through elsewhere
        self.scaler = grad_scaler(self.device)
        # sampling order and k-means seeds
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history: dict = {
            "algo": self.algo,
            "config": config.to_dict(),
            "epoch": [],
            "step": {},
            "labels": [],
        }
        self.epoch = 0  # epochs completed
        # (epochs, dataset, its (N, D) backbone features) the monitor extracted last, for a callback
        # to reuse
        self.monitor_features: tuple[int, object, np.ndarray | None] | None = None

    # -- set-up --------------------------------------------------------------------------------
    def setup(self, dataset) -> None:
        """The network, optimizer (and torchrun's wrapper) for `dataset`, built once; later calls do
        nothing."""
        check_indexed(dataset)
        if self.model is None:
            seed_everything(self.config.seed)
            self.model = prepare_model(self.network(dataset), self.device)
            self.optimizer = build_optimizer(self.model, self.config)
            self.net = compile_step(
                self.dist.wrap(self.model, self.device, synced_batchnorm(self.config))
            )

    def network(self, dataset) -> ClusterNet:
        """The network this algorithm trains on `dataset`: backbone, (neck,) head. An algorithm with
        a network of its own overrides this; it keeps `backbone` (what the monitor and evaluation
        judge), `head` (the optimizer's momentum-free group) and a forward that gives (features, the
        head's output)."""
        return build_network(self.config, dataset, self.uses_neck)

    def prepare(self, dataset) -> None:
        """What `fit` does before its first epoch: the network and optimizer, then the algorithm's
        one-off work (ODC: the initial k-means and the memories), so a notebook can step by hand."""
        self._check(dataset)
        self.setup(dataset)
        self._prepare(dataset)

    def _optimise(self, loss: torch.Tensor) -> None:
        optimise(self.optimizer, self.scaler, loss)

    def _batches(self, dataset, order, stop):
        """The epoch's training batches in `order`, this rank's slice of each global batch, as
        (images, indices). A batch of one is skipped (BatchNorm cannot train on it); at a `stop` the
        loop ends and `self.stopped` is True, so the algorithm's epoch returns None and `fit` rolls
        it back."""
        self.stopped = False
        for x, idx in batches(dataset, order, self.config.batch_size, self.device, train=True,
                              num_workers=self.config.num_workers, shard=self.dist.shard):
            if len(idx) < 2:
                continue
            if self._stopped(stop):
                self.stopped = True
                return
            yield x, idx

    def _labels_record(self, dataset, prev, labels: torch.Tensor, loss: float, features) -> dict:
        """What every algorithm records of an epoch's labels (N,), against `prev` (the last
        snapshot, None before the first): agreement between the two (nmi_prev, its chance floor,
        AMI, ARI) and the share that changed, the cluster sizes, the collapse signals of `features`
        (None off the writing rank), and agreement with the true classes where the dataset has them.
        The labels are snapshotted into the history."""
        k = self.config.n_clusters
        self.history["labels"].append(labels_snapshot(labels))
        record = {**agreement(prev, labels, suffix="_prev"),
                  "label_change": label_change(prev, labels) if prev is not None else None,
                  **cluster_sizes(labels, k), **collapse.signals(loss, labels, k, features)}
        # the pseudo-labels against the truth (Fig. 2a)
        if getattr(dataset, "targets", None) is not None:
            record.update(agreement(labels, dataset.targets, suffix="_pseudo_true"))
        return record

    def _loss_readings(self, callback) -> Readings:
        """A `Readings` of an epoch's step losses, `add(loss, images)`: each read logs the step and
        gives `callback` its step record; `.mean()` is the image-weighted mean of the losses
        read."""
        total = [0.0, 0]

        def read(value: float, n: int) -> None:
            total[0], total[1] = total[0] + value * n, total[1] + n
            self._log_step(epoch=self.epoch, loss=value)
            self._emit(
                callback,
                {
                    "kind": "step",
                    "algo": self.algo,
                    "epoch": self.epoch,
                    "loss": value,
                    "step": self._steps_logged(),
                },
            )

        readings = Readings(read)
        readings.mean = lambda: total[0] / max(total[1], 1)
        return readings

    def _log_step(self, **values) -> None:
        for k, v in values.items():
            self.history["step"].setdefault(k, []).append(v)

    def _steps_logged(self) -> int:
        """Steps in the history: a step record's own number, counted from 1 over the whole run."""
        return len(self.history["step"].get("loss", []))

    @staticmethod
    def _emit(callback, record: dict):
        if callback is not None:
            callback(record)

    @staticmethod
    def _stopped(stop) -> bool:
        return stop is not None and (stop.is_set() if hasattr(stop, "is_set") else bool(stop()))

    def _monitor_init(self, monitor: Monitor) -> np.ndarray | None:
        """The untrained network's kNN / NMI, once, as epoch 0 of the learning curves; returns the
        train features it extracted (None when it did not run)."""
        if (
            self.epoch == 0
            and monitor.enabled
            and self.config.eval_every > 0
            and "monitor_init" not in self.history
        ):
            self.history["monitor_init"], features = monitor(
                self.model, self.device, score=self.dist.is_writer
            )
            return features
        return None

    def _monitor(
        self, monitor: Monitor, epoch_record: dict, last: bool = False
    ) -> np.ndarray | None:
        """The epoch's kNN / NMI into `epoch_record`, every `eval_every` epochs and after the `last`
        epoch of a fit (so a fit always ends on a score); returns the train features it extracted
        (None when it did not run)."""
        every = self.config.eval_every
        if not (monitor.enabled and every > 0 and (self.epoch % every == 0 or last)):
            return None
        t = time.perf_counter()
        # rank 0 scores
        scores, features = monitor(self.model, self.device, score=self.dist.is_writer)
        epoch_record.update(scores, time_eval=time.perf_counter() - t)
        # for the embedding snapshots (compare)
        self.monitor_features = (self.epoch, monitor.train_set, features)
        return features

    # -- the epoch loop -----------------------------------------------------------------------
    progress_keys: tuple[str, ...] = ("loss", "knn")

    def fit(self, dataset, epochs: int, callback=None, eval_dataset=None, run: Run | None = None,
            stop=None, progress: bool = False, callbacks=()) -> dict:
        """Train until `epochs` epochs are done (a resumed run counts the ones it has) and return
        the history. `callback`, then each of `callbacks` in order, receives every step's and every
        epoch's record (a step's when its loss is read: at once on the CPU, every few steps on a
        card): the commands pass the collapse alarm (`collapse.Watch.saying`) and TensorBoard
        (`TensorBoardLog`), the playground its live board. A callback with an `end(finished)` method
        is told when the fit returns (True) or raises (False); TensorBoard closes its file there.
        `stop` (an Event or a callable) ends training at the next iteration, and the unfinished
        epoch is rolled back, as a Ctrl-C's is, so the finished epochs are kept and a next `fit`
        continues exactly; with `run`, each finished epoch is checkpointed there and an existing
        checkpoint is resumed."""
        every = [c for c in (callback, *callbacks) if c is not None]
        finished = False
        try:
            # 0 or -1 would return an empty history and look like success
            check_number("epochs", epochs, 1)
            # cuDNN's autotuner for this fit only
            with tuned_convolutions(self.device), _one_of_the_fits():
                history = self._fit(
                    dataset, epochs, _each(every), eval_dataset, run, stop, progress
                )
            finished = True
            return history
        finally:
            _end_each(every, finished)

    def _fit(
        self, dataset, epochs: int, callback, eval_dataset, run: Run | None, stop, progress: bool
    ) -> dict:
        if getattr(self, "rolled_back_partly", False):
            raise RuntimeError(
                "this trainer was interrupted while it rolled an epoch back: build a new one (with "
                "run=, it resumes from the last checkpoint)"
            )
        # a setting changed after the trainer was built (`cfg.lr = -1`) is checked too
        self.config.__post_init__()
        # and saved as it is now, in the history as in the checkpoint
        self.history["config"] = self.config.to_dict()
        self._check(dataset)
        if run is not None and run.file("checkpoint.pt").exists() and self.model is None:
            self.resume(run, dataset)
        self.setup(dataset)
        with self._untrained_means_the_data():
            self._prepare(dataset)
        monitor = Monitor(
            dataset, eval_dataset, self.config.knn_k, seed=self.config.seed, extract=self.extract
        )
        # the train split's backbone features under the weights the next epoch starts from, when the
        # monitor has just extracted them (DeepCluster clusters these instead of extracting them
        # again)
        features = self._monitor_init(monitor)
        bar = tqdm(
            total=epochs, initial=self.epoch, desc=self.algo, unit="epoch", disable=not progress
        )
        while self.epoch < epochs and not self._stopped(stop):
            self.dist.seed_epoch(self.config.seed, self.epoch)  # this epoch's draws, per rank
            mark = self._mark()
            # the epoch, its monitor, its callback and its checkpoint: all of it, or none of it
            try:
                with self._untrained_means_the_data():
                    # the algorithm's epoch, in its own file
                    record = self._epoch(dataset, callback, stop, features)
                if record is None:  # stopped mid-epoch: rolled back, and the epochs done are kept
                    self._roll_back(mark)
                    break
                features = self._monitor(monitor, record, last=self.epoch == epochs)
                self.history["epoch"].append(record)
                # the callback first: what it saves for this epoch (UMAP features) exists before the
                # checkpoint says the epoch is done, so a Ctrl-C between the two cannot lose it
                self._emit(callback, {"kind": "epoch", **record})
                if run is not None and self.dist.is_writer:
                    self.save(run)
            except BaseException:
                # Ctrl-C, a divergence: the epoch never happened, so a next fit runs it whole
                self._roll_back(mark)
                raise
            bar.update(1)
            bar.set_postfix(
                {k: f"{record[k]:.3f}" for k in self.progress_keys if record.get(k) is not None}
            )
        bar.close()
        self.monitor_features = None  # N x D features: not kept alive past the fit
        return self.history

    @contextlib.contextmanager
    def _untrained_means_the_data(self):
        """NaN/inf features before any training step cannot be a divergence: the images hold them
        (`check_indexed` samples three images; a NaN in another one showed as "the network has
        diverged")."""
        try:
            yield
        except Diverged as e:
            if any(self.history["step"].values()):
                raise
            raise Diverged(
                "NaN/inf before any training step, so in the data, not the network: an image of "
                "the dataset holds NaN or inf; clean or re-normalise the data "
                f"({str(e).split(':')[0]})"
            ) from None

    def _mark(self) -> dict:
        """What an epoch starts from, copied to the host: weights, optimizer, loss scale, sampling
        generator, the algorithm's state (ODC's memory) and the history's lengths. A stopped epoch
        is rolled back to it, so a second `fit` gives what one uninterrupted `fit` gives (the CLI's
        resume reads the same from the checkpoint). Each epoch reseeds the augmentation's RNG
        (`seed_epoch`), so that needs no copy."""
        return {
            "epoch": self.epoch,
            "model": _host_copy(self.model.state_dict()),
            "optimizer": _host_copy(self.optimizer.state_dict()),
            "scaler": self.scaler.state_dict(),
            "generator": self.generator.get_state(),
            "extra": _host_copy(self.extra_state()),
            "steps": {k: len(v) for k, v in self.history["step"].items()},
            "labels": len(self.history["labels"]),
            "epochs": len(self.history["epoch"]),
        }

    def _roll_back(self, mark: dict) -> None:
        """Back to `mark`. A second Ctrl-C while this runs would leave the trainer half restored: it
        is marked unusable then (`_check`), and the error is raised as it came."""
        self.rolled_back_partly = True
        self.epoch = mark["epoch"]
        self.model.load_state_dict(mark["model"])
        self.optimizer.load_state_dict(mark["optimizer"])
        # a fresh one: an fp16 step interrupted before `update` left it "stepped"
        self.scaler = grad_scaler(self.device)
        if mark["scaler"]:
            self.scaler.load_state_dict(mark["scaler"])
        self.generator.set_state(mark["generator"])
        self.load_extra_state(mark["extra"])
        for k, v in self.history["step"].items():
            del v[mark["steps"].get(k, 0):]
        del self.history["labels"][mark["labels"]:]
        del self.history["epoch"][mark["epochs"]:]
        self.rolled_back_partly = False

    def _check(self, dataset) -> None:  # bad-input guards before anything is built
        pass

    def _prepare(self, dataset) -> None:  # one-off work before the first epoch (ODC's memory)
        pass

    def _epoch(self, dataset, callback, stop, features: np.ndarray | None = None) -> dict | None:
        raise NotImplementedError

    # -- checkpoint / resume -------------------------------------------------------------------
    def extra_state(self) -> dict:  # algorithm state beyond model and optimizer
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def save(self, run: Run) -> None:
        """History first, then the checkpoint: a resume reads the history up to the checkpoint's
        epoch (`Run.history_until`)."""
        run.save_history(self.history)
        save_checkpoint(
            run.file("checkpoint.pt"),
            {
                "algo": self.algo,
                "config": self.config.to_dict(),
                "epoch": self.epoch,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(),
                "rng": rng_state(self.device),
                "extra": self.extra_state(),
                # fp16's loss scale (empty where none scales): a resume keeps it
                "scaler": self.scaler.state_dict(),
            },
        )

    def resume(self, run: Run, dataset) -> None:
        """Continue from `run/checkpoint.pt` exactly where it stopped."""
        state = load_checkpoint(run.file("checkpoint.pt"))
        self._check_identity(run, state)
        self.config = type(self.config).from_dict(state["config"])
        self.setup(dataset)
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise ValueError(
                f"checkpoint {run.file('checkpoint.pt')} does not fit this dataset/backbone "
                f"({str(e).splitlines()[0]})"
            ) from None
        fresh = [
            {k: g[k] for k in ("fused", "foreach") if k in g} for g in self.optimizer.param_groups
        ]
        self.optimizer.load_state_dict(state["optimizer"])
        # this machine's step kernel, not the saver's: a checkpoint from before fused SGD (or from
        # another device) says fused=None
        for group, built in zip(self.optimizer.param_groups, fresh):
            group.update(built)
        # fp16 on both machines: the scale it had reached
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])
        self.load_extra_state(state["extra"])
        # the history as the checkpoint saw it; every snapshot is checked against this dataset and K
        history = run.history_until(
            self.epoch, self._snapshots_at(self.epoch), n_samples=len(dataset)
        )
        self.history = {**history, "config": self.config.to_dict()}
        try:
            set_rng_state(state["rng"], self.device)
        except (TypeError, ValueError, RuntimeError, KeyError, IndexError) as e:
            raise ValueError(
                f"{run.file('checkpoint.pt')}: its random-number state is damaged "
                f"({type(e).__name__}): restore the run's own checkpoint from a copy, or start a "
                "new run"
            ) from None

    MACHINE_SETTINGS = ("device", "num_workers")  # may change when a run moves to another machine

    def _check_identity(self, run: Run, state: dict) -> None:
        """Refuse, before anything is read into the trainer or deleted from the run, a checkpoint
        that is not this run's: another algorithm, settings other than the run's own history.json
        records (a checkpoint copied from another run), an epoch count the history does not hold, or
        a part missing."""
        path = run.file("checkpoint.pt")
        if state.get("algo") != self.algo:
            raise ValueError(f"{run.path} holds a {state.get('algo')} run, not {self.algo}: "
                             f"resume it with --algo {state.get('algo')}")
        config, epoch = state.get("config"), state.get("epoch")
        missing = [k for k in ("model", "optimizer", "generator", "rng") if k not in state]
        if not isinstance(config, dict) or not isinstance(state.get("extra"), dict) or missing:
            what = (
                "its config"
                if not isinstance(config, dict)
                else "its extra state"
                if not missing
                else missing[0]
            )
            raise ValueError(
                f"{path} is damaged ({what} missing or of the wrong kind): restore the run's own "
                "checkpoint from a copy, or start a new run"
            )
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(
                f"{path} says epoch {epoch!r}, not a count of finished epochs: restore the run's "
                "own checkpoint from a copy, or start a new run"
            )
        if not run.file("history.json").exists():
            return  # history_until names the missing history
        own = read_json(run.file("history.json"), "run's history", dict).get("config", {})
        own = own if isinstance(own, dict) else {}
        # as history.json holds it: tuples are lists there
        config = json.loads(json.dumps(config, default=str))
        differ = sorted(k for k in set(own) | set(config)
                        if k not in self.MACHINE_SETTINGS and own.get(k) != config.get(k))
        if differ:
            shown = ", ".join(
                f"{k} {config.get(k)!r} (history.json: {own.get(k)!r})" for k in differ[:4]
            )
            raise ValueError(
                f"{path} belongs to another run: {shown}. Put this run's own checkpoint back, or "
                "start a new run with those settings"
            )
        done = len(read_lines(run.file("epochs.jsonl")))
        if epoch > done:
            raise ValueError(
                f"{path} says epoch {epoch}, but {run.path} holds {done} epoch records: restore "
                "the missing files, or start a new run"
            )

    def _snapshots_at(self, epoch: int) -> int:
        return epoch

    def extract(self, model, dataset, device=None, batch_size: int = 256) -> np.ndarray:
        """`extract_features` of every image, (N, D) in dataset order; under torchrun each rank
        extracts its share of the rows and the shares are gathered on rank 0 (the others get (0, D)
        back)."""
        device, workers = device or self.device, self.config.num_workers
        if self.dist.world == 1 or not hasattr(dataset, "select"):
            return extract_features(model, dataset, batch_size, device, num_workers=workers)
        rows = row_range(len(dataset), self.dist.rank, self.dist.world)
        local = extract_features(
            model,
            dataset.select(torch.arange(rows.start, rows.stop)),
            batch_size,
            device,
            num_workers=workers,
        )
        return self.dist.gather_rows(local, len(dataset))

    def reset_head(self) -> None:
        """A fresh head (cluster ids mean nothing across clusterings), the same on every rank."""
        reset_head(self.model, self.optimizer)
        self.dist.broadcast_module(self.model.head)

    def _next_seed(self) -> int:
        return int(torch.randint(2**31 - 1, (1,), generator=self.generator))


# thread -> the fits it is running now (a fit may run inside another's callback)
_FITTING: dict[int, int] = {}
_FITTING_LOCK = threading.Lock()


@contextlib.contextmanager
def _one_of_the_fits():
    """Warn when another thread of this process is fitting too: both draw from torch's one global
    random generator (augmentation, dropout), so neither repeats the numbers its seed gives when it
    runs alone."""
    me = threading.get_ident()
    with _FITTING_LOCK:
        others = set(_FITTING) - {me}
        _FITTING[me] = _FITTING.get(me, 0) + 1
    if others:
        warnings.warn(
            "another kit fit is running in this process: the two share torch's global random "
            "generator, so neither gives its seed's numbers; run them one after the other (or in "
            "two processes) to repeat a run",
            RuntimeWarning,
            stacklevel=4,
        )
    try:
        yield
    finally:
        with _FITTING_LOCK:
            _FITTING[me] -= 1
            if not _FITTING[me]:
                del _FITTING[me]


def _host_copy(state):
    """A copy of a state dict (nested dicts, lists, tensors) with every tensor on the CPU."""
    if torch.is_tensor(state):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: _host_copy(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_host_copy(v) for v in state)
    return state


def labels_snapshot(labels) -> np.ndarray:
    return np.asarray(
        labels.cpu() if isinstance(labels, torch.Tensor) else labels, dtype=np.int64
    ).copy()


def _end_each(callbacks: list, finished: bool) -> None:
    """`end(finished)` of every callback that has one, each even if one before it raised. After a
    fit that returned, the first such error is raised; after one that raised, the fit's own error
    goes on and theirs are dropped."""
    errors = []
    for c in callbacks:
        if hasattr(c, "end"):
            try:
                c.end(finished)
            except Exception as e:  # noqa: BLE001 - every callback is ended first
                errors.append(e)
    if errors and finished:
        raise errors[0]


def _each(callbacks: list):
    """One fit callback that gives a record to each of `callbacks` in turn (None for none)."""
    if not callbacks:
        return None
    if len(callbacks) == 1:
        return callbacks[0]

    def call(record: dict) -> None:
        for c in callbacks:
            c(record)
    return call
