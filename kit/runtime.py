"""Device, seeding and mixed precision: the few things every trainer needs from the machine."""
from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`"auto"` picks CUDA when present, else Apple MPS, else the CPU. Anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from e
    if dev.type not in ("cpu", "cuda", "mps"):  # meta, xla, ...: kit trains on real devices only
        raise ValueError(f"device={device!r} cannot train: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for, but this machine has no CUDA GPU: use device='auto' or 'cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: this machine has {torch.cuda.device_count()} GPU(s): use cuda:0 .. "
                         f"cuda:{torch.cuda.device_count() - 1}")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={device!r} asked for, but this machine has no Apple GPU: use device='auto' or 'cpu'")
    return dev


def seed_everything(seed: int) -> None:
    """One seed for every RNG kit touches (Python, NumPy, torch on every device).

    kit draws its own random numbers from torch; NumPy and Python are seeded too so that
    third-party code called from kit (scikit-learn's 2-means split uses a fixed random_state
    anyway) is repeatable.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every torch RNG state, as tensors, so a checkpoint can restore it exactly."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def autocast(device: torch.device):
    """bf16 autocast on CUDA (no loss scaler needed); a no-op elsewhere, so CPU runs stay exact."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to the device in channels-last layout: cuDNN's and oneDNN's convolutions are both faster
    with it (measured on the 2-core CPU: feature extraction 0.80 s -> 0.56 s, outputs equal to 1e-8)."""
    model = model.to(device).to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return model


def set_threads(n: int | None = None) -> None:
    """Match torch's and faiss's OpenMP pools so the two do not oversubscribe a small CPU."""
    n = n or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1
    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:  # pragma: no cover - faiss is a hard dependency, but be gentle
        pass


def fast_mode() -> bool:
    """True when KIT_FAST is set (and not "0"): notebooks and the CLI shrink to a seconds-long run.
    The kernel inherits the environment, so nbclient, papermill and JupyterLab all see it."""
    return os.environ.get("KIT_FAST", "0") not in ("", "0")
