"""02, DeepCluster: NMI written with NumPy (kit.parts.metrics.nmi), its check and its solution. The
check watches, with a profile hook, for a call into a library that computes it, and names a known
wrong normalisation."""
from __future__ import annotations

import inspect
import sys
from contextlib import contextmanager

import numpy as np

from ...parts.metrics import nmi as kit_nmi
from .common import TRIALS, Result, _call

# what the NMI exercise may not call
LIBRARIES = ("sklearn", "scipy.stats", "kit.parts.metrics", "torchmetrics", "pyitlib")


def check_nmi(fn) -> Result:
    """`fn(a (N,) ints, b (N,) ints) -> float`: NMI with the geometric normalisation, as
    kit.parts.metrics.nmi, written with NumPy. On 5 random problems (the first with ids 0..K-1, the
    others with gaps in the ids, e.g. 1, 4, 7) the value must be kit's to 1e-6; a wrong value is
    named if it is a known other normalisation or the unnormalised mutual information. A call into
    one of `LIBRARIES` while `fn` runs (scikit-learn, scipy.stats' entropy, kit's own metrics...)
    fails the check, whatever it returns."""
    result = Result("NMI")
    for trial in range(TRIALS):
        rng = np.random.default_rng(100 + trial)
        n, k = int(rng.integers(50, 400)), int(rng.integers(2, 12))
        a = rng.permutation(np.arange(n) % k)  # every id 0..k-1 used
        b = np.where(rng.random(n) < 0.6, a, rng.integers(0, k, n))  # related to a
        if trial:  # renamed ids with gaps, as k-means ids after empty clusters or a relabelling
            b = np.where(rng.random(n) < 0.6, a * 3 + 1, rng.integers(0, 20, n))
        with _library_calls() as called:
            out = _call(result, fn, a.copy(), b.copy())
        if called:
            result.problems[:] = [f"write it with NumPy: it called {called[0]}"]
            return result
        gaps = (
            ""
            if not trial
            else (
                " (here the ids have gaps, e.g. 1, 4, 7: renumber them 0..K-1 first, "
                "np.unique(a, return_inverse=True))"
            )
        )
        if out is None:
            if result.problems[-1].startswith("it raised"):
                result.problems[-1] += gaps
            return result
        try:
            got = float(out)
        except (TypeError, ValueError):
            result.problems.append(
                f"it returned {type(out).__name__} {np.shape(out)}: return one number"
            )
            return result
        want = kit_nmi(a, b)
        if not np.isfinite(got) or abs(got - want) > 1e-6:
            result.problems.append(
                f"trial {trial}: got {got:.6f}, kit gives {want:.6f}"
                + (_nmi_hint(a, b, got) or gaps)
            )
            return result
    return _check_a_collapse(result, fn)


def _check_a_collapse(result: Result, fn) -> Result:
    """A labelling with one cluster (a collapse) shares nothing with one that has several: NMI 0,
    not 1. Only two one-cluster labellings are the same partition (NMI 1)."""
    six, one = np.arange(60) % 6, np.zeros(60, dtype=np.int64)
    for first, what in (
        (six, "one labelling has a single cluster"),
        (one, "both labellings have a single cluster"),
    ):
        out = _call(result, fn, first.copy(), one.copy())
        if out is None:
            return result
        want = kit_nmi(first, one)
        if not np.isclose(float(out), want, atol=1e-6):
            result.problems.append(
                f"when {what}, kit gives NMI {want:.0f}, yours {float(out):.3f}: a single cluster "
                f"carries no information (entropy 0), so it shares none with a partition that has "
                f"some; two single clusters are the same partition"
            )
            return result
    return result


def _nmi_hint(a, b, got: float) -> str:
    from sklearn.metrics import mutual_info_score
    from sklearn.metrics import normalized_mutual_info_score as sk

    if not np.isfinite(got):
        return " (not a number: sum only over the cells with p > 0, as 0 log 0 = 0)"
    for method in ("arithmetic", "max", "min"):
        if abs(sk(a, b, average_method=method) - got) < 1e-6:
            return (f" (that is the {method} normalisation; kit and the paper divide by "
                    "sqrt(H(A) H(B)))")
    if abs(mutual_info_score(a, b) - got) < 1e-6:
        return " (that is the mutual information I(A; B) itself: divide it by sqrt(H(A) H(B)))"
    return ""


@contextmanager
def _library_calls():
    """Yields a list that gets the public name of the first function of `LIBRARIES` called
    meanwhile. A profile hook (sys.setprofile, this thread, any earlier hook put back afterwards)
    sees every Python function and builtin called; it costs the student's code a little time. Ufuncs
    are not calls it sees: NumPy's, and scipy.special's entr or xlogy (p log p elementwise), pass
    unnoticed."""
    called, inside = [], tuple(p + "." for p in LIBRARIES)

    def watch(frame, event, arg):
        if called or event not in ("call", "c_call"):
            return
        module = (
            (frame.f_globals.get("__name__") or "")
            if event == "call"
            else (getattr(arg, "__module__", None) or "")
        )
        if module in LIBRARIES or module.startswith(inside):
            called.append(_public_name(frame, arg, module, event))

    before = sys.getprofile()
    sys.setprofile(watch)
    try:
        yield called
    finally:
        sys.setprofile(before)


def _public_name(frame, arg, module: str, event: str) -> str:
    """`sklearn.metrics.normalized_mutual_info_score`, not `...cluster._supervised....wrapper`: the
    called function, or the one a decorator's closure wraps, by the shortest import path that shows
    it."""
    if event == "c_call":
        candidates, name = [arg], getattr(arg, "__name__", "?")
    else:
        code, name = frame.f_code, frame.f_code.co_qualname
        own = getattr(sys.modules.get(module), code.co_name, None)
        candidates = [own] if getattr(own, "__code__", None) is code else []
        # a decorator's wrapper holds what it wraps
        free = (frame.f_locals.get(v) for v in code.co_freevars)
        candidates += [
            f
            for f in free
            if inspect.isfunction(f) and f.__module__.split(".")[0] == module.split(".")[0]
        ]
    for fn in candidates:
        parts = (getattr(fn, "__module__", None) or "").split(".")
        for i in range(1, len(parts) + 1):
            attr = getattr(sys.modules.get(".".join(parts[:i])), fn.__name__, None)
            if attr is not None and (attr is fn or getattr(attr, "__wrapped__", None) is fn):
                return f"{'.'.join(parts[:i])}.{fn.__name__}"
    return f"{module}.{name}"


# -- the solution (the notebook shows the same code in a hidden block) --------------------
def solution_nmi(a, b):
    a, b = np.unique(a, return_inverse=True)[1], np.unique(b, return_inverse=True)[1]
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1)
    p = joint / joint.sum()
    pa, pb = p.sum(1), p.sum(0)
    nz = p > 0
    mi = (p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum()
    h = lambda q: -(q[q > 0] * np.log(q[q > 0])).sum()  # noqa: E731
    # a labelling with one cluster: 1 if both are (the same partition), else 0
    if h(pa) * h(pb) == 0:
        return 1.0 if h(pa) == h(pb) == 0 else 0.0
    return mi / np.sqrt(h(pa) * h(pb))
