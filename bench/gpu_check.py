"""One command that proves kit on a GPU (issue 12): the GPU tests, the timings, then a table.

    python bench/gpu_check.py                 # on a CUDA machine (make gpu-check)
    python bench/gpu_check.py --dry           # tiny sizes and a ConvNet, any machine: how CI
                                              # checks this script
    python bench/gpu_check.py memory kmeans   # some sections
    python bench/gpu_check.py --out FILE.json # default bench/results/gpu_check.json, and FILE.md
                                              # beside it

Sections, in this order (the aims are the issue's, for a full run on one H100):
  tests        `pytest -m gpu tests/test_gpu.py`: a DeepCluster and an ODC epoch on CUDA (memory on
               the device, no host-device sync beyond the logged scalars), torch k-means vs faiss,
               autocast (bf16 or fp16, by the card) vs float32 loss, a checkpoint written on CUDA
               resumed on the CPU                                  aim: 0 failed, 0 skipped
  preset       `make demo`'s own preset (ConvNet, 28 px digits, batch 64) as it trains here: ms a
               step, tensor ops and waits for the device a step, and how busy the device is over an
               epoch (torch.profiler)
  precision    extraction for k-means in float32 (kit's) against TF32 allowed: time, and the NMI
               between the two k-means labelings (same seed)
  repeat       the same seed twice (the small preset, 2 epochs), without and with --deterministic:
               final losses' gap and the NMI between the two runs' last labels
                                                                   aim: 1 with the flag
  compile      `--compile` on the default preset: the compilation's seconds, then eager / compiled
               epoch time
  throughput   ResNet-18 (CIFAR stem) training images/s, 32 px uint8 images held on the device
  deepcluster  a DeepCluster epoch vs a supervised epoch, 20,000 images, ResNet-18, K = 100
                                                                   aim <= 1.35x
  odc          an ODC iteration vs a supervised iteration, the same size
                                                                   aim <= 1.05x
  kmeans       the torch k-means: 50k x 256, K = 1,000 (aim < 0.5 s); 1.28M x 256, K = 10,000
               (aim < 10 s)
  memory       ODC memory at ImageNet scale (N = 1.28M, D = 256, K = 10,000, batch 512): update and
               class_weights every iteration on fresh rows, fix_small_clusters when a cluster is
               small (as ODC does), recompute_centroids every 10th  aim <= 2 ms
  compare      `python -m kit compare --dataset digits --epochs 3` end to end in a fresh process
               (wall time)
  estimate     CIFAR-10, ResNet-18, both algorithms, 50 epochs, from the epochs measured above
                                                                   aim < 10 min
The whole run should take about 7.5 minutes on a T4 (`t4_plan`: an estimate from the card's
datasheet and each section's work, printed first; no T4 has run it).
The images are random uint8 tensors of CIFAR-10's shape and the digits ship with scikit-learn:
nothing is downloaded. Timings are medians of repeats after a warm-up, the device synchronised
around each; ratios compare runs interleaved in this one process (the trainers' own epochs,
per-epoch bookkeeping included). The exit status is 1 when a test fails or a section breaks;
a missed aim shows as FAIL in the table (and exits 1 with --strict).

On a GPU machine with Python 3.12 and torch but no package index (so no faiss, umap-learn or
mlxtend): on a machine that has one, download the wheels of faiss-cpu, umap-learn, pynndescent and
mlxtend into .whl/ with `python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12
--implementation cp --platform manylinux2014_x86_64 -d .whl faiss-cpu umap-learn pynndescent
mlxtend` (add `--platform manylinux_2_28_x86_64` or another manylinux tag where pip finds no match),
copy the repository with .whl/ to the GPU machine, and run from the repository's root:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
    PYTHONPATH=/tmp/site:$PWD python3 bench/gpu_check.py

kit need not be installed: the script puts the repository's root on sys.path.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[1]
# kit from this checkout, installed or not; bench/run.py
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import kit  # noqa: E402
from kit.parts.augment import COLOUR  # noqa: E402
from kit.parts.data import ImageTensorDataset  # noqa: E402
from kit.algorithms.memory import ODCMemory  # noqa: E402
from kit.parts.runtime import amp_dtype, prepare_model, resolve_device, set_threads  # noqa: E402
from kit.parts.sampling import replacement_indices  # noqa: E402
from kit.algorithms.supervised import supervised_epoch  # noqa: E402
from kit.algorithms.training import build_network, build_optimizer  # noqa: E402
from run import sync, timed  # noqa: E402  (bench/run.py: median of repeats, device synchronised)


@dataclass
class Sizes:
    """What each section runs on: the issue's sizes by default, `DRY` for a 2-core CPU."""

    backbone: str = "resnet18"  # CIFAR stem, as notebooks/07_gpu_cifar10
    # 40% of CIFAR-10's: every part of an epoch grows with N, so the ratios move
    n_images: int = 20_000
    # little with it, and 50,000 would not fit the run in 8 minutes on a T4 (`t4_plan`)
    image_size: int = 32  # CIFAR-10's
    batch_size: int = 256  # as notebooks/07_gpu_cifar10
    n_clusters: int = 100  # K for CIFAR-10, as notebooks/07_gpu_cifar10
    pca_dim: int = 64  # the small preset's
    min_cluster_size: int = 10  # ODC's small preset
    rounds: int = 3  # repeats of each short timing
    # interleaved A/B rounds of the epoch ratios (a 20,000-image ResNet-18 epoch: ~10 s on a T4,
    # `t4_plan`)
    epoch_rounds: int = 2
    throughput_steps: int = 20  # SGD steps per timed throughput repeat
    # (N, D, K), 20 iterations each
    kmeans: tuple = ((50_000, 256, 1_000), (1_281_167, 256, 10_000))
    memory: tuple = (1_281_167, 256, 10_000, 512)  # (N, D, K, batch): ImageNet, ODC's reference
    compare_epochs: int = 3  # of `kit compare --dataset digits`
    estimate_epochs: int = 50


CIFAR10 = 50_000  # images in CIFAR-10's training set


# -- how long the full run takes on a T4, by estimate (no T4 has run it) ---------------------------
# The rates assumed, from the T4's datasheet peaks (8.1 TFLOPS float32, 65 TFLOPS fp16 on tensor
# cores) and the work each section does; a user's card differs, and `make gpu-check` prints each
# section's own seconds.
T4 = {
    # ResNet-18 at 32 px under fp16 autocast: 3.3 GFLOP an image (torch's FLOP counter),
    # at a tenth of fp16's peak
    "train_images_s": 1_950,
    # forward only in float32 (kit's features for k-means): 1.1 GFLOP, half float32's peak
    "extract_images_s": 3_650,
    # k-means's distance products, float32, half the peak: 2 N K D a k-means iteration
    "kmeans_flops": 4e12,
    # memory bandwidth, 80% of 320 GB/s: k-means writes and reads an N x K float32 block an
    # iteration
    "bytes_s": 2.5e11,
    "cpu_flops": 5e10,  # a Colab-like host's two vCPUs (faiss on the CPU)
    # the small preset's epoch, launch-bound: 63 steps of a few ms on the host, + 0.5 s of host
    # work
    "preset_epoch_s": 1.5,
    # inductor compiling the ConvNet's forward and backward on two vCPUs (32 s on this 2-core CPU)
    "compile_s": 60,
    # the GPU tests in their own process: imports, and a few epochs of each algorithm on digits
    "pytest_s": 60,
    # a fresh Python process importing torch and kit (this script is one: counted in "tests")
    "process_s": 10,
}


def t4_plan(s: "Sizes") -> dict[str, float]:
    """Seconds each section of a full run should take on a T4 (see `T4`): an estimate, printed by
    every run. The tests keep its sum under 8 minutes as the sizes change (arithmetic on assumed
    rates, not a measurement)."""
    r, n = T4, s.n_images
    train, extract = n / r["train_images_s"], n / r["extract_images_s"]
    (n1, d1, k1), (n2, d2, k2) = s.kmeans

    def kmeans(n_, d_, k_):
        return (2 * n_ * k_ * d_ / r["kmeans_flops"] + 8 * n_ * k_ / r["bytes_s"]) * 20

    preset = r["preset_epoch_s"]
    return {
        # this script's own start, then the tests' process
        "tests": r["process_s"] + r["pytest_s"],
        # per algorithm: a warm-up, a counted, a timed and a profiled epoch (counts twice)
        "preset": 2 * 5 * preset,
        "precision": 0.0,  # a T4 has no TF32: the section says so and stops
        # 2 modes x 2 runs x 2 epochs of 2,000 digits, slower determinism
        "repeat": 2 * 2 * 2 * preset * 2_000 / 5_000 * 1.5,
        "compile": r["compile_s"] + (2 + 2 * s.epoch_rounds) * preset,
        "throughput": (1 + s.rounds) * s.throughput_steps * s.batch_size / r["train_images_s"],
        # a warm-up epoch of each side, then the rounds; 1 s of PCA and k-means a DeepCluster
        # epoch
        "deepcluster": (1 + s.epoch_rounds) * (extract + train + 1.0 + train),
        # the memory: ~5% of a step
        "odc": extract + (1 + s.epoch_rounds) * (train * 1.05 + train),
        "kmeans": (1 + 3) * kmeans(n1, d1, k1)
        + 2 * n1 * k1 * d1 * 20 / r["cpu_flops"]
        + kmeans(n2, d2, k2),
        # 1.28M rows: bandwidth-bound updates, ~100 timed iterations of a few ms
        "memory": 10.0,
        # 1 s monitor; UMAP and report 40 s
        "compare": r["process_s"] + s.compare_epochs * 2 * (preset + 1.0) + 40,
        "estimate": 0.0,
    }


# the dry run checks the script, not the network: a ConvNet, since ResNet-18's 11M parameters
# alone make a CPU step last a second whatever the image size
DRY = Sizes(
    backbone="convnet",
    n_images=64,
    image_size=8,
    batch_size=16,
    n_clusters=4,
    pca_dim=8,
    min_cluster_size=2,
    rounds=1,
    epoch_rounds=1,
    throughput_steps=2,
    kmeans=((2_000, 32, 20), (5_000, 32, 50)),
    memory=(20_000, 32, 200, 64),
    compare_epochs=1,
)


@dataclass
class Bench:
    sizes: Sizes
    device: torch.device
    dry: bool
    results: dict = field(default_factory=dict)  # section -> {"status", "seconds", "figures"}
    _data: ImageTensorDataset | None = None

    def data(self) -> ImageTensorDataset:
        """Random uint8 images of CIFAR-10's shape (N, 3, 32, 32), made once and shared by the
        sections."""
        if self._data is None:
            s, g = self.sizes, torch.Generator().manual_seed(0)
            images = torch.randint(
                0, 256, (s.n_images, 3, s.image_size, s.image_size), dtype=torch.uint8, generator=g
            )
            self._data = ImageTensorDataset(
                images,
                torch.randint(10, (s.n_images,), generator=g),
                (0.4914, 0.4822, 0.4465),
                (0.2470, 0.2435, 0.2616),
                "cifar-like",
                COLOUR,
            )
        return self._data

    def figures(self, section: str) -> dict:
        return self.results.get(section, {}).get("figures", {})


def child_env(**extra) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return env


# -- the sections --------------------------------------------------------------------------------
def section_tests(b: Bench) -> dict:
    """The `gpu` tests in a fresh process; counts from its JUnit report."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-rs",
                "-m",
                "gpu",
                "-p",
                "no:cacheprovider",
                f"--junitxml={xml}",
                "tests/test_gpu.py",
            ],
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
        )
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        print("\n".join("    " + line for line in lines[-20:]))
        if not xml.exists():
            raise RuntimeError(
                f"pytest wrote no report (exit {proc.returncode}): {proc.stderr[-500:]}"
            )
        suite = ElementTree.parse(xml).getroot()
        suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
        n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = n["failures"] + n["errors"]
    return {"passed": n["tests"] - failed - n["skipped"], "failed": failed, "skipped": n["skipped"]}


def section_throughput(b: Bench) -> dict:
    s, ds, dev = b.sizes, b.data(), b.device
    net = prepare_model(
        kit.ClusterNet(kit.build_backbone(s.backbone, 3, image_size=s.image_size), s.n_clusters),
        dev,
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    targets = torch.randint(s.n_clusters, (len(ds),), device=dev)
    order = torch.randint(len(ds), (s.throughput_steps * s.batch_size,))
    t = timed(
        lambda: supervised_epoch(net, opt, ds, order, s.batch_size, targets, dev), repeat=s.rounds
    )
    print(
        f"{s.backbone} {s.image_size} px, batch {s.batch_size}, augmentation on the device, "
        f"{amp_dtype(dev) or 'float32'} ({'autocast' if amp_dtype(dev) else 'no autocast'}), the "
        f"losses read together as the trainers do: {len(order) / t:,.0f} img/s"
    )
    return {"images_per_s": len(order) / t}


def _interleaved(a, b, rounds: int) -> tuple[float, float]:
    """Medians of `rounds` alternating timings of a() and b(), so drift in the machine hits both
    alike."""
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(timed(a, repeat=1, warmup=0))
        tb.append(timed(b, repeat=1, warmup=0))
    return statistics.median(ta), statistics.median(tb)


def section_deepcluster(b: Bench) -> dict:
    s, ds, dev = b.sizes, b.data(), b.device
    cfg = kit.DeepClusterConfig.small(
        backbone=s.backbone,
        n_clusters=s.n_clusters,
        batch_size=s.batch_size,
        pca_dim=s.pca_dim,
        eval_every=0,
        device=str(dev),
    )
    dc = kit.DeepCluster(cfg)
    # the same network, trained on fixed labels
    net = prepare_model(build_network(cfg, ds, neck=False), dev)
    opt, order = build_optimizer(net, cfg), torch.randperm(len(ds))
    targets = torch.randint(s.n_clusters, (len(ds),), device=dev)
    sup = lambda: supervised_epoch(net, opt, ds, order, cfg.batch_size, targets, dev)  # noqa: E731
    dc.fit(ds, epochs=1), sup()  # warm-up: a cold first epoch of either side would tilt the ratio
    t_sup, t_dc = _interleaved(sup, lambda: dc.fit(ds, epochs=dc.epoch + 1), s.epoch_rounds)
    timed_epochs = dc.history["epoch"][1:]
    parts = {
        k: statistics.median(r[k] for r in timed_epochs)
        for k in ("time_extract", "time_cluster", "time_train")
    }
    # the epoch's record: agreement, sizes, collapse signals
    parts["time_metrics"] = max(0.0, t_dc - sum(parts.values()))
    print(
        f"supervised epoch {t_sup:.2f} s, DeepCluster epoch {t_dc:.2f} s = extract "
        f"{parts['time_extract']:.2f} + PCA/k-means {parts['time_cluster']:.2f} + train "
        f"{parts['time_train']:.2f} + metrics and bookkeeping {parts['time_metrics']:.2f} (medians "
        f"of {s.epoch_rounds}; both sides read their losses together); ratio {t_dc / t_sup:.2f}x"
    )
    return {
        "supervised_epoch_s": t_sup,
        "deepcluster_epoch_s": t_dc,
        **{k[5:] + "_s": v for k, v in parts.items()},
        "ratio": t_dc / t_sup,
    }


def section_odc(b: Bench) -> dict:
    s, ds, dev = b.sizes, b.data(), b.device
    cfg = kit.ODCConfig.small(backbone=s.backbone, n_clusters=s.n_clusters, batch_size=s.batch_size,
                              min_cluster_size=s.min_cluster_size, eval_every=0, device=str(dev))
    odc = kit.ODC(cfg)
    net = prepare_model(build_network(cfg, ds, neck=True), dev)
    # as many draws as ODC's epoch
    opt, order = build_optimizer(net, cfg), replacement_indices(len(ds))
    targets = torch.randint(s.n_clusters, (len(ds),), device=dev)
    sup = lambda: supervised_epoch(net, opt, ds, order, cfg.batch_size, targets, dev)  # noqa: E731
    odc.fit(ds, epochs=1), sup()  # the memory's initialisation and a warm-up epoch of each side
    t_sup, t_odc = _interleaved(sup, lambda: odc.fit(ds, epochs=odc.epoch + 1), s.epoch_rounds)
    # a last batch of one is skipped
    n_iter = len(ds) // cfg.batch_size + (len(ds) % cfg.batch_size >= 2)
    print(
        f"memory initialisation {odc.history['init']['time']:.2f} s (once); per iteration: "
        f"supervised {t_sup / n_iter * 1e3:.1f} ms, ODC {t_odc / n_iter * 1e3:.1f} ms ({n_iter} "
        f"per epoch); ratio {t_odc / t_sup:.3f}x"
    )
    return {
        "supervised_iteration_ms": t_sup / n_iter * 1e3,
        "odc_iteration_ms": t_odc / n_iter * 1e3,
        "odc_epoch_s": t_odc,
        "init_s": odc.history["init"]["time"],
        "ratio": t_odc / t_sup,
        "memory_on_device": float(odc.memory.features.device.type == dev.type),
    }


def section_kmeans(b: Bench) -> dict | str:
    from kit.parts.clustering import KMeans

    out, g = {}, torch.Generator(device=b.device).manual_seed(0)
    for i, (n, d, k) in enumerate(b.sizes.kmeans):
        # (N, D), L2 rows as DeepCluster's
        x = F.normalize(torch.randn(n, d, device=b.device, generator=g), dim=1)
        km = KMeans(k, n_iter=20, seed=0, backend="torch")
        fit = lambda km=km, x=x: km.fit(x)  # noqa: E731 - bound now: `x` is deleted at the loop's end
        t = timed(fit, repeat=3) if i == 0 else timed(fit, repeat=1, warmup=0)
        out[f"torch_s_{n}x{d}_k{k}"], out[f"iterations_{n}x{d}_k{k}"] = t, len(km.objective_)
        line = (
            f"N={n:>9,} D={d} K={k:>6,}: torch on {b.device.type} {t:7.3f} s "
            f"({len(km.objective_)} iterations)"
        )
        if i == 0:  # faiss on the CPU, the same features, for reference
            xc = x.cpu().numpy()
            tf = timed(
                lambda: KMeans(k, n_iter=20, seed=0, backend="faiss").fit(xc), repeat=1, warmup=0
            )
            out["faiss_cpu_s_small"] = tf
            line += f"   faiss on the CPU {tf:7.3f} s ({tf / t:.1f}x)"
        print(line)
        del x
    keys = [key for key in out if key.startswith("torch_s")]
    return {"small_s": out[keys[0]], "large_s": out[keys[1]], **out}


def section_memory(b: Bench) -> dict:
    n, d, k, batch = b.sizes.memory
    dev, g = b.device, torch.Generator(device=b.device).manual_seed(0)
    mem = ODCMemory(n, d, k, min_cluster_size=20).to(dev)
    t = time.perf_counter()
    mem.init(
        torch.rand(n, d, device=dev, generator=g), torch.randint(k, (n,), device=dev, generator=g)
    )
    sync()
    t_init = time.perf_counter() - t
    # fresh rows every iteration, as an epoch's are
    idx = torch.randint(n, (50, batch), device=dev, generator=g)
    z = torch.rand(50, batch, d, device=dev, generator=g)
    step = iter(range(10**9))

    def ten_iterations():  # what ODC does to its memory, centroid_interval = 10
        for i in range(10):
            j = next(step) % len(idx)
            mem.update(idx[j], z[j])
            # ODC reads this count with its loss, and fixes only when one is small
            if mem.small_clusters().any():
                mem.fix_small_clusters()
            mem.class_weights()
            if i == 9:
                mem.recompute_centroids()

    per_iter = timed(ten_iterations, repeat=5) / 10
    parts = {
        "update_ms": lambda: mem.update(idx[0], z[0]),
        "fix_small_clusters_ms": mem.fix_small_clusters,
        "class_weights_ms": mem.class_weights,
        "recompute_centroids_ms": mem.recompute_centroids,
    }
    parts = {name: timed(fn, repeat=5) * 1e3 for name, fn in parts.items()}
    print(f"N={n:,} D={d} K={k:,} batch {batch} on {dev.type}: init {t_init:.2f} s; " +
          ", ".join(f"{name[:-3]} {v:.2f} ms" for name, v in parts.items()) +
          f"; per iteration, amortised: {per_iter * 1e3:.2f} ms")
    return {"ms_per_iteration": per_iter * 1e3, "init_s": t_init, **parts}


def section_compare(b: Bench) -> dict:
    epochs = b.sizes.compare_epochs
    env = child_env(
        NUMBA_CACHE_DIR=os.environ.get("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    )
    env.pop("KIT_FAST", None)
    smaller = []
    if b.dry:  # KIT_FAST's preset on 200 images at K = 10 (20 a cluster: ODC's fast preset refuses
        env["KIT_FAST"] = "1"  # under 5 and warns under 10)
        smaller = ["--n-train", "200", "--n-clusters", "10"]
    with tempfile.TemporaryDirectory() as runs:
        t = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "kit",
                "compare",
                "--dataset",
                "digits",
                "--epochs",
                str(epochs),
                "--device",
                str(b.device),
                "--name",
                "gpu-check",
                "--runs",
                runs,
                *smaller,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"kit compare exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    print(
        f"`python -m kit compare --dataset digits --epochs {epochs}` on {b.device.type}: "
        f"{wall:.1f} s wall"
    )
    return {"wall_s": wall, "epochs": epochs}


def section_estimate(b: Bench) -> dict:
    dc, odc, e = b.figures("deepcluster"), b.figures("odc"), b.sizes.estimate_epochs
    if "deepcluster_epoch_s" not in dc or "odc_epoch_s" not in odc:
        raise RuntimeError("needs the deepcluster and odc sections' epoch times")
    # an epoch's work grows with N: extraction, training, k-means's passes
    scale = CIFAR10 / b.sizes.n_images
    minutes = (e * (dc["deepcluster_epoch_s"] + odc["odc_epoch_s"]) + odc["init_s"]) * scale / 60
    print(
        f"{e} epochs x (DeepCluster {dc['deepcluster_epoch_s']:.2f} s + ODC "
        f"{odc['odc_epoch_s']:.2f} s) + ODC's initialisation {odc['init_s']:.2f} s, measured on "
        f"{b.sizes.n_images:,} images, times {scale:g} for CIFAR-10's {CIFAR10:,} = {minutes:.1f} "
        "min (no monitoring, figures or UMAP)"
    )
    return {"minutes": minutes, "epochs": e}


def section_preset(b: Bench) -> dict:
    """`make demo`'s own preset (the small ConvNet on the 28 px digits, batch 64), as it trains on
    this device: ms a step, tensor ops and host-device waits a step, and how busy the device is over
    an epoch (torch.profiler: the device's kernel time over the epoch's wall time; on the CPU, the
    share of its wall time in aten ops)."""
    from torch.profiler import ProfilerActivity, profile

    from step_ops import Ops  # bench/step_ops.py's op counter

    data = kit.load_dataset("mnist5k", n=256 if b.dry else None)
    cuda = b.device.type == "cuda"
    out = {}
    for algo, (make, config) in {"deepcluster": (kit.DeepCluster, kit.DeepClusterConfig),
                                 "odc": (kit.ODC, kit.ODCConfig)}.items():
        cfg = (config.fast if b.dry else config.small)(eval_every=0, device=str(b.device))
        trainer, steps = make(cfg), []
        count = lambda r: steps.append(r) if r["kind"] == "step" else None  # noqa: E731
        # warm-up: ODC's initial k-means, first-call allocations, cuDNN's choices
        trainer.fit(data, epochs=1)
        syncs = 0
        if cuda:
            torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught, Ops() as ops:
                warnings.simplefilter("always")
                ops.on = True
                trainer.fit(data, epochs=2, callback=count)
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
        syncs = sum("synchroniz" in str(w.message) for w in caught)
        n = max(len(steps), 1)
        sync()
        t = time.perf_counter()
        trainer.fit(data, epochs=3)  # timed without the profiler, which slows the host
        sync()
        wall = time.perf_counter() - t
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        t = time.perf_counter()
        with profile(activities=acts) as prof:
            trainer.fit(data, epochs=4)
            sync()
        profiled = time.perf_counter() - t
        kernel = torch.autograd.DeviceType.CUDA if cuda else torch.autograd.DeviceType.CPU
        # kernels alone: launches not counted again
        events = [e for e in prof.key_averages() if e.device_type == kernel]
        busy = (
            (
                sum(e.self_device_time_total for e in events)
                if cuda
                else sum(e.self_cpu_time_total for e in events if e.key.startswith("aten::"))
            )
            / 1e6
            / profiled
        )
        out.update({f"{algo}_ms_per_step": wall / n * 1e3, f"{algo}_ops_per_step": ops.n / n,
                    f"{algo}_syncs_per_step": syncs / n, f"{algo}_busy_share": busy})
        print(
            f"{algo}, {n} steps an epoch: {wall / n * 1e3:.2f} ms, {ops.n / n:.0f} tensor ops and "
            f"{syncs / n:.1f} waits for the device a step (the epoch's extraction, clustering and "
            f"bookkeeping spread over its steps); {'the GPU' if cuda else 'the CPU in aten ops'} "
            f"busy {busy:.0%} of the epoch"
        )
    return out


def section_precision(b: Bench) -> dict:
    """Feature extraction for k-means as kit does it (float32: no TF32, no autocast) against the
    same network with TF32 allowed, as a user's `set_float32_matmul_precision("high")` would have it
    without kit's guard: the time of each, how far the features move, and the NMI between the two
    k-means labelings (same seed)."""
    from kit.parts import features as kf
    from kit.parts.clustering import KMeans, preprocess_features
    from kit.parts.metrics import nmi

    s, ds, dev = b.sizes, b.data(), b.device
    if dev.type == "cuda" and torch.cuda.get_device_capability(dev)[0] < 8:
        return "no TF32 on this card (before Ampere): float32 is all it has, nothing to compare"
    net = prepare_model(
        kit.ClusterNet(kit.build_backbone(s.backbone, 3, image_size=s.image_size), s.n_clusters),
        dev,
    )
    exact = lambda: kf.extract_features(net, ds, device=dev)  # noqa: E731 - kit's own path

    # the same path without kit's guard, TF32 allowed as an Ampere user's code would allow it
    def tf32():
        before, guard = (
            (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32),
            kf.full_precision,
        )
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True
        kf.full_precision = lambda device=None: contextlib.nullcontext()
        try:
            return kf.extract_features(net, ds, device=dev)
        finally:
            kf.full_precision = guard
            torch.set_float32_matmul_precision(before[0])
            torch.backends.cudnn.allow_tf32 = before[1]

    a, b32 = exact(), tf32()  # warm-up, and the features compared
    t_exact, t_tf32 = _interleaved(exact, tf32, s.rounds)
    labels = [
        KMeans(s.n_clusters, n_iter=20, seed=0).fit(preprocess_features(f, s.pca_dim)).labels_
        for f in (a, b32)
    ]
    drift = float(abs(a - b32).max() / (abs(a).max() + 1e-12))
    agree = nmi(labels[0], labels[1])
    print(f"extraction of {len(ds):,} images: float32 {t_exact:.3f} s, TF32 allowed {t_tf32:.3f} s "
          f"({t_exact / t_tf32:.2f}x); features moved by up to {drift:.1e} of their largest value; "
          f"NMI between the two k-means labelings {agree:.3f}")
    return {
        "float32_s": t_exact,
        "tf32_s": t_tf32,
        "ratio": t_exact / t_tf32,
        "relative_drift": drift,
        "nmi_between_labelings": agree,
    }


def section_repeat(b: Bench) -> dict:
    """The same seed twice on this device, without and with `--deterministic`: how far two runs of
    the small preset end apart (final loss, NMI between their final pseudo-labels). On the CPU both
    are exact."""
    from kit.parts.metrics import nmi
    from kit.parts.runtime import deterministic

    data = kit.load_dataset("mnist5k", n=256 if b.dry else 2000)

    def cfg():
        return kit.DeepClusterConfig.small(
            eval_every=0, device=str(b.device), n_clusters=10 if b.dry else 30
        )

    out = {}
    for mode, hold in (("default", contextlib.nullcontext), ("deterministic", deterministic)):
        runs = []
        for _ in range(2):
            with hold():
                h = kit.DeepCluster(cfg()).fit(data, epochs=2)
            runs.append(h)
        gap = abs(runs[0]["epoch"][-1]["loss"] - runs[1]["epoch"][-1]["loss"])
        agree = nmi(runs[0]["labels"][-1], runs[1]["labels"][-1])
        out.update({f"{mode}_loss_gap": gap, f"{mode}_nmi": agree})
        print(
            f"{mode}: final losses {gap:.2e} apart, NMI between the two runs' last labels "
            f"{agree:.4f}"
        )
    return out


def section_compile(b: Bench) -> dict:
    """`--compile` on the default preset (DeepCluster, the small ConvNet on 28 px digits, batch 64):
    the first epoch's extra time (the compilation), then eager and compiled epochs interleaved.
    3,968 of the train split's 4,000 images, 62 full batches an epoch: one batch shape, one graph
    (counted). ODC's compiled step is checked on the CPU by the tests, not timed here."""
    from torch._dynamo.utils import counters

    from kit.parts.runtime import compiled_steps

    data = kit.load_dataset("mnist5k", n=256 if b.dry else 3968)
    cfg = lambda: kit.DeepClusterConfig.small(eval_every=0, device=str(b.device), reassign=1.0)  # noqa: E731
    eager = kit.DeepCluster(cfg())
    t_first_eager = timed(lambda: eager.fit(data, epochs=1), repeat=1, warmup=0)
    graphs = counters["stats"]["unique_graphs"]
    # the dry run checks the script, not code generation
    with compiled_steps("aot_eager" if b.dry else "inductor"):
        compiled = kit.DeepCluster(cfg())
        t_first = timed(lambda: compiled.fit(data, epochs=1), repeat=1, warmup=0)
        t_eager, t_compiled = _interleaved(
            lambda: eager.fit(data, epochs=eager.epoch + 1),
            lambda: compiled.fit(data, epochs=compiled.epoch + 1),
            b.sizes.epoch_rounds,
        )
    steps = len(compiled.history["step"]["loss"]) // compiled.epoch
    graphs = counters["stats"]["unique_graphs"] - graphs
    print(
        f"compilation {t_first - t_first_eager:.1f} s (first epoch {t_first:.1f} s against "
        f"{t_first_eager:.1f} s eager); then an epoch {t_eager:.2f} s eager, {t_compiled:.2f} s "
        f"compiled ({t_eager / t_compiled:.2f}x), {steps} steps an epoch, {graphs} graph(s) "
        "compiled, extraction and k-means included and not compiled"
    )
    return {
        "compile_s": t_first - t_first_eager,
        "eager_epoch_s": t_eager,
        "compiled_epoch_s": t_compiled,
        "speedup": t_eager / t_compiled,
        "graphs": graphs,
    }


SECTIONS = {
    "tests": section_tests,
    "preset": section_preset,
    "precision": section_precision,
    "repeat": section_repeat,
    "compile": section_compile,
    "throughput": section_throughput,
    "deepcluster": section_deepcluster,
    "odc": section_odc,
    "kmeans": section_kmeans,
    "memory": section_memory,
    "compare": section_compare,
    "estimate": section_estimate,
}


# -- the table -----------------------------------------------------------------------------------
def rows(s: Sizes) -> list[tuple]:
    """(section, figure key, what, format, aim) with aim = (comparison, bound) or None."""
    (n1, d1, k1), (n2, d2, k2) = s.kmeans
    n, d, k, batch = s.memory
    return [
        ("tests", "failed", "GPU tests failed", "{:.0f}", ("==", 0)),
        ("tests", "skipped", "GPU tests skipped", "{:.0f}", ("==", 0)),
        (
            "preset",
            "deepcluster_ms_per_step",
            "the default preset: DeepCluster ms a step (epoch's host work in)",
            "{:.2f}",
            None,
        ),
        (
            "preset",
            "odc_ms_per_step",
            "the default preset: ODC ms a step (epoch's host work in)",
            "{:.2f}",
            None,
        ),
        (
            "preset",
            "deepcluster_busy_share",
            "the default preset: device busy over a DeepCluster epoch",
            "{:.0%}",
            None,
        ),
        (
            "preset",
            "odc_busy_share",
            "the default preset: device busy over an ODC epoch",
            "{:.0%}",
            None,
        ),
        (
            "precision",
            "nmi_between_labelings",
            "NMI between k-means on float32 and on TF32 features (same seed)",
            "{:.3f}",
            None,
        ),
        ("precision", "ratio", "extraction time, float32 / TF32", "{:.2f}x", None),
        (
            "repeat",
            "default_nmi",
            "the same seed twice: NMI between the two runs' last labels",
            "{:.4f}",
            None,
        ),
        ("repeat", "deterministic_nmi", "the same, --deterministic", "{:.4f}", ("==", 1)),
        (
            "compile",
            "speedup",
            "the default preset's DeepCluster epoch, eager / --compile",
            "{:.2f}x",
            None,
        ),
        ("compile", "compile_s", "--compile's compilation, s", "{:.1f}", None),
        (
            "throughput",
            "images_per_s",
            f"{s.backbone} training, {s.image_size} px, img/s",
            "{:,.0f}",
            None,
        ),
        (
            "deepcluster",
            "ratio",
            f"DeepCluster / supervised epoch ({s.n_images:,} images, {s.backbone})",
            "{:.2f}x",
            ("<=", 1.35),
        ),
        (
            "odc",
            "ratio",
            f"ODC / supervised iteration ({s.n_images:,} images, {s.backbone})",
            "{:.3f}x",
            ("<=", 1.05),
        ),
        ("kmeans", "small_s", f"torch k-means {n1:,} x {d1}, K = {k1:,}, s", "{:.3f}", ("<", 0.5)),
        ("kmeans", "large_s", f"torch k-means {n2:,} x {d2}, K = {k2:,}, s", "{:.2f}", ("<", 10)),
        (
            "memory",
            "ms_per_iteration",
            f"ODC memory per iteration (N = {n:,}, K = {k:,}, batch {batch}), ms",
            "{:.2f}",
            ("<=", 2),
        ),
        (
            "compare",
            "wall_s",
            f"kit compare --dataset digits, {s.compare_epochs} epochs, s",
            "{:.1f}",
            None,
        ),
        (
            "estimate",
            "minutes",
            f"estimate: {CIFAR10:,} images, {s.backbone}, both, {s.estimate_epochs} epochs, min",
            "{:.1f}",
            ("<", 10),
        ),
    ]


def table(b: Bench) -> list[list[str]]:
    out = []
    for section, key, what, fmt, aim in rows(b.sizes):
        r = b.results.get(section)
        value = (r or {}).get("figures", {}).get(key)
        aim_text = "—" if aim is None else f"{aim[0]} {aim[1]:g}"
        if value is None:
            verdict, shown = (
                "not measured",
                "—" if r is None else r["status"][:40].replace("|", "/"),
            )
        else:
            shown = fmt.format(value)
            ok = (
                aim is not None
                and {"==": value == aim[1], "<=": value <= aim[1], "<": value < aim[1]}[aim[0]]
            )
            if aim is None:
                verdict = "—"
            elif key == "skipped" and b.device.type != "cuda":
                verdict = "— (no CUDA)"
            elif b.dry and section != "tests":
                verdict = "— (dry)"
            else:
                verdict = "pass" if ok else "FAIL"
        out.append([what, shown, aim_text, verdict])
    return out


def markdown(cells: list[list[str]]) -> str:
    lines = ["| figure | value | aim | verdict |", "|---|---|---|---|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "sections", nargs="*", help=f"any of {', '.join(SECTIONS)} (default: all, in this order)"
    )
    p.add_argument(
        "--dry", action="store_true", help="tiny sizes, any device: checks that every section runs"
    )
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_check.json"),
                   help="where the figures go (JSON); the table goes beside it (.md)")
    p.add_argument("--device", default="auto")
    p.add_argument("--strict", action="store_true", help="exit 1 when an aim is missed too")
    a = p.parse_args(argv)
    unknown = sorted(set(a.sections) - set(SECTIONS))
    if unknown:
        p.error(f"unknown section(s) {' '.join(unknown)}: choose from {' '.join(SECTIONS)}")
    set_threads()
    b = Bench(DRY if a.dry else Sizes(), resolve_device(a.device), a.dry)
    # bench/run.py's sync() waits for the current card: make it the one measured
    if b.device.type == "cuda":
        torch.cuda.set_device(b.device)
    print(
        f"# kit GPU check on {device_name(b.device)}, torch {torch.__version__}, Python "
        f"{platform.python_version()}"
    )
    if b.device.type != "cuda" and not a.dry:
        print(
            "no CUDA device here: the full sizes would take hours. Run with --dry (tiny sizes), "
            "or on a GPU."
        )
        return 2
    plan = t4_plan(Sizes())
    if a.dry:
        print(
            "DRY RUN: tiny sizes, to check that every section runs; the aims are for a full run "
            "on a GPU"
        )
    print(
        f"a full run on a T4, by estimate: {sum(plan.values()) / 60:.1f} min ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in plan.items() if v)
        + "; the rates assumed: bench/gpu_check.py, T4)"
    )
    for name in a.sections or list(SECTIONS):
        print(f"\n## {name}")
        t = time.perf_counter()
        try:
            figures = SECTIONS[name](b)
            status = "ok" if isinstance(figures, dict) else figures
            if status != "ok":
                print(status)
        except Exception as e:  # noqa: BLE001 - one broken section must not hide the others' figures
            traceback.print_exc()
            figures, status = {}, f"error: {type(e).__name__}: {e}"
        b.results[name] = {"status": status, "seconds": time.perf_counter() - t,
                           "figures": figures if isinstance(figures, dict) else {}}
        if b.device.type == "cuda":
            torch.cuda.empty_cache()
    cells = table(b)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "device": device_name(b.device),
                "torch": torch.__version__,
                "dry": a.dry,
                "t4_plan_s": plan,
                "sizes": asdict(b.sizes),
                "sections": b.results,
                "table": cells,
            },
            indent=1,
        )
    )
    out.with_suffix(".md").write_text(
        f"kit GPU check on {device_name(b.device)}{' (dry run)' if a.dry else ''}\n\n"
        + markdown(cells)
        + "\n"
    )
    print(f"\nfigures: {out}, table: {out.with_suffix('.md')}\n")
    print(markdown(cells))
    broken = (
        any(r["status"].startswith("error") for r in b.results.values())
        or b.figures("tests").get("failed", 0) > 0
    )
    return 1 if broken or (a.strict and any(row[3] == "FAIL" for row in cells)) else 0


if __name__ == "__main__":
    sys.exit(main())
