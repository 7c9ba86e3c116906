"""The report's 160-d SER feature vector, computed fast, as a per-item stage.

The report's `extract_mfcc_features` (reproduced as `report_features`, the reference the tests
and bench/ser.py compare against): `librosa.load(path, sr)`, `librosa.effects.trim(top_db=20)`,
`librosa.util.normalize`, then the time means of `librosa.feature.mfcc(n_mfcc)`, its delta and
delta-delta, and `power_to_db(melspectrogram(n_mels=40), ref=np.max)`. Its "MFCC-48000-40" run
(1440 × 160) is our reading of that code with n_mfcc=40: 40 MFCC + 40 Δ + 40 ΔΔ + 40 mel bands;
the report prints only the total. The default rate is 16 kHz, as its preprocessing section
says; `sr=48000` gives the 48 kHz run.

`SerMfccExtractor` computes the same numbers from one STFT per clip (librosa takes two) with
`avtool.features.spectral` (within 1e-3 of librosa), and the workers import no librosa: trimming,
normalising and the delta filter are restated here in numpy, equal to librosa's (tests).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import ConfigError, ItemError
from avtool.core.items import ItemStageResult, SingleThreadWorker, run_manifest_stage

STAGE_VERSION = 1
# librosa.feature.delta's default window; clips shorter than this many frames have no deltas.
_DELTA_WIDTH = 9


@dataclass(frozen=True)
class SerMfccParams:
    sr: int = 16000
    n_mfcc: int = 40
    n_mels: int = 40  # bands of the log-mel part (the MFCCs use librosa's default 128)
    top_db: float = 20.0  # trim threshold
    sequence: bool = False  # store the per-frame [frames, 4 * n_mfcc] sequence, not its mean

    def __post_init__(self) -> None:
        if self.sr <= 0 or self.n_mfcc <= 0 or self.n_mels <= 0 or self.top_db <= 0:
            raise ConfigError(f"ser-mfcc parameters must be positive: {self}")
        if self.n_mfcc > 128:
            raise ConfigError(f"n_mfcc={self.n_mfcc}: at most the 128 mel bands it is taken from")

    @property
    def dim(self) -> int:
        return 3 * self.n_mfcc + self.n_mels


# librosa.effects.trim's defaults: RMS frames of this length and hop decide what is silence.
_TRIM_FRAME, _TRIM_HOP = 2048, 512


def trim_silence(y: np.ndarray, top_db: float) -> np.ndarray:
    """`librosa.effects.trim(y, top_db=top_db)[0]`: librosa's operations, on the same views.

    Frames whose RMS is more than `top_db` below the loudest frame's are silence; the clip is
    cut from the first loud frame to one frame past the last.
    """
    padded = np.pad(y, _TRIM_FRAME // 2)
    # [frame_length, frames] with librosa.util.frame's strides, so the float32 sums round alike.
    frames = np.lib.stride_tricks.sliding_window_view(padded, _TRIM_FRAME)[::_TRIM_HOP].T
    rms = np.abs(np.sqrt(np.mean(np.square(frames), axis=-2)))
    reference = np.max(rms)
    # amplitude_to_db(rms, ref=np.max): power_to_db of the squares with amin = 1e-5 ** 2.
    amin = 1e-5**2
    db = 10.0 * np.log10(np.maximum(amin, np.square(rms)))
    db -= 10.0 * np.log10(np.maximum(amin, reference**2))
    loud = np.flatnonzero(db > -top_db)
    if loud.size == 0:
        return y[:0]
    return y[loud[0] * _TRIM_HOP : min(len(y), (loud[-1] + 1) * _TRIM_HOP)]


def peak_normalise(y: np.ndarray) -> np.ndarray:
    """`librosa.util.normalize(y)`: divided by max |y| in float64, stored in y's dtype."""
    peak = np.max(np.abs(y).astype(np.float64), keepdims=True)
    if peak[0] < np.finfo(y.dtype).tiny:
        peak[0] = 1.0
    out = np.empty_like(y)
    out[:] = y / peak
    return out


def preprocess(y: np.ndarray, top_db: float) -> np.ndarray:
    """The report's preprocessing after loading: trim silence, then peak-normalise."""
    trimmed = trim_silence(y, top_db)
    if trimmed.size == 0 or not np.any(trimmed):
        raise ItemError("audio is silent: nothing left after trimming; check the recording")
    return peak_normalise(trimmed)


def report_features(path: str | Path, sr: int = 16000, n_mfcc: int = 40) -> np.ndarray:
    """The report's `extract_mfcc_features`, verbatim in librosa: the baseline to match."""
    import librosa

    audio, sr = librosa.load(path, sr=sr)
    trimmed, _ = librosa.effects.trim(audio, top_db=20)
    y = librosa.util.normalize(trimmed)
    mfccs = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc)
    delta = librosa.feature.delta(mfccs)
    delta2 = librosa.feature.delta(mfccs, order=2)
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_mels=40), ref=np.max)
    return np.concatenate(
        [mfccs.mean(axis=1), delta.mean(axis=1), delta2.mean(axis=1), mel.mean(axis=1)]
    )


@functools.lru_cache(maxsize=256)
def _delta_operator(frames: int, order: int) -> np.ndarray:
    """[frames, frames] matrix D with `x @ D == librosa.feature.delta(x, order=order)`.

    librosa's delta is scipy's Savitzky-Golay filter (window 9, polynomial of degree `order`,
    derivative `order`, mode "interp"): each output is that derivative of the least-squares
    polynomial through the window centred on it, or, within half a window of either end,
    through the first or last window. Linear in x, so one matrix per clip length replaces the
    filter calls (whose edge fits cost more than the log-mel), and no scipy.signal import.
    """
    half = _DELTA_WIDTH // 2
    positions = np.arange(_DELTA_WIDTH, dtype=np.float64) - half
    vandermonde = positions[:, None] ** np.arange(order + 1)
    fit = np.linalg.pinv(vandermonde)  # [order + 1, window]: polynomial coefficients from x
    # The `order`-th derivative of sum_k c_k t^k at t: sum over k >= order of c_k k!/(k-order)! t^(k-order).
    powers = np.arange(order + 1)
    falling = np.array([math.perm(int(k), order) for k in powers], dtype=np.float64)
    operator = np.zeros((frames, frames))
    for j in range(frames):
        start = min(max(j - half, 0), frames - _DELTA_WIDTH)
        t = positions[j - start]
        derivative = np.where(powers >= order, falling * t ** np.maximum(powers - order, 0), 0.0)
        operator[start : start + _DELTA_WIDTH, j] = derivative @ fit
    return operator


class SerMfccExtractor:
    """Per-frame [frames, dim] features of a preprocessed waveform, and their means."""

    def __init__(self, params: SerMfccParams) -> None:
        from avtool.features.spectral import SpectralExtractor, SpectralParams

        self.params = params
        # librosa.feature.mfcc(y=...) defaults: 128 mels, power_to_db with ref=1, top_db=80; the
        # log-mel part shares their STFT (n_fft 2048, hop 512).
        self._mfcc = SpectralExtractor(SpectralParams(sr=params.sr, n_mfcc=params.n_mfcc))
        self._mel = SpectralExtractor(SpectralParams(sr=params.sr, n_mels=params.n_mels, ref="max"))

    def _mfcc_and_logmel(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[n_mfcc, frames] float64 MFCC and [n_mels, frames] float32 dB mel, from one STFT."""
        mfcc_mel, mel = self._mfcc.mel_spectrograms(y, self._mel)
        mfcc = self._mfcc.cepstrum(self._mfcc.to_db(mfcc_mel)).astype(np.float64)
        if mfcc.shape[1] < _DELTA_WIDTH:
            raise ItemError(
                f"only {mfcc.shape[1]} frames after trimming; deltas need {_DELTA_WIDTH}"
            )
        return mfcc, self._mel.to_db(mel).T

    def frames(self, y: np.ndarray) -> np.ndarray:
        """[frames, dim]: MFCC, Δ, ΔΔ, log-mel per frame."""
        mfcc, logmel = self._mfcc_and_logmel(y)
        n = mfcc.shape[1]
        blocks = [mfcc, mfcc @ _delta_operator(n, 1), mfcc @ _delta_operator(n, 2)]
        return np.concatenate([*blocks, logmel]).T.astype(np.float32)

    def vector(self, y: np.ndarray) -> np.ndarray:
        """[dim]: the time means of `frames(y)`, without forming the delta sequences."""
        mfcc, logmel = self._mfcc_and_logmel(y)
        n = mfcc.shape[1]
        means = [mfcc.mean(axis=1)]
        means += [mfcc @ _delta_operator(n, order).mean(axis=1) for order in (1, 2)]
        means.append(logmel.mean(axis=1))
        return np.concatenate(means).astype(np.float32)


@dataclass
class SerMfccWorker(SingleThreadWorker):
    params: SerMfccParams

    def load(self) -> None:
        self._extractor = SerMfccExtractor(self.params)

    def store_attrs(self) -> dict[str, Any]:
        from avtool.core.store import store_attrs

        return store_attrs("ser-mfcc", dataclasses.asdict(self.params))

    def __call__(self, item: dict[str, Any]) -> np.ndarray:
        from avtool.core.audio import load_audio

        waveform, _ = load_audio(item["path"], sr=self.params.sr)
        y = preprocess(waveform, self.params.top_db)
        return self._extractor.frames(y) if self.params.sequence else self._extractor.vector(y)


def extract_ser_mfcc(
    manifest: Path, out: Path, params: SerMfccParams, **options: Any
) -> ItemStageResult:
    """The 160-d vector (or per-frame sequence) of every manifest item into the store `out`.

    `options` are run_manifest_stage's: shard, jobs, launcher, force, dry_run, max_reject_rate.
    """
    return run_manifest_stage(
        "features.ser-mfcc", STAGE_VERSION, manifest, out, params, SerMfccWorker(params), **options
    )
