"""A run folder, `runs/<name>/`: config, metric history and checkpoints.

Every file is written to a temporary name in the same folder and then renamed over the old one,
so a crash or Ctrl-C leaves either the old file or the new one, never half of one. Checkpoints are
read with `torch.load(..., weights_only=True)`: no pickled code is ever executed.

The history grows by appending, never by rewriting (an ImageNet run has 1.28 M labels x 400 epochs):

    history.json    the small header (algo, the epoch-0 monitor, ODC's initial clustering)
    epochs.jsonl    one line per epoch record
    steps.jsonl     one line per saved epoch with that epoch's per-iteration records
    labels/         one `NNNNN.npy` (N,) int32 label snapshot per file, written once

A crash mid-append leaves at most a torn last line; it belongs to an epoch whose checkpoint was
never written, so `load_history` drops it and a resume truncates the files to the checkpoint.
"""
from __future__ import annotations

import io
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

CHECKPOINT_FORMAT = "kit-checkpoint-v1"
_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: there is no way to read the umask without setting it


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_npz(path: str | Path, compressed: bool = False, **arrays) -> None:
    """`np.savez` (or `savez_compressed`) of `arrays`, written atomically."""
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, default=_json_default).encode())


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.ndarray, torch.Tensor)):
        return o.tolist()
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Atomically save `state` (tensors, numbers, strings, lists and dicts of them)."""
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a kit checkpoint; a one-line error for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: start a new run or check the run name")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, random bytes, pickled code: all refused the same way
        raise ValueError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}); "
                         "delete it to start over, or restore a copy") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a kit checkpoint (no '{CHECKPOINT_FORMAT}' tag); "
                         "pass a file written by kit")
    return state


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+=@,-]*")
MARKER = ".kit-run"  # written into every folder kit creates; a folder without it is never written into
# what a run folder of kit 0.1 (before the marker) may hold
_LEGACY = {"config.json", "history.json", "labels.npz", "checkpoint.pt", "baselines.json", "embed_features.npz",
           "embeddings.npz", "report.html", "evaluation.md", "evaluation.json", "deepcluster", "odc"}
_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")  # atomic_write_bytes's mkstemp names


def check_name(name: str) -> str:
    """A run name is one folder name: never a path, so a run cannot land outside its runs folder."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"run name {name!r} is not a plain folder name: use letters, digits and . _ - "
                         "(no '/', no leading '.' or '-'), e.g. --name mnist-k100")
    return name


def append_line(path: Path, record) -> None:
    """Append one JSON line and fsync it: the history grows without rewriting what is there."""
    with open(path, "ab") as f:
        f.write(json.dumps(record, default=_json_default).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())


def read_lines(path: Path) -> list:
    """The JSON lines of `path`; a torn last line (a crash mid-append) is dropped, any other bad line refused."""
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1 and any(x.strip() for x in lines[i + 1 :]):
                raise ValueError(f"{path} is damaged at line {i + 1}: restore it from a copy or start a new run") from None
    return out


def read_json(path: Path, what: str = "file"):
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}): the {what} is damaged; "
                         "restore it from a copy or start a new run") from None


class Run:
    """`runs/<name>/`: `config.json`, the history files above and `checkpoint.pt`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._saved: tuple[int, int, int] | None = None  # (epochs, steps, snapshots) on disk, read once

    @classmethod
    def create(cls, root: str | Path, name: str, resume: bool = False) -> "Run":
        """A run folder; refuses to reuse a folder that already holds a run unless `resume`, and any
        folder kit did not make. Call it only once every check of the command has passed."""
        run = cls(Path(root) / check_name(name))
        run.check_ours()
        if run.exists() and not resume:
            raise FileExistsError(f"{run.path} already holds a run: pass resume=True (--resume) to continue "
                                  "it, or choose another name")
        run.path.mkdir(parents=True, exist_ok=True)
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
        entries = {e.name for e in p.iterdir() if not _TEMPORARY.fullmatch(e.name)}
        legacy = entries & {"config.json", "history.json", "checkpoint.pt"} and all(
            e in _LEGACY or e.endswith(".png") for e in entries)
        if entries and not legacy:
            raise FileExistsError(f"{p} holds files kit did not write ({', '.join(sorted(entries)[:3])}...): "
                                  "kit never writes into it; choose another --name or --runs")

    def exists(self) -> bool:
        return any(self.file(f).exists() for f in ("checkpoint.pt", "history.json", "config.json"))

    def file(self, name: str) -> Path:
        return self.path / name

    def clean_temporaries(self) -> None:
        """Remove temporaries of kit's own pattern left by a process killed mid-write (SIGKILL)."""
        for d in (self.path, self.path / "labels"):
            if d.is_dir():
                for f in d.iterdir():
                    if _TEMPORARY.fullmatch(f.name) and f.is_file():
                        f.unlink(missing_ok=True)

    # -- history ------------------------------------------------------------------------------
    def save_history(self, history: dict) -> None:
        """Append what is new since the last save: label snapshots, that epoch's step records and epoch
        records, in that order, then the small header. Nothing written earlier is rewritten."""
        if self._legacy():  # a kit 0.1 run: convert it once, then append as usual
            self.rewrite_history(history)
            return
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
        """Write the whole history anew (a resume that drops records after its checkpoint, a legacy run)."""
        labels = history.get("labels", [])
        (self.path / "labels").mkdir(exist_ok=True)
        for i, a in enumerate(labels):
            self._write_snapshot(i, a)
        for f in (self.path / "labels").glob("*.npy"):
            if f.stem.isdigit() and int(f.stem) >= len(labels):
                f.unlink()
        steps = history.get("step", {})
        atomic_write_bytes(self.file("steps.jsonl"), (json.dumps(steps, default=_json_default) + "\n").encode()
                           if steps else b"")
        atomic_write_bytes(self.file("epochs.jsonl"), "".join(
            json.dumps(r, default=_json_default) + "\n" for r in history.get("epoch", [])).encode())
        self._write_header(history)
        self.file("labels.npz").unlink(missing_ok=True)
        self._saved = (len(history.get("epoch", [])), len(next(iter(steps.values()), [])), len(labels))

    def load_history(self) -> dict:
        """The history as trainers keep it: header fields, `epoch` records, `step` lists and `labels`
        (a list of (N,) int64 arrays)."""
        if not self.file("history.json").exists():
            raise FileNotFoundError(f"{self.path} has no history.json: is it a kit run folder?")
        history = read_json(self.file("history.json"), "run's history")
        if self._legacy(history):
            history["labels"] = []
            if self.file("labels.npz").exists():
                with np.load(self.file("labels.npz")) as f:
                    history["labels"] = [f[k].astype(np.int64) for k in sorted(f.files)]
            return history
        history.pop("format", None)
        history["epoch"] = read_lines(self.file("epochs.jsonl"))
        history["step"] = {}
        for chunk in read_lines(self.file("steps.jsonl")):
            for k, v in chunk.items():
                history["step"].setdefault(k, []).extend(v)
        history["labels"] = [np.load(f).astype(np.int64) for f in self._snapshot_files()]
        return history

    def _legacy(self, header: dict | None = None) -> bool:
        if header is None:
            if not self.file("history.json").exists():
                return False
            header = read_json(self.file("history.json"), "run's history")
        return "epoch" in header

    def _on_disk(self) -> tuple[int, int, int]:
        if self._saved is None:
            steps = read_lines(self.file("steps.jsonl"))
            self._saved = (len(read_lines(self.file("epochs.jsonl"))),
                           sum(len(next(iter(c.values()), [])) for c in steps), len(self._snapshot_files()))
        return self._saved

    def _snapshot_files(self) -> list[Path]:
        files = sorted(f for f in (self.path / "labels").glob("*.npy") if f.stem.isdigit())
        for i, f in enumerate(files):
            if int(f.stem) != i:
                raise ValueError(f"label snapshot {i:05d}.npy is missing from {self.path / 'labels'}: "
                                 "restore the run from a copy or start a new run")
        return files

    def _write_snapshot(self, i: int, labels) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(labels, dtype=np.int32))
        atomic_write_bytes(self.path / "labels" / f"{i:05d}.npy", buf.getvalue())

    def _write_header(self, history: dict) -> None:
        header = {k: v for k, v in history.items() if k not in ("epoch", "step", "labels")}
        atomic_write_json(self.file("history.json"), {"format": "kit-history-v2", **header})


def read_config(path: str | Path) -> dict:
    """A run's `config.json` as {"command": "compare" | "train", "algo": str | None, "compare": dict | None}.
    Reads kit 0.1's two layouts too ({"compare": ...} and a train run's {"algo": ..., fields...})."""
    file = Path(path) / "config.json"
    if not file.exists():
        raise FileNotFoundError(f"{path} has no config.json: is it a kit run folder?")
    cfg = read_json(file, "run's config")
    if "command" in cfg:
        return cfg
    if "compare" in cfg:
        return {"command": "compare", "algo": None, "compare": cfg["compare"]}
    return {"command": "train", "algo": cfg.get("algo"), "compare": None}
