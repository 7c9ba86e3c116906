"""Log-mel and MFCC numerics shared by the extractors: librosa's results, faster, numpy only.

`SpectralExtractor` reproduces `librosa.feature.melspectrogram` followed by `librosa.power_to_db`
(or `amplitude_to_db` for `power=1`) and `librosa.feature.mfcc` in float32, within 0.01 dB and
1e-3 respectively (tests/test_spectral.py), several times faster than librosa on one thread.
It needs only numpy and scipy.fft: the mel filter bank and the Hann window are built here to
librosa's and scipy's formulas (equal to theirs, tests/test_spectral.py), because importing
librosa.filters (numba) or torch costs a worker process 1.5-2 s, longer than a few hundred clips.

Every item is computed on its own, with array shapes that depend only on that item's length, so
an item's bits do not depend on which other items share the process, the call or the shard. They
may depend on the BLAS thread count (GEMM kernels split products by thread), so item workers run
under one BLAS thread (`SingleThreadWorker`), and on the CPU kind and BLAS build.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from avtool.core.errors import ConfigError, ItemError

# np.pad modes that depend on the whole signal; librosa.stft refuses them with center=True.
_GLOBAL_PAD_MODES = ("wrap", "maximum", "mean", "median", "minimum")

# Mel bands per banded matmul block: the filters are triangles a few bins wide, so multiplying
# each block of bands by only the bins it covers skips 87% of a dense matmul's multiply-adds
# (128 mels, n_fft 2048), ~5x faster; 16 ran fastest of 4..64.
_MEL_BLOCK = 16
# Frames per FFT block (0.5 MB of float32 frames at n_fft 2048): 64 ran faster than 32 or 128.
_FRAME_BLOCK = 64


@dataclass(frozen=True)
class SpectralParams:
    """Parameters with librosa's defaults and meanings (melspectrogram, power_to_db, mfcc).

    `ref` is "max" (librosa's `ref=np.max`, per item) or a positive number in the units of the
    mel spectrogram, as librosa takes it: power for `power=2`, magnitude for `power=1`.
    `amin` is the floor on power values: power_to_db's `amin`, or amplitude_to_db's squared, so
    the default 1e-10 is both functions' default. `top_db` clamps each item to its own maximum
    minus `top_db` (None: no clamp). `to_db` selects the output of `logmel` only: `mfcc` is always
    the DCT of the dB spectrogram, `librosa.feature.mfcc(S=<dB logmel>)`. At power=2 that is
    `librosa.feature.mfcc(y=...)`; at power=1 it is the DCT of amplitude_to_db, where librosa's
    mfcc(y=..., power=1) would take power_to_db of magnitudes (half the dB values).
    """

    sr: int = 22050
    n_fft: int = 2048
    hop: int = 512
    win_length: int | None = None
    window: str = "hann"
    center: bool = True
    pad_mode: str = "constant"
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    htk: bool = False
    norm: float | str | None = "slaney"
    power: float = 2.0
    to_db: bool = True
    ref: str = "1.0"
    amin: float = 1e-10
    top_db: float | None = 80.0
    n_mfcc: int = 20
    dct_norm: str | None = "ortho"
    lifter: float = 0.0
    # Scale each loaded waveform to a peak of 1 first (the SED paper's preprocessing).
    peak_normalize: bool = False

    def __post_init__(self) -> None:
        def bad(what: str) -> ConfigError:
            return ConfigError(f"spectral parameters: {what}")

        if self.sr <= 0 or self.n_fft <= 0 or self.hop <= 0:
            raise bad(
                f"sr, n_fft and hop must be positive (got {self.sr}, {self.n_fft}, {self.hop})"
            )
        if self.win_length is not None and not 0 < self.win_length <= self.n_fft:
            raise bad(f"win_length={self.win_length} must be in 1..n_fft ({self.n_fft})")
        if self.center and self.pad_mode in _GLOBAL_PAD_MODES:
            raise bad(
                f"pad_mode={self.pad_mode!r} is not supported with center=True (as in librosa)"
            )
        if self.n_mels <= 0 or not 0 < self.n_mfcc <= self.n_mels:
            raise bad(f"need 0 < n_mfcc ({self.n_mfcc}) <= n_mels ({self.n_mels})")
        if self.power <= 0:
            raise bad(f"power={self.power} must be positive (2: power, 1: magnitude)")
        if self.amin <= 0:
            raise bad(f"amin={self.amin} must be positive")
        if self.top_db is not None and self.top_db < 0:
            raise bad(f"top_db={self.top_db} must be non-negative, or None for no clamp")
        if not (self.norm in ("slaney", None) or isinstance(self.norm, float | int)):
            raise bad(f"norm={self.norm!r} must be 'slaney', None or a number (a p-norm)")
        if self.dct_norm not in ("ortho", None):
            raise bad(f"dct_norm={self.dct_norm!r} must be 'ortho' or None")
        if self.lifter < 0:
            raise bad(f"lifter={self.lifter} must be non-negative")
        if self.ref != "max":
            try:
                ref = float(self.ref)
            except ValueError:
                ref = math.nan
            if not (math.isfinite(ref) and ref > 0):
                raise bad(f"ref={self.ref!r} must be 'max' or a positive number")

    @property
    def frame_length(self) -> int:
        return self.win_length or self.n_fft


# Slaney's mel scale (librosa's default): linear up to 1 kHz, logarithmic above.
_SLANEY_HZ_PER_MEL = 200.0 / 3
_SLANEY_LOG_HZ = 1000.0
_SLANEY_LOG_MEL = _SLANEY_LOG_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = float(np.log(6.4)) / 27.0


def _stft_params(p: SpectralParams) -> tuple:
    return (p.sr, p.n_fft, p.hop, p.win_length, p.window, p.center, p.pad_mode, p.power)


def hz_to_mel(frequencies: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """librosa.hz_to_mel: HTK's formula, or Slaney's (linear below 1 kHz, log above)."""
    frequencies = np.asanyarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + frequencies / 700.0)
    mels = frequencies / _SLANEY_HZ_PER_MEL
    log_region = frequencies >= _SLANEY_LOG_HZ
    return np.where(
        log_region,
        _SLANEY_LOG_MEL
        + np.log(np.where(log_region, frequencies, 1.0) / _SLANEY_LOG_HZ) / _SLANEY_LOG_STEP,
        mels,
    )


def mel_to_hz(mels: np.ndarray, htk: bool = False) -> np.ndarray:
    """librosa.mel_to_hz, the inverse of `hz_to_mel`."""
    mels = np.asanyarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    return np.where(
        mels >= _SLANEY_LOG_MEL,
        _SLANEY_LOG_HZ * np.exp(_SLANEY_LOG_STEP * (mels - _SLANEY_LOG_MEL)),
        _SLANEY_HZ_PER_MEL * mels,
    )


def mel_filters(
    sr: int,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: float | str | None = "slaney",
) -> np.ndarray:
    """[n_mels, 1 + n_fft // 2] float32: `librosa.filters.mel` with the same arguments."""
    fmax = float(sr) / 2 if fmax is None else fmax
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, len(fft_freqs)), dtype=np.float32)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    elif norm is not None:
        # librosa.util.normalize along frequency: norms in float64, rows with a norm below
        # float32's tiny left unscaled.
        order = float(norm)
        magnitude = np.abs(weights).astype(np.float64)
        if order == np.inf:
            length = magnitude.max(axis=-1, keepdims=True)
        elif order == -np.inf:
            length = magnitude.min(axis=-1, keepdims=True)
        elif order == 0:
            length = (magnitude > 0).sum(axis=-1, keepdims=True, dtype=np.float64)
        else:
            length = (magnitude**order).sum(axis=-1, keepdims=True) ** (1.0 / order)
        length[length < np.finfo(weights.dtype).tiny] = 1.0
        weights = (weights / length).astype(np.float32)
    return weights


def analysis_window(name: str, length: int, n_fft: int) -> np.ndarray:
    """librosa.stft's window: periodic `name` of `length` samples, zero-padded to n_fft centred.

    Hann, the default, is built with scipy.signal.windows.general_cosine's arithmetic (equal
    bits) so that workers need not import scipy.signal (~0.6 s); other names go to scipy.
    """
    if name in ("hann", "hanning", "han"):
        fac = np.linspace(-np.pi, np.pi, length + 1)
        window = np.zeros(length + 1)
        window += 0.5 * np.cos(0 * fac)
        window += 0.5 * np.cos(1 * fac)
        window = window[:-1]
    else:
        import scipy.signal

        try:
            window = scipy.signal.get_window(name, length, fftbins=True)
        except ValueError as exc:
            raise ConfigError(f"spectral parameters: window={name!r}: {exc}") from None
    left = (n_fft - length) // 2
    return np.pad(window, (left, n_fft - length - left)).astype(np.float32)


class SpectralExtractor:
    """Per-item log-mel and MFCC on mono waveforms, librosa-exact to within float32 rounding."""

    def __init__(self, params: SpectralParams) -> None:
        # scipy.fft (0.2 s) is imported here, not at module level: a --dry-run, an up-to-date
        # rerun or a --launcher slurm submission needs only SpectralParams.
        import scipy.fft

        self.params = params
        p = params
        mel = mel_filters(p.sr, p.n_fft, p.n_mels, p.fmin, p.fmax, p.htk, p.norm)
        # Each block keeps the bin range its bands cover: (first bin, end bin, weights [bins, bands]).
        self._mel_blocks: list[tuple[int, int, np.ndarray]] = []
        for start in range(0, p.n_mels, _MEL_BLOCK):
            block = mel[start : start + _MEL_BLOCK]
            bins = np.flatnonzero(block.any(axis=0))
            lo, hi = (int(bins[0]), int(bins[-1]) + 1) if bins.size else (0, 0)
            self._mel_blocks.append((lo, hi, np.ascontiguousarray(block[:, lo:hi].T)))
        self._window = analysis_window(p.window, p.frame_length, p.n_fft)
        self._rfft = scipy.fft.rfft

        # DCT-II basis built by scipy itself (librosa's mfcc calls scipy.fft.dct), with the lifter
        # folded into its rows; applied in float64 because the dB values reach |c0| ~ 1e3.
        basis = scipy.fft.dct(np.eye(p.n_mels), type=2, norm=p.dct_norm, axis=0)[: p.n_mfcc]
        if p.lifter > 0:
            k = np.arange(1, 1 + p.n_mfcc)
            basis *= (1 + (p.lifter / 2) * np.sin(np.pi * k / p.lifter))[:, None]
        self._dct = basis

    def n_frames(self, n_samples: int) -> int:
        """Frames `logmel`/`mfcc` return for a waveform of `n_samples` samples."""
        p = self.params
        padded = n_samples + 2 * (p.n_fft // 2) if p.center else n_samples
        return 1 + (padded - p.n_fft) // p.hop

    def logmel(self, y: np.ndarray) -> np.ndarray:
        """[n_mels, frames] float32: the dB mel spectrogram, or the linear one if not `to_db`."""
        (mel,) = self.mel_spectrograms(y)
        out = self.to_db(mel) if self.params.to_db else mel
        return np.ascontiguousarray(out.T)

    def mfcc(self, y: np.ndarray) -> np.ndarray:
        """[n_mfcc, frames] float32: DCT-II of the dB mel spectrogram over the mel axis."""
        (mel,) = self.mel_spectrograms(y)
        return self.cepstrum(self.to_db(mel))

    def mel_spectrograms(self, y: np.ndarray, *others: SpectralExtractor) -> list[np.ndarray]:
        """[frames, n_mels] float32 mel spectrograms (`power` applied) of this extractor's bank
        and of each of `others`' banks, from one STFT: `others` must share its STFT parameters."""
        p = self.params
        for other in others:
            if _stft_params(other.params) != _stft_params(p):
                raise ConfigError(
                    "mel_spectrograms: the extractors differ in STFT parameters "
                    f"({_stft_params(other.params)} vs {_stft_params(p)})"
                )
        y = self._check(y)
        if p.center:
            y = np.pad(y, p.n_fft // 2, mode=p.pad_mode)
        frames = np.lib.stride_tricks.sliding_window_view(y, p.n_fft)[:: p.hop]
        extractors = (self, *others)
        mels = [np.empty((len(frames), e.params.n_mels), np.float32) for e in extractors]
        # Frames go through in blocks that stay in L2 cache, through buffers allocated once per
        # item: fresh ~1 MB arrays per block cost page faults that took as long as the FFTs.
        windowed = np.empty((min(_FRAME_BLOCK, len(frames)), p.n_fft), np.float32)
        power = np.empty((len(windowed), p.n_fft // 2 + 1), np.float32)
        for start in range(0, len(frames), _FRAME_BLOCK):
            stop = min(start + _FRAME_BLOCK, len(frames))
            rows = stop - start
            np.multiply(frames[start:stop], self._window, out=windowed[:rows])
            parts = self._rfft(windowed[:rows], overwrite_x=True).view(np.float32)
            # Squares of the interleaved real and imaginary parts, summed: faster than abs()**2.
            np.square(parts, out=parts)
            np.add(parts[:, 0::2], parts[:, 1::2], out=power[:rows])
            if p.power == 1:
                np.sqrt(power[:rows], out=power[:rows])
            elif p.power != 2:
                np.power(power[:rows], np.float32(p.power / 2), out=power[:rows])
            for extractor, mel in zip(extractors, mels, strict=True):
                column = 0
                for lo, hi, weights in extractor._mel_blocks:
                    width = weights.shape[1]
                    np.matmul(
                        power[:rows, lo:hi], weights, out=mel[start:stop, column : column + width]
                    )
                    column += width
        return mels

    def to_db(self, mel: np.ndarray) -> np.ndarray:
        """power_to_db of the mel power, per item; for power != 2, of mel ** (2 / power) first,
        which for power=1 is exactly librosa's amplitude_to_db."""
        p = self.params
        power = mel if p.power == 2 else mel ** np.float32(2 / p.power)
        log = np.log10(np.maximum(power, np.float32(p.amin)))
        log *= np.float32(10.0)
        # The reference in librosa's own types: float32 for ref=max, float64 for a number.
        if p.ref == "max":
            log -= np.float32(10.0) * np.log10(np.maximum(np.float32(p.amin), power.max()))
        else:
            log -= 10.0 * np.log10(max(p.amin, float(p.ref) ** (2 / p.power)))
        if p.top_db is not None:
            np.maximum(log, log.max() - np.float32(p.top_db), out=log)
        return log

    def cepstrum(self, db: np.ndarray) -> np.ndarray:
        """[n_mfcc, frames] float32: the DCT-II of a [frames, n_mels] dB mel spectrogram."""
        return (self._dct @ db.T.astype(np.float64)).astype(np.float32)

    def _check(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1:
            raise ItemError(f"spectral features need mono audio, got shape {y.shape}; downmix it")
        if y.size == 0:
            raise ItemError("spectral features got empty audio; check the item's source file")
        y = np.ascontiguousarray(y, dtype=np.float32)
        if not np.isfinite(y).all():
            raise ItemError("audio holds NaN or infinite samples; check the item's source file")
        if not self.params.center and y.size < self.params.n_fft:
            raise ItemError(
                f"audio of {y.size} samples is shorter than n_fft={self.params.n_fft} "
                "with center=False; use center=True or a smaller n_fft"
            )
        return y
