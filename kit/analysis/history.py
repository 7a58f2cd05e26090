"""Reading a run's history: one number of its epochs as a series, the last value, the mean of the
last few. The report, the lesson, the seeds' table and the bench scripts read histories through
these."""
from __future__ import annotations

import numpy as np


def series(history: dict, key: str) -> list:
    """`key` over the epochs of a history that have it (the monitor skips some, DeepCluster's first
    epoch has no previous labels)."""
    return [r[key] for r in history["epoch"] if r.get(key) is not None]


def last(history: dict, key: str):
    """The last epoch's value of `key`, or None."""
    values = series(history, key)
    return values[-1] if values else None


def mean_last(history: dict, key: str, n: int = 5) -> float | None:
    """The mean of `key` over the last `n` epochs that have it (the stability measures' summary), or
    None."""
    values = series(history, key)[-n:]
    return float(np.mean(values)) if values else None
