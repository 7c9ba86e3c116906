"""Audio I/O: librosa-identical loading, the video fallback, atomic saving, clear item errors."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
import soundfile as sf

from avtool.core.audio import audio_info, load_audio, save_audio
from avtool.core.errors import AvtoolError, ItemError
from avtool.core.video import write_video

SR = 44100


def noise(n: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Band-limited noise [n, channels]: unambiguous under cross-correlation, lossy-codec safe."""
    rng = np.random.default_rng(seed)
    white = 0.2 * rng.standard_normal((n + 7, channels))
    kernel = np.ones(8) / 8
    smooth = np.stack([np.convolve(white[:, c], kernel, "valid") for c in range(channels)], 1)
    return smooth.astype(np.float32)


@pytest.fixture
def stereo_wav(tmp_path):
    y = noise(2 * SR + 13)
    path = tmp_path / "stereo.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    return path, y


def test_stereo_is_averaged_to_mono(stereo_wav):
    path, y = stereo_wav
    mono, sr = load_audio(path)
    assert sr == SR and mono.dtype == np.float32 and mono.shape == (len(y),)
    np.testing.assert_allclose(mono, y.mean(axis=1), atol=1e-7)


def test_mono_false_gives_channels_first(stereo_wav, tmp_path):
    path, y = stereo_wav
    both, _ = load_audio(path, mono=False)
    assert both.shape == (2, len(y)) and both.flags.c_contiguous
    np.testing.assert_array_equal(both, y.T)
    single = tmp_path / "mono.wav"
    sf.write(single, y[:, 0], SR, subtype="FLOAT")
    assert load_audio(single, mono=False)[0].shape == (1, len(y))


@pytest.mark.parametrize("mono", [True, False])
@pytest.mark.parametrize(
    ("suffix", "subtype"), [("wav", "PCM_16"), ("flac", "PCM_24"), ("mp3", None)]
)
def test_resampling_matches_librosa_load_exactly(tmp_path, suffix, subtype, mono):
    librosa = pytest.importorskip("librosa")
    path = tmp_path / f"in.{suffix}"
    sf.write(path, noise(2 * SR + 13), SR, subtype=subtype)
    ours, sr = load_audio(path, sr=22050, mono=mono)
    theirs, their_sr = librosa.load(path, sr=22050, mono=mono)
    assert sr == their_sr == 22050
    assert ours.shape == theirs.shape
    assert ours.shape[-1] == math.ceil((2 * SR + 13) / 2)
    # Measured: max |ours - theirs| == 0.0 for every case here (same reads, same reduction,
    # same soxr HQ call per channel), so anything but bit equality is a regression.
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pcm16_is_converted_as_libsndfile_does(tmp_path, channels, dtype):
    """16-bit files are read as integers and scaled in numpy: the same bits as libsndfile."""
    samples = np.random.default_rng(channels).integers(-32768, 32768, (5000, channels))
    samples[:2] = [[-32768] * channels, [32767] * channels]
    path = tmp_path / "pcm16.wav"
    sf.write(path, samples.astype(np.int16), SR, subtype="PCM_16")
    ours, _ = load_audio(path, mono=False, dtype=dtype)
    theirs, _ = sf.read(path, dtype=dtype, always_2d=True)
    assert ours.dtype == dtype and ours[..., 0].min() == -1.0
    np.testing.assert_array_equal(ours.reshape(channels, -1), theirs.T)


def test_native_rate_and_float64(stereo_wav):
    path, y = stereo_wav
    mono, sr = load_audio(path, dtype=np.float64)
    assert sr == SR and mono.dtype == np.float64
    np.testing.assert_allclose(mono, y.astype(np.float64).mean(axis=1), atol=1e-7)
    with pytest.raises(ValueError, match="positive"):
        load_audio(path, sr=0)


def test_audio_track_of_an_mpg(tmp_path):
    y = noise(2 * SR, channels=1)[:, 0]
    path = tmp_path / "clip.mpg"
    write_video(path, np.zeros((50, 48, 64, 3), np.uint8), 25, audio=y, sr=SR)
    track, sr = load_audio(path)
    assert sr == SR
    # MP2 in an MPEG program stream keeps the encoder's 481-sample delay and pads to whole
    # 1152-sample frames, so the track is the input shifted by less than one codec frame.
    assert len(y) <= len(track) < len(y) + 2 * 1152
    lag = int(np.argmax(np.correlate(track, y[:SR], "valid")))
    assert 0 <= lag < 1152
    aligned = track[lag : lag + len(y)]
    assert np.corrcoef(aligned, y[: len(aligned)])[0, 1] > 0.95
    info = audio_info(path)
    assert (info.sr, info.channels) == (SR, 1)
    assert abs(info.frames - len(track)) <= 1152
    resampled, sr16 = load_audio(path, sr=16000)
    assert sr16 == 16000 and len(resampled) == math.ceil(len(track) * 16000 / SR)


def test_audio_info_reads_headers(stereo_wav):
    path, y = stereo_wav
    info = audio_info(path)
    assert (info.sr, info.channels, info.frames) == (SR, 2, len(y))
    assert info.duration == pytest.approx(len(y) / SR)


def test_save_audio_round_trip_is_atomic_and_clips(tmp_path):
    y = noise(SR, channels=2).T.copy()
    y[0, :3] = [1.5, -1.5, 0.5]
    out = tmp_path / "sub" / "out.wav"
    save_audio(out, y, SR)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.wav"]
    assert sf.info(out).subtype == "PCM_16"
    back, sr = load_audio(out, mono=False)
    assert sr == SR and back.shape == y.shape
    np.testing.assert_allclose(back[0, :3], [32767 / 32768, -1.0, 0.5], atol=1 / 32768)
    np.testing.assert_allclose(back[:, 3:], y[:, 3:], atol=1 / 32768)
    save_audio(tmp_path / "out.ogg", y[0], 22050, subtype=None)
    assert audio_info(tmp_path / "out.ogg").sr == 22050
    with pytest.raises(ValueError, match="cannot write"):
        save_audio(tmp_path / "out.xyz", y, SR)


def _jpeg(path):
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("mjpeg", rate=1)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuvj420p"
        image = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        container.mux(stream.encode(image))
        container.mux(stream.encode())


def _bad_file(tmp_path, kind: str):
    """Make one kind of broken input; return its path."""
    full = tmp_path / "full.wav"
    sf.write(full, noise(SR), SR)
    path = tmp_path / f"bad-{kind}.wav"
    if kind == "missing":
        pass
    elif kind == "folder":
        path.mkdir()
    elif kind == "empty":
        path.touch()
    elif kind == "truncated-wav":
        path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    elif kind == "header-only-wav":
        path.write_bytes(full.read_bytes()[:30])
    elif kind == "truncated-flac":
        path = tmp_path / "bad.flac"
        sf.write(path, noise(SR), SR)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "truncated-mp3":
        path = tmp_path / "bad.mp3"
        sf.write(path, noise(2 * SR), SR)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "text":
        path = tmp_path / "notes.txt"
        path.write_text("not audio\n" * 20)
    elif kind == "jpeg":
        path = tmp_path / "face.jpg"
        _jpeg(path)
    elif kind == "silent-video":
        path = tmp_path / "silent.mpg"
        write_video(path, np.zeros((5, 16, 16, 3), np.uint8), 25)
    elif kind == "no-samples":
        sf.write(path, np.zeros((0, 2), np.float32), SR)
    return path


@pytest.mark.parametrize(
    ("kind", "phrase"),
    [
        ("missing", "not found"),
        ("folder", "not a regular file"),
        ("empty", "empty (0 bytes)"),
        ("truncated-wav", "truncated WAV"),
        ("header-only-wav", "not a readable audio file"),
        ("truncated-flac", "corrupt or truncated FLAC"),
        ("truncated-mp3", "truncated MP3"),
        ("text", "not a readable audio file"),
        ("jpeg", "no audio stream"),
        ("silent-video", "no audio stream"),
        ("no-samples", "holds no samples"),
    ],
)
def test_unusable_files_raise_item_errors_naming_them(tmp_path, kind, phrase):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(ItemError) as caught:
        load_audio(path)
    message = str(caught.value)
    assert phrase in message and str(path) in message
    assert "\n" not in message
    assert isinstance(caught.value, AvtoolError)
    if kind == "jpeg":
        assert "an image" in message


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "jpeg"])
def test_audio_info_errors_name_the_file(tmp_path, kind):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(ItemError, match="audio") as caught:
        audio_info(path)
    assert str(path) in str(caught.value)
