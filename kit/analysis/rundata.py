"""What the image-level views read from a comparison run folder, gathered once into `RunData`.

Everything comes from files the run already holds: label snapshots through `Run.load_history()`, the
aligned UMAP layouts from `embeddings.npz` (written by `kit.commands.report.build_report`), the
features of the fixed subset from `<algo>/embed_features/`, and the images and true classes from the
dataset named in `config.json`. Nothing is trained or embedded here.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..algorithms import SPECS
from ..parts.data import load_dataset
from ..parts.metrics import changed
from ..store.files import read_layouts
from ..store.runs import Run, read_config
from . import flows


@dataclass
class RunData:
    """The arrays behind every image-level view of one run (N training images, n in the subset).

    >>> data = RunData.load("runs/demo")
    >>> data.clusters("odc", 10)          # (n,) carried cluster ids of the subset after 10 epochs
    """

    epochs: list[int]  # the saved epochs (UMAP frames): epochs of training behind each
    layouts: dict[str, list[np.ndarray]]  # algo -> one (n, 2) aligned UMAP layout per saved epoch
    # algo -> every label snapshot, (N,) each; snapshot s follows s epochs
    labels: dict[str, list[np.ndarray]]
    subset: np.ndarray  # (n,) indices of the subset into the training set
    classes: np.ndarray  # (N,) true classes of the training set
    # (N, C, H, W) uint8 training images, None if the dataset holds none in memory
    images: np.ndarray | None = None
    # algo -> (n, D) per saved epoch
    features: dict[str, list[np.ndarray]] = field(default_factory=dict)
    class_names: list[str] | None = None

    @classmethod
    def load(cls, run_path: str | Path) -> "RunData":
        path = Path(run_path)
        algos = [a for a in SPECS if (path / a / "history.json").exists()]
        if not algos:
            raise FileNotFoundError(
                f"{path} holds no deepcluster/ or odc/ history: is it a `kit compare` run?"
            )
        labels = {a: Run(path / a).load_history().get("labels", []) for a in algos}
        feats = {a: Run(path / a).embed_features() for a in algos}
        epochs = sorted(
            set.intersection(
                *[{int(k[6:]) for k in f if k.startswith("epoch_")} for f in feats.values()]
            )
        )
        cache = path / "embeddings.npz"
        stored = read_layouts(cache)
        keys = [f"{a}_{e:04d}" for a in algos for e in epochs]
        if not all(k in stored for k in keys):
            raise FileNotFoundError(
                f"{cache} lacks the UMAP layouts: build the report first (python -m kit report "
                f"{path})"
            )
        cfg = read_config(path).get("compare") or {}
        ds = load_dataset(
            cfg.get("dataset", "mnist5k"),
            "train",
            root=cfg.get("root", "data"),
            n=cfg.get("n_train"),
        )
        subset = feats[algos[0]]["subset"].astype(np.int64)
        images = getattr(ds, "images", None)
        return cls(
            epochs=epochs,
            layouts={a: [stored[f"{a}_{e:04d}"] for e in epochs] for a in algos},
            labels=labels,
            subset=subset,
            classes=ds.targets.numpy().astype(np.int64),
            images=None if images is None else images.numpy(),
            features={a: [feats[a][f"epoch_{e:04d}"] for e in epochs] for a in algos},
            class_names=getattr(ds, "classes", None),
        )

    @property
    def algos(self) -> list[str]:
        return list(self.layouts)

    def name(self, c: int) -> str:
        return self.class_names[c] if self.class_names else str(c)

    def snapshot(self, algo: str, epoch: int) -> int:
        """The label snapshot shown with the layout after `epoch` epochs: that epoch's, or the last
        one (DeepCluster never clusters the features of its final epoch)."""
        return min(epoch, len(self.labels[algo]) - 1)

    @functools.cached_property
    def carried(self) -> dict[str, list[np.ndarray]]:
        """Per algo, the snapshots shown at the saved epochs, (N,) each, with cluster ids carried
        from one saved epoch to the next (`flows.carry_ids`), so a colour or a history follows a
        cluster."""
        return {
            a: flows.carry_ids([self.labels[a][self.snapshot(a, e)] for e in self.epochs])
            for a in self.algos
        }

    def clusters(self, algo: str, epoch: int) -> np.ndarray:
        """(n,) carried cluster ids of the subset at a saved epoch."""
        return self.carried[algo][self.epochs.index(epoch)][self.subset]

    def changed(self, algo: str, epoch: int) -> np.ndarray:
        """(n,) bool: the subset's images that changed cluster in the transition into that snapshot
        (all False for snapshot 0, which has no predecessor)."""
        s, snaps = self.snapshot(algo, epoch), self.labels[algo]
        return (
            changed(snaps[s - 1], snaps[s])[self.subset]
            if s > 0
            else np.zeros(len(self.subset), dtype=bool)
        )

    def common_snapshots(self) -> int:
        return flows.common_snapshots(self.labels)

    def gallery_epoch(self) -> int:
        """The last saved epoch that every algorithm also clustered (features and labels of the same
        epoch)."""
        s = self.common_snapshots()
        return (
            max(e for e in self.epochs if e < s)
            if any(e < s for e in self.epochs)
            else self.epochs[0]
        )
