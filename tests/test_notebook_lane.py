"""The notebook lane's own tests (issue 30), with stand-in executions that take milliseconds: once
per key whoever asks, a copy for every caller, never two executions of one runs folder at once, a
failure raised to every asker, and the queue run in order in the background."""
import threading
import time

import pytest

from notebook_lane import NotebookLane


class Stand:
    """A stand-in `execute`: records who ran what, when, and in which folder; optionally fails or
    dawdles."""

    def __init__(self, seconds=0.02, fail=()):
        self.seconds, self.fail, self.calls, self.lock = seconds, set(fail), [], threading.Lock()
        self.active: dict[str, int] = {}
        self.overlap = False

    def __call__(self, name, mode, runs, threads):
        with self.lock:
            self.calls.append((name, mode))
            self.active[runs.name] = self.active.get(runs.name, 0) + 1
            self.overlap |= self.active[runs.name] > 1
        time.sleep(self.seconds)
        with self.lock:
            self.active[runs.name] -= 1
        if name in self.fail:
            raise RuntimeError(f"{name} failed in cell 3")
        return {"name": name, "mode": mode, "threads": threads, "cells": [1, 2]}


def test_a_notebook_asked_for_by_many_runs_once_and_each_gets_its_own_copy(tmp_path):
    stand = Stand(seconds=0.1)
    lane = NotebookLane(tmp_path, stand, cores=2)
    got = []
    askers = [threading.Thread(target=lambda: got.append(lane.get("a", "fast"))) for _ in range(4)]
    for t in askers:
        t.start()
    for t in askers:
        t.join()
    assert stand.calls == [("a", "fast")] and len(got) == 4
    got[0]["cells"].append(3)
    assert lane.get("a", "fast")["cells"] == [1, 2]  # a caller's change reaches no other caller


def test_asked_before_the_lane_gets_there_the_test_runs_it_on_the_free_cores(tmp_path):
    stand = Stand()
    lane = NotebookLane(tmp_path, stand, cores=2)
    assert lane.get("b", "full")["threads"] == 2 and stand.calls == [("b", "full")]


def test_the_lane_runs_its_queue_in_order_and_never_two_executions_of_one_folder_at_once(tmp_path):
    stand = Stand(seconds=0.05)
    lane = NotebookLane(
        tmp_path, stand, cores=2, runs_folder=lambda name, mode: "shared" if name in "xy" else name
    )
    # a repeated key queues once
    lane.start_lane([("x", "fast"), ("y", "fast"), ("z", "fast"), ("x", "fast")])
    with lane.lock:
        # a test waits at the session's tail: the second worker may start too
        lane.blocked, lane.tail = 1, True
        lane.lock.notify_all()
    assert [lane.get(n, "fast")["name"] for n in "xyz"] == ["x", "y", "z"]
    assert sorted(stand.calls) == [("x", "fast"), ("y", "fast"), ("z", "fast")]
    assert stand.calls.index(("x", "fast")) < stand.calls.index(("y", "fast"))
    assert not stand.overlap  # x and y share a folder: one after the other
    assert not lane.busy()


def test_a_failed_notebook_fails_every_test_that_asks_for_it(tmp_path):
    stand = Stand(fail={"bad"})
    lane = NotebookLane(tmp_path, stand, cores=2)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="bad failed in cell 3"):
            lane.get("bad", "fast")
    assert stand.calls == [("bad", "fast")]  # executed once, its failure kept


def test_a_stopped_lane_takes_nothing_new_and_waits_for_the_one_it_runs(tmp_path):
    stand = Stand(seconds=0.2)
    lane = NotebookLane(tmp_path, stand, cores=1)
    lane.start_lane([("first", "fast"), ("second", "fast")])
    deadline = time.time() + 5
    while not lane.running and time.time() < deadline:
        time.sleep(0.01)
    lane.stop()
    assert stand.calls == [("first", "fast")] and not lane.running


CALLS = []


def stand_in_job(folder, threads):
    """A job as conftest's `lane_job` takes one: its own folder, the threads it may use."""
    CALLS.append((folder.name, threads))
    (folder / "out.txt").write_text("written")
    return {"files": sorted(p.name for p in folder.iterdir()), "threads": threads}


def failing_job(folder, threads):
    CALLS.append(("failing", threads))
    raise RuntimeError("the job's process exited 1")


def test_a_job_runs_once_in_a_folder_of_its_own_and_its_failure_fails_each_asker(lane_job):
    """Asked for without `@pytest.mark.job` (so not queued), a job runs here on the free cores; a
    second asker gets a copy of the first result, and a failed job fails every test that asks."""
    first = lane_job(stand_in_job)
    first["files"].append("changed by a caller")
    assert lane_job(stand_in_job) == {"files": ["out.txt"], "threads": first["threads"]}
    assert CALLS == [("job-test_notebook_lane.stand_in_job", first["threads"])]
    assert first["threads"] >= 1
    for _ in range(2):
        with pytest.raises(RuntimeError, match="exited 1"):
            lane_job(failing_job)
    assert [name for name, _ in CALLS] == ["job-test_notebook_lane.stand_in_job", "failing"]


@pytest.mark.timeout(60)
def test_a_skip_or_fail_inside_the_lane_reaches_the_asker_and_hangs_nothing(tmp_path):
    """pytest.skip and pytest.fail raise BaseExceptions: the lane thread kept only Exceptions, died
    on them, and the asking test waited for ever."""

    def skipping(name, mode, runs, threads):
        pytest.skip("no chromium here")

    lane = NotebookLane(tmp_path, skipping, cores=1)
    lane.start_lane([("s", "fast")])
    with pytest.raises(pytest.skip.Exception, match="no chromium"):
        lane.get("s", "fast")
    assert not lane.busy() and lane.blocked == 0
