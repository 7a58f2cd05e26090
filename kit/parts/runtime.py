"""Device, seeding and mixed precision: the few things every trainer needs from the machine, and
`Diverged`, what training raises when its numbers stop being numbers."""
from __future__ import annotations

import contextlib
import os
import random
import threading

import numpy as np
import torch

# every device setting's default, written here once: CUDA where present, else Apple MPS,
# else the CPU
AUTO = "auto"


def resolve_device(device: str | torch.device = AUTO) -> torch.device:
    """`"auto"` picks CUDA when present, else Apple MPS, else the CPU. Anything else is passed to
    torch. CUDA comes back with its index (`cuda:0`, or the card torchrun's `set_device` chose), so
    every tensor and collective of a process names the same card."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == AUTO:
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
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
        raise ValueError(
            f"device={device!r} asked for, but this machine has no CUDA GPU: use device='auto' or "
            "'cpu'"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r}: this machine has {torch.cuda.device_count()} GPU(s): use cuda:0 "
            f".. cuda:{torch.cuda.device_count() - 1}"
        )
    # the card in use, named: torchrun's set_device picks it per process
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError(
            f"device={device!r} asked for, but this machine has no Apple GPU: use device='auto' or "
            "'cpu'"
        )
    return dev


def seed_everything(seed: int) -> None:
    """One seed for every RNG kit touches (Python, NumPy, torch on every device).

    kit draws its own random numbers from torch; NumPy and Python are seeded too so that
    third-party code called from kit is repeatable.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict:
    """The CPU's torch RNG state and, on CUDA, that of the run's own card, as tensors, so a
    checkpoint restores them exactly on a machine with any number of GPUs."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore `rng_state`'s states; a CUDA state is restored only onto a CUDA run, on its own
    card."""
    torch.set_rng_state(state["cpu"])
    cuda = state.get("cuda")
    # older checkpoints hold one state per visible card: take the run's
    if isinstance(cuda, (list, tuple)):
        cuda = (
            cuda[min(device.index or 0, len(cuda) - 1)] if cuda and device.type == "cuda" else None
        )
    if cuda is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda, device)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype training uses on `device`: bf16 where the card computes it natively (sm_80
    and up: A100, H100, RTX 30xx and later), fp16 with a loss scaler below that (T4, V100, where
    bf16 is emulated without cuDNN convolutions), and none on the CPU or MPS, so CPU runs stay
    exact."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16


def autocast(device: torch.device):
    """Mixed precision for the training forward pass, in the dtype `amp_dtype` picks for the
    card."""
    dtype = amp_dtype(device)
    return torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler where training runs in fp16 (whose gradients underflow without one); a
    pass-through elsewhere."""
    return torch.amp.GradScaler("cuda", enabled=amp_dtype(device) == torch.float16)


# -- process-wide settings, held while kit needs them and given back as they were ------------------
class _Held:
    """Process-wide torch settings (TF32, cuDNN's autotuner, deterministic algorithms) that kit
    changes for the length of a call and gives back on its way out. Several kit calls may hold one
    setting at once (the playground trains in a thread while a cell extracts features): each applies
    the value it needs on entry, the value found when the first began comes back when the last ends,
    and a setting someone else changed meanwhile to a value kit did not set (a user's cell) is left
    as they set it. Each setting is given back when its own last holder ends."""

    def __init__(self):
        self.lock = threading.Lock()
        # name -> [getter, setter, value found, value kit set last, holders]
        self.held: dict[str, list] = {}

    @contextlib.contextmanager
    def hold(self, wanted):
        """`wanted()` -> [(name, getter, setter, value)]: the settings this call needs, read and set
        under the lock."""
        names: list[str] = []
        with self.lock:
            try:
                for name, get, put, value in wanted():
                    entry = self.held.setdefault(name, [get, put, get(), value, 0])
                    entry[4] += 1
                    names.append(name)
                    if get() != value:
                        put(value)
                    entry[3] = value
            except BaseException:
                self._release(names)
                raise
        try:
            yield
        finally:
            with self.lock:
                self._release(names)

    def _release(self, names: list[str]) -> None:
        for name in reversed(names):
            entry = self.held[name]
            entry[4] -= 1
            if entry[4]:
                continue
            del self.held[name]
            get, put, found, value, _ = entry
            try:
                # still what kit set: give the old value back; a newer choice stays
                if get() == value:
                    put(found)
            except RuntimeError:
                # the process switched to torch's other precision API meanwhile: its choice stays
                pass


_HELD = _Held()


def _setting(obj, attr: str):
    return lambda: getattr(obj, attr), lambda v: setattr(obj, attr, v)


def _legacy_precision_api() -> bool:
    """Whether this process sets float32 precision through the legacy calls
    (`torch.set_float32_matmul_precision`, `torch.backends.cudnn.allow_tf32`). Once code (a user's,
    or a library's) has used torch's per-backend `fp32_precision` settings (torch >= 2.9), reading
    the legacy ones raises "mix of the legacy and new APIs", so kit then sets and restores the
    per-backend ones instead."""
    if not hasattr(torch.backends, "fp32_precision"):
        return True
    # any of the three raises once the per-backend settings disagree with what the legacy ones
    # can say
    try:
        torch.get_float32_matmul_precision()
        torch.backends.cuda.matmul.allow_tf32  # noqa: B018 - reading it is the test
        torch.backends.cudnn.allow_tf32  # noqa: B018
        return True
    except RuntimeError:
        return False


def _full_precision_settings(device_type: str) -> list[tuple]:
    """[(name, getter, setter, value)] that make `device_type`'s float32 matrix products and
    convolutions exact, through the API the process already uses."""
    if _legacy_precision_api():
        matmul = (
            "matmul",
            torch.get_float32_matmul_precision,
            torch.set_float32_matmul_precision,
            "highest",
        )
        conv = ("cudnn", *_setting(torch.backends.cudnn, "allow_tf32"), False)
        # cuDNN's flag only reaches a CUDA card
        return [matmul, conv] if device_type == "cuda" else [matmul]
    b = torch.backends
    pairs = (
        [("cuda.matmul", b.cuda.matmul), ("cudnn.conv", b.cudnn.conv)]
        if device_type == "cuda"
        else [("mkldnn.matmul", b.mkldnn.matmul), ("mkldnn.conv", b.mkldnn.conv)]
    )
    return [(name, *_setting(obj, "fp32_precision"), "ieee") for name, obj in pairs]


@contextlib.contextmanager
def full_precision(device: str | torch.device | None = None):
    """float32 as written on `device` (default: the CUDA card if there is one, else the CPU), for
    the clustering maths (feature extraction for k-means, k-means, the ODC memory): autocast off,
    and no TF32 in matrix products or cuDNN convolutions, which an Ampere card would otherwise use
    (a user's `set_float32_matmul_precision("high")` or
    `torch.backends.cuda.matmul.fp32_precision = "tf32"` included). The reference extracts and
    clusters in float32; a rounded dot product can flip the nearest centroid.

    Only settings that are not already exact are changed, through the API the process uses, and each
    is given back on the way out (`_Held`): on a CPU with torch's defaults nothing process-wide
    changes at all."""
    kind = (
        torch.device(device).type
        if device is not None
        else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    with contextlib.ExitStack() as stack:
        stack.enter_context(_HELD.hold(lambda: _full_precision_settings(kind)))
        # autocast is per thread: no one else sees these
        stack.enter_context(torch.autocast("cpu", enabled=False))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast("cuda", enabled=False))
        yield


@contextlib.contextmanager
def tuned_convolutions(device: torch.device):
    """cuDNN's autotuner (`cudnn.benchmark`) on for a CUDA training run, and back as it was after:
    it picks the fastest convolution algorithm per shape, which may differ from run to run (left off
    under `deterministic`)."""
    if device.type != "cuda" or torch.are_deterministic_algorithms_enabled():
        yield
        return
    with _HELD.hold(
        lambda: [("cudnn.benchmark", *_setting(torch.backends.cudnn, "benchmark"), True)]
    ):
        yield


@contextlib.contextmanager
def deterministic():
    """Same seed, same numbers on a GPU too, where torch can give them (`--deterministic`): torch's
    deterministic algorithms (an op that has none warns, or raises if the caller had already turned
    on torch's strict mode), cuDNN's deterministic convolutions and no autotuner, and cuBLAS's fixed
    workspace (CUBLAS_WORKSPACE_CONFIG, set for the process if unset; cuBLAS reads it when it starts
    on a card, so in a notebook that has already multiplied matrices on the GPU set it before
    starting the kernel). Slower on a card; the CPU is deterministic without it. Everything but the
    variable is given back on exit."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    cudnn = torch.backends.cudnn
    settings = [("deterministic algorithms", torch.are_deterministic_algorithms_enabled,
                 lambda on: torch.use_deterministic_algorithms(on, warn_only=True), True),
                ("cudnn.deterministic", *_setting(cudnn, "deterministic"), True),
                ("cudnn.benchmark", *_setting(cudnn, "benchmark"), False)]
    with _HELD.hold(lambda: settings):
        yield


# the torch.compile backends asked for by the `compiled_steps` blocks now open
_COMPILE: list[str] = []


@contextlib.contextmanager
def compiled_steps(backend: str = "inductor"):
    """Trainers set up inside compile their training network with `torch.compile` (`--compile`): the
    step's forward and backward become a few fused kernels, fewer launches where a small network's
    step is bound by them. Off by default: the first steps pay for the compilation (about 30 s for
    the small network on a 2-core CPU), each new batch shape recompiles once, and whether it pays on
    a card is for `make gpu-check` to measure. Extraction and evaluation stay eager.
    `backend="aot_eager"` traces without generating code (the tests)."""
    _COMPILE.append(backend)
    try:
        yield
    finally:
        _COMPILE.remove(backend)


def compile_step(net: torch.nn.Module) -> torch.nn.Module:
    """`net` under `torch.compile` inside `compiled_steps`, else `net` itself."""
    return torch.compile(net, backend=_COMPILE[-1]) if _COMPILE else net


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to the device in channels-last layout: cuDNN's and oneDNN's convolutions are both faster
    with it (measured on the 2-core CPU: feature extraction 0.80 s -> 0.56 s, outputs equal to
    1e-8). Changes no process-wide setting (the autotuner is `tuned_convolutions`, held while a
    trainer fits)."""
    return model.to(device).to(memory_format=torch.channels_last)


def available_cpus(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """The CPUs this process may really use: its affinity mask (taskset, Slurm,
    docker --cpuset-cpus), capped by a cgroup v2 CPU quota (docker --cpus, Kubernetes limits);
    `os.cpu_count()` ignores both."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        with open(cpu_max) as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) / int(period) + 0.5)))
    except (OSError, ValueError):  # no cgroup v2 CPU controller: the affinity mask is the limit
        pass
    return max(1, n)


ON, OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def env_flag(name: str) -> bool:
    """An on/off environment variable (1/true/yes/on, or 0/false/no/off/unset); anything else is
    refused in one line that names it."""
    raw = os.environ.get(name, "").strip()
    if raw.lower() in ON + OFF:
        return raw.lower() in ON
    raise ValueError(f"{name}={raw!r} is neither on nor off: set it to 1 or 0, or unset it")


def env_int(name: str, low: int = 1) -> int | None:
    """A whole-number environment variable (None when unset); anything else is refused in one line
    that names it. A comma list, as OpenMP allows for OMP_NUM_THREADS ("4,2": 4, then 2 in nested
    regions), gives its first."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    first = raw.split(",")[0].strip()
    if not first.isdigit() or int(first) < low:
        raise ValueError(
            f"{name}={raw!r} is not a whole number >= {low}: set it to one, or unset it"
        )
    return int(first)


def environment_problems() -> list[tuple[str, str]]:
    """(variable, its one-line refusal) for each environment variable kit reads that it would refuse
    (`kit doctor`)."""
    out = []
    for name, check in (
        ("KIT_FAST", env_flag),
        ("OMP_NUM_THREADS", env_int),
        ("KIT_EPOCHS", env_int),
    ):
        try:
            check(name)
        except ValueError as e:
            out.append((name, str(e)))
    return out


def set_threads(n: int | None = None) -> None:
    """Match torch's and faiss's OpenMP pools to the CPUs really available, so the two do not
    oversubscribe a small CPU or a container's quota."""
    n = n or env_int("OMP_NUM_THREADS") or available_cpus()
    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:  # pragma: no cover - faiss is a hard dependency, but be gentle
        pass


class Diverged(FloatingPointError):
    """Training produced NaN or inf (features, memory, loss): the setting diverges. Raised where it
    is seen (k-means input, ODC's memory); the sweep catches it and records the cell as diverged,
    the command line prints its one line (a FloatingPointError, as a float overflow is)."""


def fast_mode() -> bool:
    """True when KIT_FAST is on (1, true, yes or on; 0, false, no, off or unset is off, anything
    else is refused): notebooks and the CLI shrink to a seconds-long run. The kernel inherits the
    environment, so nbclient, papermill and JupyterLab all see it."""
    return env_flag("KIT_FAST")


def budget(epochs: int) -> int:
    """A notebook's epochs, or KIT_EPOCHS where that is fewer: a rehearsal at full size (all the
    data, the presets' K and monitoring) on a short budget. The tests run every notebook this way
    ("full" mode)."""
    cap = env_int("KIT_EPOCHS")
    return epochs if cap is None else min(epochs, cap)


def rehearsal() -> bool:
    """True when KIT_EPOCHS caps the epochs (`budget`): a full-size rehearsal, which also evaluates
    on the smoke budget (a few fine-tuning steps) rather than for minutes."""
    return bool(os.environ.get("KIT_EPOCHS", "").strip())
