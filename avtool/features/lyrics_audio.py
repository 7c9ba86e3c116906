"""ATL audio features: a 10 s clip at 16 kHz, log-mel n_fft 512, hop 160, 64 mels -> [64, 1001].

The ATL report's Table 1 (16 kHz, 10 s, n_fft 512, hop 160, 64 mels); the authors' code loaded
`librosa.load(path, sr=16000, offset=25, duration=10)`, so the clip starts 25 s into the song
(`offset`). The spectrogram is `avtool.features.spectral`'s (librosa's melspectrogram and
power_to_db, ref 1, top_db 80, within 0.01 dB).

Songs shorter than offset + duration: librosa would silently return a shorter clip (or none).
Here `short="last"` (default) takes the song's last `duration` seconds, zero-padded at the end
when the whole song is shorter; `short="pad"` starts at `offset` (or at 0 when the song ends
before it) and zero-pads; `short="reject"` rejects the song. Either way every item is exactly
`1 + duration * sr / hop` frames, and each song clipped otherwise is logged (INFO).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import ConfigError, ItemError
from avtool.core.items import ItemStageResult, SingleThreadWorker, run_manifest_stage

STAGE_VERSION = 1
SHORT = ("last", "pad", "reject")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LyricsAudioParams:
    sr: int = 16000
    offset: float = 25.0  # seconds into the song, as the authors' code
    duration: float = 10.0
    n_fft: int = 512
    hop: int = 160
    n_mels: int = 64
    short: str = "last"  # last | pad | reject: songs shorter than offset + duration

    def __post_init__(self) -> None:
        if self.short not in SHORT:
            raise ConfigError(f"short={self.short!r}: expected one of {SHORT}")
        if self.offset < 0 or self.duration <= 0:
            raise ConfigError(
                f"offset={self.offset} must be >= 0 and duration={self.duration} positive"
            )

    @property
    def samples(self) -> int:
        return round(self.duration * self.sr)


def clip(waveform: np.ndarray, params: LyricsAudioParams) -> tuple[np.ndarray, str]:
    """The `params.duration` clip of a waveform at `params.sr`, and how it was taken:
    "offset" (the song is long enough), "last" or "pad" (see the module docstring)."""
    start, length = round(params.offset * params.sr), params.samples
    if start + length <= len(waveform):
        return waveform[start : start + length], "offset"
    if params.short == "reject":
        raise ItemError(
            f"song of {len(waveform) / params.sr:.1f} s is shorter than offset + duration "
            f"({params.offset + params.duration:g} s); set short=last or short=pad to keep it"
        )
    if params.short == "last":
        start = max(0, len(waveform) - length)
    elif start >= len(waveform):
        start = 0
    piece = waveform[start : start + length]
    return np.pad(piece, (0, length - len(piece))), params.short


@dataclass
class LyricsAudioWorker(SingleThreadWorker):
    params: LyricsAudioParams

    def load(self) -> None:
        from avtool.features.spectral import SpectralExtractor, SpectralParams

        p = self.params
        self._extractor = SpectralExtractor(
            SpectralParams(sr=p.sr, n_fft=p.n_fft, hop=p.hop, n_mels=p.n_mels)
        )

    def store_attrs(self) -> dict[str, Any]:
        from avtool.core.store import store_attrs

        return store_attrs("lyrics-audio", dataclasses.asdict(self.params))

    def __call__(self, item: dict[str, Any]) -> np.ndarray:
        from avtool.core.audio import load_audio

        waveform, _ = load_audio(item["path"], sr=self.params.sr)
        piece, how = clip(waveform, self.params)
        if how != "offset":
            log.info(
                "%s: %.1f s song, clip taken as %r", item["id"], len(waveform) / self.params.sr, how
            )
        return self._extractor.logmel(piece)


def extract_lyrics_audio(
    manifest: Path, out: Path, params: LyricsAudioParams, **options: Any
) -> ItemStageResult:
    """[n_mels, frames] log-mel of every song's clip into the store `out`.

    `options` are run_manifest_stage's: shard, jobs, launcher, force, dry_run, max_reject_rate.
    """
    return run_manifest_stage(
        "features.lyrics-audio", STAGE_VERSION, manifest, out, params,
        LyricsAudioWorker(params), **options,
    )  # fmt: skip
