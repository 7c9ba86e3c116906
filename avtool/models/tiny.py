"""A tiny spectrogram classifier: the demo's check that features, training and evaluation chain."""

from __future__ import annotations

import torch
from torch import nn


class TinyAudioClassifier(nn.Module):
    """Conv1d over time on [batch, n_mels, frames], global average pooling, linear classes."""

    def __init__(self, n_mels: int, n_classes: int, channels: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(n_mels, channels, kernel_size=3, padding=1),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=3, padding=1),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(channels, n_classes)

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        # Per-band standardisation: dB levels differ by tens between voices and clips.
        mean = spectrogram.mean(dim=2, keepdim=True)
        std = spectrogram.std(dim=2, keepdim=True) + 1e-5
        return self.classifier(self.features((spectrogram - mean) / std).mean(dim=2))
