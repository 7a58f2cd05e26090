"""Everything a multi-process run (`torchrun`) injects into kit; the algorithms hold no distributed
code.

    torchrun --standalone --nproc-per-node 2 -m kit compare ...

A `Distributed` object is handed to each trainer. In one process it is `SINGLE`, whose methods
are identities, so the loops in `deepcluster.py` and `odc.py` read the same in a notebook and
under torchrun. Under torchrun (nccl on CUDA, gloo on CPU):

- `batch_size` stays the global batch: every rank draws the same global index order from the same
  seeded generator and takes its contiguous slice of each global batch (`shard`);
- the network is wrapped in DistributedDataParallel (`wrap`), with BatchNorm converted to
  SyncBatchNorm under nccl when `sync_batchnorm` is on, by default for ResNet-50 only (SyncBatchNorm
  refuses CPU tensors, and each of its layers waits for the host in its forward);
- the loss is the *global* batch's loss (`cross_entropy`): per-rank sums over the all-reduced
  normaliser, so a weighted CE (ODC) is normalised over the whole batch as in one process;
- feature extraction is sharded over ranks and gathered in dataset order on rank 0 (`gather_rows`);
  rank 0 alone whitens, clusters and scores, and its labels are broadcast (`cluster`);
- ODC's memories are replicated: rank 0's initial features go to every rank (`share`), and every
  rank applies the all-gathered batch (`all_gather_batch`);
- augmentation draws differ per rank (the RNG is seeded per rank and epoch, `seed_epoch`),
  and a re-initialised head is broadcast from rank 0 so all copies start equal;
- only rank 0 writes run files (`is_writer`).
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from .runtime import AUTO, available_cpus, set_threads


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather_batch(idx: torch.Tensor, z: torch.Tensor, rows: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Every rank's (idx (B,), z (B, D)) in rank order, each padded to `rows` (the same on every
    rank: a global batch's share, rounded up), and which of the gathered rows are real:
    (idx_all, z_all, real (world * rows,) bool, or None at world size 1, where nothing is gathered).

    Ranks may hold batches of different sizes (the last batch of an epoch). A rank pads with copies
    of its last row, which write what that row writes, and its size travels as a tensor into `real`:
    nothing here waits for the host to read a size (the first version read every rank's size with
    `int()`, a wait every ODC step).
    """
    rank, size = world()
    if size == 1:
        return idx, z, None
    # the shape is known on the host: no wait. A wrong size would hang the others
    if not 1 <= len(idx) <= rows:
        raise ValueError(
            f"all_gather_batch: rank {rank} holds {len(idx)} rows, not 1 to {rows}: every rank "
            "must send between one row and the padded share"
        )
    extra = rows - len(idx)
    if extra:
        idx, z = (
            torch.cat([idx, idx[-1:].expand(extra)]),
            torch.cat([z, z[-1:].expand(extra, *z.shape[1:])]),
        )
    n = idx.new_full((1,), rows - extra)  # a fill on the device, not a copy from the host
    sizes, idx_all, z_all = ([torch.empty_like(t) for _ in range(size)] for t in (n, idx, z))
    for out, t in ((sizes, n), (idx_all, idx), (z_all, z)):
        dist.all_gather(out, t)
    # (world * rows,)
    real = (torch.arange(rows, device=idx.device) < torch.cat(sizes)[:, None]).flatten()
    return torch.cat(idx_all), torch.cat(z_all), real


class Distributed:
    """The process group as the trainers see it. `Distributed()` reads the current group."""

    def __init__(self):
        self.rank, self.world = world()
        self.backend = dist.get_backend() if self.world > 1 else None
        # where collectives run: nccl only moves CUDA tensors (this process's GPU), gloo CPU ones
        nccl = self.backend == "nccl"
        self.comm_device = (
            torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
        )

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    # -- model ---------------------------------------------------------------------------------
    def wrap(
        self, model: torch.nn.Module, device: torch.device, sync_batchnorm: bool = False
    ) -> torch.nn.Module:
        """DDP around `model` (parameters broadcast from rank 0); the model itself in one
        process."""
        if self.world == 1:
            return model
        if sync_batchnorm and self.backend == "nccl":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = (
            [device.index if device.index is not None else torch.cuda.current_device()]
            if device.type == "cuda"
            else None
        )
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters everywhere (after a re-initialisation drawn from per-rank RNGs)."""
        if self.world > 1:
            for p in module.parameters():
                dist.broadcast(p.data, 0)

    # -- data ----------------------------------------------------------------------------------
    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch of dataset indices. A global batch too
        small to give every rank two images gives every rank none, so all ranks skip it together
        (BatchNorm cannot train on one image; one rank skipping alone would hang the others)."""
        if self.world == 1:
            return idx
        return idx[:0] if len(idx) < 2 * self.world else idx.tensor_split(self.world)[self.rank]

    def seed_epoch(self, seed: int, epoch: int) -> None:
        """Seed the RNG of this epoch's augmentation and head re-initialisation from (seed, epoch,
        rank) alone: ranks draw different crops, and a resumed run, in one process or in N, draws
        what it would have drawn without a saved RNG state per rank. Rank 0 of N is seeded as one
        process is (its draws differ all the same: its batches are a part of the global batch)."""
        torch.manual_seed((seed * 1_000_003 + epoch) * 1_009 + self.rank)

    def gather_rows(self, local: np.ndarray, n: int) -> np.ndarray:
        """Rows [start_r, end_r) of every rank (see `row_range`) concatenated into (N, D) on rank 0,
        which alone clusters and scores them; every other rank gets (0, D) back. Rank 0 receives one
        rank's rows at a time, so no card holds more than its share (an all-gather put the gathered
        parts and their concatenation, about 2 x N x D, on every card and N x D on every host:
        ~21 GB of GPU memory for ResNet-50's 2,048-d features of ImageNet's 1.28M images). `share`
        gives the rows to every rank where all need them."""
        if self.world == 1:
            return local
        if self.rank:
            dist.send(torch.from_numpy(np.ascontiguousarray(local)).to(self.comm_device), 0)
            return local[:0]
        out = np.empty((n, *local.shape[1:]), local.dtype)
        for k in range(self.world):
            rows = row_range(n, k, self.world)
            if k == 0:
                out[rows.start:rows.stop] = local
                continue
            part = torch.empty(len(rows), *local.shape[1:], dtype=torch.from_numpy(local[:0]).dtype,
                               device=self.comm_device)
            dist.recv(part, k)
            out[rows.start:rows.stop] = part.cpu().numpy()
        return out

    def share(self, rows: np.ndarray, n: int) -> np.ndarray:
        """Rank 0's (N, D) `rows` on every rank (the others pass the (0, D) that `gather_rows` gave
        them)."""
        if self.world == 1:
            return rows
        t = torch.from_numpy(np.ascontiguousarray(rows)) if self.rank == 0 else \
            torch.empty(n, *rows.shape[1:], dtype=torch.from_numpy(rows).dtype)
        return self.broadcast(t).numpy()

    def broadcast(self, t: torch.Tensor) -> torch.Tensor:
        """Rank 0's copy of `t` on every rank (k-means labels: one clustering for all)."""
        if self.world == 1:
            return t
        x = t.to(self.comm_device, copy=True)
        dist.broadcast(x, 0)
        return x.to(t.device)

    def disagreement(self, t: torch.Tensor) -> int:
        """How many entries of `t` differ from rank 0's copy, on the rank where most do (0 in one
        process). Every rank gets the same count, so all take the same branch on it. One broadcast
        of `t` and one number read."""
        if self.world == 1:
            return 0
        differ = (self.broadcast(t) != t).sum().reshape(1).to(self.comm_device)
        dist.all_reduce(differ, op=dist.ReduceOp.MAX)
        return int(differ.item())

    def cluster(self, fit, n: int) -> tuple[torch.Tensor, object]:
        """One rank clusters for all: rank 0 runs `fit() -> KMeans` and its labels reach every rank,
        so the others neither repeat the PCA and k-means nor wait longer than rank 0 does.
        -> (labels (N,) int64 on the CPU, the fitted KMeans on rank 0 and None elsewhere)."""
        km = fit() if self.rank == 0 else None
        labels = (
            torch.from_numpy(km.labels_) if km is not None else torch.empty(n, dtype=torch.long)
        )
        return self.broadcast(labels), km

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    # -- loss ----------------------------------------------------------------------------------
    def cross_entropy(
        self, logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None
    ):
        """(loss to backpropagate, the global batch's loss as a 0-d tensor for the log).

        One process: `F.cross_entropy` itself. N processes: this rank's sum over the all-reduced
        normaliser (the number of targets, or the sum of their class weights), times N because
        DDP averages gradients: the gradient of the global batch's loss, exactly."""
        if self.world == 1:
            loss = F.cross_entropy(logits, targets, weight=weight)
            return loss, loss.detach()
        total = F.cross_entropy(logits, targets, weight=weight, reduction="sum")
        # made on the device
        norm = weight[targets].sum() if weight is not None else logits.new_full((), len(targets))
        both = torch.stack([total.detach(), norm.to(total.dtype)])
        dist.all_reduce(both)
        return total * self.world / both[1], both[0] / both[1]


# the one-process instance, usable before any group exists
SINGLE = Distributed.__new__(Distributed)
SINGLE.rank, SINGLE.world, SINGLE.backend, SINGLE.comm_device = 0, 1, None, torch.device("cpu")


def row_range(n: int, rank: int, size: int) -> range:
    """The rows of an N-row pass that `rank` of `size` extracts: contiguous, sizes differing
    by <= 1."""
    per, extra = divmod(n, size)
    start = rank * per + min(rank, extra)
    return range(start, start + per + (1 if rank < extra else 0))


def setup(device: str = AUTO) -> Distributed:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK):
    nccl on CUDA (one GPU per process, by LOCAL_RANK), gloo on the CPU. Outside torchrun: SINGLE."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return SINGLE
    if not dist.is_initialized():
        cuda = str(device) != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_gpu(device))
        dist.init_process_group("nccl" if cuda else "gloo")
    # torchrun gives every process OMP_NUM_THREADS=1, which would leave rank 0's PCA and k-means and
    # the monitor on one core: each process takes its share of the CPUs this machine really gives it
    set_threads(max(1, available_cpus() // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    return Distributed()


def local_gpu(device=AUTO) -> int:
    """The GPU of this torchrun process: the one of its LOCAL_RANK. One line, before any collective,
    when the machine has fewer GPUs than processes or the device names a card of its own."""
    local, n = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
    procs = int(os.environ.get("LOCAL_WORLD_SIZE", local + 1))
    if str(device) != AUTO and torch.device(device).index is not None:
        raise ValueError(
            f"--device {device} under torchrun: each process takes the GPU of its local rank; "
            "use --device cuda (or auto), and CUDA_VISIBLE_DEVICES to choose the cards"
        )
    if local >= n:
        raise ValueError(
            f"torchrun started {procs} processes on this machine, which has {n} GPU(s): use "
            f"--nproc-per-node {n} (one process per GPU), or --device cpu"
        )
    return local


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
