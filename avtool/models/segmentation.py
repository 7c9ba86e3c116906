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
  is not given in the paper: 5 here, chosen on the real train samples (README). MMT runs all
  T iterations (Algorithm 1 has no early stop), and the output is teacher 1's argmax, since
  the temporal-average models are MMT's inference models (Ge et al. 2020).

Precision: fp32 is the default and the portable path. `NetConfig.precision="bf16"` runs the
forward passes under bf16 autocast (channels-last; the losses and the SGD/EMA updates stay
fp32, the labels are the argmax of bf16 responses); `"auto"` takes bf16 only where oneDNN has
native bf16 (AMX or AVX512-BF16) and a short probe finds it ≥ 1.5× faster, else fp32. On an
AVX2-only CPU bf16 is emulated and several times slower, so `auto` stays fp32 there. bf16 is
not the default anywhere: on the real BSDS500 samples it segments worse than fp32 (README).
Seeds of one image are not batched: at full size one iteration is seconds of convolution, so a
batch would save only per-call overhead.

Progress: each method takes an optional `Throttle` (iteration, loss, segment count, at most
every few seconds), and MMT an `observe` hook that can score its output on the way.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn


class SegmentationNet(nn.Module):
    """M × (3×3 conv → ReLU → BN), then 1×1 conv → BN: [B, 3, H, W] → [B, q, H, W].

    Memory format (`channels_last=True`: NHWC): networks that only label (MMT's teachers) run
    NHWC; trained ones as `trains_channels_last` says. BN keeps no running statistics: it
    always normalises by the image's own (see module note).
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: int = 100,
        n_conv: int = 3,
        channels_last: bool = False,
    ) -> None:
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
        self.memory_format = torch.contiguous_format
        if channels_last:
            self.to_channels_last()

    def to_channels_last(self) -> SegmentationNet:
        self.memory_format = torch.channels_last
        return self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.contiguous(memory_format=self.memory_format))


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
    precision: str = "fp32"  # "fp32", "bf16" (autocast) or "auto" (bf16 only where it is fast)


ProgressCallback = Callable[[int, float, int], None]  # (iteration, loss, segment count)
# (iteration, labels()) after every iteration; labels() computes the current output [H, W]
# only when called, so an observer that scores a few checkpoints costs a forward pass each.
Observer = Callable[[int, Callable[[], np.ndarray]], None]


class Throttle:
    """Calls `report(iteration, loss, segments)` at most once every `every` seconds.

    `due()` is a clock read, so the loop only syncs the loss and counts segments when a line is
    actually going to be printed.
    """

    def __init__(self, report: ProgressCallback, every: float = 5.0) -> None:
        self.report, self.every = report, every
        self._last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every

    def __call__(self, iteration: int, loss: float, segments: int) -> None:
        self._last = time.monotonic()
        self.report(iteration, loss, segments)


def _maybe_report(
    progress: Throttle | None, iteration: int, loss: torch.Tensor, labels: torch.Tensor
) -> None:
    if progress is not None and progress.due():
        progress(iteration, float(loss.detach()), int(labels.unique().numel()))


_BF16_FAST: bool | None = None


def bf16_is_fast(min_speedup: float = 1.5) -> bool:
    """Whether bf16 autocast beats fp32 on this CPU for the nets' 3×3 q→q convolution.

    oneDNN runs bf16 natively only with AMX or AVX512-BF16; elsewhere it emulates it and is
    several times slower than fp32 (measured 3.8× slower on an AVX2-only EPYC). So: no native
    bf16 → False without timing; otherwise a short fwd+bwd probe of both, cached per process.
    """
    global _BF16_FAST
    if _BF16_FAST is None:
        _BF16_FAST = _native_bf16() and _probe_speedup() >= min_speedup
    return _BF16_FAST


def _native_bf16() -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _probe_speedup() -> float:
    conv = nn.Conv2d(100, 100, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(1, 100, 64, 96).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)

    def seconds(bf16: bool) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = conv(x)
            out.float().sum().backward()
            best = min(best, time.perf_counter() - start)
        return best

    seconds(True)  # first call picks kernels
    return seconds(False) / seconds(True)


def use_bf16(precision: str, device: str = "cpu") -> bool:
    """Resolve `NetConfig.precision` for a device: fp32 stays fp32; auto asks `bf16_is_fast`."""
    if precision not in ("fp32", "bf16", "auto"):
        raise ValueError(f"precision {precision!r}: expected fp32, bf16 or auto")
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    return str(device).startswith("cuda") or bf16_is_fast()


def trains_channels_last(bf16: bool, device: str = "cpu") -> bool:
    """Whether the networks that are trained run NHWC (else NCHW) on this device.

    bf16 and AVX-512 fp32: NHWC. AVX2 fp32: NCHW, where oneDNN's NHWC weight gradient is
    several times slower (one 3×3 100→100 layer at 481×321, one thread, forward + backward:
    4.8 s NHWC against 2.0 NCHW), though its forward is faster (0.47 s against 0.65). On an
    AVX-512 EPYC NHWC is the faster both ways: 1.11 s against 1.34 forward + backward. A rule,
    not a timing probe, so that one machine always trains the same layout and a seed's run is
    reproducible there.
    """
    if bf16:
        return True
    return str(device) == "cpu" and torch.backends.cpu.get_cpu_capability() == "AVX512"


def _trained_net(config: NetConfig, bf16: bool, device: str) -> SegmentationNet:
    layout = trains_channels_last(bf16, device)
    return SegmentationNet(3, config.channels, config.n_conv, channels_last=layout).to(device)


def _autocast(bf16: bool, device: str) -> AbstractContextManager:
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16)


def image_tensor(image: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """uint8 [H, W, 3] → float32 [1, 3, H, W] in [0, 1]."""
    return torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)[None].to(device)


def continuity_loss(response: torch.Tensor) -> torch.Tensor:
    """Mean L1 of vertical and horizontal response differences (Kim 2020's code, TV in MMT)."""
    vertical = (response[:, :, 1:, :] - response[:, :, :-1, :]).abs().mean()
    horizontal = (response[:, :, :, 1:] - response[:, :, :, :-1]).abs().mean()
    return vertical + horizontal


class _CrossEntropyContinuity(torch.autograd.Function):
    """Mean pixel cross-entropy + w · `continuity_loss`, with the gradient written out.

    Autograd's version of the same sum zero-fills a full-size gradient for each of the four
    shifted slices and for the cross-entropy, and runs log-softmax across the q channels'
    stride. Here the gradient is one softmax pass, a scatter at the targets and four in-place
    shifted adds (with the stride fix below, a bf16 MMT iteration at 481×321: 4.2 → 3.4 CPU-s).
    """

    @staticmethod
    def forward(ctx: Any, response: torch.Tensor, target: torch.Tensor, weight: float):
        # [q, H, W] in the network's memory format; bf16 computed in fp32
        r = response[0].to(torch.promote_types(response.dtype, torch.float32))
        log_norm = torch.logsumexp(r, dim=0)
        picked = r.gather(0, target.view(1, *r.shape[1:]))
        loss = (log_norm - picked[0]).mean()
        if weight:
            vertical = r[:, 1:, :] - r[:, :-1, :]
            horizontal = r[:, :, 1:] - r[:, :, :-1]
            loss = loss + weight * (
                torch.linalg.vector_norm(vertical, 1) / vertical.numel()
                + torch.linalg.vector_norm(horizontal, 1) / horizontal.numel()
            )
        ctx.save_for_backward(r, log_norm, target)
        ctx.weight, ctx.dtype, ctx.layout = (
            weight,
            response.dtype,
            (response.shape, response.stride()),
        )
        return loss

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor):
        r, log_norm, target = ctx.saved_tensors
        scale = float(grad_loss)
        pixels = log_norm.numel()
        # softmax / pixels, then minus 1 / pixels at each pixel's target channel
        grad = (r - (log_norm + np.log(pixels / scale))).exp_()
        grad.scatter_add_(
            0, target.view(1, *r.shape[1:]), torch.full_like(log_norm, -scale / pixels)[None]
        )
        if ctx.weight:  # the differences are recomputed: two fewer full-size tensors held
            for dim in (1, 2):
                size = r.shape[dim] - 1
                later, earlier = r.narrow(dim, 1, size), r.narrow(dim, 0, size)
                step = torch.sub(later, earlier).sign_().mul_(ctx.weight * scale / later.numel())
                grad.narrow(dim, 1, size).add_(step)
                grad.narrow(dim, 0, size).sub_(step)
        # In the response's exact strides: BN's backward takes a slow path for a gradient whose
        # size-1 batch dimension has another stride (482 ms against 11 in bf16 at 481×321).
        grad_response = torch.empty_strided(*ctx.layout, dtype=ctx.dtype, device=grad.device)
        grad_response[0].copy_(grad)
        return grad_response, None, None


def segmentation_loss(
    response: torch.Tensor, target: torch.Tensor, continuity_weight: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy of [1, q, H, W] responses against [H, W] (or flat) labels, plus
    `continuity_weight` · `continuity_loss`: the value and gradient of `F.cross_entropy` over
    the pixels as rows plus w · `continuity_loss(response)`."""
    return _CrossEntropyContinuity.apply(response, target.reshape(-1), float(continuity_weight))


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
    beta: float = 5.0,
    device: str = "cpu",
    progress: Throttle | None = None,
    observe: Observer | None = None,
) -> tuple[np.ndarray, int]:
    """Mutual mean-teaching on one image (Algorithm 1); returns (labels [H, W], iterations)."""
    torch.manual_seed(seed)
    bf16 = use_bf16(config.precision, device)
    x = image_tensor(image, device)
    students = [_trained_net(config, bf16, device), _trained_net(config, bf16, device)]
    teachers = [copy.deepcopy(s).to_channels_last() for s in students]  # θ_mean^0 = θ^0
    for teacher in teachers:
        teacher.requires_grad_(False)
    optimizers = [_optimizer(s, config) for s in students]
    for iteration in range(1, config.iterations + 1):
        for me, other in ((0, 1), (1, 0)):
            with _autocast(bf16, device):
                response = students[me](x)
                with torch.inference_mode():
                    teacher_labels = _labels(teachers[other](x))
            target = align_labels(teacher_labels, _labels(response.detach()), config.channels)
            loss = segmentation_loss(response, target, beta)
            optimizers[me].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[me].step()
            _ema_update(teachers[me], students[me], alpha)
        _maybe_report(progress, iteration, loss, teacher_labels)
        if observe is not None:
            observe(iteration, lambda: _output(teachers[0], x, bf16, device))
    return _output(teachers[0], x, bf16, device), config.iterations


def _output(net: nn.Module, x: torch.Tensor, bf16: bool, device: str) -> np.ndarray:
    with torch.no_grad(), _autocast(bf16, device):
        labels = _labels(net(x))
    return labels.cpu().numpy().astype(np.int32)


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
    progress: Throttle | None = None,
) -> tuple[np.ndarray, int]:
    """Kanezaki 2018 (superpixel-refined self-training); returns (labels, iterations run)."""
    torch.manual_seed(seed)
    bf16 = use_bf16(config.precision, device)
    x = image_tensor(image, device)
    regions = torch.from_numpy(superpixels(image, segments, compactness).ravel()).to(device)
    n_regions = int(regions.max()) + 1
    net = _trained_net(config, bf16, device)
    optimizer = _optimizer(net, config)
    iterations = 0
    for iterations in range(1, config.iterations + 1):
        with _autocast(bf16, device):
            response = net(x)
        labels = _labels(response.detach()).flatten()
        votes = torch.bincount(
            regions * config.channels + labels, minlength=n_regions * config.channels
        )
        target = votes.view(n_regions, config.channels).argmax(1)[regions]
        loss = segmentation_loss(response, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _maybe_report(progress, iterations, loss, labels)
        if stop_early and labels.unique().numel() <= config.min_labels:
            break
    with torch.no_grad(), _autocast(bf16, device):
        final = _labels(net(x))
    return final.cpu().numpy().astype(np.int32), iterations


def segment_kim(
    image: np.ndarray,
    seed: int,
    config: NetConfig,
    mu: float = 1.0,
    device: str = "cpu",
    stop_early: bool = True,
    progress: Throttle | None = None,
) -> tuple[np.ndarray, int]:
    """Kim 2020 (differentiable feature clustering + continuity loss weighted by µ)."""
    torch.manual_seed(seed)
    bf16 = use_bf16(config.precision, device)
    x = image_tensor(image, device)
    net = _trained_net(config, bf16, device)
    optimizer = _optimizer(net, config)
    iterations = 0
    for iterations in range(1, config.iterations + 1):
        with _autocast(bf16, device):
            response = net(x)
        labels = _labels(response.detach())
        loss = segmentation_loss(response, labels, mu)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _maybe_report(progress, iterations, loss, labels)
        if stop_early and labels.unique().numel() <= config.min_labels:
            break
    with torch.no_grad(), _autocast(bf16, device):
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
