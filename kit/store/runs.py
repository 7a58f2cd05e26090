"""A run folder, `runs/<name>/`: config, metric history and checkpoints.

Files are written and read through kit/store/files.py (atomic writes, appended lines, checked reads)
and checkpoints through kit/store/checkpoints.py.

The history grows by appending, never by rewriting (an ImageNet run has 1.28 M labels x 400 epochs):

    history.json    the small header (algo, the epoch-0 monitor, ODC's initial clustering)
    epochs.jsonl    one line per epoch record
    steps.jsonl     one line per saved epoch with that epoch's per-iteration records
    labels/         one `NNNNN.npy` (N,) int32 label snapshot per file, written once

A crash mid-append leaves at most a torn last line (no newline after it); it belongs to an epoch
whose checkpoint was never written, so `read_lines` drops it and the next `append_line` cuts it off
before it writes, so a new line never lands on the end of a torn one.

One process writes a run at a time: `Run.lock` holds an flock on `.kit-lock` (which names the
holder's pid while it writes); a second writer is refused in one line, and a lock left by a killed
process is free, since the kernel drops an flock with its process. Nothing is written through a
symbolic link planted inside a run, and every file is checked (type, dtype, shape, range) as it is
read back, so a damaged one is named in one line.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover
    # Windows: no flock; one writer per run is then the user's care
    fcntl = None

import numpy as np

from .files import (
    TEMPORARY,
    append_line,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_npy,
    json_default,
    mapped_npy,
    read_json,
    read_lines,
    read_snapshot,
)

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+=@,-]*")
# written into every folder kit creates; a folder without it is never written into
MARKER = ".kit-run"
# history.json's header; the records are in epochs.jsonl, steps.jsonl, labels/
HISTORY_FORMAT = "kit-history-v2"
# <algo>/embed_features/: epoch_0003.npy, ..., and subset.npy (Run.save_embed_features)
EMBED = "embed_features"
LOCK = ".kit-lock"  # flock-ed by the one process writing the run; holds its pid while it writes
_HELD: dict[str, int] = {}  # run folder -> open lock file, for the runs this process writes


class RunInUse(OSError):
    """Another live process holds the run's lock."""


def check_name(name: str) -> str:
    """A run name is one folder name: never a path, so a run cannot land outside its runs folder."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"run name {name!r} is not a plain folder name: use letters, digits and . _ - "
            "(no '/', no leading '.' or '-'), e.g. --name mnist-k100"
        )
    return name


class Run:
    """`runs/<name>/`: `config.json`, the history files above and `checkpoint.pt`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # (epochs, steps, snapshots) on disk, read once
        self._saved: tuple[int, int, int] | None = None

    @classmethod
    def create(cls, root: str | Path, name: str, resume: bool = False, lock: bool = False) -> "Run":
        """A run folder; refuses to reuse a folder that already holds a run unless `resume`, any
        folder kit did not make and one holding a symbolic link. With `lock`, this process becomes
        the run's one writer first (`lock`). Call it only once every check of the command has
        passed."""
        run = cls(Path(root) / check_name(name))
        run.check_ours()
        if run.exists() and not resume:
            raise FileExistsError(
                f"{run.path} already holds a run: pass resume=True (--resume) to continue "
                "it, or choose another name"
            )
        run.check_links()
        run.path.mkdir(parents=True, exist_ok=True)
        if lock:
            run.lock()
            if run.exists() and not resume:  # another process made it while we checked
                run.unlock()
                raise FileExistsError(
                    f"{run.path} already holds a run: pass resume=True (--resume) to "
                    "continue it, or choose another name"
                )
        if not run.file(MARKER).exists():
            atomic_write_bytes(run.file(MARKER), b"written by kit\n")
        run.clean_temporaries()
        return run

    def check_ours(self) -> None:
        """Refuse a path that is a file, or a non-empty folder that kit did not write."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise FileExistsError(f"{p} is a file, not a run folder: choose another --name")
        if not p.exists() or (p / MARKER).exists():
            return
        # kit's own lock and temporaries alone: a folder whose making was killed before its marker,
        # taken over
        entries = {
            e.name for e in p.iterdir() if not TEMPORARY.fullmatch(e.name) and e.name != LOCK
        }
        if entries:
            raise FileExistsError(
                f"{p} holds files kit did not write ({', '.join(sorted(entries)[:3])}...): "
                "kit never writes into it; choose another --name or --runs"
            )

    def check_links(self) -> None:
        """Refuse a run holding a symbolic link: kit writes only into folders it made, and a link
        planted inside a run (`odc/labels` -> elsewhere) would carry its writes and deletions
        there."""
        # a link to a folder is listed, never entered
        for folder, dirs, files in os.walk(self.path):
            for name in (*dirs, *files):
                if os.path.islink(os.path.join(folder, name)):
                    raise ValueError(
                        f"{Path(folder) / name} is a symbolic link: kit never writes through a "
                        "link inside a run; replace it with the folder or file itself, or start a "
                        "new run"
                    )

    def lock(self) -> None:
        """Become the run's one writer, or refuse in one line naming the process that is. The lock
        is an flock on `.kit-lock`, which the kernel releases when its process ends, however it
        ends: a lock left by a killed process is free to take. Held until `unlock` (or the process
        ends)."""
        key = str(self.path.resolve())
        if fcntl is None or key in _HELD:
            return
        # a run inside a run (seed-31/): its parent's writer writes it
        if str(self.path.parent.resolve()) not in _HELD:
            Run(self.path.parent).check_free()
        try:
            fd = os.open(self.file(LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError:
            if self.file(LOCK).is_symlink():
                self.check_links()
            raise
        self._take(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD[key] = fd

    def _take(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunInUse(
                f"{self.path} is being written by another kit process (pid {holder}): wait for it "
                f"to end, or stop it (kill {holder}) and resume; one process writes a run at a time"
            ) from None

    def check_free(self) -> None:
        """Refuse in one line if another process holds the run's lock; writes nothing (for a run
        inside the run this process holds: `seed-31/` of a comparison)."""
        if fcntl is None or str(self.path.resolve()) in _HELD or not self.file(LOCK).is_file():
            return
        fd = os.open(self.file(LOCK), os.O_RDONLY | os.O_NOFOLLOW)
        self._take(fd)
        os.close(fd)  # a probe: the flock goes with the file

    def unlock(self) -> None:
        """Release the locks this process holds on the run and on the runs inside it."""
        root = str(self.path.resolve())
        for key in [k for k in _HELD if k == root or k.startswith(root + os.sep)]:
            fd = _HELD.pop(key)
            # no pid at rest (before the flock goes, so a new holder's pid stays)
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the file releases the flock

    def check(self, n_samples: int | None = None) -> None:
        """Read back every file a resume will read, in this run and the runs inside it, before
        anything is trained or written: a damaged file is named now, not after the first algorithm
        has trained."""
        self.check_links()
        for header in sorted(self.path.rglob("history.json")):
            Run(header.parent).load_history(n_samples)
        for f in sorted(self.path.rglob(f"{EMBED}/*.npy")):
            try:
                np.load(f, mmap_mode="r", allow_pickle=False).shape
            except Exception as e:  # noqa: BLE001 - numpy and OS errors alike: name the file
                raise ValueError(
                    f"{f} is damaged or not kit's ({type(e).__name__}): restore it from a copy, or "
                    "delete it (the views then leave that epoch out)"
                ) from None
        for f in sorted(self.path.rglob("*.json")):
            if f.name in ("config.json", "baselines.json", "result.json"):
                read_json(f, f.stem, dict)

    def exists(self) -> bool:
        return any(self.file(f).exists() for f in ("checkpoint.pt", "history.json", "config.json"))

    def file(self, name: str) -> Path:
        return self.path / name

    def clean_temporaries(self) -> None:
        """Remove temporaries of kit's own pattern left by a process killed mid-write (SIGKILL)."""
        for d in (self.path, self.path / "labels", self.path / EMBED):
            if d.is_dir():
                for f in d.iterdir():
                    if TEMPORARY.fullmatch(f.name) and f.is_file():
                        f.unlink(missing_ok=True)

    # -- history ------------------------------------------------------------------------------
    def save_history(self, history: dict) -> None:
        """Append what is new since the last save: label snapshots, that epoch's step records and
        epoch records, in that order, then the small header. Nothing written earlier is
        rewritten."""
        n_epochs, n_steps, n_snaps = self._on_disk()
        labels = history.get("labels", [])
        (self.path / "labels").mkdir(exist_ok=True)
        for i in range(n_snaps, len(labels)):
            self._write_snapshot(i, labels[i])
        steps = history.get("step", {})
        total = len(next(iter(steps.values()), []))
        if total > n_steps:
            append_line(self.file("steps.jsonl"), {k: v[n_steps:] for k, v in steps.items()})
        for record in history.get("epoch", [])[n_epochs:]:
            append_line(self.file("epochs.jsonl"), record)
        self._write_header(history)
        self._saved = (len(history.get("epoch", [])), total, len(labels))

    def rewrite_history(self, history: dict) -> None:
        """Write the whole history anew (a resume that drops the records of an unfinished epoch)."""
        labels = history.get("labels", [])
        (self.path / "labels").mkdir(exist_ok=True)
        for i, a in enumerate(labels):
            self._write_snapshot(i, a)
        for f in (self.path / "labels").glob("*.npy"):
            if f.stem.isdigit() and int(f.stem) >= len(labels):
                f.unlink()
        steps = history.get("step", {})
        atomic_write_bytes(
            self.file("steps.jsonl"),
            (json.dumps(steps, default=json_default) + "\n").encode() if steps else b"",
        )
        atomic_write_bytes(self.file("epochs.jsonl"), "".join(
            json.dumps(r, default=json_default) + "\n" for r in history.get("epoch", [])).encode())
        self._write_header(history)
        self._saved = (
            len(history.get("epoch", [])),
            len(next(iter(steps.values()), [])),
            len(labels),
        )

    def load_history(self, n_samples: int | None = None) -> dict:
        """The history as trainers keep it: header fields, `epoch` records, `step` lists and
        `labels` (a list of (N,) int64 arrays, each checked against the run: N = `n_samples` when
        given, labels in [0, n_clusters))."""
        if not self.file("history.json").exists():
            raise FileNotFoundError(f"{self.path} has no history.json: is it a kit run folder?")
        history = read_json(self.file("history.json"), "run's history", dict)
        if history.pop("format", None) != HISTORY_FORMAT:
            raise ValueError(
                f"{self.file('history.json')} is not a {HISTORY_FORMAT} header (a run from before "
                "kit's first release, or not kit's): start a new run"
            )
        self._check_header(history)
        history["epoch"] = read_lines(self.file("epochs.jsonl"))
        for i, record in enumerate(history["epoch"]):
            if record.get("epoch") != i or isinstance(record.get("epoch"), bool):
                raise ValueError(
                    f"{self.file('epochs.jsonl')} line {i + 1}: epoch is {record.get('epoch')!r}, "
                    f"not {i}: restore it from a copy or start a new run"
                )
        history["step"] = {}
        for chunk in read_lines(self.file("steps.jsonl")):
            for k, v in chunk.items():
                if not isinstance(v, list):
                    raise ValueError(
                        f"{self.file('steps.jsonl')} holds {k!r}: {type(v).__name__}, not a list: "
                        "restore it from a copy or start a new run"
                    )
                history["step"].setdefault(k, []).extend(v)
        config = history.get("config")
        k = config.get("n_clusters") if isinstance(config, dict) else None
        history["labels"] = []
        for f in self._snapshot_files():
            history["labels"].append(read_snapshot(f, n_samples, k if isinstance(k, int) else None))
            n_samples = len(history["labels"][0])  # every snapshot labels the same N images
        return history

    # history.json's fields kit reads
    HEADER = {"algo": str, "config": dict, "monitor_init": dict, "init": dict}
    # K beyond any run kit can train (ImageNet's is 10,000): a crafted 1e12 allocates TiBs
    MAX_CLUSTERS = 2**24

    def _check_header(self, history: dict) -> None:
        file = self.file("history.json")
        for key, kind in self.HEADER.items():
            if key in history and not isinstance(history[key], kind):
                raise ValueError(
                    f"{file}: {key} is {type(history[key]).__name__}, not the {kind.__name__} kit "
                    "writes: restore it from a copy or start a new run"
                )
        if history.get("algo") not in (None, self.path.name) and self._in_a_comparison(
            history["algo"]
        ):
            raise ValueError(
                f"{file}: algo is {history['algo']!r}, but the folder is {self.path.name}/: the "
                "two algorithms' folders were swapped or copied over each other; put them back"
            )
        k = history.get("config", {}).get("n_clusters")
        if k is not None and (
            isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= self.MAX_CLUSTERS
        ):
            raise ValueError(
                f"{file}: config.n_clusters is {k!r}, not an integer from 2 to "
                f"{self.MAX_CLUSTERS:,}: restore it from a copy or start a new run"
            )

    def _in_a_comparison(self, algo: str) -> bool:
        """Whether this folder is one algorithm's of a `compare` run, named after its algorithm: the
        run's config lists it among the algorithms it compares (a run from before `algos` was
        recorded: a folder beside it is named after `algo`, the algorithm its history says). Read
        from the run, not from the registry: the store sits below the algorithms."""
        parent = self.path.parent / "config.json"
        try:
            config = read_json(parent, "run's config", dict)
        except (OSError, ValueError):
            return False
        algos = (config.get("compare") or {}).get("algos")
        named = (
            self.path.name in algos
            if isinstance(algos, list)
            else (self.path.parent / str(algo)).is_dir()
        )
        return config.get("command") == "compare" and named

    def history_until(self, epochs: int, n_snapshots: int, n_samples: int | None = None) -> dict:
        """The history as it stood when the checkpoint of `epochs` epochs (`n_snapshots` label
        snapshots) was written; refused in one line if it stops before. The records of a later,
        unfinished epoch (a stop between saving the history and the checkpoint) are dropped, from
        the files too."""
        history = self.load_history(n_samples)
        if len(history["epoch"]) < epochs or len(history["labels"]) < n_snapshots:
            raise ValueError(
                f"{self.path}'s history stops before its checkpoint (epoch {epochs}: "
                f"{len(history['epoch'])} epoch records, {len(history['labels'])} of {n_snapshots} "
                "label snapshots): restore the missing files or start a new run"
            )
        n_steps = sum(1 for e in history["step"].get("epoch", []) if e < epochs)
        longer = (len(history["epoch"]) > epochs or len(history["labels"]) > n_snapshots
                  or len(history["step"].get("epoch", [])) > n_steps)
        history["epoch"], history["labels"] = (
            history["epoch"][:epochs],
            history["labels"][:n_snapshots],
        )
        history["step"] = {k: v[:n_steps] for k, v in history["step"].items()}
        if longer:
            self.rewrite_history(history)
        return history

    def _on_disk(self) -> tuple[int, int, int]:
        if self._saved is None:
            steps = read_lines(self.file("steps.jsonl"))
            self._saved = (
                len(read_lines(self.file("epochs.jsonl"))),
                sum(len(next(iter(c.values()), [])) for c in steps),
                len(self._snapshot_files()),
            )
        return self._saved

    def _snapshot_files(self) -> list[Path]:
        files = sorted(f for f in (self.path / "labels").glob("*.npy") if f.stem.isdigit())
        for i, f in enumerate(files):
            if int(f.stem) != i:
                raise ValueError(
                    f"label snapshot {i:05d}.npy is missing from {self.path / 'labels'}: "
                    "restore the run from a copy or start a new run"
                )
        return files

    def _write_snapshot(self, i: int, labels) -> None:
        atomic_write_npy(self.path / "labels" / f"{i:05d}.npy", np.asarray(labels, dtype=np.int32))

    # -- the features the embeddings are drawn from -------------------------------------------
    def save_embed_features(self, epoch: int, features, subset) -> None:
        """The (n, D) features of a fixed subset after `epoch` epochs: one file per epoch under
        `embed_features/`, and the subset's (n,) train indices once beside them. A new epoch adds a
        file."""
        folder = self.path / EMBED
        if not (folder / "subset.npy").exists():
            atomic_write_npy(folder / "subset.npy", np.asarray(subset, dtype=np.int64))
        atomic_write_npy(folder / f"epoch_{epoch:04d}.npy", features)

    def embed_features(self) -> dict[str, np.ndarray]:
        """{"subset": (n,), "epoch_0003": (n, D), ...} as `save_embed_features` wrote them; {} if
        none."""
        folder = self.path / EMBED
        if not (folder / "subset.npy").exists():
            return {}
        # headers first: nothing allocated yet
        out = {f.stem: mapped_npy(f) for f in sorted(folder.glob("*.npy"))}
        n, dims = len(out["subset"]), set()
        for name, a in out.items():
            shape_ok = a.ndim == 1 and a.dtype.kind in "iu" if name == "subset" else (
                a.ndim == 2 and a.dtype.kind == "f" and len(a) == n)
            if not shape_ok:
                want = (
                    f"({n},) integers"
                    if name == "subset"
                    else f"({n}, D) floats, one row per subset image"
                )
                raise ValueError(
                    f"{folder / name}.npy holds {a.dtype} {a.shape}, not {want}: restore it from a "
                    "copy, or delete it (the flight recorder then leaves that epoch out)"
                )
            if name != "subset":
                dims.add(a.shape[1])
        if len(dims) > 1:
            raise ValueError(
                f"{folder} holds features of several widths {sorted(dims)}: restore it from a copy"
            )
        return {k: np.array(a) for k, a in out.items()}

    def _write_header(self, history: dict) -> None:
        header = {k: v for k, v in history.items() if k not in ("epoch", "step", "labels")}
        atomic_write_json(self.file("history.json"), {"format": HISTORY_FORMAT, **header})


def read_config(path: str | Path) -> dict:
    """A run's `config.json`: {"command": "compare" | "train" | "sweep", "algo": str | None, and the
    settings under "compare" or "sweep"}."""
    file = Path(path) / "config.json"
    if not file.exists():
        raise FileNotFoundError(f"{path} has no config.json: is it a kit run folder?")
    cfg = read_json(file, "run's config", dict)
    for key in ("compare", "sweep"):
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            raise ValueError(
                f"{file} holds {key!r}: {type(cfg[key]).__name__}, not the {{...}} of settings kit "
                "writes: restore it from a copy or start a new run"
            )
    if "command" not in cfg:
        raise ValueError(
            f"{file} names no command (a run from before kit's first release, or not kit's): "
            "start a new run"
        )
    return cfg
