"""Images a second an image folder feeds (JPEG decode, RandomResizedCrop to 224, flip, rotation,
colour jitter, in DataLoader workers) as kit reads it now (one loader, persistent workers) and as
before issue 29 (a loader, and its workers, made for every pass), beside what the training step asks
for on the same CPU (ResNet-50 at 224 px, batch 32). Issue 29, item 9.

    # 256 random 256 x 256 JPEGs in a temporary folder, 2 workers
    python bench/folder_rate.py
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import kit  # noqa: E402
from kit.parts.data import batches  # noqa: E402
from kit.parts.runtime import prepare_model  # noqa: E402


def folder_of_jpegs(root: Path, n: int = 256, size: int = 256) -> Path:
    from PIL import Image

    g = np.random.default_rng(0)
    for c in range(4):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(n // 4):
            Image.fromarray(g.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
                root / f"c{c}" / f"{i}.jpg"
            )
    return root


def images_per_s(folder, workers: int, persistent: bool, passes: int = 3) -> float:
    rates = []
    for _ in range(passes):
        if not persistent:
            # as before: a new loader, new workers, every pass
            folder.__dict__.pop("_loaders", None)
        t = time.perf_counter()
        n = sum(
            len(i)
            for _, i in batches(
                folder,
                torch.randperm(len(folder)),
                32,
                torch.device("cpu"),
                train=True,
                num_workers=workers,
            )
        )
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def step_demand(backbone: str, steps: int = 3) -> float:
    """Images a second the CPU trains at (forward, backward, SGD) on 224 px images, batch 32."""
    net = prepare_model(
        kit.ClusterNet(kit.build_backbone(backbone, 3, image_size=224), 1000), torch.device("cpu")
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(32, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    y = torch.randint(1000, (32,))
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(net(x)[1], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t)
    return 32 / statistics.median(times)


if __name__ == "__main__":
    workers = 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = kit.load_dataset("imagefolder", root=folder_of_jpegs(Path(tmp)), image_size=224)
        images_per_s(folder, workers, True, passes=1)  # warm the page cache
        before, now = images_per_s(folder, workers, False), images_per_s(folder, workers, True)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {workers} loader workers, "
        "256 JPEGs\n"
    )
    print("| what | images/s |\n|---|---|")
    print(f"| image folder, a loader made every pass (before) | {before:.0f} |")
    print(f"| image folder, one loader, persistent workers (now) | {now:.0f} |")
    # kit's ImageNet network (its resnet18 has the CIFAR stem, for 32 px)
    for backbone in ("resnet50",):
        print(
            f"| the training step asks, {backbone} at 224 px, batch 32 | "
            f"{step_demand(backbone):.0f} |"
        )
