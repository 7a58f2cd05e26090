"""`fit(..., callbacks=[...])` (issue 30): every callback sees every record in order, and each with an `end` hook is
told whether the fit returned or raised; the commands' collapse alarm and TensorBoard log come in this way."""
import pytest

import kit
from conftest import tiny_dc_config


class Recorder:
    def __init__(self, name, seen, fail_at=None):
        self.name, self.seen, self.fail_at, self.ended = name, seen, fail_at, []

    def __call__(self, record):
        self.seen.append((self.name, record["kind"]))
        if self.fail_at is not None and record["kind"] == "epoch" and record["epoch"] == self.fail_at:
            raise KeyboardInterrupt

    def end(self, finished):
        self.ended.append(finished)


def test_each_callback_sees_every_record_in_order_and_is_told_the_fit_returned(mnist_small):
    train, _ = mnist_small
    seen = []
    first, second = Recorder("a", seen), Recorder("b", seen)
    plain = []  # a bare function: no end hook, still called
    kit.DeepCluster(tiny_dc_config()).fit(train, epochs=2, callback=lambda r: plain.append(r["kind"]),
                                         callbacks=[first, second])
    assert seen[0::2] == [("a", k) for k in plain] and seen[1::2] == [("b", k) for k in plain]
    assert plain.count("epoch") == 2 and plain.count("step") > 0
    assert first.ended == second.ended == [True]


def test_a_fit_that_raises_tells_each_callback_it_did_not_finish(mnist_small):
    train, _ = mnist_small
    seen = []
    stopper, after = Recorder("a", seen, fail_at=0), Recorder("b", seen)
    trainer = kit.DeepCluster(tiny_dc_config())
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(train, epochs=2, callbacks=[stopper, after])
    assert stopper.ended == after.ended == [False]
    assert trainer.history["epoch"] == []  # the interrupted epoch was rolled back


def test_the_collapse_watch_says_a_symptom_once_through_its_log():
    from kit.collapse import Watch

    said = []
    call = Watch("deepcluster", 10).saying(said.append)
    dead = {"kind": "epoch", "epoch": 0, "nonempty": 1, "empty": 9, "largest_share": 1.0}
    call(dead), call({**dead, "epoch": 1})
    assert len(said) == 1 and "epoch" in said[0]
