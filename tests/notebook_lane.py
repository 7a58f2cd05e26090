"""The notebook lane: each (notebook, mode) executed once per test session, in the background while
the other tests run, or by the first test that asks (tests/conftest.py wires it to
`execute_notebook`; tests/test_notebook_lane.py tests it with stand-in executions)."""
import copy
import threading
import time
from pathlib import Path


class NotebookLane:
    """Each (notebook, mode) executed once per session, by whichever comes first: the background
    lane, which works through what the selected tests declared (`@pytest.mark.notebooks`) while
    other tests run, or a test that asks before the lane got there. Kernels are processes of their
    own, so the lane overlaps them with the tests in this process. A notebook that failed fails
    every test that asks for it, once executed.

    Cores: a kernel takes one OpenMP thread while a test runs beside it (`pytest_runtest_setup`
    gives the test the others: two pools of two threads on two cores made a test ten times slower
    than alone). While a test waits for the lane, its core goes to a second lane worker, which runs
    the next queued notebook beside the first (two one-thread kernels get more done than one of two
    threads), once only tests that read executed notebooks are left (earlier, the second kernel
    outlived the wait and slowed the tests after it); a kernel started with nothing beside it while
    a test waits takes every core. Two notebooks that share a runs folder (01 and 04) never run at
    once."""

    def __init__(self, folder, execute, cores: int, key=lambda name, mode: (name, mode),
                 runs_folder=lambda name, mode: f"{name}-{mode}"):
        """`execute(name, mode, runs: Path, threads)` runs one notebook and returns it (or raises);
        `key(name, mode)` is the execution a request means (conftest: one for all modes of a
        notebook sized by nothing); `runs_folder` names each execution's runs folder under `folder`,
        the same name for two that must not run at once."""
        self.folder, self.done, self.running, self.queue = folder, {}, {}, []
        self.execute, self.cores, self.key, self.runs_folder = execute, cores, key, runs_folder
        # guards everything below; notified when a kernel ends or a test waits
        self.lock = threading.Condition()
        self.threads = 0  # OpenMP threads of the kernels running now
        self.folders: set[str] = set()  # runs folders of the kernels running now
        self.waited = 0.0  # seconds the tests spent waiting for the lane
        self.blocked = 0  # tests waiting for the lane right now: their core is free for a kernel
        # every test left reads executed notebooks (the full-size ones, sorted last): no test
        # will need the core a second kernel takes, which runs to its end once started
        self.tail = False
        self.others_ended = None  # when the tests before those of full-size runs and jobs ended (s)

    def busy(self) -> bool:
        with self.lock:
            return bool(self.queue or self.running)

    def _start(self, key, threads: int) -> None:
        """Mark `key` running on `threads` threads (the caller holds the lock and has checked its
        folder is free)."""
        self.running[key] = threading.Event()
        if key in self.queue:
            self.queue.remove(key)
        self.threads += threads
        self.folders.add(self.runs_folder(*key))

    def _execute(self, key, threads: int) -> None:
        name, mode = key
        try:
            result = self.execute(
                name, mode, Path(self.folder) / self.runs_folder(name, mode), threads
            )
        # nbclient's CellExecutionError names the cell and its traceback; a job's pytest.skip or
        # pytest.fail (BaseException) is kept as well, so that no test waits for it for ever
        except BaseException as e:
            result = e
        with self.lock:
            self.done[key] = result
            self.threads -= threads
            self.folders.discard(self.runs_folder(name, mode))
            self.running.pop(key).set()
            self.lock.notify_all()

    def get(self, name: str, mode: str):
        key = self.key(name, mode)
        with self.lock:
            while (
                key not in self.done
                and key not in self.running
                and self.runs_folder(*key) in self.folders
            ):
                self.lock.wait()  # its runs folder is in use (01 and 04): wait for that kernel
            if key in self.done or key in self.running:
                event = self.running.get(key)
            else:  # asked before the lane got there: this test runs it, on the cores no kernel uses
                event, threads = None, max(1, self.cores - self.threads)
                self._start(key, threads)
        if event is None and key not in self.done:
            self._execute(key, threads)
        elif event is not None:
            t0 = time.perf_counter()
            with self.lock:
                self.blocked += 1
                self.lock.notify_all()  # a second lane worker may take this test's core
            try:
                event.wait()
            finally:  # a test's timeout may end the wait: the lane must not think it still waits
                with self.lock:
                    self.blocked -= 1
                self.waited += time.perf_counter() - t0
        result = self.done[key]
        if isinstance(result, BaseException):
            raise result
        return copy.deepcopy(result)  # every caller its own copy

    def stop(self) -> None:
        with self.lock:
            self.queue.clear()
            self.lock.notify_all()
            running = list(self.running.values())
        for event in running:
            event.wait(timeout=900)

    def _next(self, worker: int):
        """(key, threads) for lane worker `worker` to run now, "wait", or None when the queue is
        empty. Worker 0 runs the queue in order; the others only at the session's tail while a test
        waits, on a core no kernel uses."""
        if not self.queue:
            return None
        free = self.cores - self.threads
        if free < 1 or (worker > 0 and not (self.blocked and self.tail)):
            return "wait"
        ready = [k for k in self.queue if self.runs_folder(*k) not in self.folders]
        if not ready:
            return "wait"
        key = ready[0]
        # every core to it only when a test waits and no other notebook could run beside it (the
        # last, or 04 after 01)
        alone = not self.running and not any(
            self.runs_folder(*k) != self.runs_folder(*key) for k in ready[1:]
        )
        return key, (free if alone and self.blocked else 1)

    def start_lane(self, keys) -> None:
        self.queue = [k for k in dict.fromkeys(self.key(*k) for k in keys)]

        def lane(worker: int):
            while True:
                with self.lock:
                    while (job := self._next(worker)) == "wait":
                        self.lock.wait(timeout=5)
                    if job is None:
                        return
                    key, threads = job
                    self._start(key, threads)
                self._execute(key, threads)

        for worker in range(self.cores):
            threading.Thread(
                target=lane, args=(worker,), name=f"notebooks-{worker}", daemon=True
            ).start()
