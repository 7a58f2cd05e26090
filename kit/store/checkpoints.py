"""kit's checkpoints: a tagged dict of tensors, numbers and strings, written atomically and read
with `torch.load(..., weights_only=True)`, so no pickled code is ever executed."""
from __future__ import annotations

import io
from pathlib import Path

import torch

from .files import atomic_write_bytes

CHECKPOINT_FORMAT = "kit-checkpoint-v1"


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
