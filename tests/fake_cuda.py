"""A CUDA card that is not there: kit's GPU path, run on the CPU, failing where a real card would.

No GPU is lent to kit's CI, so its CUDA path is proven here, in every test run:

    with FakeCuda(capability=(7, 5), count=1) as card:   # a T4, say
        kit.DeepCluster(cfg(device="cuda")).fit(...)      # runs on the CPU, tensors report cuda:0
    card.syncs                                            # host-device synchronisations, by kind

What it does:
- - `torch.cuda` says a card is there (`is_available`, `device_count`, `get_device_capability`, the
  RNG state calls, ...), and tensors moved or created on `cuda:N` become `DeviceTensor`s: CPU
  tensors that report `device == cuda:N` and compute on the CPU.
- - What a real card refuses raises here, with CUDA's words: a device tensor meeting a host tensor
  in one op (a 0-d host scalar excepted, as on CUDA), a host tensor indexed by device indices,
  `.numpy()` of a device tensor, tensors on two different cards, `cuda:N` past the count.
- - Every op that makes CUDA wait for the card is counted in `syncs` (`.item()` and the like, a
  blocking copy either way, a boolean-mask index, `nonzero`, `bincount`, `unique`, a linalg error
  check), and `sync_sites` names the line of kit that made it.
- - Precision as the card has it: autocast on `cuda` rounds the inputs of convolutions and matrix
  products to its dtype (they stay float32 tensors: the rounding is what it emulates); a bf16
  autocast on a card below sm_80 raises (no native bf16: a T4 emulates it, several times slower); on
  sm_80 and up, float32 matrix products round their inputs to TF32 unless the float32 matmul
  precision is "highest", and convolutions unless `torch.backends.cudnn.allow_tf32` is off (it is on
  by default), as an Ampere card does.

`install()` enters it for good (a notebook kernel's first cell: `tests/fake_cuda.py` is put on
sys.path).
"""
from __future__ import annotations

import contextlib
import sys
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import SUPPORTED_NODES, tree_flatten, tree_map


# an aten op's arguments and results nest only tuples, lists and dicts: these walk them two to four
# times faster a call than torch's general pytree (profiled on notebook 05; every op on the card
# passes through them several times); any other tuple (a named one, torch.Size) or node torch
# registers (OrderedDict, fx's immutable_list under torch.compile) is left to torch's
def _leaves(x) -> list:
    out: list = []
    stack = [x]
    while stack:
        y = stack.pop()
        t = type(y)
        if t is tuple or t is list:
            stack.extend(reversed(y))
        elif t is dict:
            stack.extend(reversed(list(y.values())))
        elif isinstance(y, tuple) or t in SUPPORTED_NODES:  # torch's leaves, in order (torch.Size
            out.extend(tree_flatten(y)[0])  # is one)
        else:
            out.append(y)
    return out


def _map(fn, x):
    t = type(x)
    if t is tuple:
        return tuple(_map(fn, y) for y in x)
    if t is list:
        return [_map(fn, y) for y in x]
    if t is dict:
        return {k: _map(fn, y) for k, y in x.items()}
    if isinstance(x, tuple) or t in SUPPORTED_NODES:
        return tree_map(fn, x)
    return fn(x)

aten = torch.ops.aten
KIT = str(Path(__file__).resolve().parents[1] / "kit")

# ops that block the host until the card has caught up, by the name they are counted under
SYNCING = {
    aten._local_scalar_dense.default: "item",
    aten.nonzero.default: "nonzero",
    aten.masked_select.default: "masked_select",
    aten.bincount.default: "bincount",
    aten._unique2.default: "unique",
    aten.unique_dim.default: "unique",
    aten.unique_consecutive.default: "unique",
    aten._linalg_check_errors.default: "linalg error check",
    aten.is_nonzero.default: "item",
    aten.equal.default: "item",
    aten.repeat_interleave.Tensor: "repeat_interleave",
}
# the ops autocast runs in its lower precision on CUDA (torch's autocast "lower_precision_fp" list,
# the ones kit meets)
MATMULS = {
    aten.mm.default,
    aten.addmm.default,
    aten.bmm.default,
    aten.baddbmm.default,
    aten.matmul.default,
    aten.linear.default,
}
CONVOLUTIONS = {
    aten.convolution.default,
    aten._convolution.default,
    aten.conv2d.default,
    aten.conv1d.default,
}
LOW_PRECISION = MATMULS | CONVOLUTIONS
# ops that may legally span devices
CROSS_DEVICE = {aten._to_copy.default, aten.copy_.default, aten.copy.default}
INDEXING = {
    aten.index.Tensor,
    aten.index_put_.default,
    aten.index_put.default,
    aten._index_put_impl_.default,
}


class DeviceTensor(torch.Tensor):
    """A CPU tensor `elem` that says it lives on `cuda:index`."""

    @staticmethod
    def __new__(cls, elem: torch.Tensor, index: int = 0):
        assert not isinstance(elem, DeviceTensor)
        r = torch.Tensor._make_wrapper_subclass(
            cls,
            elem.size(),
            strides=elem.stride(),
            dtype=elem.dtype,
            device=elem.device,
            requires_grad=elem.requires_grad,
            storage_offset=elem.storage_offset(),
        )
        r.elem, r.index = elem, index
        return r

    def __tensor_flatten__(self):  # a traceable wrapper: nn.Module.to swaps such parameters whole
        return ["elem"], {"index": self.index}

    @staticmethod
    def __tensor_unflatten__(inner, meta, outer_size, outer_stride):
        return DeviceTensor(inner["elem"], meta["index"])

    @property
    def device(self):
        return torch.device("cuda", self.index)

    @property
    def is_cuda(self):
        return True

    def get_device(self):
        return self.index

    def __repr__(self):
        return f"DeviceTensor(cuda:{self.index}, {self.elem!r})"

    def numpy(self, *args, **kwargs):
        raise TypeError(
            f"can't convert cuda:{self.index} device type tensor to numpy. Use Tensor.cpu() to "
            "copy the tensor to host memory first."
        )

    def __array__(self, *args, **kwargs):
        return self.numpy()

    def __format__(self, spec):  # torch formats a 0-d plain Tensor by its value; so does a card's
        return self.item().__format__(spec) if self.dim() == 0 else object.__format__(self, spec)

    def tolist(self):
        _card().count("item")
        return self.elem.tolist()

    def cpu(self, memory_format=torch.preserve_format):
        return aten._to_copy.default(self, device=torch.device("cpu"), memory_format=memory_format)

    def cuda(self, device=None, non_blocking=False, memory_format=torch.preserve_format):
        return self.to(
            torch.device(
                "cuda", _card().current if device is None else torch.device(device).index or 0
            )
        )

    def to(self, *args, **kwargs):
        if kwargs.pop("copy", False):
            return self.to(*args, **kwargs).clone()
        device, dtype, non_blocking, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        if isinstance(args[0] if args else None, torch.Tensor):
            device, dtype = args[0].device, args[0].dtype
        if device is not None and device.type == "cpu":
            return aten._to_copy.default(
                self,
                device=device,
                dtype=dtype,
                non_blocking=non_blocking,
                **({} if memory_format is None else {"memory_format": memory_format}),
            )
        if device is not None and device.type == "cuda" and (device.index or 0) != self.index:
            return aten._to_copy.default(
                self, device=device, dtype=dtype, non_blocking=non_blocking
            )
        return super().to(dtype=dtype or self.dtype, non_blocking=non_blocking,
                          **({} if memory_format is None else {"memory_format": memory_format}))

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        t = torch.tensor(data, dtype=dtype or self.dtype, requires_grad=requires_grad)
        return t.to(device or self.device)

    def pin_memory(self, *args):
        raise RuntimeError(
            "cannot pin 'torch.cuda.FloatTensor' only dense CPU tensors can be pinned"
        )

    # torch.save of a CUDA tensor, loaded with map_location="cpu": the values
    def __reduce_ex__(self, proto):
        return self.elem.__reduce_ex__(proto)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _card().run(func, args, kwargs or {})


def _round_tf32(t: torch.Tensor) -> torch.Tensor:
    """float32 with the mantissa cut to TF32's 10 bits (round to nearest), as an Ampere tensor core
    reads it."""
    bits = t.contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32).view_as(t)


class FakeCuda(TorchDispatchMode):
    """`count` cards of compute capability `capability`; see the module's docstring."""

    _active: "FakeCuda | None" = None

    def __init__(
        self, capability: tuple[int, int] = (9, 0), count: int = 1, name: str | None = None
    ):
        super().__init__()
        self.capability, self.n, self.current = capability, count, 0
        self.name = name or {(7, 5): "Tesla T4", (8, 0): "NVIDIA A100", (9, 0): "NVIDIA H100"}.get(
            capability, "fake card"
        )
        self.syncs: Counter = Counter()
        self.sync_sites: Counter = Counter()
        self.rng = [torch.get_rng_state() for _ in range(count)]
        self._patches = contextlib.ExitStack()
        self.autocast: list = []  # the dtype of each open autocast context on "cuda" (None: off)

    # -- what the code sees of torch.cuda ---------------------------------------------------------
    def _patch(self):
        cuda, p = torch.cuda, self._patches

        def put(obj, name, value):
            old = getattr(obj, name)
            setattr(obj, name, value)
            p.callback(setattr, obj, name, old)

        put(cuda, "is_available", lambda: True)
        put(cuda, "device_count", lambda: self.n)
        put(cuda, "current_device", lambda: self.current)
        put(cuda, "set_device", self._set_device)
        put(cuda, "_lazy_init", lambda: None)
        put(cuda, "is_initialized", lambda: True)
        put(cuda, "get_device_capability", lambda device=None: self.capability)
        put(cuda, "get_device_name", lambda device=None: self.name)
        put(
            cuda,
            "is_bf16_supported",
            lambda including_emulation=True: including_emulation or self.capability >= (8, 0),
        )
        put(cuda, "synchronize", lambda device=None: self.count("synchronize"))
        put(cuda, "get_rng_state", lambda device="cuda": self.rng[self._ordinal(device)].clone())
        put(
            cuda,
            "set_rng_state",
            lambda state, device="cuda": self.rng.__setitem__(self._ordinal(device), state.clone()),
        )
        put(cuda, "get_rng_state_all", lambda: [s.clone() for s in self.rng])
        put(cuda, "set_rng_state_all", self._set_rng_state_all)
        put(cuda, "manual_seed", lambda seed: None)
        put(cuda, "manual_seed_all", lambda seed: None)
        put(cuda, "max_memory_allocated", lambda device=None: 0)
        put(cuda, "reset_peak_memory_stats", lambda device=None: None)
        put(cuda, "set_sync_debug_mode", lambda mode: None)
        tensor = torch.tensor

        # torch.tensor(..., device="cuda"): a blocking copy
        def tensor_on(data, *args, device=None, **kwargs):
            t = tensor(data, *args, **kwargs)
            return t if device is None or torch.device(device).type == "cpu" else t.to(device)

        put(torch, "tensor", tensor_on)
        # autocast's state is hidden from a dispatch handler (its key is excluded there): follow its
        # contexts
        ac = torch.amp.autocast_mode.autocast
        enter, leave = ac.__enter__, ac.__exit__

        def entered(ctx):
            self.autocast.append(
                ctx.fast_dtype
                if ctx.device == "cuda" and ctx._enabled
                else (self.autocast[-1] if self.autocast and ctx.device != "cuda" else None)
            )
            return enter(ctx)

        def left(ctx, *exc):
            self.autocast.pop()
            return leave(ctx, *exc)

        put(ac, "__enter__", entered)
        put(ac, "__exit__", left)
        # "cuda" without an index means the current card; torch asks the driver which, so it is
        # named here
        to, as_tensor = torch.Tensor.to, torch.as_tensor
        put(
            torch.Tensor,
            "to",
            lambda t, *a, **k: to(
                t, *map(self._named, a), **{n: self._named(v) for n, v in k.items()}
            ),
        )
        put(
            torch,
            "as_tensor",
            lambda data, dtype=None, device=None: as_tensor(
                data, dtype=dtype, device=self._named(device)
            ),
        )
        # optimizers group their tensors by the device C++ sees (the CPU, under a DeviceTensor):
        # name the card, as a real one is named, so a fused step's `found_inf.to(device)` stays on
        # it and is no copy
        group = torch.optim.Optimizer._group_tensors_by_device_and_dtype

        def grouped(tensorlistlist, with_indices=False):
            out = group(tensorlistlist, with_indices)
            first = lambda lists: next(t for ts in lists for t in ts if isinstance(t, torch.Tensor))  # noqa: E731
            return {
                (first(v[0]).device if dev is not None else dev, dt): v
                for (dev, dt), v in out.items()
            }

        name, opt = "_group_tensors_by_device_and_dtype", torch.optim.Optimizer
        # the staticmethod itself back, not its function
        p.callback(setattr, opt, name, opt.__dict__[name])
        setattr(opt, name, staticmethod(grouped))

    def _named(self, arg):
        if isinstance(arg, (str, torch.device)) and str(arg) == "cuda":
            return torch.device("cuda", self.current)
        return arg

    def _ordinal(self, device) -> int:
        d = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
        i = self.current if d.index is None else d.index
        if i >= self.n:
            raise RuntimeError("CUDA error: invalid device ordinal")
        return i

    def _set_device(self, device) -> None:
        self.current = self._ordinal(device)

    def _set_rng_state_all(self, states) -> None:
        # as torch: one state per card given, whatever the count here
        for i, s in enumerate(states):
            self.rng[self._ordinal(i)] = s.clone()

    def __enter__(self):
        self._patch()
        FakeCuda._active = self
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            FakeCuda._active = None
            self._patches.close()

    # -- counting ---------------------------------------------------------------------------------
    def count(self, kind: str) -> None:
        self.syncs[kind] += 1
        frame = sys._getframe(1)  # the innermost of kit's frames that led here
        while frame is not None and not frame.f_code.co_filename.startswith(KIT):
            frame = frame.f_back
        if frame is not None:
            self.sync_sites[f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {kind}"] += 1

    def total(self) -> int:
        return sum(self.syncs.values())

    # -- every op ---------------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return self.run(func, args, kwargs or {})

    def run(self, func, args, kwargs):
        flat = _leaves((args, kwargs))
        devs = {t.index for t in flat if isinstance(t, DeviceTensor)}
        hosts = [t for t in flat if isinstance(t, torch.Tensor) and not isinstance(t, DeviceTensor)]
        target = kwargs.get("device")
        target = None if target is None else torch.device(target)
        if target is not None and target.type == "cuda":
            target = torch.device("cuda", self._ordinal(target))
        self._check(func, args, devs, hosts, target)
        if func in SYNCING and devs:
            self.count(SYNCING[func])
        if func in INDEXING and devs and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                                             for i in _leaves(args[1])):
            self.count("boolean mask")
        if func in CROSS_DEVICE:
            self._count_copy(func, args, kwargs, devs, target)
        un = lambda t: t.elem if isinstance(t, DeviceTensor) else t  # noqa: E731
        args, kwargs = _map(un, args), _map(un, kwargs)
        if target is not None:
            kwargs = {**kwargs, "device": torch.device("cpu")}
        args = self._precision(func, args, devs)
        out = func(*args, **kwargs)
        if func in (aten.copy_.default,) and isinstance(flat[0], DeviceTensor):
            return flat[0]  # in place on the device tensor itself
        on_card = target.index if target is not None and target.type == "cuda" else None
        if on_card is None and (target is None or target.type != "cpu") and devs:
            on_card = next(iter(devs))
        if on_card is None:
            return out
        if func._schema.is_mutable and isinstance(flat[0], DeviceTensor) and out is args[0]:
            return flat[0]
        return _map(lambda t: DeviceTensor(t, on_card) if isinstance(t, torch.Tensor) else t, out)

    def _check(self, func, args, devs, hosts, target) -> None:
        if len(devs) > 1:
            a, b = sorted(devs)[:2]
            raise RuntimeError(
                f"Expected all tensors to be on the same device, but found at least two devices, "
                f"cuda:{a} and cuda:{b}!"
            )
        if not devs or func in CROSS_DEVICE:
            return
        if func in INDEXING:
            if not isinstance(args[0], DeviceTensor):  # a host tensor indexed by device indices
                raise RuntimeError(
                    "indices should be either on cpu or on the same device as the indexed tensor "
                    "(cpu)"
                )
            # host indices are copied over; host values are not
            hosts = [t for t in _leaves(args[2:]) if isinstance(t, torch.Tensor)
                     and not isinstance(t, DeviceTensor)]
            if hosts and func is not aten.index.Tensor:
                self.count("host-to-device copy")
        if any(t.dim() > 0 for t in hosts):
            raise RuntimeError(
                f"Expected all tensors to be on the same device, but found at least two devices, "
                f"cuda:{next(iter(devs))} and cpu! (when checking argument in {func})"
            )

    def _count_copy(self, func, args, kwargs, devs, target) -> None:
        if kwargs.get("non_blocking") or (len(args) > 2 and args[2] is True):
            return
        src = args[1] if func is aten.copy_.default else args[0]
        src_dev = isinstance(src, DeviceTensor)
        dst_dev = isinstance(args[0], DeviceTensor) if func is aten.copy_.default else (
            target.type == "cuda" if target is not None else src_dev)
        if src_dev != dst_dev:
            self.count("device-to-host copy" if src_dev else "host-to-device copy")

    def _precision(self, func, args, devs):
        if not devs or func not in LOW_PRECISION:
            return args
        dtype = self.autocast[-1] if self.autocast else None
        if dtype is not None:
            if dtype == torch.bfloat16 and self.capability < (8, 0):
                raise RuntimeError(
                    f"bf16 autocast on {self.name} (sm_{self.capability[0]}{self.capability[1]}): "
                    "no native bf16 there; use fp16 with a GradScaler"
                )
            # autocast computes in its dtype: the inputs are rounded to it here. They stay float32
            # (and so does the output), so autograd, which sits above this handler, sees the dtypes
            # it recorded.
            return tuple(
                a.to(dtype).float()
                if isinstance(a, torch.Tensor) and a.dtype == torch.float32
                else a
                for a in args
            )
        if self.capability >= (8, 0) and tf32_allowed("matmul" if func in MATMULS else "conv"):
            return tuple(
                _round_tf32(a) if isinstance(a, torch.Tensor) and a.dtype == torch.float32 else a
                for a in args
            )
        return args


def tf32_allowed(kind: str) -> bool:
    """Whether an Ampere card rounds float32 `kind` ("matmul" or "conv") inputs to TF32 now. Read
    through torch's per-backend settings (torch >= 2.9), which follow the legacy calls too and,
    unlike them, can be read whichever API the process used (reading `get_float32_matmul_precision`
    after the new API raises, as on a real card)."""
    b = torch.backends
    if not hasattr(b, "fp32_precision"):  # an older torch: the legacy settings are the only ones
        return (
            torch.get_float32_matmul_precision() != "highest"
            if kind == "matmul"
            else b.cudnn.allow_tf32
        )
    # cuDNN's default: tf32
    return (b.cuda.matmul if kind == "matmul" else b.cudnn.conv).fp32_precision == "tf32"


def _card() -> FakeCuda:
    if FakeCuda._active is None:
        raise RuntimeError("a DeviceTensor was used outside FakeCuda")
    return FakeCuda._active


# notebook 07 trains on CIFAR-10, which is not on this machine: a stand-in of its shape, 128 + 32
# images (the notebook's preset is `small`, whose ODC refuses under 10 images a cluster: its
# KIT_FAST K = 10 needs 100)
FAKE_CIFAR10 = """
import numpy as np, torchvision
class FakeCIFAR10:
    classes = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]
    def __init__(self, root, train=True, download=False, **kwargs):
        g = np.random.default_rng(int(train))
        n = 128 if train else 32
        self.data, self.targets = (
            g.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), g.integers(0, 10, n).tolist()
        )
torchvision.datasets.CIFAR10 = FakeCIFAR10
"""


def notebook_cells(cifar10: bool = False) -> tuple[str, str]:
    """The sources of a first cell that installs a card in a notebook's kernel (with a CIFAR-10
    stand-in if asked) and of a last cell that prints `card in use: True True` if the card was
    used."""
    first = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\nimport "
        "fake_cuda\nCARD = fake_cuda.install()" + (FAKE_CIFAR10 if cifar10 else "")
    )
    return first, "import torch; print('card in use:', torch.cuda.is_available(), CARD.total() > 0)"


def install(capability=(9, 0), count: int = 1) -> FakeCuda:
    """Enter a FakeCuda for the rest of the process (a notebook kernel's first cell)."""
    card = FakeCuda(capability, count)
    card.__enter__()
    return card


if __name__ == "__main__":  # pragma: no cover - `python tests/fake_cuda.py`: a smoke check
    with FakeCuda() as card:
        x = torch.ones(3).to("cuda:0")
        print(x.device, (x * 2).sum().item(), dict(card.syncs), file=sys.stderr)
