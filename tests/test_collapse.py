"""The collapse alarm: its numbers on made-up features, then real tiny runs driven into collapse."""
import math

import numpy as np
import pytest
import torch
from conftest import tiny_dc_config, tiny_odc_config

import kit
from kit.parts import collapse


def test_feature_numbers_on_spread_and_collapsed_features():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(2000, 64, generator=g)  # directions uniform on the sphere
    one = torch.ones(2000, 64) + 1e-3 * torch.randn(2000, 64, generator=g)  # one vector for all
    # every feature on one line
    line = torch.randn(2000, 1, generator=g) * torch.randn(1, 64, generator=g)
    assert collapse.feature_std_ratio(spread) == pytest.approx(1.0, abs=0.05)  # std 1/sqrt(D)
    assert collapse.feature_std_ratio(one) < 0.01
    assert collapse.rankme(spread) > 55 and collapse.rankme(line) == pytest.approx(1.0, abs=0.01)
    # RankMe by hand on a diagonal matrix: singular values 3, 1 -> p = (.75, .25)
    p = np.array([0.75, 0.25])
    assert collapse.rankme(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(
        math.exp(-(p * np.log(p)).sum()), rel=1e-4
    )


def test_label_numbers_and_each_threshold():
    s = collapse.signals(math.log(10), np.array([0] * 90 + [1] * 10), 10)
    assert s == {"loss_ln_k": pytest.approx(1.0), "largest_share": 0.9, "nonempty": 2}
    r = {"epoch": 3, **s, "feature_std_ratio": 0.01, "rankme": 1.5}
    assert collapse.alarms(
        r, 10, prev={"epoch": 2, "loss_ln_k": 0.99, "feature_std_ratio": 0.05, "rankme": 2}
    ) == ["loss_at_chance", "giant_cluster", "dead_clusters", "feature_collapse", "low_rank"]
    # one epoch of a trend is not yet one
    assert collapse.alarms(r, 10, prev={"epoch": 2, "loss_ln_k": 0.5}) == [
        "giant_cluster", "dead_clusters"]
    healthy = {
        "epoch": 3,
        "loss_ln_k": 0.6,
        "largest_share": 0.1,
        "nonempty": 10,
        "feature_std_ratio": 0.5,
        "rankme": 40,
    }
    assert collapse.alarms(healthy, 10, prev=healthy) == []
    assert collapse.alarms({**healthy, "epoch": 0, "loss_ln_k": 5.0}, 10) == ["loss_exploding"]


def test_watch_says_each_symptom_once_in_one_line_with_the_causes():
    w = collapse.Watch("odc", 10)
    bad = {"kind": "epoch", "epoch": 1, "loss_ln_k": 0.5, "largest_share": 0.8, "nonempty": 9}
    line = w(bad)
    assert (
        "\n" not in line
        and "odc epoch 2" in line
        and "one cluster holds most images (largest cluster 80%" in line
    )
    assert (
        "learning rate" in line and "a safeguard switched off" in line and "K far above" not in line
    )
    assert w({**bad, "epoch": 2}) is None  # already said
    assert w({"kind": "step", "loss": 1.0}) is None
    assert w.raised == [(1, ["giant_cluster"]), (2, ["giant_cluster"])]


@pytest.mark.parametrize("algo", ["deepcluster", "odc"])
def test_a_healthy_tiny_run_raises_no_alarm_and_lr_10_does(mnist_small, algo):
    train, _ = mnist_small
    trainer, config = {
        "deepcluster": (kit.DeepCluster, tiny_dc_config),
        "odc": (kit.ODC, tiny_odc_config),
    }[algo]
    healthy = trainer(config()).fit(train, 3)
    assert collapse.flagged(healthy) == []
    assert {"loss_ln_k", "largest_share", "nonempty", "feature_std_ratio", "rankme"} <= set(
        healthy["epoch"][-1]
    )
    broken = trainer(config(lr=10.0)).fit(train, 3)  # a learning rate 30-100x the preset's
    raised = dict(collapse.flagged(broken))
    assert raised.get(0) == ["loss_exploding"]  # the first epoch's loss is thousands of times ln K
    # then the head stops learning: the loss sits at ln K
    assert "loss_at_chance" in raised.get(2, [])


@pytest.mark.slow
def test_the_cli_says_a_collapse_in_one_line_and_a_healthy_run_says_nothing(tmp_path, capsys):
    from kit.__main__ import main

    def train(*args):
        assert (
            main(["train", "--algo", "odc", "--epochs", "2", "--runs", str(tmp_path), *args]) == 0
        )
        err = capsys.readouterr().err
        return [line for line in err.replace("\r", "\n").splitlines() if "collapse alarm" in line]

    lines = train("--name", "bad", "--lr", "10")
    assert len(lines) == 1 and lines[0].startswith(
        "collapse alarm, odc epoch 1: the loss is far above ln K"
    )
    assert "learning rate too high" in lines[0]
    assert train("--name", "good") == []
