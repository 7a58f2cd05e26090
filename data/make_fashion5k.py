"""Rebuild data/fashion5k.npz, the 6,000 Fashion-MNIST images that ship with kit
(`kit.load_dataset("fashion5k")`).

    # FOLDER holds the four original *-idx?-ubyte.gz files
    python data/make_fashion5k.py [FOLDER]

FOLDER defaults to Debian's copy (`apt install dataset-fashion-mnist` puts them in
/usr/share/datasets/fashion-mnist); torchvision's download (`kit.load_dataset("fashion-mnist",
download=True)`) leaves them in data/FashionMNIST/raw/. The draw is seeded: 500 images of each class
from the original train split (60,000 images) and 100 of each class from the original test split
(10,000). One numpy generator (PCG64, seed 0) draws a permutation of each class's images in turn,
train split first, classes in label order; the first 500 (100) of each are kept, in their original
order. The same files give the same arrays, checked by tests/test_fashion5k.py. Fashion-MNIST is (c)
2017 Zalando SE, MIT licence: data/FASHION-MNIST-LICENSE.
"""
import gzip
import sys
from pathlib import Path

import numpy as np

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
PER_CLASS = {"train": 500, "t10k": 100}  # 5,000 train images, 1,000 test images
SEED = 0


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzip or plain): uint8 images (N, 28, 28) or labels (N,)."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def original(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    def find(stem: str) -> Path:
        for name in (f"{stem}.gz", stem):
            if (folder / name).is_file():
                return folder / name
        sys.exit(
            f"{folder / stem}.gz not found: apt install dataset-fashion-mnist, or pass the folder "
            "that holds it"
        )
    return read_idx(find(f"{part}-images-idx3-ubyte")), read_idx(find(f"{part}-labels-idx1-ubyte"))


def draw(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """`per_class` indices of each class, from a seeded permutation, sorted."""
    return np.sort(
        np.concatenate(
            [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(10)]
        )
    )


def build(folder: Path) -> dict:
    rng = np.random.default_rng(SEED)
    out = {}
    for part, split in (("train", "train"), ("t10k", "test")):
        x, y = original(folder, part)
        keep = draw(y, PER_CLASS[part], rng)
        out[f"x_{split}"], out[f"y_{split}"], out[f"source_{split}"] = (
            x[keep],
            y[keep].astype(np.int64),
            keep,
        )
    return out


if __name__ == "__main__":
    target = Path(__file__).resolve().parent / "fashion5k.npz"
    np.savez_compressed(target, **build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEBIAN))
    print(f"wrote {target} ({target.stat().st_size / 1e6:.2f} MB)")
