"""ODC's small-cluster fix at three K on the 4,000 training digits (issue 31, item 10), side by side
in one process: an epoch's time and the share of it spent dissolving and re-splitting small clusters
(`min_cluster_size` 10, the small preset's). K = 300 is timed twice: with kit's batched 2-means, and
with the reference's loop, one scikit-learn KMeans(2) call a split (kit's code before issue 31). K =
1,000 (4 images a cluster) is refused in one line; it took ~240 s an epoch before.

    python bench/small_clusters.py
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kit  # noqa: E402
import kit.algorithms.odc  # noqa: E402
from kit.algorithms.memory import ODCMemory  # noqa: E402


class OneSklearnCallASplit(ODCMemory):
    """The reference's loop (§2.7): for each freed id, the largest cluster split by scikit-learn's
    KMeans(2)."""

    def _redirect_empty(self, empty):
        from sklearn.cluster import KMeans

        moved = 0
        for e in empty.tolist():
            counts = self.counts()
            big = int(counts.argmax())
            if counts[big] < 2:
                break
            members = torch.nonzero(self.labels == big).flatten()
            part = torch.as_tensor(
                KMeans(2, random_state=self.split_seed, max_iter=20, n_init=1)
                .fit(self.features[members].double().numpy())
                .labels_
                == 1
            )
            # as kit did: floor(n/2) kept at random, ceil(n/2) moved
            if part.all() or not part.any():
                gen = torch.Generator().manual_seed(self.split_seed)
                part = torch.ones(len(members), dtype=torch.bool)
                part[torch.randperm(len(members), generator=gen)[: len(members) // 2]] = False
            part = members[part]
            self._write(part, torch.full_like(part, e))
            moved += len(part)
            self.recompute_centroids(torch.tensor([big, e]))
        return moved


def epoch(data, k: int, memory=ODCMemory) -> tuple[float, float, int]:
    """(seconds of ODC's second epoch, seconds of it in fix_small_clusters, ids refilled by a split
    in it)."""
    kit.algorithms.odc.ODCMemory = memory
    trainer = kit.ODC(kit.ODCConfig.small(n_clusters=k, eval_every=0, device="cpu"))
    # K = 300's warning: measured here
    warnings.filterwarnings("ignore", "ODC: n_clusters", RuntimeWarning)
    trainer.fit(data, epochs=1)
    spent = {"fix": 0.0, "refilled": 0}
    fix = memory.fix_small_clusters

    def timed_fix(self):
        t = time.perf_counter()
        refill = int(self.small_clusters().sum())
        try:
            return fix(self)
        finally:
            spent["fix"] += time.perf_counter() - t
            spent["refilled"] += refill

    memory.fix_small_clusters = timed_fix
    try:
        t = time.perf_counter()
        trainer.fit(data, epochs=2)
        return time.perf_counter() - t, spent["fix"], spent["refilled"]
    finally:
        memory.fix_small_clusters = fix
        kit.algorithms.odc.ODCMemory = ODCMemory


def balance(data) -> None:
    """How evenly each 2-means parts a small cluster: the clusters of 16 to 40 images of a K = 300
    memory after one epoch, split by kit's 2-means and by scikit-learn's KMeans(2, random_state=0),
    the smaller part's mean share."""
    from sklearn.cluster import KMeans

    trainer = kit.ODC(kit.ODCConfig.small(n_clusters=300, eval_every=0, device="cpu"))
    trainer.fit(data, epochs=1)
    mem, counts = trainer.memory, trainer.memory.counts()
    ours, theirs = [], []
    for k in torch.nonzero((counts >= 16) & (counts <= 40)).flatten().tolist():
        x = mem.features[mem.labels == k]
        part = mem._split_in_two([x])[0]
        sk = KMeans(2, random_state=0, max_iter=20, n_init=1).fit(x.double().numpy()).labels_ == 1
        ours.append(min(part.sum().item(), len(x) - part.sum().item()) / len(x))
        theirs.append(min(sk.sum(), len(x) - sk.sum()) / len(x))
    print(
        f"{len(ours)} clusters of 16-40 images after one K = 300 epoch: the smaller part holds "
        f"{sum(ours) / len(ours):.0%} of a cluster with kit's 2-means, "
        f"{sum(theirs) / len(theirs):.0%} with scikit-learn's"
    )


def main() -> None:
    data = kit.load_dataset("mnist5k")
    base = None
    for k, memory, how in (
        (30, ODCMemory, "kit"),
        (300, ODCMemory, "kit"),
        (300, OneSklearnCallASplit, "reference loop"),
        (1000, ODCMemory, "kit"),
    ):
        try:
            wall, fix, refilled = epoch(data, k, memory)
        except ValueError as e:
            print(f"K = {k:>5,}: refused: {e}")
            continue
        base = base or wall
        print(
            f"K = {k:>5,} ({len(data) / k:5.1f} images a cluster), {how:>14}: epoch {wall:5.2f} s "
            f"= {wall / base:.2f}x K = 30's; small-cluster fix {fix:.2f} s ({refilled:,} ids "
            f"refilled by a split, {fix / max(refilled, 1) * 1e3:.2f} ms of fix an id)"
        )
    balance(data)


if __name__ == "__main__":
    main()
