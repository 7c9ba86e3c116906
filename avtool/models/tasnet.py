"""TasNet baselines of LiMuSE's Table 2: Conv-TasNet, single- or dual-channel, two outputs.

The paper gives 2.48M parameters for both and no configuration; the TCN of LiMuSE without GC
(N = 128 filters, L = 16, hidden 4N, no bottleneck, no skip path, every conv with a bias) with
R = 3 repeats of X = 6 blocks and a 1x1 conv to two N-channel masks gives 2,484,133 (dual) and
2,482,085 (single) parameters, i.e. the paper's 2.48M. It separates (no cue): trained with
utterance-level permutation-invariant SI-SDR on (target, interferer at the reference
microphone = mixture - target) and scored with the output nearer the target, as is usual for
separation baselines of extraction models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from avtool.core.errors import ConfigError
from avtool.models.limuse import MASKS, ConvBlock, QuantConv1d


@dataclass
class TasNetConfig:
    channels: int = 2  # 1 = single-channel (microphone 0), 2 = dual-channel
    sources: int = 2
    filters: int = 128
    kernel: int = 16
    blocks: int = 6
    repeats: int = 3
    hidden_ratio: int = 4
    conv_kernel: int = 3
    mask: str = "sigmoid"  # Conv-TasNet's

    def __post_init__(self) -> None:
        if self.channels not in (1, 2):
            raise ConfigError(f"tasnet channels={self.channels}: expected 1 or 2")
        if self.mask not in MASKS:
            raise ConfigError(f"model.mask={self.mask!r}: expected one of {', '.join(MASKS)}")


class TasNet(nn.Module):
    """mixture [B, mics, S] -> sources [B, sources, S]."""

    def __init__(self, config: TasNetConfig) -> None:
        super().__init__()
        self.config = config
        n, stride = config.filters, config.kernel // 2
        self.encoder = QuantConv1d(config.channels, n, config.kernel, stride=stride)
        self.norm = nn.GroupNorm(1, n, eps=1e-8)
        self.blocks = nn.ModuleList(
            ConvBlock(n, config.hidden_ratio * n, config.conv_kernel, 2**i)
            for _ in range(config.repeats)
            for i in range(config.blocks)
        )
        self.mask = QuantConv1d(n, config.sources * n, 1)
        self.decoder = nn.ConvTranspose1d(n, 1, config.kernel, stride=stride)

    def quantizable_layers(self) -> list[tuple[str, QuantConv1d]]:
        return [(name, m) for name, m in self.named_modules() if isinstance(m, QuantConv1d)]

    def forward(self, mixture: torch.Tensor, *cues: object) -> torch.Tensor:
        config = self.config
        mixture = mixture[:, : config.channels]
        batch, _, samples = mixture.shape
        stride = config.kernel // 2
        frames = max(1, -(-(samples - config.kernel) // stride)) + 1
        padded = F.pad(mixture, (0, (frames - 1) * stride + config.kernel - samples))
        encoded = self.encoder(padded)
        y = self.norm(encoded)
        for block in self.blocks:
            y = block(y)
        mask = self.mask(y).view(batch, config.sources, config.filters, -1)
        if config.mask == "relu":
            mask = F.relu(mask)
        elif config.mask == "sigmoid":
            mask = torch.sigmoid(mask)
        masked = (mask * encoded.unsqueeze(1)).view(batch * config.sources, config.filters, -1)
        return self.decoder(masked).view(batch, config.sources, -1)[..., :samples]
