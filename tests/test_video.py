"""Video I/O: frame-rate resampling by nearest timestamp, stream facts, the muxer, item errors."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile as sf

from avtool.core.errors import ItemError
from avtool.core.video import iter_frames, pick_nearest, read_frames, video_info, write_video

N, FPS, H, W = 50, 25, 48, 64  # a 2-second clip
BASE, STEP = 20, 4  # frame i is a flat grey of level BASE + STEP * i


def indices(frames: np.ndarray) -> list[int]:
    """Recover each frame's source index from its grey level (codec error is about 1 level)."""
    levels = frames.reshape(len(frames), -1).mean(axis=1)
    return np.round((levels - BASE) / STEP).astype(int).tolist()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple:
    """A GRID-like .mpg: MPEG-1 video at 25 fps whose frames encode their index, MP2 audio."""
    frames = np.stack([np.full((H, W, 3), BASE + STEP * i, np.uint8) for i in range(N)])
    audio = (0.1 * np.sin(2 * np.pi * 440 * np.arange(2 * 44100) / 44100)).astype(np.float32)
    path = tmp_path_factory.mktemp("video") / "clip.mpg"
    write_video(path, frames, FPS, audio=audio, sr=44100)
    return path, frames


def test_write_video_makes_an_mpeg1_program_stream(clip):
    path, _ = clip
    assert sorted(p.name for p in path.parent.iterdir()) == ["clip.mpg"]
    with av.open(str(path)) as container:
        assert container.format.name == "mpeg"
        assert container.streams.video[0].codec_context.name == "mpeg1video"
        assert container.streams.audio[0].codec_context.name == "mp2"


def test_video_info(clip):
    path, _ = clip
    info = video_info(path)
    assert info == (25.0, N, W, H, 2.0, True)
    assert info.fps == 25.0 and info.has_audio


def test_frames_as_decoded_keep_their_content(clip):
    path, frames = clip
    decoded = read_frames(path)
    assert decoded.shape == (N, H, W, 3) and decoded.dtype == np.uint8
    assert indices(decoded) == list(range(N))
    # Measured: flat greys come back within 1 level after MPEG-1 at the default bit rate.
    assert np.abs(decoded.astype(int) - frames).max() <= 2


@pytest.mark.parametrize(("fps", "count"), [(25, 50), (10, 20)])
def test_frame_count_of_a_two_second_clip(clip, fps, count):
    assert len(read_frames(clip[0], fps=fps)) == count
    assert sum(1 for _ in iter_frames(clip[0], fps=fps)) == count


@pytest.mark.parametrize("fps", [25, 10, 15, 30, 50, Fraction(30000, 1001)])
def test_resampling_picks_the_nearest_frame(clip, fps):
    picked = indices(read_frames(clip[0], fps=fps))
    rate = Fraction(fps)
    assert len(picked) == math.ceil(Fraction(N, FPS) * rate)
    # Nearest source frame to k/fps, ties to the earlier one: ceil(x - 1/2) of x = k*25/fps.
    assert picked == [math.ceil(k * FPS / rate - Fraction(1, 2)) for k in range(len(picked))]


def test_repeated_frames_are_independent_arrays(clip):
    first, second = list(iter_frames(clip[0], fps=50))[:2]
    assert np.array_equal(first, second)
    first[:] = 0
    assert second.any()


def test_size_and_gray(clip):
    small = read_frames(clip[0], fps=10, size=(32, 24))
    assert small.shape == (20, 24, 32, 3)
    gray = read_frames(clip[0], fps=10, size=(32, 24), gray=True)
    assert gray.shape == (20, 24, 32) and gray.dtype == np.uint8
    assert indices(gray) == [math.floor(k * 2.5) for k in range(20)]
    # Measured: swscale's scaled RGB path sits up to 2 levels below the unscaled one.
    levels = BASE + STEP * np.array(indices(gray))
    assert np.abs(small.reshape(20, -1).mean(axis=1) - levels).max() <= 3


def test_pick_nearest_on_irregular_timestamps():
    # Starts at 0.5 s (as MPEG streams do) with one long frame: times count from the start.
    spans = [("0.5", "0.1", "a"), ("0.6", "0.3", "b"), ("0.9", "0.1", "c")]
    timed = [(Fraction(start), Fraction(length), name) for start, length, name in spans]
    # Instants 0, .1, ..., .4 from the start; midpoints .05 (a|b) and .25 (b|c); end .5.
    assert list(pick_nearest(timed, Fraction(1, 10))) == ["a", "b", "b", "c", "c"]
    assert list(pick_nearest([], Fraction(1, 10))) == []


def test_write_video_other_containers(tmp_path):
    frames = np.stack([np.full((32, 32, 3), BASE + STEP * i, np.uint8) for i in range(10)])
    out = tmp_path / "clip.mkv"
    write_video(out, frames, 12.5, codec="libx264")
    assert video_info(out)[:4] == (12.5, 10, 32, 32)
    assert indices(read_frames(out, fps=25)) == [k // 2 for k in range(20)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv"]


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"frames": np.zeros((2, 15, 16, 3), np.uint8)}, "even width and height"),
        ({"fps": 10}, "cannot encode 10 fps"),
        ({"frames": np.zeros((2, 16, 16), np.uint8)}, "uint8 \\[T, H, W, 3\\]"),
        ({"audio": np.zeros(100, np.float32)}, "pass sr"),
        ({"audio": np.zeros(100, np.float32), "sr": 50000}, "cannot encode 50000 Hz"),
        ({"audio": np.zeros((3, 100), np.float32), "sr": 44100}, "1 or 2"),
    ],
)
def test_write_video_refuses_what_the_codecs_cannot_take(tmp_path, kwargs, phrase):
    args = {"frames": np.zeros((2, 16, 16, 3), np.uint8), "fps": 25, **kwargs}
    with pytest.raises(ValueError, match=phrase):
        write_video(tmp_path / "out.mpg", **args)
    assert list(tmp_path.iterdir()) == []


def _bad_video(tmp_path, kind: str):
    path = tmp_path / f"bad-{kind}.mpg"
    if kind == "empty":
        path.touch()
    elif kind == "text":
        path = tmp_path / "notes.txt"
        path.write_text("not video\n" * 20)
    elif kind == "jpeg":
        path = tmp_path / "face.jpg"
        with av.open(str(path), "w", format="image2") as container:
            stream = container.add_stream("mjpeg", rate=1)
            stream.width, stream.height, stream.pix_fmt = 32, 32, "yuvj420p"
            image = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(image))
            container.mux(stream.encode())
    elif kind == "wav":
        path = tmp_path / "speech.wav"
        sf.write(path, np.zeros(1000, np.float32), 16000)
    return path


@pytest.mark.parametrize(
    ("kind", "phrase"),
    [
        ("missing", "video file not found"),
        ("empty", "empty (0 bytes)"),
        ("text", "not a readable video file"),
        ("jpeg", "is an image"),
        ("wav", "no video stream"),
    ],
)
def test_unusable_files_raise_item_errors_naming_them(tmp_path, kind, phrase):
    path = _bad_video(tmp_path, kind)
    for call in (video_info, read_frames):
        with pytest.raises(ItemError) as caught:
            call(path)
        message = str(caught.value)
        assert phrase in message and str(path) in message and "\n" not in message
