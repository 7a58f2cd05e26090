"""What every check shares: the `Result` a notebook shows, the call that turns a bug in the
student's function into a finding, and the cluster ids with the edge cases a sampler or a fix has to
get right."""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field

import numpy as np

TRIALS = 5  # random problems per check: enough to hit the edge cases (an empty cluster, a tiny one)


@dataclass
class Result:
    """What a check found; shown in a notebook as its lines, true when nothing differed."""

    name: str
    problems: list[str] = field(default_factory=list)
    passed_text: str = f"matches kit on {TRIALS} random problems"

    @property
    def passed(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        if self.passed:
            return f"✓ {self.name}: {self.passed_text}"
        return "\n".join(
            [f"✗ {self.name}: differs from kit", *(f"  - {p}" for p in self.problems[:5])]
        )


def _call(result: Result, fn, *args):
    """The student's function on one problem, or None with the reason recorded."""
    try:
        out = fn(*args)
    except NotImplementedError:
        result.problems.append("not written yet (it raises NotImplementedError)")
        return None
    except Exception as e:
        # any bug in the student's code is a finding, not a crash of the notebook
        where = traceback.extract_tb(e.__traceback__)[-1]
        result.problems.append(f"it raised {type(e).__name__}: {e} (line {where.lineno})")
        return None
    if out is None:
        result.problems.append("it returned None: return the answer")
    return out


def _labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Cluster ids with very unequal sizes, one empty id and one cluster of a single member:
    the cases a sampler or a fix has to get right."""
    sizes = rng.dirichlet(np.full(k, 0.3))
    labels = rng.choice(k, size=n, p=sizes)
    labels[labels == k - 1] = 0  # id k-1 is empty
    labels[0] = k - 2  # at least one member of k-2
    return labels
