"""kit benchmarks: every ratio measured side by side in one run, on this machine's device.

    python bench/run.py              # all sections (about 8 minutes on a 2-core CPU)
    python bench/run.py memory odc   # some sections

Sections:
  backbones    training images/s of each backbone
  deepcluster  a DeepCluster epoch (extract + cluster + train) vs a plain supervised epoch
               (aim <= 1.35x)
  kmeans       faiss k-means vs scikit-learn KMeans and vs kit's torch k-means, same features and
               iterations
  odc          an ODC iteration vs a plain supervised iteration (aim <= 1.10x)
  memory       ODC memory operations alone at ImageNet scale (N = 1.28M, D = 256, K = 10,000),
               before/after incremental sums
  umap         time to the first UMAP layout in a fresh process
  views        the flight recorder and the flow / gallery figures at the demo's size
  runfiles     bytes a run writes per epoch at epochs 1, 10 and 100 with 1.28 M labels
               (append-only)
  shared       an ODC epoch alone and beside a 2-thread numpy job, with kit's OpenMP settings and
               without
  demo         the main job's wall time and peak memory (`python -m kit compare`, about 3 minutes)
Timings are medians of repeats after a warm-up; ratios compare runs made in this same process.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import kit
from kit.parts.clustering import KMeans, preprocess_features
from kit.parts.data import batches, load_dataset
from kit.algorithms.memory import ODCMemory
from kit.parts.runtime import autocast, prepare_model, resolve_device
from kit.algorithms.supervised import supervised_epoch
from kit.algorithms.training import build_network, build_optimizer

DEVICE = resolve_device("auto")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeat=5, warmup=1) -> float:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def bench_backbones():
    print(
        "\n## training throughput per backbone (images/s, batch 64, train step incl. augmentation)"
    )
    cases = [
        ("convnet", "mnist5k", 28),
        ("resnet18", "cifar-like 32px", 32),
        ("resnet50", "64px", 64),
    ]
    for name, what, size in cases:
        cin = 1 if name == "convnet" else 3
        net = prepare_model(kit.ClusterNet(kit.build_backbone(name, cin), 100), DEVICE)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        x = torch.rand(64, cin, size, size, device=DEVICE).contiguous(
            memory_format=torch.channels_last
        )
        y = torch.randint(100, (64,), device=DEVICE)
        from kit.parts.augment import COLOUR, DIGITS, augment

        spec = DIGITS if cin == 1 else COLOUR

        def step():
            with autocast(DEVICE):
                _, logits = net(augment(x, spec))
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        n = 3 if name == "resnet50" and DEVICE.type == "cpu" else 10
        t = timed(lambda: [step() for _ in range(n)], repeat=3)
        print(f"{name:9s} {what:16s} {64 * n / t:9.0f} img/s")


def bench_deepcluster():
    print(
        "\n## DeepCluster epoch vs supervised epoch (embedded MNIST-5k train split, small preset)"
    )
    ds = load_dataset("mnist5k")
    cfg = kit.DeepClusterConfig.small(device=str(DEVICE))
    kit.seed_everything(0)
    net = prepare_model(build_network(cfg, ds, neck=False), DEVICE)  # as the trainers do
    opt = build_optimizer(net, cfg)
    order = torch.randperm(len(ds))
    targets = ds.targets.to(DEVICE)
    dc = kit.DeepCluster(cfg)
    dc.fit(ds, epochs=1)  # warm-up epoch
    supervised_epoch(net, opt, ds, order, cfg.batch_size, targets, DEVICE)  # warm-up
    sup, recs = [], []
    for e in range(2, 7):  # interleaved, so drift in the machine's speed hits both alike
        sup.append(
            timed(
                lambda: supervised_epoch(net, opt, ds, order, cfg.batch_size, targets, DEVICE),
                repeat=1,
                warmup=0,
            )
        )
        dc.fit(ds, epochs=e)
        recs.append(dc.history["epoch"][-1])
    t_sup = statistics.median(sup)
    parts = {
        k: statistics.median(r[k] for r in recs)
        for k in ("time_extract", "time_cluster", "time_train")
    }
    t_dc = statistics.median(r["time_extract"] + r["time_cluster"] + r["time_train"] for r in recs)
    print(f"supervised epoch          {t_sup:7.2f} s")
    print(
        f"DeepCluster epoch         {t_dc:7.2f} s  = extract {parts['time_extract']:.2f} + "
        f"PCA/k-means {parts['time_cluster']:.2f} + train {parts['time_train']:.2f} (medians of 5, "
        "interleaved)"
    )
    print(f"ratio DeepCluster / supervised: {t_dc / t_sup:.2f}x (aim <= 1.35x)")


def bench_kmeans():
    print(
        "\n## k-means: faiss vs kit's torch k-means vs scikit-learn (same features, K, 20 "
        "iterations, one init)"
    )
    from sklearn.cluster import KMeans as SK

    from kit.parts.clustering import TorchKMeans

    g = np.random.default_rng(0)
    for n, d, k in ((4000, 64, 100), (50000, 128, 1000)):
        x = preprocess_features(
            g.normal(size=(n, d)).astype(np.float32) + g.normal(size=(1, d)).astype(np.float32), -1
        )
        runs = {"faiss": lambda: KMeans(k, 20, seed=0, backend="faiss").fit(x),
                "torch": lambda: TorchKMeans(k, 20, seed=0).fit(x)}  # numpy in: torch on the CPU
        if DEVICE.type == "cuda":
            xd = torch.from_numpy(x).to(DEVICE)
            runs["torch-gpu"] = lambda: TorchKMeans(k, 20, seed=0).fit(xd)
        t = {name: [] for name in runs}
        # warm-up; faiss >= 1.14.2 stops at a fixed point
        iters = {name: len(fit().objective_) for name, fit in runs.items()}
        for _ in range(3):  # interleaved, so drift in the machine's speed hits all alike
            for name, fit in runs.items():
                t[name].append(timed(fit, repeat=1, warmup=0))
        t = {name: statistics.median(v) for name, v in t.items()}
        ts = timed(
            lambda: SK(k, init="random", n_init=1, max_iter=20, tol=0, random_state=0).fit(x),
            repeat=1,
            warmup=0,
        )
        gpu = f"   torch on {DEVICE.type} {t['torch-gpu']:6.2f} s" if "torch-gpu" in t else ""
        print(
            f"N={n:6d} D={d:3d} K={k:5d}: faiss {t['faiss']:6.2f} s   torch {t['torch']:6.2f} s   "
            f"torch/faiss {t['torch'] / t['faiss']:4.2f}x   sklearn {ts:6.2f} s   sklearn/faiss "
            f"{ts / t['faiss']:4.1f}x{gpu}   (iterations run: faiss {iters['faiss']}, torch "
            f"{iters['torch']})"
        )


def bench_odc():
    print(
        "\n## ODC iteration vs supervised iteration (embedded MNIST-5k, small preset, same batch)"
    )
    ds = load_dataset("mnist5k")
    cfg = kit.ODCConfig.small(device=str(DEVICE))
    odc = kit.ODC(cfg)
    odc.fit(ds, epochs=1)  # builds the memory and warms up
    net, opt, mem = odc.model, odc.optimizer, odc.memory
    targets = ds.targets.to(DEVICE)
    n_iter = 30
    order = torch.randint(len(ds), (n_iter * cfg.batch_size,))
    weight = mem.class_weights()

    def sup():
        net.train()
        for x, idx in batches(ds, order, cfg.batch_size, DEVICE, train=True):
            with autocast(DEVICE):
                _, logits = net(x)
            loss = F.cross_entropy(logits.float(), targets[idx.to(DEVICE)] % cfg.n_clusters)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def odc_iters():
        w = weight
        net.train()
        for it, (x, idx) in enumerate(batches(ds, order, cfg.batch_size, DEVICE, train=True)):
            idx = idx.to(DEVICE)
            with autocast(DEVICE):
                z, logits = net(x)
            loss = F.cross_entropy(logits.float(), mem.labels[idx], weight=w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            mem.update(idx, z.detach())
            if (it + 1) % cfg.centroid_interval == 0:
                mem.recompute_centroids()
            mem.fix_small_clusters()
            w = mem.class_weights()

    sup(), odc_iters()  # warm-up
    ts, to = [], []
    for _ in range(5):  # interleaved, so drift in the machine's speed hits both alike
        ts.append(timed(sup, repeat=1, warmup=0))
        to.append(timed(odc_iters, repeat=1, warmup=0))
    ts, to = statistics.median(ts), statistics.median(to)
    print(
        f"supervised iteration {ts / n_iter * 1e3:7.1f} ms   ODC iteration "
        f"{to / n_iter * 1e3:7.1f} ms   ratio {to / ts:.3f}x (aim <= 1.10x)"
    )


def bench_memory():
    print(
        f"\n## ODC memory at ImageNet scale on {DEVICE.type}: N = 1,281,167, D = 256, K = 10,000, "
        "batch 512"
    )
    from kit.algorithms.memory import class_weights

    n, d, k, b = 1_281_167, 256, 10_000, 512
    g = torch.Generator().manual_seed(0)
    mem = ODCMemory(n, d, k, min_cluster_size=20).to(DEVICE)
    feats = torch.rand(n, d, generator=g)
    labels = torch.randint(k, (n,), generator=g)
    t = time.perf_counter()
    mem.init(feats.to(DEVICE), labels.to(DEVICE))
    sync()
    print(f"init (normalise, sums over N, centroids)  {time.perf_counter() - t:8.3f} s")
    del feats
    idx = torch.randint(n, (b,), generator=g).to(DEVICE)
    z = torch.rand(b, d, generator=g).to(DEVICE)
    v = F.normalize(z, dim=1)

    def full_recompute():  # before: every recompute was an index_add over all N rows
        sums = torch.zeros_like(mem.centroids).index_add_(0, mem.labels, mem.features)
        counts = torch.bincount(mem.labels, minlength=k)
        mem.centroids[counts > 0] = sums[counts > 0] / counts[counts > 0, None]

    # what update() now adds: the batch's rows out of and into the sums (same labels here)
    def bookkeeping():
        rows = torch.unique(idx)
        mem._write(rows, mem.labels[rows], mem.features[rows])

    # counts by a pass over N
    ops = {
        "update": lambda: mem.update(idx, z),
        "matmul": lambda: (v @ mem.centroids.T).argmax(1),
        "bookkeeping": bookkeeping,
        "fix_before": lambda: (torch.bincount(mem.labels, minlength=k) < 20).any(),
        "fix_after": mem.fix_small_clusters,
        "weights_before": lambda: class_weights(mem.labels, k),
        "weights_after": mem.class_weights,
        "recompute_before": full_recompute,
        "recompute_after": mem.recompute_centroids,
    }
    for fn in ops.values():
        fn()  # warm-up
    times = {name: [] for name in ops}
    for _ in range(7):  # interleaved, so drift in the machine's speed hits before and after alike
        for name, fn in ops.items():
            times[name].append(timed(fn, repeat=1, warmup=0))
    ms = {name: statistics.median(v) * 1e3 for name, v in times.items()}
    before = (
        ms["update"] - ms["bookkeeping"],
        ms["fix_before"],
        ms["weights_before"],
        ms["recompute_before"],
    )
    after = (ms["update"], ms["fix_after"], ms["weights_after"], ms["recompute_after"])
    print(f"{'(ms, medians of 7 interleaved)':50s} {'before':>9s} {'after':>9s}")
    names = (
        "update(idx, z)  [every iteration]",
        "fix_small_clusters, none small  [every iteration]",
        "class_weights  [every iteration]",
        "recompute_centroids  [every 10th]",
    )
    for name, x, y in zip(names, before, after):
        print(f"{name:50s} {x:9.2f} {y:9.2f}")
    print(
        f"{'  of update: relabel v @ centroids.T (B x D x K)':50s} {ms['matmul']:9.2f} "
        f"{ms['matmul']:9.2f}"
    )
    print(f"{'  of update: sums and sizes bookkeeping':50s} {'-':>9s} {ms['bookkeeping']:9.2f}")
    per_iter = [sum(t) - t[3] + t[3] / 10 for t in (before, after)]
    print(
        f"{'per iteration, amortised (no small clusters)':50s} {per_iter[0]:9.2f} "
        f"{per_iter[1]:9.2f}   (of which the relabel matmul {ms['matmul']:.2f})"
    )

    # one cluster falls below min size: dissolve it and split the largest with 2-means
    def one_small():
        members = torch.nonzero(mem.labels == 7).flatten()
        mem._write(members[5:], torch.full_like(members[5:], 8))
        return mem.fix_small_clusters()

    print(
        f"{'fix_small_clusters, one small cluster (2-means split)':50s} {'':9s} "
        f"{timed(one_small, repeat=3) * 1e3:9.2f}"
    )


def bench_umap():
    print("\n## first UMAP layout in a fresh process (1,500 x 256 features, faiss kNN graph)")
    code = (
        "import time; t=time.perf_counter(); import numpy as np; from kit.analysis.embed import "
        "umap_embed; x=np.random.default_rng(0).normal(size=(1500,256)).astype('float32'); "
        "t1=time.perf_counter(); umap_embed(x); t2=time.perf_counter(); umap_embed(x); "
        "t3=time.perf_counter(); print(f'{t1-t:.1f} {t2-t1:.1f} {t3-t2:.1f}')"
    )
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    print(
        f"process wall {time.perf_counter() - t:.1f} s: imports {out[0]} s, first layout {out[1]} "
        f"s, second layout in the same process {out[2]} s"
    )


def bench_demo():
    print(
        "\n## the demo: `python -m kit compare` (both algorithms, 30 epochs, figures, UMAP, "
        "report) in a fresh process"
    )
    import tempfile

    import psutil

    with tempfile.TemporaryDirectory() as runs:
        t = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "kit", "compare", "--name", "bench", "--runs", runs],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak, ps = 0, psutil.Process(proc.pid)
        # poll the process tree's resident memory (getrusage would count the
        while proc.poll() is None:
            try:                    # parent's pages a forked child held before exec)
                peak = max(
                    peak, sum(p.memory_info().rss for p in [ps, *ps.children(recursive=True)])
                )
            except psutil.Error:
                pass
            time.sleep(0.2)
        wall = time.perf_counter() - t
        assert proc.returncode == 0, "the demo failed"
    print(
        f"wall time {wall / 60:.1f} min (target < 10 min on a 2-core CPU); peak resident memory "
        f"{peak / 2**30:.2f} GiB"
    )


def bench_views():
    print(
        "\n## image-level views at the demo's size (1,500 points x 4 saved epochs x 2 algorithms; "
        "N = 4,000, K = 100)"
    )
    from kit.views import plots
    from kit.views.alluvial import flows_figure
    from kit.views.flight import flight_recorder
    from kit.views.gallery import clusters_figure, confusion_figure, moved_figure
    from kit.analysis.rundata import RunData

    train, rng = load_dataset("mnist5k"), np.random.default_rng(0)
    classes = train.targets.numpy()
    n = len(classes)

    # 10 clusters per class, 30% of the images elsewhere, fresh every snapshot
    def snapshots(count):
        return [
            np.where(
                rng.random(n) < 0.3, rng.integers(0, 100, n), classes * 10 + rng.integers(0, 10, n)
            )
            for _ in range(count)
        ]

    algos = ("deepcluster", "odc")
    data = RunData(
        epochs=[0, 3, 10, 30],
        layouts={a: [rng.normal(size=(1500, 2)) for _ in range(4)] for a in algos},
        labels={"deepcluster": snapshots(30), "odc": snapshots(31)},
        subset=rng.choice(n, 1500, replace=False),
        classes=classes,
        images=train.images.numpy(),
        features={
            a: [rng.normal(size=(1500, 256)).astype(np.float32) for _ in range(4)] for a in algos
        },
    )
    t = time.perf_counter()
    page = flight_recorder(data)
    t1 = time.perf_counter()
    size = len(page.iframe())
    t2 = time.perf_counter()
    print(
        f"flight recorder {t2 - t:.1f} s (bokeh model {t1 - t:.1f} s, inline page {t2 - t1:.1f} "
        f"s), {size / 2**20:.1f} MiB in the report"
    )
    for name, draw in (
        ("flows", flows_figure),
        ("clusters", clusters_figure),
        ("confusion", confusion_figure),
        ("moved", moved_figure),
    ):
        t = time.perf_counter()
        png = plots.png(draw(data), dpi=110)
        print(f"{name}.png {time.perf_counter() - t:.1f} s, {len(png) / 2**10:.0f} KiB")


def bench_runfiles():
    print(
        "\n## bytes written per epoch by a run's history, 1.28 M simulated labels (flat in the "
        "epoch number)"
    )
    import tempfile
    from pathlib import Path

    from kit.store.runs import Run

    n, steps = 1_281_167, 2_500  # ImageNet's train split; iterations per epoch at batch 512
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10_000, n)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run.create(tmp, "r")
        h = {
            "algo": "odc",
            "epoch": [],
            "step": {"epoch": [], "loss": [], "change_ratio": []},
            "labels": [labels],
        }
        size = lambda: sum(f.stat().st_size for f in Path(run.path).rglob("*") if f.is_file())  # noqa: E731
        for e in range(100):
            before, t = size(), time.perf_counter()
            h["epoch"].append({"epoch": e, "loss": 1.0, "change_ratio": 0.1})
            h["step"]["epoch"] += [e] * steps
            h["step"]["loss"] += [1.0] * steps
            h["step"]["change_ratio"] += [0.1] * steps
            labels = labels.copy()
            labels[rng.integers(0, n, n // 10)] = rng.integers(0, 10_000, n // 10)
            h["labels"].append(labels)
            run.save_history(h)
            if e + 1 in (1, 10, 100):
                print(
                    f"epoch {e + 1:3d}: {(size() - before) / 2**20:6.2f} MiB written in "
                    f"{time.perf_counter() - t:.2f} s (kit 0.1 rewrote all earlier snapshots: "
                    f"~{(e + 2) * n * 4 / 2**20:,.0f} MiB before compression)"
                )


EPOCH = """import sys, time
# torch and faiss loaded before kit: kit's start-up settings come too late
if sys.argv[1] == "before":
    import faiss, torch  # noqa: F401, E401
import kit
train = kit.load_dataset("mnist5k")
odc = kit.ODC(kit.ODCConfig.small())
odc.fit(train, epochs=1)  # the initial clustering, the memory and a warm-up epoch
t = time.perf_counter()
odc.fit(train, epochs=2)  # one more epoch, timed
print(time.perf_counter() - t)
"""
MATMUL = """import numpy as np
a = np.random.default_rng(0).random((1500, 1500))
while True:
    a @ a
"""


def bench_shared():
    print(
        "\n## an ODC epoch alone and beside a 2-thread numpy matmul loop (mnist5k, small preset, "
        "s/epoch)"
    )
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")
    }
    busy = {**env, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    for when in ("before", "after"):
        for beside in (False, True):
            other = subprocess.Popen([sys.executable, "-c", MATMUL], env=busy) if beside else None
            try:
                out = [
                    float(
                        subprocess.run(
                            [sys.executable, "-c", EPOCH, when],
                            env=env,
                            capture_output=True,
                            text=True,
                            check=True,
                        ).stdout
                    )
                    for _ in range(2)
                ]
            finally:
                if other is not None:
                    other.kill()
                    other.wait()
            print(
                f"{when} (torch and faiss imported {'before' if when == 'before' else 'after'} "
                f"kit), {'beside the matmul job' if beside else 'alone'}: {min(out):.2f} / "
                f"{max(out):.2f} s per epoch"
            )


SECTIONS = {"backbones": bench_backbones, "deepcluster": bench_deepcluster, "kmeans": bench_kmeans,
            "odc": bench_odc, "memory": bench_memory, "umap": bench_umap, "views": bench_views,
            "runfiles": bench_runfiles, "shared": bench_shared, "demo": bench_demo}

if __name__ == "__main__":
    kit.parts.runtime.set_threads()
    wanted = sys.argv[1:] or list(SECTIONS)
    print(
        f"# kit benchmarks on {DEVICE} ({torch.get_num_threads()} threads), torch "
        f"{torch.__version__}"
    )
    for name in wanted:
        SECTIONS[name]()
