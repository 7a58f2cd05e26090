"""Tensor ops a training step dispatches, and the CPU epoch time, as kit stepped before issue 29
(torch's default SGD, each batch augmented on its own) and as it steps now (fused SGD, 16 batches
augmented in one call), side by side in one run, for both algorithms on the small preset (issue 29,
item 8).

    python bench/step_ops.py            # all 4,000 digits, K = 30, the small preset's batch of 64

Ops are counted by a TorchDispatchMode over steps 1 to 48 of the second epoch (every aten call:
forward, backward, optimizer, and the preparation of the batches those steps train on: three chunks
of 16 batches now, 48 single batches before); the epoch time is the median of three epochs per
setting, alternated, no counter on. "Before" runs today's code with CHUNK = 1 and torch's default
SGD: one `split` a step more than the code before issue 29 had.
"""
from __future__ import annotations

import functools
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import kit  # noqa: E402
from kit.parts import data as kit_data  # noqa: E402
from kit.algorithms import training  # noqa: E402


class Ops(TorchDispatchMode):
    """Counts every aten op dispatched while `on`."""

    def __init__(self):
        super().__init__()
        self.n, self.on = 0, False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += self.on
        return func(*args, **(kwargs or {}))


def trainer(algo: str, now: bool):
    """The trainer as kit builds it now (`now`), or as before issue 29: the default SGD, one batch
    augmented at a time."""
    # what Trainer.setup calls
    training.build_optimizer = functools.partial(ORIGINAL, fused_step=now)
    kit_data.CHUNK = CHUNK if now else 1
    cfg = {"deepcluster": kit.DeepClusterConfig, "odc": kit.ODCConfig}[algo].small(
        n_clusters=30, eval_every=0
    )
    return {"deepcluster": kit.DeepCluster, "odc": kit.ODC}[algo](cfg)


def ops_per_step(algo: str, now: bool, data) -> float:
    counter, marks = Ops(), []

    def on_step(record):
        if record["kind"] == "step" and record["epoch"] == 1:
            counter.on = True
            marks.append(counter.n)

    with counter:
        trainer(algo, now).fit(data, epochs=2, callback=on_step)
    # from the end of step 0 to the end of step 48: the chunks made at steps 16, 32 and 48 fall
    # inside, whole
    return (marks[48] - marks[0]) / 48


def epoch_seconds(algo: str, now: bool, data) -> float:
    t = trainer(algo, now)
    t.fit(data, epochs=1)  # the first epoch (ODC's initial k-means) is not timed
    start = time.perf_counter()
    t.fit(data, epochs=2)
    return time.perf_counter() - start


ORIGINAL, CHUNK = training.build_optimizer, kit_data.CHUNK

if __name__ == "__main__":
    torch.set_num_threads(2)
    data = kit.load_dataset("mnist5k")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(data):,} digits, K = "
        "30\n"
    )
    print(
        "| algorithm | ops a step, before | ops a step, now | ratio | CPU epoch, before | CPU "
        "epoch, now | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for algo in ("deepcluster", "odc"):
        ops = {f: ops_per_step(algo, f, data) for f in (False, True)}
        times = {False: [], True: []}
        for _ in range(3):  # alternated, so a slow moment of the machine falls on both
            for f in (False, True):
                times[f].append(epoch_seconds(algo, f, data))
        sec = {f: statistics.median(times[f]) for f in times}
        print(
            f"| {algo} | {ops[False]:.0f} | {ops[True]:.0f} | {ops[True] / ops[False]:.2f} | "
            f"{sec[False]:.2f} s | {sec[True]:.2f} s | {sec[True] / sec[False]:.2f} |"
        )
