"""Log-mel and MFCC numerics: librosa's values within tolerance, per-item bits, clear errors."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import librosa
import numpy as np
import pytest
import scipy.signal
from threadpoolctl import threadpool_limits

from avtool.core.config import from_dict
from avtool.core.errors import ConfigError, ItemError
from avtool.features.spectral import (
    SpectralExtractor,
    SpectralParams,
    analysis_window,
    mel_filters,
)

SR = 22050
DB_TOL = 0.01  # dB, max abs against librosa
MFCC_TOL = 1e-3


@pytest.fixture(autouse=True)
def one_thread():
    # Bits are reproducible for a fixed BLAS thread count only; stages pin it to 1, as here.
    with threadpool_limits(limits=1):
        yield


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Glottal pulses through moving formant resonators, in syllables with pauses and a noise floor."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 2 * np.pi))
    pulses = np.diff(np.floor(np.cumsum(f0) / SR), prepend=0.0)
    y = np.zeros(n)
    syllable = SR // 5
    for start in range(0, n, syllable):
        seg = slice(start, start + syllable)
        out = pulses[seg]
        for formant, bandwidth in zip(
            rng.uniform([300, 900, 2200], [800, 2000, 3200]), (80, 120, 160), strict=True
        ):
            r = np.exp(-np.pi * bandwidth / SR)
            a = [1, -2 * r * np.cos(2 * np.pi * formant / SR), r * r]
            out = scipy.signal.lfilter([1 - r], a, out)
        y[seg] = out * np.hanning(out.size) * (rng.random() > 0.25)
    y += 1e-4 * rng.standard_normal(n)
    return 0.5 * y / np.abs(y).max()


@pytest.fixture(scope="module")
def signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    t = np.arange(4 * SR) / SR
    silence = np.zeros(SR)
    found = {
        "speech": speech_like(4, seed=1),
        "noise": 0.1 * rng.standard_normal(t.size),
        "chirp": 0.5 * np.sin(2 * np.pi * (50 * t + (10000 - 50) / 8 * t**2)),
        "silence_padded": np.concatenate([silence, speech_like(2.5, seed=2), silence]),
    }
    return {name: y.astype(np.float32) for name, y in found.items()}


def max_dev(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape and a.dtype == np.float32
    return float(np.abs(a - b).max())


@pytest.mark.parametrize(
    "n_fft, hop, n_mels, n_mfcc",
    [(2048, 366, 128, 40), (2048, 512, 128, 20)],  # a non-default hop, then librosa's defaults
)
def test_matches_librosa(signals, n_fft, hop, n_mels, n_mfcc):
    kw = {"sr": SR, "n_fft": n_fft, "hop_length": hop, "n_mels": n_mels}
    params = SpectralParams(n_fft=n_fft, hop=hop, n_mels=n_mels, n_mfcc=n_mfcc)
    default = SpectralExtractor(params)
    by_max = SpectralExtractor(SpectralParams(n_fft=n_fft, hop=hop, n_mels=n_mels, ref="max"))
    amplitude = SpectralExtractor(SpectralParams(n_fft=n_fft, hop=hop, n_mels=n_mels, power=1.0))
    for name, y in signals.items():
        power = librosa.feature.melspectrogram(y=y, **kw)
        magnitude = librosa.feature.melspectrogram(y=y, power=1.0, **kw)
        devs = {
            "logmel": max_dev(default.logmel(y), librosa.power_to_db(power)),
            "ref_max": max_dev(by_max.logmel(y), librosa.power_to_db(power, ref=np.max)),
            "power_1": max_dev(amplitude.logmel(y), librosa.amplitude_to_db(magnitude)),
        }
        assert max(devs.values()) < DB_TOL, (name, devs)
        mfcc = max_dev(default.mfcc(y), librosa.feature.mfcc(y=y, n_mfcc=n_mfcc, **kw))
        assert mfcc < MFCC_TOL, (name, mfcc)


@pytest.mark.parametrize(
    "options",
    [
        {"center": False},
        {"pad_mode": "reflect", "window": "hamming", "win_length": 1500},
        {"fmin": 60.0, "fmax": 7600.0, "htk": True, "norm": None, "n_mels": 64},
        {"top_db": None, "n_fft": 1024, "hop": 256},
        {"n_mfcc": 13, "lifter": 22.0},
        {"dct_norm": None, "amin": 1e-6, "top_db": 60.0},
    ],
)
def test_options_match_librosa(signals, options):
    y = signals["speech"][: 2 * SR]
    p = SpectralParams(**options)
    mel_kw = {
        "sr": p.sr,
        "n_fft": p.n_fft,
        "hop_length": p.hop,
        "win_length": p.win_length,
        "window": p.window,
        "center": p.center,
        "pad_mode": p.pad_mode,
        "n_mels": p.n_mels,
        "fmin": p.fmin,
        "fmax": p.fmax,
        "htk": p.htk,
    }
    db_kw = {"amin": p.amin, "top_db": p.top_db}
    log_mel = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, norm=p.norm, **mel_kw), **db_kw
    )
    extractor = SpectralExtractor(p)
    assert max_dev(extractor.logmel(y), log_mel) < DB_TOL
    # Unnormalised DCT-II scales coefficients by up to 2*sqrt(n_mels/2): compare relative to that.
    scale = 1.0 if p.dct_norm == "ortho" else 2 * np.sqrt(p.n_mels / 2)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=p.n_mfcc, norm=p.dct_norm, lifter=p.lifter)
    assert max_dev(extractor.mfcc(y), mfcc) < MFCC_TOL * scale


def test_linear_output_and_silence():
    extractor = SpectralExtractor(SpectralParams(to_db=False))
    y = np.zeros(SR, dtype=np.float32)
    assert not extractor.logmel(y).any()
    db = SpectralExtractor(SpectralParams())
    floor = librosa.power_to_db(np.zeros(1, np.float32))[0]  # 10 * log10(amin) in float32
    assert floor == pytest.approx(-100.0) and (db.logmel(y) == floor).all()
    assert (SpectralExtractor(SpectralParams(ref="max")).logmel(y) == 0.0).all()


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("n", [2048, 2049, 5000, SR + 17])
def test_shapes(center, n):
    p = SpectralParams(hop=366, center=center, n_mfcc=13)
    extractor = SpectralExtractor(p)
    y = np.random.default_rng(n).standard_normal(n).astype(np.float64)
    frames = librosa.util.frame(
        np.zeros(n + 2 * (p.n_fft // 2) * center), frame_length=p.n_fft, hop_length=p.hop
    ).shape[1]
    assert extractor.n_frames(n) == frames
    log_mel, mfcc = extractor.logmel(y), extractor.mfcc(y)
    assert log_mel.shape == (128, frames) and mfcc.shape == (13, frames)
    assert log_mel.dtype == mfcc.dtype == np.float32
    assert log_mel.flags.c_contiguous and mfcc.flags.c_contiguous


def digest(extractor: SpectralExtractor, y: np.ndarray) -> str:
    return hashlib.sha256(extractor.logmel(y).tobytes() + extractor.mfcc(y).tobytes()).hexdigest()


def test_item_bits_do_not_depend_on_other_items(signals):
    """Sharded and single runs must write the same bytes: an item's result is its own."""
    params = SpectralParams(hop=366)
    alone = digest(SpectralExtractor(params), signals["speech"])
    shared = SpectralExtractor(params)
    for y in (signals["noise"], signals["chirp"][:50000], signals["silence_padded"]):
        digest(shared, y)
    assert digest(shared, signals["speech"]) == alone


@pytest.mark.slow
def test_item_bits_are_the_same_in_a_fresh_process(signals):
    alone = digest(SpectralExtractor(SpectralParams(hop=366)), signals["speech"])
    script = (
        "import sys, numpy as np, hashlib, threadpoolctl\n"
        "from avtool.features.spectral import SpectralExtractor, SpectralParams\n"
        "threadpoolctl.threadpool_limits(limits=1)\n"
        "y = np.frombuffer(sys.stdin.buffer.read(), dtype=np.float32)\n"
        "e = SpectralExtractor(SpectralParams(hop=366))\n"
        "print(hashlib.sha256(e.logmel(y).tobytes() + e.mfcc(y).tobytes()).hexdigest())\n"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", script],
        input=signals["speech"].tobytes(),
        capture_output=True,
        check=True,
    )
    assert fresh.stdout.decode().strip() == alone


@pytest.mark.parametrize(
    "y, message",
    [
        (np.zeros((2, 4000), np.float32), "mono"),
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.0, np.nan] * 2000, np.float32), "NaN"),
    ],
)
def test_bad_audio_is_an_item_error(y, message):
    with pytest.raises(ItemError, match=message):
        SpectralExtractor(SpectralParams()).logmel(y)


def test_short_audio_without_centering_is_an_item_error():
    with pytest.raises(ItemError, match="shorter than n_fft"):
        SpectralExtractor(SpectralParams(center=False)).mfcc(np.zeros(2047, np.float32))


@pytest.mark.parametrize(
    "options",
    [
        {"ref": "loud"},
        {"ref": "0"},
        {"power": 0.0},
        {"n_mfcc": 200},
        {"dct_norm": "forward"},
        {"pad_mode": "wrap"},
        {"win_length": 4096},
        {"top_db": -1.0},
        {"lifter": -1.0},
        {"norm": "l2"},
    ],
)
def test_bad_params_are_config_errors(options):
    with pytest.raises(ConfigError, match="spectral parameters"):
        SpectralParams(**options)


def test_unknown_window_is_a_config_error():
    with pytest.raises(ConfigError, match="window='hannn'"):
        SpectralExtractor(SpectralParams(window="hannn"))


def test_params_load_from_config_values():
    p = from_dict(
        SpectralParams, {"ref": "max", "norm": None, "top_db": None, "fmax": 8000, "hop": 366}
    )
    assert p == SpectralParams(ref="max", norm=None, top_db=None, fmax=8000.0, hop=366)
    assert from_dict(SpectralParams, {"ref": 1.0, "norm": 2}).norm == 2.0


@pytest.mark.parametrize(
    "options",
    [
        {"sr": 22050, "n_fft": 2048, "n_mels": 128},
        {"sr": 16000, "n_fft": 2048, "n_mels": 40},
        {"sr": 16000, "n_fft": 512, "n_mels": 64, "fmin": 60.0, "fmax": 7600.0, "htk": True},
        {"sr": 16000, "n_fft": 512, "n_mels": 64, "norm": None},
        {"sr": 44100, "n_fft": 1024, "n_mels": 80, "norm": 2.0},
        {"sr": 8000, "n_fft": 256, "n_mels": 20, "norm": np.inf, "fmin": 100.0},
        {"sr": 8000, "n_fft": 256, "n_mels": 20, "norm": 1},
    ],
)
def test_mel_filters_equal_librosa(options):
    """Built without librosa (its import costs a worker ~1.5 s), equal to it bit for bit."""
    ours, theirs = mel_filters(**options), librosa.filters.mel(**options)
    assert ours.dtype == theirs.dtype == np.float32
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize(
    "window, length, n_fft",
    [("hann", 2048, 2048), ("hann", 1500, 2048), ("hann", 401, 512), ("hamming", 400, 512)],
)
def test_analysis_window_equals_librosa(window, length, n_fft):
    theirs = librosa.util.pad_center(
        librosa.filters.get_window(window, length, fftbins=True), size=n_fft
    )
    assert np.array_equal(analysis_window(window, length, n_fft), theirs.astype(np.float32))
