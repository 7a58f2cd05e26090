"""A trained comparison run that ships inside kit, so a lecture can start at the figures.

`kit.example_run()` is the path of a small `kit compare` run on the embedded digits, laid out as any
run folder (compare.py): both algorithms' histories, label snapshots, checkpoints and UMAP features,
the aligned layouts, the static figures and the evaluation tables; `report.html` is left out (it
repeats the rest in 3 MB). Read it, never train into it: an installed package may be read-only, and
a new epoch would change what every notebook shows. `python -m kit report` writes into the folder it
draws, so copy the run first (`shutil.copytree(kit.example_run(), "runs/x")`). To stay small its
checkpoints hold the weights only (float16: load and evaluate, not resume), and its UMAP features
are float16 (bench/make_example_run.py says how it is made).

The notebooks' settings live here too, so the quickstart (01), the stability notebook (04) and
the script that regenerates the example (`python bench/make_example_run.py`) train the same run.
"""
from __future__ import annotations

import os
from pathlib import Path

# a hyphen: a data folder, never taken for a subpackage
EXAMPLE_RUN = Path(__file__).parent / "example-run"
# what is kept of a run folder (the rest, report.html and flight-recorder HTML, is rebuilt on
# demand)
KEEP = (
    "config.json",
    "baselines.json",
    "embeddings.npz",
    "evaluation.md",
    "evaluation.json",
    "*.png",
    "churn.json",
    "safeguards.json",  # notebook 05's runs (kit/teaching/ablations.py)
    "*/history.json",
    "*/epochs.jsonl",
    "*/steps.jsonl",
    "*/labels/*.npy",
    "*/checkpoint.pt",
    "*/embed_features/*.npy",
)


def example_run() -> Path:
    """The folder of the shipped comparison run (read it; do not train or report into it)."""
    if not (EXAMPLE_RUN / "config.json").exists():
        raise FileNotFoundError(
            f"no example run at {EXAMPLE_RUN}: this copy of kit was installed without its "
            "package data; regenerate it with `python bench/make_example_run.py`"
        )
    return EXAMPLE_RUN


def notebook_config(fast: bool = False):
    """The comparison the quickstart and the stability notebook train (and the example run holds):
    `python -m kit compare`'s defaults, each algorithm's `small()` preset on the embedded digits,
    both at one K (its epochs capped by KIT_EPOCHS, `runtime.budget`); `fast` is the KIT_FAST smoke
    run (`CompareConfig.fast()`, each algorithm's `fast()` preset)."""
    from ..commands.compare import CompareConfig
    from ..parts.runtime import budget

    return CompareConfig.fast() if fast else CompareConfig(epochs=budget(CompareConfig.epochs))


def runs_folder() -> Path:
    """Where notebooks train: $KIT_RUNS if set (the tests use a temporary folder), else `runs/` at
    the top of a checkout when the notebook runs from notebooks/ (where `python -m kit` writes too),
    else `runs/` in the working folder (Colab)."""
    if os.environ.get("KIT_RUNS"):
        return Path(os.environ["KIT_RUNS"])
    here = Path.cwd()
    if here.name == "notebooks" and (here.parent / "kit" / "__init__.py").exists():
        return here.parent / "runs"
    return here / "runs"


def notebook_run(
    name: str, fast: bool = False, runs_root: str | Path | None = None, progress: bool = True
) -> Path:
    """Train (or finish, or just reopen) the notebooks' comparison under `runs_root/name` (default
    `runs_folder()`) and return the run folder. A run that is already there is resumed, so a
    notebook run twice trains once, and a second notebook naming the same run reuses the first
    one's. The KIT_FAST run gets its own name (`name-fast`): a resume keeps a run's saved settings,
    and the full run must not inherit the smoke run's."""
    from ..commands.compare import run_compare

    root = Path(runs_root) if runs_root is not None else runs_folder()
    name = f"{name}-fast" if fast else name
    resume = (root / name / "config.json").exists()
    return run_compare(
        name, notebook_config(fast), runs_root=root, resume=resume, progress=progress
    ).parent
