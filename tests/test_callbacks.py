"""`fit(..., callbacks=[...])` (issue 30): `callback` then each of `callbacks` sees every record, in
that order, and each with an `end` hook is told whether the fit returned or raised, even when
another's `end` fails. (The commands' collapse alarm and TensorBoard log, passed this way, are
tested end to end in test_collapse.py and test_tensorboard.py.)"""
import pytest

import kit
from conftest import tiny_dc_config


class Recorder:
    def __init__(self, name, seen, fail_at=None):
        self.name, self.seen, self.fail_at, self.ended = name, seen, fail_at, []

    def __call__(self, record):
        self.seen.append((self.name, record["kind"]))
        if (
            self.fail_at is not None
            and record["kind"] == "epoch"
            and record["epoch"] == self.fail_at
        ):
            raise KeyboardInterrupt

    def end(self, finished):
        self.ended.append(finished)


def test_each_callback_sees_every_record_in_order_and_is_told_the_fit_returned(mnist_small):
    train, _ = mnist_small
    seen = []
    first, second = Recorder("a", seen), Recorder("b", seen)
    plain = lambda r: seen.append(("plain", r["kind"]))  # noqa: E731 - a bare function: no end hook, still called
    kit.DeepCluster(tiny_dc_config()).fit(
        train, epochs=2, callback=plain, callbacks=[first, second]
    )
    kinds = [k for who, k in seen if who == "plain"]
    # each record: callback, a, then b
    assert seen == [(who, k) for k in kinds for who in ("plain", "a", "b")]
    assert kinds.count("epoch") == 2 and kinds.count("step") > 0
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


def test_an_end_that_fails_leaves_the_others_ended_and_is_raised(mnist_small):
    train, _ = mnist_small

    class Broken(Recorder):
        def end(self, finished):
            super().end(finished)
            raise OSError("disk full")

    seen = []
    broken, after = Broken("a", seen), Recorder("b", seen)
    with pytest.raises(OSError, match="disk full"):
        kit.DeepCluster(tiny_dc_config()).fit(train, epochs=1, callbacks=[broken, after])
    assert broken.ended == after.ended == [True]


def test_the_collapse_watch_says_a_symptom_once_through_its_log():
    from kit.parts.collapse import Watch

    said = []
    call = Watch("deepcluster", 10).saying(said.append)
    dead = {"kind": "epoch", "epoch": 0, "nonempty": 1, "empty": 9, "largest_share": 1.0}
    call(dead), call({**dead, "epoch": 1})
    assert len(said) == 1 and "epoch" in said[0]
