"""The feature-extraction pass of DeepCluster and of ODC's initialisation (§1.2)."""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import batches, check_indexed
from .runtime import autocast, resolve_device


@torch.inference_mode()
def extract_features(model: torch.nn.Module, dataset, batch_size: int = 256, device="auto",
                     progress: bool = False, desc: str = "extract") -> np.ndarray:
    """Features of every image, row i = dataset item i: a float32 array (N, D).

    Eval mode (BN running statistics, dropout off), no augmentation, no gradient, an unshuffled
    pass, and one preallocated array filled in place, never a list of batches (§4: a shuffled
    loader scrambles labels; lists of batches blow up host memory). `model.features(x)` is used
    when the model has it (a `ClusterNet`: backbone [+ neck]), else `model(x)`.
    The model's train/eval mode is restored afterwards.
    """
    check_indexed(dataset)
    device = resolve_device(device)
    fn = model.features if hasattr(model, "features") else model
    was_training = model.training
    model.eval()
    n = len(dataset)
    out: np.ndarray | None = None
    order = torch.arange(n)
    bar = tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False)
    try:
        for x, idx in batches(dataset, order, batch_size, device, train=False):
            with autocast(device):
                z = fn(x)
            z = z.float().cpu().numpy()
            if out is None:  # allocate once the feature dimension is known
                out = np.empty((n, z.shape[1]), dtype=np.float32)
                if progress and n * z.shape[1] * 4 > 2**30:
                    tqdm.write(f"features: {n} x {z.shape[1]} float32 = {n * z.shape[1] * 4 / 2**30:.1f} GiB in RAM")
            out[idx.cpu().numpy()] = z
            bar.update(len(idx))
    finally:
        bar.close()
        model.train(was_training)
    return out
