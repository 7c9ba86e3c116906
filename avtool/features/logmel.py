"""Log-mel spectrogram extractor: a per-item stage over any manifest of audio files."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avtool.core.items import ItemStageResult, SingleThreadWorker, run_manifest_stage
from avtool.features.spectral import SpectralExtractor, SpectralParams

STAGE_VERSION = 1


@dataclass
class SpectralWorker(SingleThreadWorker):
    """Loads an item's audio at `params.sr` (soxr, like librosa.load) and computes `kind`."""

    params: SpectralParams
    kind: str = "logmel"

    def load(self) -> None:
        self._extractor = SpectralExtractor(self.params)

    def store_attrs(self) -> dict[str, Any]:
        from avtool.core.store import store_attrs

        return store_attrs(self.kind, dataclasses.asdict(self.params))

    def __call__(self, item: dict[str, Any]) -> Any:
        from avtool.core.audio import load_audio

        waveform, _ = load_audio(item["path"], sr=self.params.sr)
        if self.params.peak_normalize:
            peak = abs(waveform).max()  # a float32 scalar: the division stays float32
            if peak > 0:
                waveform = waveform / peak
        if self.kind == "mfcc":
            return self._extractor.mfcc(waveform)
        return self._extractor.logmel(waveform)


def extract_spectral(
    kind: str, manifest: Path, out: Path, params: SpectralParams, **options: Any
) -> ItemStageResult:
    """Compute `kind` ("logmel" or "mfcc") for every item of `manifest` into the store `out`.

    `options` are run_manifest_stage's: shard, jobs, launcher, force, dry_run, max_reject_rate.
    """
    return run_manifest_stage(
        f"features.{kind}", STAGE_VERSION, manifest, out, params, SpectralWorker(params, kind),
        **options,
    )  # fmt: skip


def extract_logmel(
    manifest: Path, out: Path, params: SpectralParams, **options: Any
) -> ItemStageResult:
    return extract_spectral("logmel", manifest, out, params, **options)
