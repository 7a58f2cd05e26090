"""The benchmark pages' classification protocols, at the scale of one machine (the OpenSelfSup /
mmselfsup benchmark pages; ALGORITHMS.md §3.1 and §3.5).

- linear probe on each stage (Feature1-5: stem + 4 stages, pooled to a fixed size, no global
  pooling) and on the global-average-pooled feature (AvgPool), all heads trained together on
  cached features;
- weighted kNN (k = 10, 20, 100, 200) on the pooled feature;
- linear SVM, and low-shot SVMs with k = 1..96 labelled samples per class, several draws each;
- semi-supervised fine-tuning of the whole network with 1% and 10% of the labels over the page's
  grid, base lr {0.001, 0.01, 0.1} x head multiplier {1, 10, 100}, each model's setting chosen on a
  validation split carved from the train split (or, as the pages do, by test top-1:
  `selection="test"`);
- `export_torchvision`: a ResNet backbone as a plain torchvision state dict.

Departure from the pages, on purpose: the reference pools each stage to ~9k dims for 224 px
ImageNet images; kit pools to ~2k dims (`stage_dim`), scaled to small images and CPU budgets.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..parts.data import batches, validation_split
from ..parts.features import model_device
from ..parts.metrics import knn_accuracy
from ..parts.models import Backbone, ClusterHead
from ..parts.runtime import full_precision, resolve_device

LOW_SHOT_K = (1, 2, 4, 8, 16, 32, 64, 96)
KNN_K = (10, 20, 100, 200)
FINETUNE_GRID = tuple((lr, mult) for lr in (0.001, 0.01, 0.1) for mult in (1, 10, 100))
SELECTIONS = ("validation", "test")  # what picks the fine-tuning setting (`semi_supervised`)


def setting_name(lr: float, head_mult: int) -> str:
    """The page's naming: `lr1e-2_head10`."""
    return f"lr{lr:.0e}".replace("e-0", "e-") + f"_head{head_mult}"


# -- features --------------------------------------------------------------------------------
def pool_size(channels: int, spatial: int, stage_dim: int) -> int:
    """Side of the pooled map so that channels * side^2 is about `stage_dim` (at most the map)."""
    return max(1, min(spatial, round(math.sqrt(stage_dim / channels))))


def _device(model: torch.nn.Module, device) -> torch.device:
    """The device a protocol runs on: the one named, else the model's own."""
    return model_device(model) if device is None else resolve_device(device)


@torch.inference_mode()
def stage_features(backbone: Backbone, dataset, stage_dim: int = 2048, batch_size: int = 256,
                   device=None, num_workers: int = 4) -> list[torch.Tensor]:
    """Feature1-5 (each stage's map average-pooled to about `stage_dim` values) and AvgPool, for
    every image, in dataset order: a list of 6 float32 tensors (N, D_i) on the CPU. Eval mode, no
    augmentation, float32; on the backbone's device unless `device` names one."""
    device = _device(backbone, device)
    was = backbone.training
    net = (
        backbone.eval()
        if device == model_device(backbone)
        else copy.deepcopy(backbone).eval().to(device)
    )
    out: list[list[torch.Tensor]] = [[] for _ in range(6)]
    for x, _ in batches(
        dataset,
        torch.arange(len(dataset)),
        batch_size,
        device,
        train=False,
        num_workers=num_workers,
    ):
        with full_precision(device):
            maps = net.stages(x)
        for i, m in enumerate(maps):
            s = pool_size(m.shape[1], m.shape[-1], stage_dim)
            out[i].append(F.adaptive_avg_pool2d(m, s).flatten(1).float().cpu())
        out[5].append(maps[-1].mean(dim=(2, 3)).float().cpu())
    backbone.train(was)
    return [torch.cat(o) for o in out]


STAGES = ("Feature1", "Feature2", "Feature3", "Feature4", "Feature5", "AvgPool")


# -- linear probe ------------------------------------------------------------------------------
def linear_probe(train_feats: list[torch.Tensor], ytr: torch.Tensor, test_feats: list[torch.Tensor],
                 yte: torch.Tensor, epochs: int = 60, lr: float = 0.1, batch_size: int = 256,
                 seed: int = 0) -> dict[str, dict[str, float]]:
    """One linear head per feature set, trained together by SGD on the cached (standardised)
    features; returns {stage: {"top1": %, "top5": %}} on the test split (top-5 with > 5 classes)."""
    g = torch.Generator().manual_seed(seed)
    n_classes = int(max(ytr.max(), yte.max())) + 1
    mean = [f.mean(0) for f in train_feats]
    std = [f.std(0) + 1e-6 for f in train_feats]  # standardise: one lr suits every stage
    xtr = [(f - m) / s for f, m, s in zip(train_feats, mean, std)]
    xte = [(f - m) / s for f, m, s in zip(test_feats, mean, std)]
    heads = torch.nn.ModuleList(torch.nn.Linear(x.shape[1], n_classes) for x in xtr)
    opt = torch.optim.SGD(heads.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for _ in range(epochs):
        order = torch.randperm(len(ytr), generator=g)
        for s in range(0, len(order), batch_size):
            b = order[s : s + batch_size]
            loss = sum(F.cross_entropy(h(x[b]), ytr[b]) for h, x in zip(heads, xtr))
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    with torch.no_grad():
        return {name: topk(h(x), yte, n_classes) for name, h, x in zip(STAGES, heads, xte)}


def topk(logits: torch.Tensor, y: torch.Tensor, n_classes: int) -> dict[str, float]:
    top = logits.topk(min(5, n_classes), dim=1).indices
    out = {"top1": 100 * (top[:, 0] == y).float().mean().item()}
    if n_classes > 5:
        out["top5"] = 100 * (top == y[:, None]).any(1).float().mean().item()
    return out


# -- kNN and SVMs ----------------------------------------------------------------------------
def knn_table(ftr, ytr, fte, yte, ks=KNN_K) -> dict[int, float]:
    """Weighted kNN top-1 (%) for each k, as on the ODC page."""
    return {k: 100 * knn_accuracy(ftr, ytr, fte, yte, k=k) for k in ks if k <= len(ftr)}


def low_shot_indices(targets: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """k random training indices per class (fewer where a class has fewer)."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in targets.unique():
        members = torch.nonzero(targets == c).flatten()
        picks.append(members[torch.randperm(len(members), generator=g)[:k]])
    return torch.cat(picks)


def svm_table(
    ftr, ytr, fte, yte, ks=LOW_SHOT_K, draws: int = 5, cost: float = 1.0, progress: bool = False
) -> dict:
    """Linear SVM top-1 (%) on all labels ("SVM") and low-shot SVMs: {k: (mean, std over draws)}."""
    from sklearn.svm import LinearSVC

    def norm(f):  # the pages L2-normalise
        return F.normalize(torch.as_tensor(f), dim=1).numpy()

    xtr, xte, ytr_np, yte_np = norm(ftr), norm(fte), np.asarray(ytr), np.asarray(yte)

    def fit_score(idx):
        svm = LinearSVC(C=cost, max_iter=5000, dual="auto").fit(xtr[idx], ytr_np[idx])
        return 100 * svm.score(xte, yte_np)

    out = {"SVM": fit_score(np.arange(len(xtr)))}
    for k in tqdm(ks, desc="low-shot SVM", disable=not progress, leave=False):
        scores = [
            fit_score(low_shot_indices(torch.as_tensor(ytr_np), k, seed).numpy())
            for seed in range(draws)
        ]
        out[k] = (float(np.mean(scores)), float(np.std(scores)))
    return out


# -- semi-supervised fine-tuning -------------------------------------------------------------
@dataclass
class FinetuneResult:
    setting: str
    top1: float  # on the test split, %
    top5: float | None
    val_top1: float | None = None  # on the validation split that chose the setting, where one did
    # "validation" or "test": which split's top-1 picked this setting from the grid
    selected_on: str = "test"


def finetune(
    backbone: Backbone,
    train_set,
    test_set,
    fraction: float,
    lr: float,
    head_mult: int,
    steps: int = 200,
    batch_size: int = 64,
    seed: int = 0,
    device=None,
    num_workers: int = 4,
) -> FinetuneResult:
    """Fine-tune a copy of the whole network with a linear head on `fraction` of the labels
    (class-balanced), base lr `lr`, head lr `lr * head_mult`, for `steps` SGD steps (lr / 10 at 60%
    and 80%); top-1/top-5 (%) on the test split. Sized in steps, not epochs: 1% of the labels is a
    single batch per epoch. Runs on the backbone's device unless `device` names one."""
    device = _device(backbone, device)
    net, head, n_classes = _tuned(
        backbone, train_set, fraction, lr, head_mult, steps, batch_size, seed, device, num_workers
    )
    r = _scores(net, head, test_set, n_classes, device, num_workers)
    return FinetuneResult(setting_name(lr, head_mult), r["top1"], r.get("top5"))


def _tuned(
    backbone: Backbone,
    train_set,
    fraction: float,
    lr: float,
    head_mult: int,
    steps: int,
    batch_size: int,
    seed: int,
    device,
    num_workers: int,
) -> tuple[torch.nn.Module, torch.nn.Linear, int]:
    """`finetune`'s training: (the network in eval mode, its head, the number of classes)."""
    torch.manual_seed(seed)
    ytr = train_set.targets
    n_classes = int(ytr.max()) + 1
    per_class = max(1, round(fraction * len(ytr) / n_classes))
    idx = low_shot_indices(ytr, per_class, seed)
    net = copy.deepcopy(backbone).to(device).train()
    head = torch.nn.Linear(net.feature_dim, n_classes).to(device)
    ClusterHead.reset_parameters(head)  # N(0, 0.01), zero bias
    opt = torch.optim.SGD(
        [
            {"params": net.parameters(), "lr": lr},
            {"params": head.parameters(), "lr": lr * head_mult},
        ],
        momentum=0.9,
        weight_decay=5e-4,
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.6 * steps), int(0.8 * steps)], 0.1)
    g = torch.Generator().manual_seed(seed)
    order = torch.cat(
        [
            idx[torch.randperm(len(idx), generator=g)]
            for _ in range(-(-steps * batch_size // len(idx)))
        ]
    )
    # indexed by the batch's indices, which live on the device for tensor datasets
    targets = ytr.to(device)
    for x, b in batches(train_set, order[: steps * batch_size], batch_size, device, train=True,
                        num_workers=num_workers):
        if len(b) < 2:
            continue
        loss = F.cross_entropy(head(net(x)), targets[b.to(device)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    recalibrate_bn(net, train_set, idx, device, num_workers=num_workers)
    return net.eval(), head, n_classes


@torch.no_grad()
def _scores(net, head, dataset, n_classes: int, device, num_workers: int) -> dict[str, float]:
    logits = [
        head(net(x)).float().cpu()
        for x, _ in batches(
            dataset, torch.arange(len(dataset)), 256, device, train=False, num_workers=num_workers
        )
    ]
    return topk(torch.cat(logits), dataset.targets, n_classes)


@torch.no_grad()
def recalibrate_bn(net: torch.nn.Module, dataset, idx: torch.Tensor, device, batch_size: int = 256,
                   num_workers: int = 4) -> None:
    """Recompute BatchNorm running statistics as exact averages over the labelled images.

    With 1% of the labels a fine-tuning run takes only tens of steps, too few for running
    statistics with momentum 0.1 to forget their initial values, so eval mode would see the wrong
    normalisation. Departure from the reference protocol (which fine-tunes for many more steps).
    """
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: the exact mean over the batches seen
    net.train()
    for x, _ in batches(dataset, idx, batch_size, device, train=False, num_workers=num_workers):
        net(x)
    for m, mom in zip(bns, saved):
        m.momentum = mom


def semi_supervised(
    backbone,
    train_set,
    test_set,
    fractions=(0.01, 0.1),
    grid=FINETUNE_GRID,
    steps: int = 200,
    device=None,
    progress: bool = False,
    selection: str = "validation",
    val_fraction: float = 0.1,
) -> dict[float, FinetuneResult]:
    """The page's grid for each label fraction, and the setting each fraction keeps.

    `selection="validation"` (the default): a class-stratified `val_fraction` of the train split is
    set aside, every setting fine-tunes on `fraction` of the rest, the best validation top-1 picks
    the setting, and its test top-1/top-5 are reported; the test split takes no part in the choice.
    `selection="test"`: the benchmark pages' way, fine-tuning on `fraction` of the whole train split
    and keeping the best test top-1, which flatters every model a little (the test split chooses).
    """
    if selection not in SELECTIONS:
        raise ValueError(f"selection={selection!r}: choose {' or '.join(SELECTIONS)}")
    if selection == "test":
        return {
            frac: max(
                (
                    finetune(backbone, train_set, test_set, frac, lr, m, steps=steps, device=device)
                    for lr, m in tqdm(
                        grid, desc=f"fine-tune {frac:.0%}", disable=not progress, leave=False
                    )
                ),
                key=lambda r: r.top1,
            )
            for frac in fractions
        }
    n_classes = len(train_set.targets.unique())
    pool, val = validation_split(train_set, max(n_classes, round(val_fraction * len(train_set))))
    return {
        frac: _chosen_on_validation(
            backbone, pool, val, test_set, frac, grid, steps, device, progress
        )
        for frac in fractions
    }


def _chosen_on_validation(
    backbone,
    pool,
    val,
    test_set,
    fraction: float,
    grid,
    steps: int,
    device,
    progress: bool,
    batch_size: int = 64,
    seed: int = 0,
    num_workers: int = 4,
) -> FinetuneResult:
    """Every setting of `grid` fine-tuned on `fraction` of `pool` and scored on `val`; the test
    split scores the chosen one only (the network of the best setting so far is kept, the others
    dropped)."""
    device = _device(backbone, device)
    # (validation top-1, lr, head multiplier, network, head, classes) of the best setting so far
    kept = None
    for lr, m in tqdm(grid, desc=f"fine-tune {fraction:.0%}", disable=not progress, leave=False):
        net, head, n = _tuned(
            backbone, pool, fraction, lr, m, steps, batch_size, seed, device, num_workers
        )
        top1 = _scores(net, head, val, n, device, num_workers)["top1"]
        if kept is None or top1 > kept[0]:  # the first of equals, as max() keeps
            kept = (top1, lr, m, net, head, n)
    top1, lr, m, net, head, n = kept
    r = _scores(net, head, test_set, n, device, num_workers)
    return FinetuneResult(setting_name(lr, m), r["top1"], r.get("top5"), top1, "validation")


# -- export ------------------------------------------------------------------------------------
def export_torchvision(backbone: Backbone) -> dict[str, torch.Tensor]:
    """A ResNet backbone as a plain torchvision ResNet state dict (no `fc`), for detection and
    segmentation toolkits: stem.0 -> conv1, stem.1 -> bn1, layers.i -> layer{i+1}."""
    if backbone.name not in ("resnet18", "resnet50"):
        raise ValueError(f"only ResNet backbones export to torchvision, not {backbone.name!r}")
    if backbone.sobel is not None:
        raise ValueError(
            "a Sobel backbone takes 2-channel edge maps; torchvision ResNets take RGB: export "
            "without Sobel"
        )
    out = {}
    for k, v in backbone.state_dict().items():
        if k.startswith("stem.0."):
            out["conv1." + k[7:]] = v
        elif k.startswith("stem.1."):
            out["bn1." + k[7:]] = v
        elif k.startswith("layers."):
            i, rest = k[7:].split(".", 1)
            out[f"layer{int(i) + 1}.{rest}"] = v
    return out
