"""Start a multi-process run from a notebook and watch its run folder grow.

    from kit.commands import launch
    proc = launch.torchrun(["compare", "--name", "cifar-r18", "--dataset", "cifar10"], nproc=2)
    launch.watch("runs/cifar-r18", proc)        # live learning curves until it ends

The kernel only starts `torchrun` as a subprocess and reads the files rank 0 writes: it never
initialises CUDA itself, so nothing is forked from a process that holds a CUDA context.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def torchrun(
    args: list[str], nproc: int = 2, env: dict | None = None, log: str | Path | None = None
) -> subprocess.Popen:
    """`torchrun --standalone --nproc-per-node nproc -m kit *args` in the background; its output
    goes to `log` (default: a `torchrun.log` beside the current folder's runs/)."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "kit",
        *map(str, args),
    ]
    out = open(log or "torchrun.log", "wb")  # noqa: SIM115 - the child writes to it after we return
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def read_histories(run_path: str | Path) -> dict[str, dict]:
    """The histories written so far: a `compare` run's two, or a `train` run's one."""
    from ..store.runs import Run
    from .report import load_histories

    run_path = Path(run_path)
    if (run_path / "history.json").exists():
        h = Run(run_path).load_history()
        return {h.get("algo", "run"): h}
    return load_histories(run_path)


def watch(run_path: str | Path, proc: subprocess.Popen | None = None, every: float = 5.0,
          timeout: float | None = None, show=None) -> int | None:
    """Redraw the learning curves whenever a new epoch lands in `run_path`, until `proc` ends (or
    `timeout` seconds pass). Returns the process's exit code (None if it is still running)."""
    from ..views import plots

    if show is None:
        from IPython.display import clear_output

        def show(fig):
            clear_output(wait=True)
            plots.show(fig)
    start, seen = time.monotonic(), -1
    while True:
        done = proc is None or proc.poll() is not None
        try:
            histories = read_histories(run_path)
        except (FileNotFoundError, ValueError):
            # the folder is still being made, or a line is mid-write
            histories = {}
        n = sum(len(h["epoch"]) for h in histories.values())
        if histories and n != seen:
            seen = n
            show(plots.learning(histories))
        if done or (timeout is not None and time.monotonic() - start > timeout):
            return None if proc is None else proc.poll()
        time.sleep(every)
