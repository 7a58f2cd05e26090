"""The first UMAP embedding in a fresh process (umap already imported), with kit's numba caching of
the functions umap-learn 0.5.12 leaves uncached (`kit.analysis.embed._umap`) and without it, side
by side: each a new process on one shared NUMBA_CACHE_DIR, after one process of each has filled it;
one thread each. What every notebook kernel paid before its first embedding, and every `compare`
in a background thread while it trained (on the CPU, time taken from training).

    python bench/umap_first_call.py [--rounds 4] [--points 500]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys, time
import numpy as np
from kit.analysis import embed
import umap  # imported before the clock starts in both: the import is the same
if sys.argv[1] != "kit (cached)":  # umap-learn as it comes: the uncached ones compile each time
    embed._umap = lambda: umap
else:
    embed._umap()
x = np.random.default_rng(0).normal(size=(int(sys.argv[2]), 64)).astype(np.float32)
t = time.perf_counter()
embed.umap_embed(x)
print(time.perf_counter() - t)
"""
VARIANTS = ("kit (cached)", "umap-learn as shipped (these three uncached)")


def first_call(variant: str, points: int, cache: str) -> float:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, variant, str(points)], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the {variant} process failed:\n{out.stderr}")
    return float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--points", type=int, default=500)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        for v in VARIANTS:  # fill the cache: what `make install` does once
            first_call(v, a.points, cache)
        times = {v: [] for v in VARIANTS}
        for _ in range(a.rounds):  # interleaved rounds
            for v in VARIANTS:
                times[v].append(first_call(v, a.points, cache))
    med = {v: statistics.median(t) for v, t in times.items()}
    for v in VARIANTS:
        print(f"{v}: first embedding of {a.points} points in a fresh process, median "
              f"{med[v]:.3f} s ({', '.join(f'{t:.3f}' for t in times[v])})")
    print(f"as shipped / kit = {med[VARIANTS[1]] / med[VARIANTS[0]]:.1f}x")


if __name__ == "__main__":
    main()
