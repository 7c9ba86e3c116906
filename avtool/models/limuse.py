"""LiMuSE: a GC-equipped TCN speaker extractor with voiceprint and visual cues.

The network of the paper (Table 1; the authors' code where the paper is silent):
- encoder `Conv1d(2 -> N=128, L=16, stride 8)` without activation, decoder
  `ConvTranspose1d(N -> 1, 16, 8)`; the mask multiplies the encoder output;
- audio block: R_a=2 repeats of X=6 GC-TCN blocks on N channels, hidden H=4N, dilations
  1..32 per repeat, no bottleneck, no skip path;
- voiceprint encoder: a fully connected layer from the speaker embedding to N, repeated over
  time; visual encoder: a fully connected layer per video frame to N, upsampled to the encoder's
  frame rate (nearest neighbour as in the paper, or linear as in the authors' code);
- one gLN (GroupNorm(1, N), shared) normalises the audio, voiceprint and visual streams; the
  streams are concatenated (3N channels) and run through the fusion block, R_f=1 repeat of X=6
  GC-TCN blocks with hidden 4 x 3N; a 1x1 conv gives the N-channel mask (no non-linearity by
  default, as in the authors' code).

A GC-TCN block with K groups sees its C channels as K groups of C/K: TAC across the groups
(Linear n->h, PReLU; mean over groups -> Linear h->h, PReLU; concat -> Linear 2h->n, PReLU;
gLN; residual; h = 3H/K), then a depthwise-separable conv block shared by all groups
(1x1 n->H/K, PReLU, gLN, depthwise k=3 dilated, PReLU, gLN, 1x1 back to n; residual).
Without GC (K=1) the block is the conv block alone on all C channels.

Layout: the stack runs on [B*K, C/K, T] from end to end. Group k holds channels
[k*C/K, (k+1)*C/K) of the [B, C, T] tensor, so entering and leaving the grouped layout is a
view, not a copy. TAC's linears are 1x1 convs on that layout (same parameters as nn.Linear);
every 1x1 layer runs as one batched matmul (`pointwise`), and the fp32 stack in pieces. TAC's
concatenation is never built: the third linear's weight is split in the part applied to
each group and the part applied to the group mean, which is computed once per batch item and
broadcast. Every conv and linear has a bias; PReLU has one parameter; the norms are
GroupNorm(1, C) with affine parameters.

Inference (no gradient wanted, fp32 on the CPU) runs the GC-TCN stacks through the fused
kernels of `limuse_fused` (one thread: RTF 0.086 against 0.25 full precision, 0.18 against 0.59
with 8-bit activations); training and other devices take the torch path below.

Quantization hooks (avtool.quant): every layer in `quantizable_layers()` is a `QuantConv1d`,
whose input is min-max quantized when its `act_bits` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avtool.core.errors import ConfigError
from avtool.models import limuse_fused

MASKS = ("none", "relu", "sigmoid")
UPSAMPLING = ("nearest", "linear")


@dataclass
class LimuseModelConfig:
    groups: int = 32  # K; 1 = without GC (no TAC, full width)
    voiceprint_dim: int = 512  # 0 = without the voiceprint cue
    face_dim: int = 256  # 0 = without the visual cue
    channels: int = 2  # microphones
    filters: int = 128  # N
    kernel: int = 16  # L
    audio_blocks: int = 6  # X
    audio_repeats: int = 2  # R_a
    fusion_blocks: int = 6
    fusion_repeats: int = 1  # R_f
    hidden_ratio: int = 4  # H = 4 x the block's channels
    tac_ratio: int = 3  # TAC hidden = 3 H / K
    conv_kernel: int = 3  # P
    mask: str = "none"  # none | relu | sigmoid
    upsample: str = "nearest"  # nearest | linear
    # Recompute each block in the backward pass: the paper's batch 8 of 3 s mixtures needs
    # 0.85 GB a sample with it and 6.4 without (52 GB), for 1.3x the step time (bench/limuse.py).
    checkpointing: bool = True

    def __post_init__(self) -> None:
        if self.mask not in MASKS:
            raise ConfigError(f"model.mask={self.mask!r}: expected one of {', '.join(MASKS)}")
        if self.upsample not in UPSAMPLING:
            raise ConfigError(f"model.upsample={self.upsample!r}: expected nearest or linear")
        if self.groups < 1 or self.kernel % 2:
            raise ConfigError("model.groups must be at least 1 and model.kernel even")
        for width in (self.filters, self.fusion_channels):
            if width % self.groups or (self.hidden_ratio * width) % self.groups:
                raise ConfigError(
                    f"model.groups={self.groups} does not divide the block width {width}"
                )

    @property
    def fusion_channels(self) -> int:
        return self.filters * (1 + (self.voiceprint_dim > 0) + (self.face_dim > 0))


# The fp32 stack runs in pieces (TAC over spans of frames, the conv block over rows) so that
# the wide intermediates (up to 110 MB a block whole, at K=32 and 3 s) stay a few MB, in cache:
# RTF 0.79 against 1.04 whole (bench/limuse.py, one thread). With 8-bit activations a block
# runs whole: its min-max grids span the whole tensor, and finding them over pieces first
# (one pass per layer) cost more than it saved (RTF 2.5 against 1.4).
TAC_SPAN_FRAMES = 500
CONV_BLOCK_CHUNK_ELEMENTS = 1 << 20


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1x1 convolution of [rows, in, T] as one batched matmul, the weight broadcast over the
    rows: on the grouped layout (4-12 channels a group) oneDNN's convolution is 2-4x slower."""
    weight = weight.squeeze(-1).expand(x.shape[0], -1, -1)
    if bias is None:
        return torch.bmm(weight, x)
    return torch.baddbmm(bias.unsqueeze(-1), weight, x)


class _SingleSlopePReLU(torch.autograd.Function):
    """PReLU with one slope as leaky_relu with that slope; torch's PReLU backward builds an
    input-sized tensor for the slope's gradient (2.4x slower forward + backward on CPU)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, slope)
        return F.leaky_relu(x, float(slope))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, slope = ctx.saved_tensors
        grad_x = torch.ops.aten.leaky_relu_backward(grad, x, float(slope), False)
        grad_slope = torch.dot(grad.reshape(-1), x.clamp(max=0).reshape(-1)).reshape(1)
        return grad_x, grad_slope


class PReLU(nn.PReLU):
    """nn.PReLU (one parameter) with a faster CPU path; same parameters and values."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or self.weight.numel() != 1:
            return super().forward(x)
        return _SingleSlopePReLU.apply(x, self.weight)


class QuantConv1d(nn.Conv1d):
    """A Conv1d whose input is min-max quantized to `act_bits` (0 = off, full precision)."""

    act_bits: int = 0

    def quantize_input(self, x: torch.Tensor, low=None, high=None) -> torch.Tensor:
        if not self.act_bits:
            return x
        from avtool.quant.activations import minmax_quantize

        return minmax_quantize(x, self.act_bits, low, high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quantize_input(x)
        if (self.kernel_size, self.stride, self.padding, self.groups) == ((1,), (1,), (0,), 1):
            return pointwise(x, self.weight, self.bias)
        return super().forward(x)


class TAC(nn.Module):
    """Transform-average-concatenate across K groups on the [B*K, n, T] layout."""

    def __init__(self, width: int, hidden: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.transform = QuantConv1d(width, hidden, 1)
        self.transform_act = PReLU()
        self.average = QuantConv1d(hidden, hidden, 1)
        self.average_act = PReLU()
        self.concat = QuantConv1d(2 * hidden, width, 1)
        self.concat_act = PReLU()
        self.norm = nn.GroupNorm(1, width, eps=1e-8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[-1]
        step = frames if self.concat.act_bits else TAC_SPAN_FRAMES  # grids span the whole
        y = torch.cat([self._mix(piece) for piece in x.split(step, dim=-1)], dim=-1)
        return x + self.norm(self.concat_act(y))

    def _mix(self, x: torch.Tensor) -> torch.Tensor:
        rows, _, frames = x.shape
        batch, hidden = rows // self.groups, self.average.in_channels
        f = self.transform_act(self.transform(x))
        # A sum scaled afterwards: mean's backward writes a group-sized copy of the gradient,
        # sum's is a broadcast view (~10% of a training step).
        mean = f.view(batch, self.groups, hidden, frames).sum(dim=1) / self.groups
        g = self.average_act(self.average(mean))
        # Linear(2h -> n) on concat(f, g) without building the concatenation: the same
        # quantization grid (min-max over both halves) and the same weights, split in two.
        low = torch.minimum(f.min(), g.min()) if self.concat.act_bits else None
        high = torch.maximum(f.max(), g.max()) if self.concat.act_bits else None
        f, g = self.concat.quantize_input(f, low, high), self.concat.quantize_input(g, low, high)
        weight = self.concat.weight
        local = pointwise(f, weight[:, :hidden], self.concat.bias)
        shared = pointwise(g, weight[:, hidden:], None)
        width = local.shape[1]
        return (local.view(batch, self.groups, width, frames) + shared.unsqueeze(1)).view_as(x)


class ConvBlock(nn.Module):
    """Depthwise-separable TCN block (no skip path), residual inside."""

    def __init__(self, width: int, hidden: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.expand = QuantConv1d(width, hidden, 1)
        self.expand_act = PReLU()
        self.expand_norm = nn.GroupNorm(1, hidden, eps=1e-8)
        self.depthwise = QuantConv1d(
            hidden, hidden, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2,
            groups=hidden,
        )  # fmt: skip
        self.depthwise_act = PReLU()
        self.depthwise_norm = nn.GroupNorm(1, hidden, eps=1e-8)
        self.project = QuantConv1d(hidden, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, _, frames = x.shape
        # Each row (one group of one item) is normalised on its own, so rows split exactly.
        step = max(1, CONV_BLOCK_CHUNK_ELEMENTS // (self.expand.out_channels * frames))
        if step >= rows or self.expand.act_bits:  # min-max grids span the whole tensor
            return self._residual(x)
        return torch.cat([self._residual(piece) for piece in x.split(step)])

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand_norm(self.expand_act(self.expand(x)))
        y = self.depthwise_norm(self.depthwise_act(self.depthwise(y)))
        return x + self.project(y)


class GCTCNBlock(nn.Module):
    def __init__(self, channels: int, hidden: int, groups: int, config: LimuseModelConfig, d: int):
        super().__init__()
        width = channels // groups
        self.tac = TAC(width, config.tac_ratio * hidden // groups, groups) if groups > 1 else None
        self.conv = ConvBlock(width, hidden // groups, config.conv_kernel, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tac is not None:
            x = self.tac(x)
        return self.conv(x)


class GCTCN(nn.Module):
    """`repeats` x `blocks` GC-TCN blocks, dilations 1, 2, 4, ... per repeat; [B, C, T] in/out."""

    def __init__(self, channels: int, blocks: int, repeats: int, config: LimuseModelConfig):
        super().__init__()
        self.groups = config.groups
        hidden = config.hidden_ratio * channels
        self.blocks = nn.ModuleList(
            GCTCNBlock(channels, hidden, config.groups, config, 2**i)
            for _ in range(repeats)
            for i in range(blocks)
        )
        self.checkpointing = config.checkpointing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, frames = x.shape
        y = x.reshape(batch * self.groups, channels // self.groups, frames)
        if limuse_fused.applies(self, y):
            return limuse_fused.gctcn_forward(self, y).view(batch, channels, frames)
        for block in self.blocks:
            if self.checkpointing and self.training and torch.is_grad_enabled():
                from torch.utils.checkpoint import checkpoint

                y = checkpoint(block, y, use_reentrant=False)
            else:
                y = block(y)
        return y.view(batch, channels, frames)


class LiMuSE(nn.Module):
    """(mixture [B, channels, S], voiceprint [B, vp] or None, visual [B, F, face] or None)
    -> target estimate [B, S]."""

    def __init__(self, config: LimuseModelConfig) -> None:
        super().__init__()
        self.config = config
        n, stride = config.filters, config.kernel // 2
        self.encoder = QuantConv1d(config.channels, n, config.kernel, stride=stride)
        self.voiceprint_encoder = (
            QuantConv1d(config.voiceprint_dim, n, 1) if config.voiceprint_dim else None
        )
        self.visual_encoder = QuantConv1d(config.face_dim, n, 1) if config.face_dim else None
        self.stream_norm = nn.GroupNorm(1, n, eps=1e-8)
        self.audio_block = GCTCN(n, config.audio_blocks, config.audio_repeats, config)
        self.fusion_block = GCTCN(
            config.fusion_channels, config.fusion_blocks, config.fusion_repeats, config
        )
        self.mask = QuantConv1d(config.fusion_channels, n, 1)
        self.decoder = nn.ConvTranspose1d(n, 1, config.kernel, stride=stride)

    def quantizable_layers(self) -> list[tuple[str, QuantConv1d]]:
        """Encoders, separation module and mask layer: not the decoder, biases or norms."""
        return [(name, m) for name, m in self.named_modules() if isinstance(m, QuantConv1d)]

    def forward(
        self,
        mixture: torch.Tensor,
        voiceprint: torch.Tensor | None = None,
        visual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        config = self.config
        samples = mixture.shape[-1]
        stride = config.kernel // 2
        frames = max(1, -(-(samples - config.kernel) // stride)) + 1
        padded = F.pad(mixture, (0, (frames - 1) * stride + config.kernel - samples))
        encoded = self.encoder(padded)  # [B, N, T]
        streams = [self.audio_block(self.stream_norm(encoded))]
        if self.voiceprint_encoder is not None:
            if voiceprint is None:
                raise ValueError("this model takes a voiceprint")
            vp = self.voiceprint_encoder(voiceprint.unsqueeze(-1))
            streams.append(self.stream_norm(vp).expand(-1, -1, encoded.shape[-1]))
        if self.visual_encoder is not None:
            if visual is None:
                raise ValueError("this model takes visual features")
            vis = self.visual_encoder(visual.transpose(1, 2))
            vis = F.interpolate(vis, size=encoded.shape[-1], mode=config.upsample)
            streams.append(self.stream_norm(vis))
        fused = self.fusion_block(torch.cat(streams, dim=1) if len(streams) > 1 else streams[0])
        mask = self.mask(fused)
        if config.mask == "relu":
            mask = F.relu(mask)
        elif config.mask == "sigmoid":
            mask = torch.sigmoid(mask)
        return self.decoder(mask * encoded).squeeze(1)[..., :samples]


def build_limuse(config: LimuseModelConfig) -> LiMuSE:
    return LiMuSE(config)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def summary(overrides: dict[str, Any]) -> dict[str, Any]:
    """Parameter count of a configuration (keys of `LimuseModelConfig`)."""
    model = build_limuse(LimuseModelConfig(**overrides))
    return {"params": parameter_count(model)}
