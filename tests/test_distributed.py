"""Two gloo processes with B/2 each against one process with B, on the same global batches (issue
11).

BatchNorm and dropout are taken out of the test network (replaced by identities): per-rank batch
statistics are a real difference between one process and N without SyncBatchNorm, which CPU tensors
cannot use, and each rank draws its own dropout masks and augmentations (`Distributed.seed_epoch`).
Augmentation is the identity too, so that each image is seen the same way in both runs.
"""
import os
import time

import numpy as np
import pytest
import torch

from conftest import NO_AUGMENT, SESSION_ENV, tiny_dc_config, tiny_odc_config

pytestmark = pytest.mark.distributed


def _norm_free(build):
    def build_without_bn(*a, **kw):
        net = build(*a, **kw)
        for name, m in list(net.named_modules()):
            for child, sub in list(m.named_children()):
                if isinstance(sub, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.Dropout)):
                    setattr(m, child, torch.nn.Identity())
        return net
    return build_without_bn


def _train(rank, world, store, jobs, env=None):
    """Each job (out, algo, epochs, run_dir) in turn, in one process group: a process start costs
    seconds. `env`: the environment a spawned rank runs in (a lane job's: the session's, not what a
    test beside it has monkeypatched)."""
    import torch.distributed as dist

    if env is not None:
        os.environ.clear()
        os.environ.update(env)

    import kit.algorithms.training

    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    original = kit.algorithms.training.build_network
    # put back below: rank 0 of world 1 is pytest's own process
    kit.algorithms.training.build_network = _norm_free(original)
    try:
        for job in jobs:
            _fit(rank, world, *job)
    finally:
        kit.algorithms.training.build_network = original
    if world > 1:
        dist.destroy_process_group()


def _fit(rank, world, out, algo, epochs, run_dir):
    import kit
    from kit.parts.augment import AugmentSpec
    from kit.parts.distributed import Distributed
    from kit.store.runs import Run

    train = kit.load_dataset("digits", n=600)
    train.spec = AugmentSpec(**NO_AUGMENT)
    # memory_momentum 0.5, not the preset's 0.2: at 0.2 the relabelling follows the network's newest
    # features so closely that a near-tie flips 4 of 600 labels in epoch 2 from float rounding of
    # the half batches (the losses agree to 1e-7 for the 24 iterations before it), and the runs then
    # part
    cfg = (tiny_dc_config(batch_size=32, device="cpu") if algo == "deepcluster"
           else tiny_odc_config(batch_size=32, device="cpu", memory_momentum=0.5))
    trainer = (kit.DeepCluster if algo == "deepcluster" else kit.ODC)(cfg, dist=Distributed())
    run = None
    if run_dir is not None:
        run = (
            Run.create(run_dir, "r", resume=True) if rank == 0 else Run(os.path.join(run_dir, "r"))
        )
        Distributed().barrier()
    h = trainer.fit(train, epochs, run=run)
    mem = {k: v.clone() for k, v in trainer.memory.state_dict().items()} if algo == "odc" else {}
    fits = [r["inertia"] for r in h["epoch"]] if algo == "deepcluster" else [h["init"]["inertia"]]
    torch.save(
        {
            "loss": h["step"]["loss"],
            "labels": [torch.as_tensor(x) for x in h["labels"]],
            "memory": mem,
            "clustered": [i is not None for i in fits],
        },
        f"{out}_{world}_{rank}.pt",
    )


def _spawn(store, jobs, env=None, timeout: float = 240):
    """Two ranks of `_train`, ended (and an error raised) if they take over `timeout` seconds: a
    hung process group must not hang the session (a lane job has no pytest timeout of its own)."""
    import torch.multiprocessing as mp

    ctx = mp.start_processes(_train, args=(2, store, jobs, env), nprocs=2, join=False)
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=max(0.0, deadline - time.monotonic())):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise TimeoutError(f"two ranks took over {timeout:.0f} s: {jobs}")


def two_rank_resume(folder, threads):
    """In one process group (a process start costs seconds): two ranks train DeepCluster and ODC 2
    epochs each on half batches, then ODC 3 epochs straight through, and 2 epochs into a run folder
    that they then resume to 3. Returns (each half-batch run's two ranks' records, the run folder's
    files after 2 epochs, its epoch records, the straight and the resumed run's records). Each rank
    takes one thread whatever `threads` says: two ranks need two, so for its 30 s this job takes a
    core more than the lane books for it."""
    out, runs = str(folder / "h"), str(folder / "runs")
    half = [(str(folder / algo), algo, 2, None) for algo in ("deepcluster", "odc")]
    _spawn(folder / "s1", [*half, (out + "straight", "odc", 3, str(folder / "straight")),
                           (out + "stopped", "odc", 2, runs)], env=SESSION_ENV)
    stopped = sorted(p.name for p in (folder / "runs" / "r").iterdir())
    epochs = len((folder / "runs" / "r" / "epochs.jsonl").read_text().splitlines())
    _spawn(folder / "s2", [(out + "resumed", "odc", 3, runs)], env=SESSION_ENV)
    halves = {algo: [torch.load(f"{o}_2_{rank}.pt") for rank in (0, 1)] for o, algo, *_ in half}
    return halves, stopped, epochs, torch.load(f"{out}straight_2_0.pt"), torch.load(
        f"{out}resumed_2_0.pt"
    )


@pytest.mark.timeout(300)
@pytest.mark.job.with_args(two_rank_resume)  # (a lone function would be decorated)
def test_two_ranks_with_half_batches_equal_one_process(tmp_path, lane_job):
    """The one process here, the two ranks in the lane's job."""
    jobs = [(str(tmp_path / algo), algo, 2, None) for algo in ("deepcluster", "odc")]
    _train(0, 1, None, jobs)
    halves = lane_job(two_rank_resume)[0]
    for out, algo, *_ in jobs:
        one = torch.load(f"{out}_1_0.pt")
        for rank, two in enumerate(halves[algo]):
            assert len(two["labels"]) == len(one["labels"]), algo
            assert all(torch.equal(a, b) for a, b in zip(one["labels"], two["labels"])), (
                f"{algo}: the labels differ"
            )
            assert np.allclose(two["loss"], one["loss"], rtol=1e-4), (
                algo,
                two["loss"][:5],
                one["loss"][:5],
            )
            for k, v in one["memory"].items():
                assert torch.allclose(two["memory"][k].float(), v.float(), atol=1e-5), k
            # one rank clusters, the other gets its labels
            assert two["clustered"] == [rank == 0] * len(two["clustered"]), algo


@pytest.mark.timeout(300)
@pytest.mark.job.with_args(two_rank_resume)  # (a lone function would be decorated)
def test_a_two_rank_run_writes_once_and_resumes_exactly(lane_job):
    _, stopped, epochs, a, b = lane_job(two_rank_resume)
    assert stopped == [
        ".kit-run",
        "checkpoint.pt",
        "epochs.jsonl",
        "history.json",
        "labels",
        "steps.jsonl",
    ]
    assert epochs == 2  # rank 0 alone wrote
    # the initial labels and one set an epoch, the resumed run's read back from its folder
    assert a["loss"] == b["loss"] and len(a["labels"]) == len(b["labels"]) == 4
    assert all(torch.equal(x, y) for x, y in zip(a["labels"], b["labels"]))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_torchrun_compare_from_a_notebook_writes_what_one_process_writes(tmp_path, fast_compare):
    """Two ranks of `compare` (KIT_FAST) write the files the session's one-process `compare`
    wrote."""
    from kit.commands import launch

    env = {**os.environ, "KIT_FAST": "1", "OMP_NUM_THREADS": "1"}
    proc = launch.torchrun(
        ["compare", "--name", "t", "--runs", tmp_path],
        nproc=2,
        env=env,
        log=tmp_path / "torchrun.log",
    )
    figures = []
    # the live plot
    code = launch.watch(tmp_path / "t", proc, every=1, timeout=540, show=figures.append)
    log = (tmp_path / "torchrun.log").read_text()
    assert code == 0, log[-2000:]
    # rank 0 alone reports; the curves were drawn as epochs landed
    assert log.count("report:") == 1 and figures
    files = lambda p: sorted(str(f.relative_to(p)) for f in p.rglob("*") if f.is_file())  # noqa: E731
    assert files(tmp_path / "t") == files(fast_compare.path)
    from kit.commands.report import load_histories

    one, two = load_histories(fast_compare.path), load_histories(tmp_path / "t")
    assert [len(two[a]["epoch"]) for a in ("deepcluster", "odc")] == [
        len(one[a]["epoch"]) for a in ("deepcluster", "odc")
    ]
