"""What every command does before it trains (`compare`, `train`, `sweep`): check the name and the
settings, take a resume's saved settings, load and check the data (`check_images`; the sizes:
`clustering.check_sizes`), then create the run folder, write `config.json` and hold the run's lock.
A refused command writes nothing.

The settings are a dataclass (`CompareConfig`, `SweepConfig`) whose `saved_as` names its key in
`config.json`; `load(cfg)` returns the command's two splits.
"""
from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

from ..parts.distributed import SINGLE, Distributed
from ..store.files import atomic_write_json
from ..store.runs import Run, check_name, read_config


def resumed_config(path: Path, command: str, algo: str | None, requested, explicit=None, log=print):
    """The settings a run was started with: a resume continues with exactly those. Only `epochs`
    (the target) and `device` (the machine) may change; any other differing setting in `explicit`
    (default: all) is listed as ignored. A missing run or a run of another command is refused."""
    if not Run(path).exists():
        raise FileNotFoundError(
            f"no run named {path.name!r} under {path.parent} to resume: drop --resume to start it"
        )
    saved = read_config(path)
    if saved["command"] != command or saved.get("algo") != algo:
        how = (
            f"train --algo {saved.get('algo')}" if saved["command"] == "train" else saved["command"]
        )
        raise ValueError(
            f"{path} is a `{how}` run: resume it with python -m kit {how} --name {path.name} "
            f"--runs {path.parent} --resume"
        )
    try:
        cfg = type(requested)(**saved[requested.saved_as])
    except TypeError as e:
        raise ValueError(f"{path / 'config.json'} does not match this kit version ({e})") from None
    explicit = [f.name for f in fields(requested)] if explicit is None else explicit
    def uses(v):  # n_clusters / lr left to the presets
        return "each algorithm's preset" if v is None else v

    ignored = [
        f"--{k.replace('_', '-')} {getattr(requested, k)} (the run uses {uses(getattr(cfg, k))})"
        for k in explicit
        if k not in ("epochs", "device") and getattr(requested, k) != getattr(cfg, k)
    ]
    if ignored:
        log(f"resuming {path} with its saved settings; ignored: {', '.join(ignored)}")
    for k in ("epochs", "device"):
        if k in explicit:
            setattr(cfg, k, getattr(requested, k))
    return cfg


def start_run(name: str, command: str, algo: str | None, cfg, runs_root, resume: bool, load,
              explicit=None, log=print, dist: Distributed = SINGLE):
    """Every check of a `compare`, `train` or `sweep` command, then the run folder and its config;
    returns (run, cfg, train, test) (`load(cfg)` gives the last two: a sweep's are fit and
    validation). A resume reads back every file it will read first. A refused command writes
    nothing. The writer holds the run's lock from here (`Run.lock`; `run.unlock()` when done): a
    second writer is refused. Under torchrun every rank checks, rank 0 writes, the others wait."""
    path = Path(runs_root) / check_name(name)
    if resume:
        cfg = resumed_config(path, command, algo, cfg, explicit, log)
    Run(path).check_ours()
    if Run(path).exists() and not resume:
        raise FileExistsError(
            f"{path} already holds a run: pass --resume to continue it, or choose another name"
        )
    train, test = load(cfg)
    if resume:
        # a damaged file is named now, not after DeepCluster has trained
        Run(path).check(n_samples=len(train))
    if dist.is_writer:
        run = Run.create(runs_root, name, resume=resume, lock=True)
        try:
            write_config(run, command, algo, cfg)
        except BaseException:
            run.unlock()
            raise
    dist.barrier()
    return Run(path), cfg, train, test


def write_config(run: Run, command: str, algo: str | None, cfg) -> None:
    """`config.json`, written when new or changed (a new epoch target); the settings are saved under
    their config's `saved_as` key ("compare" for compare and train runs, "sweep" for a sweep)."""
    config = {"command": command, "algo": algo, cfg.saved_as: asdict(cfg)}
    if not run.file("config.json").exists() or read_config(run.path) != config:
        atomic_write_json(run.file("config.json"), config)


def check_images(dataset) -> None:
    """An image folder read through before anything is written: every file must open as an image,
    and the kNN / NMI monitor needs two classes (sub-folders) at least. Tensor datasets pass as they
    are."""
    from ..parts.data import IndexedImageFolder

    if not isinstance(dataset, IndexedImageFolder):
        return
    from PIL import Image

    folder = dataset.folder.root
    if len(dataset.classes) < 2:
        raise ValueError(
            f"{folder} holds one class folder ({dataset.classes[0]}/): kit's kNN and NMI monitor "
            "needs two class sub-folders at least; put each kind of image in its own sub-folder"
        )
    for path, _ in dataset.folder.samples:
        try:
            with Image.open(path) as im:
                im.verify()  # the file's structure and checksums, without decoding every pixel
        except Exception as e:
            # PIL raises many kinds; name the file, not PIL's internals
            raise ValueError(
                f"cannot read image {path} ({type(e).__name__}): remove or replace the file; "
                "nothing was written"
            ) from None
