"""MFCC extractor: DCT-II of the log-mel spectrogram, as librosa.feature.mfcc computes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avtool.core.items import ItemStageResult
from avtool.features.logmel import extract_spectral
from avtool.features.spectral import SpectralParams


def extract_mfcc(
    manifest: Path, out: Path, params: SpectralParams, **options: Any
) -> ItemStageResult:
    return extract_spectral("mfcc", manifest, out, params, **options)
