"""The algorithms learn: training lowers the loss and lifts kNN accuracy above the untrained
network's, on the same data and seed (the random-init network is the monitor's epoch 0 of the same
run).

Each budget is the smallest that measured a clear gain on 2 CPU cores, and they differ on purpose.
DeepCluster re-clusters every epoch and learns from repeats: on 1,000 digits its tiny preset went
from kNN 0.708 to 0.770 in 6 epochs. ODC moves a memory that is filled once and learns from new
images: on the same 1,000 digits its kNN stayed at or fell below the untrained network's after 6
epochs (0.68 at K = 10 or 30, batch 32 or 64; 0.52 at lr 0.3), while one epoch of its preset on all
4,000 went from 0.792 to 0.844 (seed 31; the example run's first epoch: 0.788 -> 0.835). Its loss
check compares the first and last steps of that epoch, which a trained head alone would lower too:
the kNN gain is the check that the features learned.
"""
import pytest
from conftest import tiny_dc_config

import kit


@pytest.fixture(scope="module")
def held_out():
    return kit.load_dataset("mnist5k", split="test", n=500)


def _learns(trainer, train, test, epochs):
    h = trainer.fit(train, epochs, eval_dataset=test)
    losses = [r["loss"] for r in h["epoch"]]
    return losses, h["monitor_init"]["knn"], h["epoch"][-1]["knn"]


@pytest.mark.slow
def test_deepcluster_lowers_its_loss_and_beats_the_random_network(held_out):
    train = kit.load_dataset("mnist5k", n=1000)
    losses, before, after = _learns(
        kit.DeepCluster(tiny_dc_config(eval_every=6)), train, held_out, 6
    )
    # measured 2.93 -> 2.27 (the head is reset every epoch: means, not steps)
    assert losses[-1] < losses[0] - 0.3
    assert after > before + 0.02, (before, after)  # measured 0.708 -> 0.770


@pytest.mark.slow
def test_odc_lowers_its_loss_and_beats_the_random_network(held_out):
    """One epoch of all 4,000 digits: two epochs of 2,000 were too few to rank (kNN after them moved
    from 0.754 by -0.08 to +0.03 over seeds and thread counts, issue 29). One epoch of the 4,000
    gained +0.052 / +0.054 at seed 31 (this test's) on two / one threads, and +0.012 to +0.040 at
    seeds 1 and 2."""
    h = kit.ODC(kit.ODCConfig.small(eval_every=1)).fit(
        kit.load_dataset("mnist5k"), 1, eval_dataset=held_out
    )
    steps = h["step"]["loss"]
    first, last = sum(steps[:10]) / 10, sum(steps[-10:]) / 10
    # measured 3.41 -> 2.80, the mean of the first and last 10 steps
    assert last < first - 0.1, (first, last)
    before, after = h["monitor_init"]["knn"], h["epoch"][-1]["knn"]
    # measured 0.792 -> 0.844 (seed 31; 0.846 on one thread)
    assert after > before + 0.01, (before, after)


def test_a_fit_ends_on_a_score_whatever_eval_every(mnist_small):
    """The monitor runs every `eval_every` epochs and after a fit's last epoch: with eval_every = 2
    over 3 epochs, epochs 2 and 3 have a kNN accuracy and epoch 1 none (notebook 05 read the last
    epoch's kNN of a 5-epoch run monitored every 4, and failed)."""
    train, test = mnist_small
    h = kit.ODC(kit.ODCConfig.fast(n_clusters=10, min_cluster_size=5, eval_every=2)).fit(
        train, 3, eval_dataset=test
    )
    assert [r.get("knn") is not None for r in h["epoch"]] == [False, True, True]
