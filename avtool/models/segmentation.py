"""Unsupervised single-image segmentation networks: MMT (Wu et al. 2020) and its CNN baselines.

All three methods optimise a fresh network on the one image being segmented; a pixel's label is
the argmax over the q response channels, so the number of segments is learned, not fixed.

- Feature network (Kanezaki 2018 / Kim 2020 public code, which the MMT paper builds on): M
  components of 3×3 conv → ReLU → BatchNorm, then a 1×1 conv → BatchNorm giving q responses.
  MMT uses M = 3, q = 100 (paper §4); Kanezaki's and Kim's code default to M = 2 (`--nConv 2`).
- Input: RGB / 255 (the authors' code; the paper only says "normalized").
- BatchNorm always uses the image's own statistics (train mode), as in the public code: the one
  image is the whole batch, and there is no separate inference-time distribution to track.
- SGD, lr 0.1, momentum 0.9, T = 1000 iterations for every method (paper §4).
- Kanezaki 2018: cross-entropy against argmax labels refined by SLIC superpixels (each
  superpixel takes its most frequent label), 10,000 superpixels, compactness 100; stops once
  the argmax has ≤ 3 labels (`--minLabels 3`).
- Kim 2020: cross-entropy against the argmax labels + µ · continuity loss (mean L1 of the
  vertical and horizontal response differences); stops at ≤ 3 labels as its code does.
- MMT: two students with different initialisations and their temporal-average (EMA, α = 0.999)
  teachers. Student 1 learns from teacher 2's argmax labels after Hungarian alignment into
  student 1's label space, and vice versa (Algorithm 1, in its order: student 1 and its teacher
  update before teacher 1 labels student 2). Loss = CE + β · TV with TV the same mean-L1
  continuity term as Kim's code (the paper cites it; a sum over pixels would swamp CE). β
  is not given in the paper: 1, Kim's default. MMT runs all T iterations (Algorithm 1 has no
  early stop), and the output is teacher 1's argmax, since the temporal-average models are
  MMT's inference models (Ge et al. 2020).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.nn import functional as F


class SegmentationNet(nn.Module):
    """M × (3×3 conv → ReLU → BN), then 1×1 conv → BN: [B, 3, H, W] → [B, q, H, W].

    Weights and activations are channels-last (NHWC): oneDNN's CPU convolutions then skip the
    NCHW ↔ blocked reorders (≈1.6× faster 3×3 forward at q=100), the [H·W, q] view that
    cross-entropy reads is contiguous, and the argmax over q runs along contiguous memory. BN
    keeps no running statistics: it always normalises by the image's own (see module note).
    """

    def __init__(self, in_channels: int = 3, channels: int = 100, n_conv: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for _ in range(n_conv):
            layers += [
                nn.Conv2d(width, channels, 3, padding=1),
                nn.ReLU(),
                nn.BatchNorm2d(channels, track_running_stats=False),
            ]
            width = channels
        layers += [
            nn.Conv2d(channels, channels, 1),
            nn.BatchNorm2d(channels, track_running_stats=False),
        ]
        self.body = nn.Sequential(*layers)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.contiguous(memory_format=torch.channels_last))


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass
class NetConfig:
    """Optimisation settings shared by the CNN methods (paper §4 defaults)."""

    iterations: int = 1000
    channels: int = 100
    n_conv: int = 3
    lr: float = 0.1
    momentum: float = 0.9
    min_labels: int = 3  # Kanezaki/Kim stopping rule; MMT ignores it


def image_tensor(image: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """uint8 [H, W, 3] → float32 [1, 3, H, W] in [0, 1]."""
    return torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)[None].to(device)


def continuity_loss(response: torch.Tensor) -> torch.Tensor:
    """Mean L1 of vertical and horizontal response differences (Kim 2020's code, TV in MMT)."""
    vertical = (response[:, :, 1:, :] - response[:, :, :-1, :]).abs().mean()
    horizontal = (response[:, :, :, 1:] - response[:, :, :, :-1]).abs().mean()
    return vertical + horizontal


def _flat(response: torch.Tensor) -> torch.Tensor:
    """[1, q, H, W] → [H·W, q] (pixels as rows, for cross-entropy)."""
    return response[0].flatten(1).t()


def align_labels(source: torch.Tensor, reference: torch.Tensor, n_labels: int) -> torch.Tensor:
    """`source` labels renamed into `reference`'s label space by maximal overlap (Hungarian).

    The overlap matrix S[i, j] counts pixels labelled i in `source` and j in `reference`;
    `linear_sum_assignment` picks the one-to-one matching of maximal total overlap. The two
    maps may use different numbers of clusters: source clusters left without a partner (when
    `source` has more) take ids that `reference` does not use, so they stay separate clusters
    instead of merging into a matched one. Labels are in [0, n_labels).
    """
    pair = source.flatten() * n_labels + reference.flatten()
    overlap = torch.bincount(pair, minlength=n_labels * n_labels).view(n_labels, n_labels)
    overlap = overlap.cpu().numpy()
    used_source = np.flatnonzero(overlap.sum(1))
    used_reference = np.flatnonzero(overlap.sum(0))
    rows, cols = linear_sum_assignment(overlap[np.ix_(used_source, used_reference)], maximize=True)
    mapping = np.full(n_labels, -1, dtype=np.int64)
    mapping[used_source[rows]] = used_reference[cols]
    unmatched = used_source[mapping[used_source] < 0]
    if len(unmatched):
        free = np.setdiff1d(np.arange(n_labels), used_reference)
        mapping[unmatched] = free[: len(unmatched)]
    return torch.from_numpy(mapping).to(source.device)[source]


def _optimizer(net: nn.Module, config: NetConfig) -> torch.optim.Optimizer:
    # foreach: the same per-tensor arithmetic in one call per step (CPU defaults to a loop).
    return torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum, foreach=True)


def _labels(response: torch.Tensor) -> torch.Tensor:
    return response[0].argmax(0)


@torch.no_grad()
def _ema_update(teacher: nn.Module, student: nn.Module, alpha: float) -> None:
    """θ_mean ← α·θ_mean + (1 − α)·θ, over all parameters in two fused calls."""
    means, currents = list(teacher.parameters()), list(student.parameters())
    torch._foreach_mul_(means, alpha)
    torch._foreach_add_(means, currents, alpha=1 - alpha)


def segment_mmt(
    image: np.ndarray,
    seed: int,
    config: NetConfig,
    alpha: float = 0.999,
    beta: float = 1.0,
    device: str = "cpu",
) -> tuple[np.ndarray, int]:
    """Mutual mean-teaching on one image (Algorithm 1); returns (labels [H, W], iterations)."""
    torch.manual_seed(seed)
    x = image_tensor(image, device)
    students = [
        SegmentationNet(3, config.channels, config.n_conv).to(device),
        SegmentationNet(3, config.channels, config.n_conv).to(device),
    ]
    teachers = [copy.deepcopy(s) for s in students]  # θ_mean^0 = θ^0
    for teacher in teachers:
        teacher.requires_grad_(False)
    optimizers = [_optimizer(s, config) for s in students]
    for _ in range(config.iterations):
        for me, other in ((0, 1), (1, 0)):
            response = students[me](x)
            with torch.inference_mode():
                teacher_labels = _labels(teachers[other](x))
            target = align_labels(teacher_labels, _labels(response.detach()), config.channels)
            loss = F.cross_entropy(_flat(response), target.flatten())
            loss = loss + beta * continuity_loss(response)
            optimizers[me].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[me].step()
            _ema_update(teachers[me], students[me], alpha)
    with torch.no_grad():
        labels = _labels(teachers[0](x))
    return labels.cpu().numpy().astype(np.int32), config.iterations


def superpixels(image: np.ndarray, segments: int = 10000, compactness: float = 100.0) -> np.ndarray:
    """SLIC labels [H, W] from 0, as Kanezaki's code computes them once per image."""
    from skimage.segmentation import slic

    return slic(image, n_segments=segments, compactness=compactness, start_label=0)


def segment_kanezaki(
    image: np.ndarray,
    seed: int,
    config: NetConfig,
    segments: int = 10000,
    compactness: float = 100.0,
    device: str = "cpu",
    stop_early: bool = True,
) -> tuple[np.ndarray, int]:
    """Kanezaki 2018 (superpixel-refined self-training); returns (labels, iterations run)."""
    torch.manual_seed(seed)
    x = image_tensor(image, device)
    regions = torch.from_numpy(superpixels(image, segments, compactness).ravel()).to(device)
    n_regions = int(regions.max()) + 1
    net = SegmentationNet(3, config.channels, config.n_conv).to(device)
    optimizer = _optimizer(net, config)
    iterations = 0
    for iterations in range(1, config.iterations + 1):  # noqa: B007 - the count is returned
        logits = _flat(net(x))
        labels = logits.detach().argmax(1)
        votes = torch.bincount(
            regions * config.channels + labels, minlength=n_regions * config.channels
        )
        target = votes.view(n_regions, config.channels).argmax(1)[regions]
        loss = F.cross_entropy(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if stop_early and labels.unique().numel() <= config.min_labels:
            break
    with torch.no_grad():
        final = _labels(net(x))
    return final.cpu().numpy().astype(np.int32), iterations


def segment_kim(
    image: np.ndarray,
    seed: int,
    config: NetConfig,
    mu: float = 1.0,
    device: str = "cpu",
    stop_early: bool = True,
) -> tuple[np.ndarray, int]:
    """Kim 2020 (differentiable feature clustering + continuity loss weighted by µ)."""
    torch.manual_seed(seed)
    x = image_tensor(image, device)
    net = SegmentationNet(3, config.channels, config.n_conv).to(device)
    optimizer = _optimizer(net, config)
    iterations = 0
    for iterations in range(1, config.iterations + 1):  # noqa: B007 - the count is returned
        response = net(x)
        logits = _flat(response)
        labels = logits.detach().argmax(1)
        loss = F.cross_entropy(logits, labels) + mu * continuity_loss(response)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if stop_early and labels.unique().numel() <= config.min_labels:
            break
    with torch.no_grad():
        final = _labels(net(x))
    return final.cpu().numpy().astype(np.int32), iterations


def segment_kmeans(image: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means on pixel colours (scikit-learn, k-means++ init, one init so seeds matter)."""
    from sklearn.cluster import KMeans

    pixels = image.reshape(-1, 3).astype(np.float32) / 255.0
    k = min(k, len(np.unique(pixels, axis=0)))
    labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(pixels)
    return labels.reshape(image.shape[:2]).astype(np.int32)


def segment_felzenszwalb(image: np.ndarray, scale: float) -> np.ndarray:
    """Felzenszwalb-Huttenlocher graph segmentation (scikit-image defaults σ=0.8, min_size=20)."""
    from skimage.segmentation import felzenszwalb

    return felzenszwalb(image, scale=scale).astype(np.int32)
