"""The demo on clothes against the demo on digits, side by side in one sitting (issue 32: at most
1.3x).

    # two fresh `python -m kit compare` processes, ~7 min on 2 cores
    python bench/dataset_time.py

Each is the whole command a user types, in a process of its own with the same environment: `python
-m kit compare` (mnist5k, the default) and `python -m kit compare --dataset fashion5k`, default
settings (K = 30, 30 epochs, one seed, the report with its UMAP and flight recorder), each writing a
new run in a temporary folder. It prints each wall time, its training time per algorithm (the runs'
own clock) and the ratio. fashion5k trains on 5,000 images against mnist5k's 4,000, so 1.25x is what
the image count alone predicts.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def demo(dataset: str, runs: Path) -> tuple[float, dict]:
    """(wall seconds of `python -m kit compare --dataset <dataset>`, {algo: seconds of feature
    extraction, clustering and training steps, monitoring left out})."""
    env = {**os.environ, "KIT_FAST": ""}
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kit",
            "compare",
            "--dataset",
            dataset,
            "--name",
            dataset,
            "--runs",
            str(runs),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - t0
    train = {}
    for algo in ("deepcluster", "odc"):
        epochs = [
            json.loads(line)
            for line in (runs / dataset / algo / "epochs.jsonl").read_text().splitlines()
            if line
        ]
        train[algo] = sum(
            r.get(k) or 0 for r in epochs for k in ("time_extract", "time_cluster", "time_train")
        )
    return wall, train


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = {d: demo(d, Path(tmp)) for d in ("mnist5k", "fashion5k")}
    for d, (wall, train) in out.items():
        print(
            f"{d:10s} wall {wall:6.0f} s   training + clustering: "
            + ", ".join(f"{a} {s:.0f} s" for a, s in train.items())
        )
    ratio = out["fashion5k"][0] / out["mnist5k"][0]
    print(f"fashion5k / mnist5k wall time: {ratio:.2f}x (aim: at most 1.3x)")


if __name__ == "__main__":
    main()
