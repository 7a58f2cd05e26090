"""What a multi-process run injects into kit; the algorithms themselves hold no distributed code.

`all_gather_batch`, passed to `ODCMemory` as `gather`, makes every rank apply the same global
batch to its own copy of the memories, so all copies stay identical; tests/test_odc.py checks that
two gloo processes end with the same memories as one process fed the same global batches.

Not wired yet: multi-process *training* (DDP wrapping, per-rank batch sharding, rank-0-only
checkpoints) is in neither `Trainer.fit` nor the command line. Only the memories' synchronisation
is ready and tested.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather_batch(idx: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate every rank's (idx (B,), z (B, D)) in rank order; the identity at world size 1.

    Ranks may hold batches of different sizes (the last batch of an epoch): sizes are gathered
    first and the tensors padded to the largest.
    """
    rank, size = world()
    if size == 1:
        return idx, z
    n = torch.tensor([len(idx)], device=idx.device)
    sizes = [torch.zeros_like(n) for _ in range(size)]
    dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    top = max(sizes)
    idx_p = torch.zeros(top, dtype=idx.dtype, device=idx.device)
    z_p = torch.zeros(top, *z.shape[1:], dtype=z.dtype, device=z.device)
    idx_p[: len(idx)], z_p[: len(z)] = idx, z
    idx_all, z_all = [torch.empty_like(idx_p) for _ in range(size)], [torch.empty_like(z_p) for _ in range(size)]
    dist.all_gather(idx_all, idx_p)
    dist.all_gather(z_all, z_p)
    return (torch.cat([t[:s] for t, s in zip(idx_all, sizes)]),
            torch.cat([t[:s] for t, s in zip(z_all, sizes)]))
