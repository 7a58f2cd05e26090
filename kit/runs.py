"""A run folder, `runs/<name>/`: config, metric history and checkpoints, all written atomically.

Every file is written to a temporary name in the same folder and then renamed over the old one,
so a crash or Ctrl-C leaves either the old file or the new one, never half of one. Checkpoints are
read with `torch.load(..., weights_only=True)`: no pickled code is ever executed.
"""
from __future__ import annotations

import io
import json
import os
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


class Run:
    """`runs/<name>/` with `config.json`, `history.json`, `labels.npz` and `checkpoint.pt`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, root: str | Path, name: str, resume: bool = False) -> "Run":
        """A run folder; refuses to reuse a folder that already holds a run unless `resume`."""
        run = cls(Path(root) / name)
        if run.exists() and not resume:
            raise FileExistsError(f"{run.path} already holds a run: pass resume=True (--resume) to continue "
                                  "it, or choose another name")
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    def exists(self) -> bool:
        return any((self.path / f).exists() for f in ("checkpoint.pt", "history.json", "config.json"))

    def file(self, name: str) -> Path:
        return self.path / name

    def save_history(self, history: dict) -> None:
        """Scalars to history.json; label snapshots (the `labels` list of (N,) arrays) to labels.npz."""
        scalars = {k: v for k, v in history.items() if k != "labels"}
        labels = history.get("labels", [])
        atomic_write_npz(self.file("labels.npz"), compressed=True,
                         **{f"epoch_{i:04d}": np.asarray(a, dtype=np.int32) for i, a in enumerate(labels)})
        atomic_write_json(self.file("history.json"), scalars)

    def load_history(self) -> dict:
        if not self.file("history.json").exists():
            raise FileNotFoundError(f"{self.path} has no history.json: is it a kit run folder?")
        history = json.loads(self.file("history.json").read_text())
        if self.file("labels.npz").exists():
            with np.load(self.file("labels.npz")) as f:
                history["labels"] = [f[k].astype(np.int64) for k in sorted(f.files)]
        return history
