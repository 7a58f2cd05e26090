"""The supervised ceiling of `python -m kit evaluate`: the same backbone and augmentation trained
with the true labels, stepped as the trainers step (`training.optimise`: the card's precision and
loss scaler, the losses read from the device together). bench/run.py times `supervised_epoch`
against a trainer's epoch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..parts.data import batches
from ..parts.models import Backbone, ClusterNet, build_backbone
from ..parts.runtime import AUTO, autocast, grad_scaler, resolve_device, seed_everything
from .training import Readings, TrainConfig, fused, optimise


def train_supervised(cfg: TrainConfig, dataset, epochs: int, device=AUTO) -> Backbone:
    """The ceiling: `cfg`'s backbone trained `epochs` epochs with plain cross-entropy on the true
    labels."""
    device = resolve_device(device)
    seed_everything(cfg.seed)
    c, h, _ = dataset.image_shape
    net = ClusterNet(
        build_backbone(cfg.backbone, c, cfg.sobel, h), int(dataset.targets.max()) + 1
    ).to(device)
    opt = torch.optim.SGD(
        net.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        **fused(device),
    )  # stepped as the trainers step
    y = dataset.targets.to(device)
    g = torch.Generator().manual_seed(cfg.seed)
    for _ in range(epochs):
        supervised_epoch(
            net, opt, dataset, torch.randperm(len(dataset), generator=g), cfg.batch_size, y, device
        )
    return net.backbone


def supervised_epoch(
    net: ClusterNet, opt, dataset, order, batch_size: int, targets, device
) -> float:
    """One epoch of plain cross-entropy on `targets[idx]`, stepped as the trainers step, so a timed
    ratio against a trainer's epoch compares like with like. Returns the mean loss."""
    net.train()
    scaler, losses = grad_scaler(device), []
    # as the trainers' logged loss: read from the device every READ_EVERY steps
    readings = Readings(losses.append)
    for x, idx in batches(dataset, order, batch_size, device, train=True):
        if len(idx) < 2:
            continue
        with autocast(device):
            _, logits = net(x)
        loss = F.cross_entropy(logits.float(), targets[idx.to(device)])
        optimise(opt, scaler, loss)
        readings.add(loss.detach())
    readings.read()
    return sum(losses) / max(len(losses), 1)
