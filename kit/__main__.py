"""Command line: `python -m kit compare | train | report | evaluate | sweep | doctor`.

    python -m kit compare [--dataset mnist5k] [--epochs N] [--device auto] [--seeds N]
                          [--name NAME] [--resume]
    python -m kit train --algo deepcluster|odc [--epochs N] [--name NAME] [--resume]
    python -m kit report runs/NAME
    python -m kit evaluate runs/NAME [--select-on test] [--export deepcluster]
    python -m kit sweep [--n-clusters K,K,...] [--lr V,...] [--pca-dim V,...]
                        [--memory-momentum V,...] [--seeds N] [--resume]
    python -m kit doctor       # what this machine will do: device, precision, threads, minutes
    (compare, train and sweep take --tensorboard: also log for TensorBoard under RUN/tb/)

`python -m kit COMMAND --help` names every default, read from the presets (each algorithm's config,
CompareConfig, SweepConfig), so a value is written in one place.

KIT_FAST=1 in the environment shrinks the *defaults* to a seconds-long smoke run (used by the
tests); a number typed on the command line is always used as typed, or refused.

Only the standard library is imported before Ctrl-C handling is in place: torch and the rest load
inside `main`, so a Ctrl-C during the first seconds ends with exit 130 like any other. SIGTERM
(Slurm preemption, `docker stop`, a culled notebook server) is handled as Ctrl-C: the same line and
"continue with" hint, exit 143.
"""
from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from .algorithms import GRID, GRID_KEYS, NAMES, compared


def cluster_counts(text: str) -> int | dict:
    """--n-clusters: one K for every algorithm ("30"), or one per algorithm
    ("deepcluster=100,odc=30")."""
    how = f"a whole number of clusters, or one per algorithm as {','.join(f'{a}=K' for a in NAMES)}"
    try:
        if "=" not in text:
            return int(text)
        counts = {a.strip(): int(k) for a, k in (part.split("=", 1) for part in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give {how}") from None
    if set(counts) - set(NAMES):
        raise argparse.ArgumentTypeError(f"{text!r}: give {how}")
    return counts


# every setting a `compare` / `train` command can take, with its flag's type and help; {run.x} (the
# command's own config: CompareConfig, or SweepConfig for `sweep`), {preset.x} and {evaluate.x} are
# filled in from the presets when help is shown (`_Help`)
SETTINGS = {
    "dataset": (
        str,
        "mnist5k (embedded digits), fashion5k (clothes, in data/), digits, fashion-mnist, "
        "cifar10, stl10, imagefolder (default {run.dataset})",
    ),
    "root": (str, "where torchvision datasets / image folders live (default {run.root})"),
    "epochs": (int, "epochs of training (default {run.epochs})"),
    "device": (str, "auto, cpu, cuda, cuda:N (default {run.device})"),
    "backbone": (str, "convnet, resnet18, resnet50 (default {run.backbone})"),
    "n_clusters": (
        cluster_counts,
        "K, for every algorithm compared, or one each as deepcluster=100,odc=30 (two K rank no "
        "stability; default: each algorithm's preset, {preset.n_clusters})",
    ),
    "batch_size": (int, "images per SGD step (default {run.batch_size})"),
    "lr": (
        float,
        "SGD learning rate, for every algorithm compared (default: each algorithm's preset, "
        "{preset.lr})",
    ),
    "seed": (int, "random seed (default {run.seed})"),
    "n_train": (int, "keep a class-stratified subset of the train split (default {run.n_train})"),
}
DETERMINISTIC = (
    "same seed, same numbers on a GPU too, where torch can (deterministic algorithms and "
    "convolutions, no cuDNN autotuner; slower); a CPU run is deterministic without it"
)
COMPILE = (
    "compile the training network with torch.compile (fewer kernel launches a step; the first "
    "steps pay for the compilation, about 30 s on a laptop CPU): off by default until make "
    "gpu-check measures it"
)
TB = (
    "also log to RUN/tb/ for TensorBoard (scalars, hparams, Projector): tensorboard --logdir RUN/tb"
)
SEEDS = (
    int,
    "how many seeds: seed, seed + 1, ...; results as mean ± std, curves with a band (default "
    "{run.seeds})",
)
SWEEP_SETTINGS = {
    **{k: SETTINGS[k] for k in ("dataset", "root", "device", "backbone", "batch_size", "seed")},
    "epochs": (int, "epochs per cell, the same for every cell (default {run.epochs})"),
    "seeds": SEEDS,
    "n_train": (
        int,
        "images each cell fits on, from the train split left after validation (default "
        "{run.n_train})",
    ),
    "n_val": (
        int,
        "validation images carved from the train split, never the test split (default {run.n_val})",
    ),
}
# what every training command takes beside its settings: (flag, what it does for a run, for a sweep)
RUN_FLAGS = {
    "--name": (
        "run folder name under --runs (default: dataset and time)",
        "sweep folder name under --runs (default: sweep, dataset and time)",
    ),
    "--runs": ("where run folders go",) * 2,
    "--resume": (
        "continue the run --name with its saved settings",
        "continue the sweep --name: finished cells are kept",
    ),
    "--tensorboard": (TB,) * 2,
    "--deterministic": (DETERMINISTIC,) * 2,
    "--compile": (COMPILE,) * 2,
}


class _Help(argparse.HelpFormatter):
    """Help texts with their defaults read from the presets. This runs only when help is shown, so
    the presets (and torch with them) load for --help and not before Ctrl-C handling is in place."""

    run = "compare"  # the config whose defaults {run.x} names

    def _get_help_string(self, action) -> str:
        if "{" not in (action.help or ""):
            return action.help
        if not hasattr(self, "_defaults"):
            self._defaults = _defaults()
        return action.help.format_map({**self._defaults, "run": self._defaults[self.run]})


class _SweepHelp(_Help):
    run = "sweep"


def _defaults() -> dict:
    """What the help texts name: per setting, its default and, where KIT_FAST changes it, that
    value."""
    from .algorithms import CONFIGS
    from .commands.compare import CompareConfig
    from .commands.evaluate_run import EvaluateConfig
    from .commands.sweep import SweepConfig

    def say(value) -> str:
        if isinstance(value, (list, tuple)):
            return ",".join(map(say, value))
        return (
            "all"
            if value is None
            else format(value, "g")
            if isinstance(value, float)
            else str(value)
        )

    def both(full, fast) -> str:
        return say(full) if full == fast else f"{say(full)}; {say(fast)} with KIT_FAST=1"

    # "DeepCluster 100, ODC 30", or one value where they agree
    def each(presets: dict, key: str) -> str:
        values = {a: getattr(p, key) for a, p in presets.items()}
        return say(next(iter(values.values()))) if len(set(values.values())) == 1 else ", ".join(
            f"{NAMES[a]} {say(v)}" for a, v in values.items())

    def runs(full, fast) -> SimpleNamespace:
        return SimpleNamespace(**{k: both(v, getattr(fast, k)) for k, v in vars(full).items()})

    small = {a: c.small() for a, c in CONFIGS.items()}
    tiny = {a: c.fast() for a, c in CONFIGS.items()}
    # what a flag sets for each
    preset = SimpleNamespace(**{k: both(each(small, k), each(tiny, k)) for k in SETTINGS
                                if all(hasattr(p, k) for p in small.values())})
    return {
        "compare": runs(CompareConfig(), CompareConfig.fast()),
        "sweep": runs(SweepConfig(), SweepConfig.fast()),
        "evaluate": runs(EvaluateConfig(), EvaluateConfig.fast()),
        "preset": preset,
    }


def _common(p: argparse.ArgumentParser, settings: dict = SETTINGS, sweep: bool = False) -> None:
    """A training command's flags: its settings (default None: we must know what was typed), then
    RUN_FLAGS."""
    for name, (kind, text) in settings.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=None, help=text)
    for flag, helps in RUN_FLAGS.items():
        kind = {"--name": dict(default=None), "--runs": dict(default="runs")}.get(
            flag, dict(action="store_true")
        )
        p.add_argument(flag, help=helps[sweep], **kind)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m kit", description=__doc__.split("\n")[0], formatter_class=_Help
    )
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser(
        "compare",
        help="train DeepCluster and ODC side by side and write a report",
        formatter_class=_Help,
    )
    _common(c)
    c.add_argument("--seeds", type=int, default=None, help=SEEDS[1])
    c.add_argument(
        "--algos",
        type=algo_list,
        default=None,
        metavar="A,B,...",
        help=f"which algorithms, in order, from {', '.join(NAMES)} "
        f"(default {','.join(compared())})",
    )
    t = sub.add_parser("train", help="train one algorithm", formatter_class=_Help)
    _common(t)
    t.add_argument("--algo", required=True, choices=list(NAMES))
    r = sub.add_parser(
        "report", help="rebuild the figures and report.html of a saved comparison run"
    )
    r.add_argument("run", help="the run folder, e.g. runs/mnist5k-20261123-101500")
    e = sub.add_parser(
        "evaluate",
        help="linear / kNN / SVM / semi-supervised tables for a comparison run",
        formatter_class=_Help,
    )
    e.add_argument("run", help="the run folder of a finished `compare`")
    e.add_argument("--finetune-steps", type=int, default=None,
                   help="SGD steps per fine-tuning setting (default {evaluate.finetune_steps})")
    e.add_argument(
        "--select-on",
        dest="selection",
        choices=["validation", "test"],
        default=None,
        help="what picks each model's fine-tuning setting: a validation split carved from the "
             "train split, or test top-1 as the benchmark pages do (default {evaluate.selection})",
    )
    e.add_argument(
        "--device",
        default=None,
        help="where the models are evaluated: auto (a GPU where there is one), cpu, cuda or cuda:N",
    )
    e.add_argument(
        "--export",
        choices=list(NAMES),
        default=None,
        help="also save that backbone as a torchvision ResNet state dict (ResNet backbones only)",
    )
    s = sub.add_parser(
        "sweep",
        help="both algorithms over a grid of settings, judged on a validation split",
        formatter_class=_SweepHelp,
    )
    # a comma-separated list per grid setting; the grid is every combination (kit/commands/sweep.py)
    for name in GRID_KEYS:
        who = [NAMES[a] for a, keys in GRID.items() if name in keys]
        s.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=_values,
            default=None,
            metavar="V,V,...",
            help=f"{name} values ({' and '.join(who)}; default {{run.{name}}})",
        )
    _common(s, SWEEP_SETTINGS, sweep=True)
    s.add_argument("--algo", choices=[*NAMES, "both"], default=None,
                   help=f"which to sweep (default both: {' and '.join(compared())})")
    d = sub.add_parser(
        "doctor",
        help="what this machine will do with kit: device, precision, threads, packages, "
        "data, and the minutes the demo and notebooks will take",
    )
    d.add_argument(
        "--runs", default="runs", help="where run folders go (its free disk is reported)"
    )
    d.add_argument(
        "--no-benchmark",
        action="store_true",
        help="skip the few-second micro-benchmark (no time estimates)",
    )
    return p


def algo_list(text: str) -> list[str]:
    """--algos: "deepcluster,odc" -> ["deepcluster", "odc"]; CompareConfig refuses an unknown or
    repeated name."""
    return [a.strip() for a in text.split(",") if a.strip()]


def _values(text: str) -> list:
    """An argparse type: "10,30,100" -> [10, 30, 100], "0.1,1e-3" -> [0.1, 0.001]; each setting's
    config then refuses a value of the wrong kind (a fractional K) in its own words."""
    try:
        return [
            int(v) if v.strip().lstrip("-").isdigit() else float(v)
            for v in text.split(",")
            if v.strip()
        ]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers"
        ) from None


def _compare_config(a):
    """The CompareConfig of the command line: typed values as typed, KIT_FAST shrinking only
    defaults."""
    from .commands.compare import CompareConfig
    from .parts.runtime import fast_mode

    typed = {
        k: getattr(a, k, None)
        for k in (*SETTINGS, "seeds", "algos")
        if getattr(a, k, None) is not None
    }
    preset = CompareConfig.fast if fast_mode() else CompareConfig
    return preset(**typed), list(typed)  # CompareConfig checks every number


def _sweep_config(a):
    """The SweepConfig of the command line, as `_compare_config` builds a comparison's."""
    from .commands.sweep import SweepConfig
    from .parts.runtime import fast_mode

    typed = {k: getattr(a, k) for k in (*GRID_KEYS, *SWEEP_SETTINGS) if getattr(a, k) is not None}
    if a.algo not in (None, "both"):
        typed["algos"] = [a.algo]
    preset = SweepConfig.fast if fast_mode() else SweepConfig
    return preset(**typed), list(typed)  # SweepConfig checks every number of the grid


def _hint(a, name: str) -> str:
    """A command that continues what Ctrl-C stopped, ready to paste."""
    if a.command in ("report", "evaluate", "doctor"):
        return "run it again: " + shlex.join(["python", "-m", "kit", *sys.argv[1:]])
    cmd = ["python", "-m", "kit", a.command, *(["--algo", a.algo] if a.command == "train" else []),
           "--name", name, "--runs", a.runs, "--resume"]
    if a.epochs is not None:
        cmd += ["--epochs", str(a.epochs)]
    cmd += [f"--{flag}" for flag in ("tensorboard", "deterministic", "compile") if getattr(a, flag)]
    return "continue with: " + shlex.join(cmd)


def _one_line(e: BaseException) -> str:
    """The message of an error; for one re-raised from a DataLoader worker, the original's last
    line."""
    lines = str(e).strip().splitlines() or [type(e).__name__]
    return lines[-1] if lines[0].startswith("Caught ") else lines[0]


def _import_heavy(on_term) -> None:
    """Import torch and torchvision with Ctrl-C and SIGTERM held back until they are loaded.

    A KeyboardInterrupt raised while a C++ extension initialises does not unwind: pybind11 calls
    std::terminate and the process dies with SIGABRT and a C++ message. So during these imports a
    signal is only noted, and acted on once they are done, where `main` turns it into
    exit 130 / 143.
    """
    caught = []
    signal.signal(signal.SIGINT, lambda *_: caught.append(signal.SIGINT))
    signal.signal(signal.SIGTERM, lambda *_: caught.append(signal.SIGTERM))
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, on_term)
    if caught:
        on_term(signal.SIGTERM, None) if signal.SIGTERM in caught else signal.default_int_handler(
            signal.SIGINT, None
        )


def _close_bars() -> None:
    """Close the progress bars an error left open: an open tqdm bar redraws itself when it is
    collected, which would put a bar fragment after the `error:` line."""
    std = sys.modules.get("tqdm.std")
    for bar in list(getattr(std.tqdm, "_instances", ()) if std else ()):
        bar.close()


def main(argv: list[str] | None = None) -> int:
    # A process started in the background (`cmd &` in a script, many CI runners) inherits SIGINT
    # as "ignored", and Python then installs no KeyboardInterrupt handler: restore it ourselves.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    terminated = []

    # SIGTERM unwinds as Ctrl-C does: the step under way is dropped, what is written is kept
    def on_term(*_):
        terminated.append(True)
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, on_term)
    a = _parser().parse_args(argv)
    name = getattr(a, "name", None) or (
        f"{'sweep-' if a.command == 'sweep' else ''}"
        f"{getattr(a, 'dataset', None) or 'mnist5k'}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    # a writer thread's error: one line too
    thread_hook, threading.excepthook = threading.excepthook, _thread_error
    try:
        _import_heavy(on_term)
        _run(a, name)
    except KeyboardInterrupt:
        _close_bars()
        runs = Path(getattr(a, "runs", "runs"))
        kept = (
            f"what was written under {runs / name} is kept"
            if a.command in ("compare", "train", "sweep") and (runs / name).exists()
            else "nothing was lost"
        )
        print(
            f"\ninterrupted{' (SIGTERM)' if terminated else ''}: {kept}; {_hint(a, name)}",
            file=sys.stderr,
        )
        return 143 if terminated else 130
    except (ValueError, OSError, FloatingPointError, ImportError, MemoryError) as e:
        # OSError: FileNotFound/Exists, permissions, disk full; FloatingPointError:
        # kit.algorithms.training.Diverged; ImportError: an optional extra
        _close_bars()
        where = (
            f" ({e.filename})"
            if isinstance(e, OSError) and e.filename and str(e.filename) not in str(e)
            else ""
        )
        print(f"error: {_one_line(e)}{where}{_memory_hint(e)}", file=sys.stderr)
        return 2
    finally:
        # main called in-process (a test, a notebook) leaves SIGTERM as it was
        signal.signal(signal.SIGTERM, before)
        threading.excepthook = thread_hook
    return 0


# torch 2.14's CUDA build imports under ulimit -v 4 GB, not under 3 GB (measured)
TORCH_ADDRESS_SPACE = "3 to 4 GB"


def _thread_error(args) -> None:
    """An OSError in a background thread (TensorBoard's event writer on a full disk) as one line,
    not a traceback after the command's own one-line error; anything else as Python shows it."""
    if isinstance(args.exc_value, OSError):
        print(f"error: {args.exc_value} (in a background writer)", file=sys.stderr)
    else:
        sys.__excepthook__(args.exc_type, args.exc_value, args.exc_traceback)


def _memory_hint(e: BaseException) -> str:
    """A memory limit (`ulimit -v`) shows as a MemoryError or as a library that cannot be mapped:
    say so."""
    text = str(e)
    if (
        isinstance(e, MemoryError)
        or "failed to map segment" in text
        or "Cannot allocate memory" in text
    ):
        return (
            "; a memory limit (ulimit -v) is the likely cause: torch alone maps "
            f"{TORCH_ADDRESS_SPACE} of address space as it loads, so raise the limit or remove it"
        )
    return ""


def _run(a, name: str) -> None:
    from .parts.runtime import set_threads

    try:
        # torch's and faiss's pools sized to the CPUs this process may use (affinity, cgroup quota)
        set_threads()
    except ValueError:
        if a.command != "doctor":  # doctor reports it with the rest
            raise
    if a.command == "doctor":
        from .commands.machine import doctor

        doctor(a.runs, benchmark=not a.no_benchmark)
    elif a.command == "report":
        from .commands.report import build_report

        print(f"report: {build_report(Path(a.run)).resolve()}")
    elif a.command == "evaluate":
        _evaluate(a)
    else:
        from .parts.runtime import compiled_steps, deterministic

        with deterministic() if a.deterministic else contextlib.nullcontext(), \
                compiled_steps() if a.compile else contextlib.nullcontext():
            (_sweep if a.command == "sweep" else _train_or_compare)(a, name)


def _train_or_compare(a, name: str) -> None:
    """`compare` or `train`, in one process or in each process torchrun started
    (`distributed.setup`)."""
    from .commands.compare import run_compare, run_train
    from .parts import distributed

    cfg, typed = _compare_config(a)
    dist = distributed.setup(cfg.device)
    from tqdm.auto import tqdm

    # tqdm.write: a line said while a progress bar is drawn (the collapse alarm) gets a line of its
    # own
    say = (lambda m: tqdm.write(m, file=sys.stderr)) if dist.is_writer else (lambda m: None)
    how = dict(runs_root=a.runs, resume=a.resume, explicit=typed, log=say, dist=dist,
               tensorboard=a.tensorboard)
    try:
        if a.command == "compare":
            out = run_compare(name, cfg, **how)
            if dist.is_writer:
                print(
                    f"\nreport: {out.resolve()}\nopen it in a browser, or rebuild it with: "
                    f"{shlex.join(['python', '-m', 'kit', 'report', str(out.parent)])}"
                )
            return
        run, h = run_train(name, a.algo, cfg, **how)
    finally:
        distributed.teardown()
    if dist.is_writer:
        last = h["epoch"][-1] if h["epoch"] else {}
        print(
            f"{a.algo}: {len(h['epoch'])} epoch{'s' if len(h['epoch']) != 1 else ''}; final "
            + ", ".join(
                f"{k}={last[k]:.3f}"
                for k in ("loss", "knn", "nmi_true", "nmi_prev")
                if last.get(k) is not None
            )
        )
        print(f"run folder: {run.path.resolve()}")


def _sweep(a, name: str) -> None:
    from .commands.sweep import run_sweep

    cfg, typed = _sweep_config(a)
    out = run_sweep(name, cfg, runs_root=a.runs, resume=a.resume, explicit=typed,
                    log=lambda m: print(m, file=sys.stderr), tensorboard=a.tensorboard)
    print(f"{out.read_text()}\ntable: {out.resolve()} (sweep.csv and sweep.png beside it)")


def _evaluate(a) -> None:
    from .commands.evaluate_run import (
        EvaluateConfig,
        check_compare_run,
        evaluate_run,
        save_torchvision,
    )
    from .parts.runtime import AUTO, fast_mode, resolve_device

    device = a.device or AUTO
    typed = {k: getattr(a, k) for k in ("finetune_steps", "selection") if getattr(a, k) is not None}
    # checks every number
    config = (EvaluateConfig.fast if fast_mode() else EvaluateConfig)(**typed)
    check_compare_run(Path(a.run))
    resolve_device(device)  # a device this machine lacks is refused before anything is written
    if a.export:
        print(
            "torchvision weights: "
            f"{save_torchvision(a.run, a.export, Path(a.run) / f'{a.export}_torchvision.pt')}"
        )
    out = evaluate_run(a.run, config, device=device)  # a current report's page gains the tables
    print(Path(out).read_text())
    print(f"tables: {Path(out).resolve()}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before main's own handler is in place (interpreter start-up)
        sys.exit(130)
