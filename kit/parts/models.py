"""Backbones, the Sobel front-end, the ODC neck and the cluster head.

Every backbone gives its global-average-pooled feature (`forward`, (B, D)) and its per-stage maps
(`stages`: stem + 4 stages, the "Feature1-5" of the benchmark pages).

- `convnet`: a small 5-block ConvNet that trains an epoch of the 4,000 embedded digits in seconds
  on a CPU.
- `resnet18`: torchvision ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max-pool).
- `resnet50`: torchvision ResNet-50 as in OpenSelfSup/mmselfsup.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

BACKBONES = ("convnet", "resnet18", "resnet50")


class Sobel(nn.Module):
    """Fixed grayscale + Sobel edge filter: (B, C, H, W) -> (B, 2, H, W). Never trained (§1.8)."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        gray = torch.full((1, in_channels, 1, 1), 1.0 / in_channels)  # 1x1 conv, weights 1/C
        gx = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
        gy = torch.tensor([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]])
        self.register_buffer("gray", gray)  # buffers, not parameters: no optimizer can touch them
        self.register_buffer("edges", torch.stack([gx, gy]).unsqueeze(1))  # (2, 1, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, self.gray), self.edges, padding=1)


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Backbone(nn.Module):
    """A stem and four stages; `forward` pools the last stage, `stages` returns all five maps."""

    def __init__(
        self,
        stem: nn.Module,
        layers: list[nn.Module],
        stage_dims: list[int],
        min_size: int,
        name: str,
        in_channels: int,
        sobel: bool,
    ):
        super().__init__()
        self.sobel = Sobel(in_channels) if sobel else None
        self.stem, self.layers = stem, nn.ModuleList(layers)
        self.stage_dims, self.feature_dim = stage_dims, stage_dims[-1]
        self.min_size, self.name = min_size, name

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.sobel is not None:
            x = self.sobel(x)
        maps = [self.stem(x)]
        for layer in self.layers:
            maps.append(layer(maps[-1]))
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.stages(x)[-1], 1), 1)  # (B, D)


def _convnet(cin: int, sobel: bool, width: int = 32) -> Backbone:
    c = [width, width, 2 * width, 4 * width, 8 * width]
    stem = _block(2 if sobel else cin, c[0], 1)
    layers = [
        _block(c[0], c[1], 2),
        _block(c[1], c[2], 2),
        _block(c[2], c[3], 2),
        _block(c[3], c[4], 1),
    ]
    return Backbone(stem, layers, c, 8, "convnet", cin, sobel)


def _resnet(arch: str, cin: int, sobel: bool, cifar_stem: bool) -> Backbone:
    import torchvision

    net = getattr(torchvision.models, arch)(weights=None)  # random init; nothing is downloaded
    stem_in = 2 if sobel else cin
    if cifar_stem:
        net.conv1 = nn.Conv2d(stem_in, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif stem_in != 3:
        net.conv1 = nn.Conv2d(stem_in, 64, 7, 2, 3, bias=False)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    layers = [net.layer1, net.layer2, net.layer3, net.layer4]
    dims = [64, *[_out_channels(layer) for layer in layers]]
    return Backbone(stem, layers, dims, 8 if cifar_stem else 32, arch, cin, sobel)


def _out_channels(layer: nn.Sequential) -> int:
    last = layer[-1]
    return (last.conv3 if hasattr(last, "conv3") else last.conv2).out_channels


def build_backbone(name: str = "convnet", in_channels: int = 1, sobel: bool = False,
                   image_size: int | None = None) -> Backbone:
    """A backbone by name; `image_size` is checked against what the backbone can take."""
    if name == "convnet":
        bb = _convnet(in_channels, sobel)
    elif name == "resnet18":
        bb = _resnet("resnet18", in_channels, sobel, cifar_stem=True)
    elif name == "resnet50":
        bb = _resnet("resnet50", in_channels, sobel, cifar_stem=False)
    else:
        raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}")
    if image_size is not None and image_size < bb.min_size:
        raise ValueError(
            f"{image_size}x{image_size} images are too small for {name} (needs at least "
            f"{bb.min_size} px): use a bigger image_size or backbone='convnet'"
        )
    return bb


class ClusterHead(nn.Linear):
    """The linear classifier over cluster ids. `reset_parameters` draws N(0, 0.01) weights, zero
    bias (§1.7)."""

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.01)
        nn.init.zeros_(self.bias)


class ODCNeck(nn.Module):
    """ODC's non-linear neck (§2.1): fc -> BN (affine off) -> ReLU -> dropout -> fc -> ReLU;
    (B, D) -> (B, 256)."""

    def __init__(self, in_dim: int, hid_dim: int = 512, out_dim: int = 256, dropout: float = 0.5):
        super().__init__()
        self.fc0 = nn.Linear(in_dim, hid_dim)
        # slow running stats, as the reference
        self.bn0 = nn.BatchNorm1d(hid_dim, affine=False, momentum=0.001)
        self.drop = nn.Dropout(dropout)
        self.fc1 = nn.Linear(hid_dim, out_dim)
        for fc in (self.fc0, self.fc1):  # OpenSelfSup's Kaiming (fan_in) init of the neck
            nn.init.kaiming_normal_(fc.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc1(self.drop(F.relu(self.bn0(self.fc0(x))))))


class ClusterNet(nn.Module):
    """backbone -> (neck) -> head. `features` is what gets clustered; `forward` gives the logits."""

    def __init__(self, backbone: Backbone, n_clusters: int, neck: nn.Module | None = None):
        super().__init__()
        self.backbone, self.neck = backbone, neck
        dim = neck.fc1.out_features if isinstance(neck, ODCNeck) else backbone.feature_dim
        self.head = ClusterHead(dim, n_clusters)
        self.feature_dim = dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.backbone(x))  # (B, feature_dim)

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """The neck on the backbone's pooled features (themselves where there is no neck)."""
        return self.neck(h) if self.neck is not None else h

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits), both float32: under a training autocast only the backbone runs in
        bf16 / fp16; the neck (whose output ODC writes into its float32 memory) and the head run in
        float32 (a few small matrix products: the time is the backbone's)."""
        h = self.backbone(x)
        with (
            torch.autocast(h.device.type, enabled=False)
            if h.device.type in ("cuda", "cpu")
            else contextlib.nullcontext()
        ):
            z = self.project(h.float())
            return z, self.head(z)  # (B, D), (B, K)
