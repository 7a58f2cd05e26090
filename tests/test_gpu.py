"""kit's CUDA path (issue 12): both trainers, the torch k-means, bf16 autocast and a CUDA -> CPU
resume.

Every test marked `gpu` is skipped with the reason "needs CUDA" on a machine without one; on a GPU
machine `python bench/gpu_check.py` runs them (`pytest -m gpu tests/test_gpu.py`) before its
timings. The last test is not marked `gpu`: it runs the check itself at tiny sizes (`--dry`), as CI
does.
"""
import json
import math
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kit
from kit.parts.metrics import nmi
from kit.parts.runtime import amp_dtype, autocast, prepare_model
from conftest import SESSION_ENV, tiny_dc_config, tiny_odc_config

ROOT = Path(__file__).resolve().parents[1]


def gpu(test):
    """Marked `gpu` (selected by `pytest -m gpu`) and skipped where there is no CUDA device."""
    return pytest.mark.gpu(
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")(test)
    )


@pytest.fixture(scope="module")
def digits():
    # 1,438 16x16 images inside scikit-learn: nothing is downloaded
    return kit.load_dataset("digits")


class SyncWindow:
    """A `fit` callback that turns CUDA's sync debug mode on for `n` iterations, from the end of
    step `start` to the end of step `start + n`, so every host-device synchronisation inside those
    iterations (an `.item()`, a blocking copy, a data-dependent shape) raises a warning.
    Read `syncs(caught)` afterwards, `caught` being the warnings recorded around `fit`."""

    def __init__(self, start: int, n: int):
        self.start, self.n, self.step, self.bounds = start, n, 0, []

    def __call__(self, record: dict, caught: list) -> None:
        if record["kind"] != "step":
            return
        self.step += 1
        if self.step == self.start:
            self.bounds.append(len(caught))
            torch.cuda.set_sync_debug_mode("warn")
        elif self.step == self.start + self.n:
            self.bounds.append(len(caught))
            torch.cuda.set_sync_debug_mode("default")

    def syncs(self, caught: list) -> Counter:
        """Synchronising calls in the window, counted by the line of kit that made them."""
        assert len(self.bounds) == 2, f"the window never closed: only {self.step} steps ran"
        inside = caught[self.bounds[0] : self.bounds[1]]
        return Counter(
            f"{Path(w.filename).name}:{w.lineno}" for w in inside if "synchroniz" in str(w.message)
        )


def fit_counting_syncs(trainer, dataset, epochs: int, window: SyncWindow) -> Counter:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            trainer.fit(dataset, epochs=epochs, callback=lambda r: window(r, caught))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return window.syncs(caught)


def check_syncs(syncs: Counter, n_iter: int, logged: int) -> None:
    """No host-device synchronisation per iteration beyond the `logged` scalars (`.item()`s)."""
    total = sum(syncs.values())
    # loss.item()
    assert total >= n_iter, f"the counter saw {total} syncs in {n_iter} iterations: is it working?"
    assert total <= logged * n_iter, (
        f"{total / n_iter:.1f} host-device syncs per iteration, but only {logged} "
        f"scalar(s) are logged; by line over {n_iter} iterations: {dict(syncs)}"
    )


@gpu
def test_deepcluster_epoch_on_cuda(digits):
    dc = kit.DeepCluster(tiny_dc_config(device="cuda"))
    steps = math.ceil(len(digits) / dc.config.batch_size)  # reassign = 1: N samples per epoch
    # inside epoch 2: warm
    syncs = fit_counting_syncs(dc, digits, 2, SyncWindow(start=steps + 3, n=10))
    h = dc.history
    assert all(math.isfinite(r["loss"]) for r in h["epoch"])
    assert h["labels"][-1].shape == (len(digits),) and h["labels"][-1].max() < dc.config.n_clusters
    assert next(dc.model.parameters()).is_cuda
    conv = next(m for m in dc.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    check_syncs(syncs, 10, logged=1)  # the loss


@gpu
def test_odc_epoch_on_cuda_keeps_the_memory_on_the_device(digits):
    odc = kit.ODC(tiny_odc_config(device="cuda"))
    steps = math.ceil(len(digits) / odc.config.batch_size)
    syncs = fit_counting_syncs(odc, digits, 2, SyncWindow(start=steps + 3, n=10))
    mem = odc.memory
    assert {b.device.type for b in (mem.features, mem.labels, mem.centroids)} == {"cuda"}
    assert mem.labels.shape == (len(digits),) and mem.features.shape[0] == len(digits)
    assert all(
        math.isfinite(r["loss"]) and math.isfinite(r["change_ratio"]) for r in odc.history["epoch"]
    )
    assert torch.isfinite(mem.features).all() and torch.isfinite(mem.centroids).all()
    # one read of the loss and change_ratio; a small-cluster fix may add one
    check_syncs(syncs, 10, logged=2)


def blobs(n: int, d: int, k: int, device, seed: int = 0) -> torch.Tensor:
    """k Gaussian blobs in d dimensions, on the device: a partition k-means recovers reliably."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 2
    return (centres[torch.randint(k, (n,), generator=g)] + 0.5 * torch.randn(n, d, generator=g)).to(
        device
    )


@gpu
def test_torch_kmeans_on_cuda_matches_faiss():
    from kit.parts.clustering import KMeans

    x = blobs(20_000, 64, 50, "cuda")  # (N, D) float32 on the GPU
    g = torch.Generator().manual_seed(3)
    # the same K starting points
    init = x[torch.randperm(len(x), generator=g)[:50].cuda()].cpu().numpy()
    # auto: torch, because x is on CUDA
    tk = KMeans(50, n_iter=20, seed=3, init_centroids=init).fit(x)
    fk = KMeans(50, n_iter=20, seed=3, backend="faiss", init_centroids=init).fit(x.cpu().numpy())
    assert tk.backend_ == "torch" and fk.backend_ == "faiss"
    labels = np.asarray(tk.labels_.cpu() if isinstance(tk.labels_, torch.Tensor) else tk.labels_)
    assert labels.shape == (len(x),)
    assert nmi(labels, fk.labels_) >= 0.99
    assert abs(tk.inertia_ - fk.inertia_) <= 0.01 * fk.inertia_


@gpu
@pytest.mark.parametrize("backbone", ["convnet", "resnet18"])
def test_autocast_loss_within_2_percent_of_float32(digits, backbone):
    torch.manual_seed(0)
    device = torch.device("cuda")
    if backbone == "convnet":
        x = digits.batch(torch.arange(256), device, train=False)  # (256, 1, 16, 16)
    else:  # CIFAR-sized colour images
        x = torch.rand(256, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    # train mode, as in training: BatchNorm uses the batch's statistics, so activations are of order
    # 1
    net = prepare_model(
        kit.ClusterNet(kit.build_backbone(backbone, x.shape[1]), 100), device
    ).train()
    # logits of order 1, so the loss is not just log K
    torch.nn.init.normal_(net.head.weight, std=0.3)
    y = torch.randint(100, (len(x),), device=device)
    with torch.no_grad():
        loss32 = F.cross_entropy(net(x)[1].float(), y)
        with autocast(device):
            _, logits = net(x)
            pooled = net.backbone(x)
        loss16 = F.cross_entropy(logits.float(), y)
    # autocast is really on, in the card's precision (bf16 or fp16)
    assert pooled.dtype == amp_dtype(device)
    # the neck and head run in float32 (models.ClusterNet.forward)
    assert logits.dtype == torch.float32
    assert abs(loss16.item() - loss32.item()) <= 0.02 * loss32.item()


@gpu
@pytest.mark.parametrize("algo", ["deepcluster", "odc"])
def test_checkpoint_written_on_cuda_resumes_on_cpu(digits, tmp_path, algo):
    make = {"deepcluster": (kit.DeepCluster, tiny_dc_config), "odc": (kit.ODC, tiny_odc_config)}[
        algo
    ]
    on_gpu = make[0](make[1](device="cuda"))
    on_gpu.fit(digits, epochs=1, run=kit.Run.create(tmp_path, algo))
    on_cpu = make[0](make[1](device="cpu"))
    # resumes, nothing left to do
    on_cpu.fit(digits, epochs=1, run=kit.Run.create(tmp_path, algo, resume=True))
    assert on_cpu.epoch == 1 and next(on_cpu.model.parameters()).device.type == "cpu"
    for (name, a), b in zip(on_gpu.model.state_dict().items(), on_cpu.model.state_dict().values()):
        assert b.device.type == "cpu" and torch.equal(a.cpu(), b), name
    if algo == "odc":
        assert on_cpu.memory.features.device.type == "cpu"
        assert torch.equal(on_cpu.memory.labels, on_gpu.memory.labels.cpu())
    # one more epoch, on the CPU
    h = on_cpu.fit(digits, epochs=2, run=kit.Run.create(tmp_path, algo, resume=True))
    assert len(h["epoch"]) == 2 and math.isfinite(h["epoch"][-1]["loss"])


SECTIONS = (
    "tests",
    "preset",
    "precision",
    "repeat",
    "compile",
    "throughput",
    "deepcluster",
    "odc",
    "kmeans",
    "memory",
    "compare",
    "estimate",
)


def gpu_check_dry(folder, threads):
    """`bench/gpu_check.py --dry` in a process of its own: (its exit code, stdout, stderr, the
    figures it wrote)."""
    out = folder / "gpu_check.json"
    env = {**SESSION_ENV, "KIT_FAST": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--dry", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    return proc.returncode, proc.stdout, proc.stderr, out.read_text() if out.exists() else None


@pytest.mark.slow
@pytest.mark.job.with_args(gpu_check_dry)  # with_args: a lone function would be decorated
def test_gpu_check_dry_run_reports_every_section(lane_job):
    code, stdout, stderr, written = lane_job(gpu_check_dry)
    assert code == 0, stdout[-3000:] + stderr[-3000:]
    results = json.loads(written)
    assert results["dry"] is True
    # the 8 min
    assert (
        set(results["t4_plan_s"]) == set(SECTIONS) and sum(results["t4_plan_s"].values()) < 8 * 60
    )
    for name in SECTIONS:
        section = results["sections"][name]
        assert section["status"] == "ok", (name, section)
        assert any(
            isinstance(v, (int, float)) and math.isfinite(v) for v in section["figures"].values()
        ), name
    assert results["sections"]["tests"]["figures"]["failed"] == 0
    lines = [line for line in stdout.splitlines() if line.strip()]
    header = max(i for i, line in enumerate(lines) if line.startswith("| figure |"))
    assert len(lines) - header > len(SECTIONS)  # header, rule, at least one row per section
    assert all(line.startswith("|") for line in lines[header:]), "the table is not printed last"
