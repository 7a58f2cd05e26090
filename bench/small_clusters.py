"""ODC's small-cluster fix at three K on the 4,000 training digits (issue 31, item 10), side by side in one process:
an epoch's time and the share of it spent dissolving and re-splitting small clusters (`min_cluster_size` 10, the
small preset's). K = 1,000 (4 images a cluster) is refused in one line; it took ~240 s an epoch before.

    python bench/small_clusters.py
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kit  # noqa: E402
from kit.memory import ODCMemory  # noqa: E402


def epoch(data, k: int) -> tuple[float, float, int]:
    """(seconds of ODC's second epoch, seconds of it in fix_small_clusters, 2-means splits in it)."""
    trainer = kit.ODC(kit.ODCConfig.small(n_clusters=k, eval_every=0, device="cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # K = 300's warning: measured here
        trainer.fit(data, epochs=1)
    spent = {"fix": 0.0, "splits": 0}
    fix, split = ODCMemory.fix_small_clusters, ODCMemory._split_in_two

    def timed_fix(self):
        t = time.perf_counter()
        try:
            return fix(self)
        finally:
            spent["fix"] += time.perf_counter() - t

    def counted_split(self, x):
        spent["splits"] += 1
        return split(self, x)

    ODCMemory.fix_small_clusters, ODCMemory._split_in_two = timed_fix, counted_split
    try:
        t = time.perf_counter()
        trainer.fit(data, epochs=2)
        return time.perf_counter() - t, spent["fix"], spent["splits"]
    finally:
        ODCMemory.fix_small_clusters, ODCMemory._split_in_two = fix, split


def main() -> None:
    data = kit.load_dataset("mnist5k")
    base = None
    for k in (30, 300, 1000):
        try:
            wall, fix, splits = epoch(data, k)
        except ValueError as e:
            print(f"K = {k:>5,}: refused: {e}")
            continue
        base = base or wall
        print(f"K = {k:>5,} ({len(data) / k:5.1f} images a cluster): epoch {wall:5.2f} s = {wall / base:.2f}x K = 30's; "
              f"small-cluster fix {fix:.2f} s ({splits:,} 2-means splits)")


if __name__ == "__main__":
    main()
