"""The SED paper's CRNN (§2.1) with feature fusion of pretrained streams (§3).

CNN: 7 stacks of conv 3x3 (stride 1, padding 1) -> BatchNorm -> ReLU -> dropout 0.33 -> average
pooling; channels 16, 32, 64, 128, 128, 128, 128; pooling (time, frequency) (2, 2), (2, 2),
then (1, 2) five times, so a [604, 128] log-mel map becomes 151 steps x 128 channels (the
frequency axis reduced to 1 and dropped). Each pretrained stream (VGGish [T, 128], VGG16
[T, 4096]) goes through Linear -> ReLU -> dropout 0.33 to 16 and 4 dimensions beside spectral
features, 64 and 16 without them, and is concatenated with the CNN output per step. Then a
2-layer bidirectional GRU (128 units a direction), Linear + sigmoid frame probabilities, and
linear-softmax pooling to clip probabilities (eq. 1): p_c = sum_t p_f(t)^2 / sum_t p_f(t).

Streams with another number of steps than the reference (the CNN's, else VGGish's) are
aligned to it by nearest-neighbour resampling: with the paper's settings every stream has 151
steps for 10 s and nothing moves; the demo samples its pretrained streams sparser.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

CHANNELS = (16, 32, 64, 128, 128, 128, 128)
POOLING = ((2, 2), (2, 2), (1, 2), (1, 2), (1, 2), (1, 2), (1, 2))
DROPOUT = 0.33
GRU_HIDDEN = 128
GRU_LAYERS = 2
N_MELS = 128
VGGISH_DIM = 128
VGG16_DIM = 4096
# Projection sizes of the pretrained streams (§3): with spectral features, and without.
PROJECTION = {"vggish": (16, 64), "vgg16": (4, 16)}
STREAM_DIMS = {"vggish": VGGISH_DIM, "vgg16": VGG16_DIM}
# Table 3's seven input combinations, in its row order.
COMBINATIONS = (
    ("spectral",),
    ("spectral", "vgg16"),
    ("spectral", "vggish"),
    ("spectral", "vggish", "vgg16"),
    ("vgg16",),
    ("vggish",),
    ("vggish", "vgg16"),
)
STREAMS = ("spectral", "vggish", "vgg16")


@dataclass(frozen=True)
class CRNNConfig:
    inputs: tuple[str, ...] = ("spectral",)
    n_classes: int = 10
    n_mels: int = N_MELS
    dropout: float = DROPOUT

    def __post_init__(self) -> None:
        unknown = [s for s in self.inputs if s not in STREAMS]
        if unknown or not self.inputs or len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"inputs {self.inputs}: a non-empty set of {', '.join(STREAMS)}")
        frequency = self.n_mels
        for _, pool in POOLING:
            frequency //= pool
        if "spectral" in self.inputs and frequency != 1:
            raise ValueError(
                f"n_mels={self.n_mels}: the CNN halves frequency 7 times and needs 128 bands"
            )

    def projection(self, stream: str) -> int:
        with_spectral, alone = PROJECTION[stream]
        return with_spectral if "spectral" in self.inputs else alone

    @property
    def gru_input(self) -> int:
        size = CHANNELS[-1] if "spectral" in self.inputs else 0
        return size + sum(self.projection(s) for s in self.inputs if s != "spectral")


def linear_softmax_pool(frames: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Eq. 1: sum p^2 / sum p over `dim` (time); a clip of all-zero frames pools to 0."""
    return (frames * frames).sum(dim) / frames.sum(dim).clamp_min(1e-7)


def align_steps(x: torch.Tensor, steps: int) -> torch.Tensor:
    """[B, T, D] resampled to [B, steps, D] by nearest step (identity when T == steps)."""
    length = x.shape[1]
    if length == steps:
        return x
    index = ((torch.arange(steps, device=x.device) + 0.5) * length / steps).long()
    return x[:, index.clamp_max(length - 1)]


class CRNN(nn.Module):
    def __init__(self, config: CRNNConfig = CRNNConfig()) -> None:
        super().__init__()
        self.config = config
        if "spectral" in config.inputs:
            stacks: list[nn.Module] = []
            channels = 1
            for width, pool in zip(CHANNELS, POOLING, strict=True):
                stacks += [
                    nn.Conv2d(channels, width, kernel_size=3, stride=1, padding=1),
                    nn.BatchNorm2d(width),
                    nn.ReLU(),
                    nn.Dropout(config.dropout),
                    nn.AvgPool2d(pool),
                ]
                channels = width
            self.cnn = nn.Sequential(*stacks)
        self.projections = nn.ModuleDict({
            stream: nn.Sequential(
                nn.Linear(STREAM_DIMS[stream], config.projection(stream)),
                nn.ReLU(),
                nn.Dropout(config.dropout),
            )
            for stream in config.inputs
            if stream != "spectral"
        })  # fmt: skip
        self.gru = nn.GRU(
            config.gru_input,
            GRU_HIDDEN,
            num_layers=GRU_LAYERS,
            batch_first=True,
            bidirectional=True,
        )
        self.classifier = nn.Linear(2 * GRU_HIDDEN, config.n_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """`inputs`: "spectral" [B, frames, 128], "vggish" [B, T, 128], "vgg16" [B, T, 4096].

        Returns frame probabilities [B, steps, classes] and clip probabilities [B, classes].
        """
        parts = []
        if "spectral" in self.config.inputs:
            x = self.cnn(inputs["spectral"].unsqueeze(1))  # [B, 128, steps, 1]
            parts.append(x.squeeze(3).transpose(1, 2))
        streams = [s for s in ("vggish", "vgg16") if s in self.config.inputs]
        steps = parts[0].shape[1] if parts else inputs[streams[0]].shape[1]
        for stream in streams:
            parts.append(self.projections[stream](align_steps(inputs[stream], steps)))
        hidden, _ = self.gru(torch.cat(parts, dim=2))
        frames = torch.sigmoid(self.classifier(hidden))
        return frames, linear_softmax_pool(frames)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
