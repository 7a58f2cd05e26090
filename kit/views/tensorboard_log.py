"""TensorBoard logging, optional: a run's numbers and embeddings where TensorBoard reads them.

    tb = TensorBoardLog("runs/demo/tb/odc", settings=odc.config.to_dict(), trainer=odc,
                        # the embedding at the flight recorder's epochs
                        projector_of=(Path("runs/demo/odc"), train))
    odc.fit(train, epochs, callbacks=[tb])  # scalars as they happen; at the end the Projector,
                                            # the settings as hparams with the last epoch's
                                            # numbers, and the file closed (`end`)

then `tensorboard --logdir runs/demo/tb` (offline: TensorBoard serves its own pages). What it
writes, against the global training step (steps of batch_size; both algorithms take N / batch_size
per epoch):
- `step/loss` and, for ODC, `step/change_ratio`, every iteration;
- `epoch/<name>` for every number of an epoch record (kNN, NMI/AMI/ARI, reassignment, cluster sizes,
  the collapse signals, times), at the step that ends the epoch, and the cluster sizes as a
  histogram;
- the settings as hparams;
- the Projector: the features of the fixed subset at each saved epoch, with a sprite of the images
  and metadata (true class, cluster, changed since the last epoch), the same rows the flight
  recorder shows.

`tensorboard` is an optional extra (`pip install -e '.[tensorboard]'` in kit's folder); without it
this module says so in one line. A resumed run purges what its interrupted epoch had logged
(SummaryWriter's purge_step), and keeps every step its checkpoint kept.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

NEEDS = ("TensorBoard logging needs the tensorboard package: pip install tensorboard (or, in kit's "
         "folder, pip install -e '.[tensorboard]')")


def summary_writer(folder: str | Path, purge_step: int | None = None):
    """torch's SummaryWriter on `folder`; a one-line ImportError naming the extra when tensorboard
    is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError(NEEDS) from None
    return SummaryWriter(str(folder), purge_step=purge_step)


def check_available() -> None:
    """Raise the one-line ImportError now, before a run writes anything, if tensorboard is
    missing."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ImportError(NEEDS) from None


class TensorBoardLog:
    """A `fit` callback that writes step and epoch records as TensorBoard scalars (see the module's
    docstring). With `trainer`, the steps are counted by its history, so a resumed run continues
    where its checkpoint stopped (and purges what an interrupted epoch had logged), and its label
    snapshots' cluster sizes are drawn as histograms. The event file is opened at the first record:
    after `fit` has resumed."""

    def __init__(
        self, folder: str | Path, settings: dict | None = None, trainer=None, projector_of=None
    ):
        self.folder, self.settings, self.trainer = Path(folder), settings or {}, trainer
        # (an algorithm's run folder, its dataset): `projector` when the fit ends
        self.projector_of = projector_of
        self.step, self._writer, self.last = 0, None, {}

    @property
    def writer(self):
        """Opened at first use (after `fit` has resumed): whatever an interrupted run had logged
        past the steps its checkpoint kept is purged, and nothing at or before them (a step record
        opens it with its own step)."""
        return self._open(self._steps_done() + 1)

    def _open(self, first_new_step: int):
        if self._writer is None:
            self._writer = summary_writer(
                self.folder, purge_step=first_new_step if first_new_step > 1 else None
            )
        return self._writer

    def _steps_done(self) -> int:
        return (
            len(self.trainer.history["step"].get("loss", []))
            if self.trainer is not None
            else self.step
        )

    def __call__(self, record: dict) -> None:
        if record["kind"] == "step":
            # the step's own number (records come in bursts, read from the device together),
            # counted from 1
            self.step = record["step"] if "step" in record else self.step + 1
            writer = self._open(self.step)
            for key in ("loss", "change_ratio"):
                if _number(record.get(key)):
                    writer.add_scalar(f"step/{key}", record[key], self.step)
        elif record["kind"] == "epoch":
            self.step = self._steps_done()
            self.last = {k: v for k, v in record.items() if _number(v) and k != "epoch"}
            for key, value in self.last.items():
                self.writer.add_scalar(f"epoch/{key}", value, self.step)
            labels = self.trainer.history["labels"][-1] if self.trainer is not None else None
            if labels is not None and len(labels):
                sizes = np.bincount(labels, minlength=self.trainer.config.n_clusters)
                self.writer.add_histogram("epoch/cluster_sizes", sizes, self.step)

    def projector(self, algo_run: str | Path, dataset, max_thumb: int = 32) -> int:
        """The Projector at every epoch `embed_features/` holds, from `algo_run` (a run's algorithm
        folder): features of the fixed subset, the images as a sprite, and (class, cluster, changed)
        rows. Returns the number of embeddings written."""
        from ..parts.metrics import changed
        from ..store.runs import Run

        saved = Run(algo_run).embed_features()
        if not saved:
            return 0
        subset = saved["subset"].astype(np.int64)
        snaps = Run(algo_run).load_history().get("labels", [])
        thumbs = _thumbnails(dataset, subset, max_thumb)
        classes = (
            dataset.targets[subset].tolist()
            if getattr(dataset, "targets", None) is not None
            else None
        )
        # the class names where the dataset has them ("Ankle boot")
        names = getattr(dataset, "classes", None)
        name = (lambda c: str(names[c])) if names else str  # noqa: E731
        epochs = sorted(int(k[6:]) for k in saved if k.startswith("epoch_"))
        for e in epochs:
            # the snapshot shown with these features, as the flight recorder's
            s = min(e, len(snaps) - 1)
            cluster = snaps[s][subset] if s >= 0 else np.full(len(subset), -1)
            moved = (
                changed(snaps[s - 1], snaps[s])[subset]
                if s > 0
                else np.zeros(len(subset), dtype=bool)
            )
            rows = [
                [
                    name(classes[i]) if classes else "",
                    str(int(cluster[i])),
                    "yes" if moved[i] else "no",
                ]
                for i in range(len(subset))
            ]
            self.writer.add_embedding(
                torch.from_numpy(saved[f"epoch_{e:04d}"].astype(np.float32)),
                metadata=rows,
                metadata_header=["class", "cluster", "changed"],
                label_img=thumbs,
                global_step=e,
                tag=f"{Path(algo_run).name}_epoch_{e}",
            )
        return len(epochs)

    def end(self, finished: bool) -> None:
        """Called by `fit` when it ends (a fit callback's hook): the Projector of `projector_of`'s
        saved epochs after a fit that returned, then the hparams and the file closed, whether it
        returned or raised."""
        try:
            if finished and self.projector_of is not None:
                self.projector(*self.projector_of)
        finally:
            self.close()

    def close(self) -> None:
        """The settings as hparams beside the last epoch's numbers, then flush and close; a second
        call does nothing (a later record opens a new event file)."""
        hparams = {
            k: (v if isinstance(v, (int, float, str, bool)) else str(v))
            for k, v in self.settings.items()
        }
        if hparams and self.last and self._writer is not None:
            self._writer.add_hparams(
                hparams, {f"hparam/{k}": v for k, v in self.last.items()}, run_name="."
            )
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _number(v) -> bool:
    return (
        isinstance(v, (int, float, np.integer, np.floating))
        and not isinstance(v, bool)
        and math.isfinite(v)
    )


def _thumbnails(dataset, subset: np.ndarray, size: int) -> torch.Tensor | None:
    """(n, C, h, w) float images in [0, 1] for the sprite (grayscale or RGB), at most `size` px a
    side."""
    images = getattr(dataset, "images", None)
    # an image folder: decoding thousands of files for a sprite is not worth it here
    if images is None:
        return None
    x = images[torch.as_tensor(subset)].float() / 255
    if x.shape[-1] > size:
        x = torch.nn.functional.interpolate(
            x, size=size, mode="bilinear", antialias=True, align_corners=False
        )
    return x.clamp(0, 1)
