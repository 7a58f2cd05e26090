"""Regenerate the trained example run that ships inside kit (`kit.example_run()`,
kit/teaching/example-run/).

    # the same: train, report, evaluate, run notebook 05's
    make example
    # runs, copy (about 45 min on 2 busy cores)
    .venv/bin/python bench/make_example_run.py
    # the KIT_FAST smoke run, to try the mechanism
    .venv/bin/python bench/make_example_run.py --fast

It trains the notebooks' comparison (`kit.teaching.example.notebook_config`: the `small()` presets
in the tree, 30 epochs, 4,000 digits, each preset's K) under runs/example, draws the report, runs
the benchmark protocols at the notebook's budget (as notebook 04 does), trains notebook 05's short
runs at its full size (`kit.teaching.ablations`: churn.json, safeguards.json), and copies the files
the notebooks read (`kit.teaching.example.KEEP`) into kit/teaching/example-run/, replacing what was
there. tests/test_example.py fails when the code records a field the shipped run lacks: then run
this again. Training took 17 min and the evaluation 17 min on 2 cores shared with other jobs. A run
already in runs/example is reopened, not retrained: delete that folder after the presets change, run
this again, commit kit/teaching/example-run/.

To stay small (about 9 MB), three kinds of file are slimmed on the way: a checkpoint keeps only the
network's weights, in float16 (no optimizer state, no ODC memory: the example loads and evaluates,
it does not resume), the UMAP features are stored in float16, compressed, and the figures in 256
colours.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kit.teaching.example import EXAMPLE_RUN, KEEP, notebook_run  # noqa: E402
from kit.store.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from kit.store.files import atomic_write_npy  # noqa: E402


def copy_slim(src: Path, dst: Path) -> None:
    """Copy one run file, shrinking the two large kinds (see the module docstring)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.name == "checkpoint.pt":
        state = load_checkpoint(src)
        half = {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}
        save_checkpoint(
            dst,
            {
                "algo": state["algo"],
                "config": state["config"],
                "epoch": state["epoch"],
                "model": half,
            },
        )
    # 256 colours, no dithering: a third of the size, the same figure to the eye
    elif src.suffix == ".png":
        from PIL import Image

        Image.open(src).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT,
                                                dither=Image.Dither.NONE).save(dst, optimize=True)
    elif src.parent.name == "embed_features" and src.name.startswith("epoch_"):
        atomic_write_npy(dst, np.load(src).astype(np.float16))
    else:
        shutil.copyfile(src, dst)


def make_ablations(run: Path, fast: bool) -> None:
    """Notebook 05's runs at the sizes the notebook trains them (kit.teaching.ablations), saved
    beside the comparison."""
    from kit import ablations, load_dataset

    test = load_dataset("mnist5k", split="test", n=200 if fast else None)
    for name, size, train in (("churn.json", ablations.CHURN, ablations.churn_runs),
                              ("safeguards.json", ablations.SAFEGUARDS, ablations.safeguard_runs)):
        if (run / name).exists():
            continue
        size = ablations.FAST if fast else size
        t = time.perf_counter()
        result = train(
            load_dataset("mnist5k", n=size["n_images"]),
            test,
            size["n_clusters"],
            size["epochs"],
            fast=fast,
        )
        ablations.save(result, run / name)
        print(f"{name}: {len(result['histories'])} runs in {time.perf_counter() - t:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--fast",
        action="store_true",
        help="the 2-epoch smoke run (the files the notebooks read, quickly)",
    )
    ap.add_argument(
        "--runs", default=str(ROOT / "runs"), help="where the run trains before it is copied"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    run = notebook_run("example", fast=args.fast, runs_root=args.runs)
    print(f"trained and reported in {time.perf_counter() - t0:.0f} s: {run}")
    if not (run / "evaluation.md").exists():
        from kit.analysis.evaluate import FINETUNE_GRID
        from kit.commands.evaluate_run import evaluate_run

        # notebook 04's budget, so its tables are the ones a class would get
        t1 = time.perf_counter()
        evaluate_run(
            run,
            finetune_steps=5 if args.fast else 100,
            supervised_epochs=2 if args.fast else None,
            draws=2 if args.fast else 3,
            grid=((0.01, 1), (0.1, 10)) if args.fast else FINETUNE_GRID,
        )
        print(f"evaluated in {time.perf_counter() - t1:.0f} s")
    make_ablations(run, args.fast)
    shutil.rmtree(EXAMPLE_RUN, ignore_errors=True)
    for pattern in KEEP:
        for f in sorted(run.glob(pattern)):
            copy_slim(f, EXAMPLE_RUN / f.relative_to(run))
    files = [f for f in EXAMPLE_RUN.rglob("*") if f.is_file()]
    print(
        f"{EXAMPLE_RUN}: {len(files)} files, {sum(f.stat().st_size for f in files) / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
