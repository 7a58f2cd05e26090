"""Several seeds of one comparison: where they live, and their numbers as mean ± std.

A comparison run with `seeds=3` holds one whole one-seed comparison per seed, `seed-31/`,
`seed-32/`, `seed-33/` (kit/commands/compare.py). Everything here only reads those folders or the
numbers taken from them; the report and the sweep table draw with it.

The spread is the sample standard deviation (n - 1) over seeds, everywhere: in tables as
"mean ± std", in figures as a band around the mean (kit/views/plots.py `seeded`, `sweep`).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..algorithms import SPECS

SEED_FOLDER = re.compile(r"seed-(\d+)")


def seed_folders(run_path: str | Path) -> list[Path]:
    """The seed folders of a several-seed run that hold a history yet, in seed order ([] for a
    one-seed run)."""
    run_path = Path(run_path)
    found = (
        [p for p in run_path.iterdir() if p.is_dir() and SEED_FOLDER.fullmatch(p.name)]
        if run_path.is_dir()
        else []
    )
    found = [p for p in found if any((p / a / "history.json").exists() for a in SPECS)]
    return sorted(found, key=lambda p: int(SEED_FOLDER.fullmatch(p.name).group(1)))


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of one number over seeds; std 0 for a single
    value."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def spread(values) -> str:
    """One table cell over seeds, "mean ± std"; a (first, last) pair part by part; "—" where no
    seed has it.
    >>> spread([0.90, 0.92])
    '0.910 ± 0.014'
    """
    # "—": that seed lacks the algorithm
    vals = [v for v in values if v is not None and not isinstance(v, str)]
    if not vals:
        return "—"
    if isinstance(vals[0], tuple):
        return " / ".join(spread([v[i] for v in vals]) for i in range(len(vals[0])))
    mean, std = mean_std(vals)
    return f"{mean:.3f} ± {std:.3f}"


def spread_rows(per_seed: list[list[tuple]]) -> list[tuple]:
    """(metric, one spread per algorithm) rows over seeds, from one list of (metric, a value per
    algorithm) rows per seed with the values unformatted
    (`kit.commands.report.summary(..., fmt=lambda v: v)`)."""
    return [
        (rows[0][0], *(spread([r[i] for r in rows]) for i in range(1, len(rows[0]))))
        for rows in zip(*per_seed)
    ]


def difference(a_values, b_values) -> str:
    """The difference of two algorithms' means over seeds, "+0.048 (larger than the spread)" when
    the two mean ± std intervals do not overlap (|difference| > std a + std b), else "(within the
    spread)"; "—" where either has no number (a string, None or a (first, last) pair).
    >>> difference([0.98, 0.97, 0.98], [0.93, 0.92, 0.94])
    '+0.047 (larger than the spread)'
    """
    a = [v for v in a_values if isinstance(v, (int, float))]
    b = [v for v in b_values if isinstance(v, (int, float))]
    if not a or not b:
        return "—"
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    return f"{ma - mb:+.3f} ({'larger than' if abs(ma - mb) > sa + sb else 'within'} the spread)"
