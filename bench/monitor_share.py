"""What the kNN monitor costs an epoch (issue 31, item 11), side by side in one process: each
algorithm's small preset on the 4,000 training digits (1,000 test digits scored), 4 epochs (after 2
of warm-up) with the monitor every epoch (the demo's default, `eval_every=1`), every 2nd epoch, and
never; then the embedding snapshots' extraction saved by reusing its features.

    python bench/monitor_share.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import kit  # noqa: E402
from kit.parts.features import extract_features  # noqa: E402


def main() -> None:
    train, test = kit.load_dataset("mnist5k"), kit.load_dataset("mnist5k", split="test")
    for algo, make, config in (("DeepCluster", kit.DeepCluster, kit.DeepClusterConfig),
                               ("ODC", kit.ODC, kit.ODCConfig)):
        times = {}
        for every in (1, 2, 0):
            trainer = make(config.small(eval_every=every, device="cpu"))
            # warm-up (and ODC's initial k-means) outside the timing
            trainer.fit(train, 2, eval_dataset=test)
            t = time.perf_counter()
            # epochs 3-6: "every 2nd" scores 4 and 6 (a fit's last is scored)
            trainer.fit(train, 6, eval_dataset=test)
            times[every] = (time.perf_counter() - t) / 4
        print(
            f"{algo}: an epoch {times[1]:.2f} s with the monitor every epoch, {times[2]:.2f} s "
            f"every 2nd, {times[0]:.2f} s never: the monitor is {1 - times[0] / times[1]:.0%} of "
            "an epoch at eval_every=1"
        )
    trainer = kit.ODC(kit.ODCConfig.small(device="cpu"))
    trainer.setup(train)
    subset = torch.arange(1500)  # the demo's embed_points
    t = time.perf_counter()
    extract_features(trainer.model.backbone, train.select(subset), device="cpu")
    once = time.perf_counter() - t
    print(
        f"an embedding snapshot's own pass over {len(subset):,} images: {once:.2f} s; the demo's "
        f"snapshots after epochs 3, 10 and 30 of each algorithm (6 passes, {6 * once:.1f} s) are "
        "now rows of the monitor's pass"
    )


if __name__ == "__main__":
    main()
