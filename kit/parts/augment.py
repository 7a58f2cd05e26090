"""Batched augmentation on the training device.

The reference pipelines (ALGORITHMS.md §1.9) transform one PIL image at a time in DataLoader
workers. For datasets held as tensors kit augments a whole batch at once, on the device the
model trains on, so a GPU is never starved by a per-image Python loop:

- random resized crop + horizontal flip + small rotation are one affine `grid_sample` per batch;
- colour jitter (brightness, contrast, saturation, hue) and random grayscale are tensor ops
  with one random factor per sample.

Departure from the reference, on purpose: torchvision's ColorJitter applies its four jitters in
a random order per image; kit applies them in a fixed order (brightness, contrast, saturation,
hue). The distribution of each factor is the same.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentSpec:
    """Ranges of the train augmentation. Defaults: OpenSelfSup/mmselfsup DeepCluster and ODC
    (§1.9)."""

    scale: tuple[float, float] = (0.08, 1.0)  # RandomResizedCrop area fraction
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # RandomResizedCrop aspect ratio
    flip: float = 0.5  # horizontal flip probability
    rotate: float = 2.0  # RandomRotation, degrees either way
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 1.0
    hue: float = 0.5  # fraction of a full turn either way (torchvision's convention)
    grayscale: float = 0.2  # RandomGrayscale probability


# The reference values for colour images, and a scaled-down version for 28 px digits:
# a gentler crop (an 8% crop of a digit is a blob), no flip (a mirrored 2 is not a 2), a bit
# more rotation instead, and on a single channel brightness and contrast only (no saturation, hue or
# grayscale).
COLOUR = AugmentSpec()
DIGITS = AugmentSpec(
    scale=(0.4, 1.0), flip=0.0, rotate=10.0, saturation=0.0, hue=0.0, grayscale=0.0
)
# 28 px clothes (fashion5k): the digits' gentle crop and brightness and contrast, with the
# reference's flip back (a mirrored shirt is a shirt) and its small rotation (the articles are
# photographed upright)
CLOTHES = AugmentSpec(scale=(0.4, 1.0), rotate=2.0, saturation=0.0, hue=0.0, grayscale=0.0)


def _uniform(n: int, lo: float, hi: float, device) -> torch.Tensor:
    return torch.rand(n, device=device) * (hi - lo) + lo


def random_affine_crop(x: torch.Tensor, spec: AugmentSpec) -> torch.Tensor:
    """Random resized crop, flip and rotation of a batch (B, C, H, W) by one `grid_sample`."""
    b, dev = x.shape[0], x.device
    area = _uniform(b, *spec.scale, dev)
    log_r = _uniform(b, math.log(spec.ratio[0]), math.log(spec.ratio[1]), dev)
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)  # crop width / image width
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(b, device=dev) * 2 - 1) * (1 - w)  # crop centre, so the crop stays inside
    cy = (torch.rand(b, device=dev) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(b, device=dev) < spec.flip, -1.0, 1.0)
    angle = _uniform(b, -spec.rotate, spec.rotate, dev) * (math.pi / 180)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # output grid (u, v) in [-1, 1]  ->  source  R(angle) @ diag(w * flip, h) @ (u, v) + (cx, cy)
    theta = torch.stack(
        [
            torch.stack([cos * w * flip, -sin * h, cx], dim=1),
            torch.stack([sin * w * flip, cos * h, cy], dim=1),
        ],
        dim=1,
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, as torchvision's rgb_to_grayscale: (B, 3, H, W) -> (B, 1, H, W)."""
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
)
# (device, dtype) -> (RGB -> YIQ, YIQ -> RGB), copied to each device once, not once per batch
_YIQ: dict = {}


def _yiq(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    key = (str(device), dtype)
    if key not in _YIQ:  # the inverse is taken on the host, where it costs the device no wait
        _YIQ[key] = tuple(m.to(device, dtype) for m in (_TO_YIQ, torch.linalg.inv(_TO_YIQ)))
    return _YIQ[key]


def _rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate hue by `turns` of a full circle, in YIQ space (a linear approximation of HSV's hue
    shift)."""
    to_yiq, from_yiq = _yiq(x.device, x.dtype)
    a = turns * 2 * math.pi
    cos, sin = torch.cos(a), torch.sin(a)
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    rot = torch.stack([torch.stack([one, zero, zero], 1), torch.stack([zero, cos, -sin], 1),
                       torch.stack([zero, sin, cos], 1)], 1)  # (B, 3, 3)
    m = from_yiq @ rot @ to_yiq  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", m, x)


def colour_jitter(x: torch.Tensor, spec: AugmentSpec) -> torch.Tensor:
    """Per-sample brightness, contrast, saturation, hue and random grayscale of images in [0, 1]."""
    b, dev = x.shape[0], x.device
    shape = (b, 1, 1, 1)
    if spec.brightness:
        x = x * _uniform(b, 1 - spec.brightness, 1 + spec.brightness, dev).view(shape)
    if spec.contrast:
        lum = _gray(x) if x.shape[1] == 3 else x
        mean = lum.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * _uniform(b, 1 - spec.contrast, 1 + spec.contrast, dev).view(shape) + mean
    if x.shape[1] == 3:
        if spec.saturation:
            g = _gray(x)
            x = (x - g) * _uniform(b, max(0.0, 1 - spec.saturation), 1 + spec.saturation, dev).view(
                shape
            ) + g
        if spec.hue:
            x = _rotate_hue(x.clamp(0, 1), _uniform(b, -spec.hue, spec.hue, dev))
        if spec.grayscale:
            to_gray = (torch.rand(b, device=dev) < spec.grayscale).view(shape)
            x = torch.where(to_gray, _gray(x).expand_as(x), x)
    return x.clamp(0, 1)


def augment(x: torch.Tensor, spec: AugmentSpec) -> torch.Tensor:
    """Train augmentation of a float batch in [0, 1], (B, C, H, W) -> same shape, values in
    [0, 1]."""
    return colour_jitter(random_affine_crop(x, spec), spec)
