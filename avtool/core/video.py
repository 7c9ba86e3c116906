"""Video I/O with PyAV: frames resampled to a chosen rate, stream facts, an atomic muxer.

Frames come out as RGB uint8 [H, W, 3] (or [H, W] when gray). Resampling in time keeps, for
each output instant k/fps, the decoded frame whose timestamp is nearest (ties go to the
earlier frame, the one already on screen), so lowering the rate drops frames and raising it
repeats them, and the output length is ceil(duration * fps) whatever the source rate.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple, TypeVar

import av
import numpy as np

from avtool.core.atomic import atomic_path
from avtool.core.audio import describe_streams, is_image_format, open_media, require_file
from avtool.core.errors import ItemError

T = TypeVar("T")

# MPEG-1/2 video can only signal these rates; ffmpeg lists a few more that it refuses
# unless told to write non-standard streams.
_MPEG_RATES = frozenset(
    Fraction(n, d)
    for n, d in (
        (24000, 1001),
        (24, 1),
        (25, 1),
        (30000, 1001),
        (30, 1),
        (50, 1),
        (60000, 1001),
        (60, 1),
    )
)
# ffmpeg muxer names where they differ from the file extension.
_MUXERS = {".mpg": "mpeg", ".mpeg": "mpeg", ".mkv": "matroska", ".m4v": "mp4", ".ts": "mpegts"}
_REDO = "re-download or regenerate it"


class VideoInfo(NamedTuple):
    fps: float
    frames: int
    width: int
    height: int
    duration: float
    has_audio: bool


def _as_rate(fps: float | Fraction) -> Fraction:
    """An exact rate: 29.97 means 2997/100 and 30000/1001 survives a trip through float."""
    rate = Fraction(fps).limit_denominator(1_000_000)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


def _video_stream(path: Path, container: av.container.InputContainer) -> av.VideoStream:
    if is_image_format(container):
        raise ItemError(
            f"{path} is an image ({container.format.name}), not a video; give a video file"
        )
    if not container.streams.video:
        raise ItemError(
            f"no video stream in {path}: ffmpeg finds only {describe_streams(container)}; "
            "give a video file"
        )
    return container.streams.best("video")


def _frame_rate(path: Path, stream: av.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise ItemError(f"video stream of {path} declares no frame rate; {_REDO}")
    return Fraction(rate)


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Rate, frame count, size, seconds (frames / fps) and whether an audio track is present.

    The count comes from the container's index when it has one, else from demuxing the
    packets (MPEG program streams such as GRID's .mpg): no frame is decoded either way.
    """
    path = require_file(path, "video")
    with open_media(path, "video") as container:
        stream = _video_stream(path, container)
        rate = _frame_rate(path, stream)
        frames = stream.frames or sum(1 for p in container.demux(stream) if p.size)
        ctx = stream.codec_context
        return VideoInfo(
            float(rate),
            frames,
            ctx.width,
            ctx.height,
            float(frames / rate),
            bool(container.streams.audio),
        )


def _timed_frames(
    path: Path, container: av.container.InputContainer, stream: av.VideoStream
) -> Iterator[tuple[Fraction, Fraction, av.VideoFrame]]:
    """(start, length, frame) in seconds, with gaps in the timestamps filled from the rate."""
    default_length = 1 / _frame_rate(path, stream)
    start = Fraction(0)
    try:
        for frame in container.decode(stream):
            if frame.pts is not None:
                start = frame.pts * stream.time_base
            length = frame.duration * stream.time_base if frame.duration else default_length
            yield start, length, frame
            start += length
    except av.FFmpegError as exc:
        raise ItemError(
            f"corrupt video stream in {path} (ffmpeg: {exc.strerror or exc}); {_REDO}"
        ) from exc


def pick_nearest(timed: Iterable[tuple[Fraction, Fraction, T]], step: Fraction) -> Iterator[T]:
    """For each instant k*step (from the first start) up to the end, the nearest item.

    `timed` holds (start, length, item) in presentation order; an item is repeated when
    several instants fall nearest to it and skipped when none does.
    """
    items = iter(timed)
    first = next(items, None)
    if first is None:
        return
    origin, length, held = first
    held_start, held_end = origin, origin + length
    k = 0
    for start, length, item in items:
        boundary = (held_start + start) / 2 - origin
        while k * step <= boundary:
            yield held
            k += 1
        held, held_start, held_end = item, start, start + length
    while k * step < held_end - origin:
        yield held
        k += 1


def iter_frames(
    path: str | os.PathLike,
    fps: float | Fraction | None = None,
    size: tuple[int, int] | None = None,
    gray: bool = False,
) -> Iterator[np.ndarray]:
    """Frames as RGB uint8 [H, W, 3] ([H, W] when `gray`), at `fps` (None: as decoded).

    `size` is (width, height), as ffmpeg writes it. Errors (ItemError for a missing, empty,
    unreadable or non-video file) are raised when iteration starts.
    """
    path = require_file(path, "video")
    step = None if fps is None else 1 / _as_rate(fps)
    width, height = size if size is not None else (None, None)
    fmt = "gray" if gray else "rgb24"
    with open_media(path, "video") as container:
        stream = _video_stream(path, container)
        stream.thread_type = "AUTO"
        timed = _timed_frames(path, container, stream)
        picked = (f for _, _, f in timed) if step is None else pick_nearest(timed, step)
        last_frame = last_array = None
        for frame in picked:
            if frame is last_frame:
                # A repeated frame: convert once, but hand out independent arrays.
                yield last_array.copy()
                continue
            last_frame = frame
            last_array = frame.to_ndarray(format=fmt, width=width, height=height)
            yield last_array
        if last_frame is None:
            raise ItemError(f"video file holds no frames: {path}; {_REDO}")


def read_frames(
    path: str | os.PathLike,
    fps: float | Fraction | None = None,
    size: tuple[int, int] | None = None,
    gray: bool = False,
) -> np.ndarray:
    """All of `iter_frames` stacked: [T, H, W, 3] uint8 ([T, H, W] when `gray`)."""
    return np.stack(list(iter_frames(path, fps=fps, size=size, gray=gray)))


def _muxer(path: Path) -> str:
    suffix = path.suffix.lower()
    return _MUXERS.get(suffix, suffix.lstrip("."))


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float | Fraction,
    audio: np.ndarray | None = None,
    sr: int | None = None,
    codec: str = "mpeg1video",
    audio_codec: str = "mp2",
    bit_rate: int | None = None,
    audio_bit_rate: int | None = None,
) -> None:
    """Encode RGB uint8 [T, H, W, 3] frames, and [samples] or [channels, samples] float audio
    in [-1, 1] at `sr`, into one file written atomically; the container follows the suffix.

    The defaults make GRID-like .mpg files (MPEG-1 video + MP2 audio). MPEG-1 needs an even
    width and height and a standard rate (23.976, 24, 25, 29.97, 30, 50, 59.94, 60); MP2 takes
    16, 22.05, 24, 32, 44.1 or 48 kHz. `bit_rate` defaults to one bit per pixel per frame
    (at least 1 Mb/s), which keeps flat colours within a few levels after decoding;
    `audio_bit_rate` None leaves the audio encoder's default (384 kb/s for stereo MP2).
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(
            f"frames must be non-empty uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}"
        )
    _, height, width, _ = frames.shape
    rate = _as_rate(fps)
    encoder = av.Codec(codec, "w")
    if codec in ("mpeg1video", "mpeg2video") and rate not in _MPEG_RATES:
        raise ValueError(
            f"{codec} cannot encode {float(rate):g} fps; use a standard rate such as 25 or 30"
        )
    pix_fmts = [f.name for f in encoder.video_formats or ()]
    pix_fmt = "yuv420p" if not pix_fmts or "yuv420p" in pix_fmts else pix_fmts[0]
    if pix_fmt == "yuv420p" and (width % 2 or height % 2):
        raise ValueError(f"{codec} in yuv420p needs an even width and height, got {width}x{height}")
    if audio is not None:
        audio, layout = _audio_planes(audio, sr, audio_codec)
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=_muxer(path)) as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.bit_rate = bit_rate or max(1_000_000, round(width * height * rate))
        if audio is not None:
            sound = container.add_stream(audio_codec, rate=sr)
            sound.layout = layout
            if audio_bit_rate:
                sound.bit_rate = audio_bit_rate
        done = 0
        for i, image in enumerate(frames):
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            if audio is not None:
                # Audio up to the end of this frame, so the muxer never has to buffer a
                # whole stream to interleave the two.
                upto = min(audio.shape[1], math.ceil((i + 1) * sr / rate))
                done = _encode_audio(container, sound, audio, done, upto, layout, sr)
        container.mux(video.encode())
        if audio is not None:
            _encode_audio(container, sound, audio, done, audio.shape[1], layout, sr)
            container.mux(sound.encode())


def _audio_planes(audio: np.ndarray, sr: int | None, audio_codec: str) -> tuple[np.ndarray, str]:
    """Audio as contiguous float32 [channels, samples] and its ffmpeg layout, checked."""
    if sr is None:
        raise ValueError("audio needs its sample rate: pass sr")
    planes = np.ascontiguousarray(np.atleast_2d(audio), dtype=np.float32)
    layouts = {1: "mono", 2: "stereo"}
    if planes.ndim != 2 or planes.shape[0] not in layouts:
        raise ValueError(
            f"audio must be [samples] or [1 or 2, samples], got shape {np.shape(audio)}"
        )
    rates = av.Codec(audio_codec, "w").audio_rates
    if rates and sr not in rates:
        raise ValueError(f"{audio_codec} cannot encode {sr} Hz; resample to one of {sorted(rates)}")
    return planes, layouts[planes.shape[0]]


def _encode_audio(
    container: av.container.OutputContainer,
    stream: av.AudioStream,
    audio: np.ndarray,
    start: int,
    stop: int,
    layout: str,
    sr: int,
) -> int:
    """Encode samples [start, stop) and mux what the encoder returns; the new start."""
    if stop > start:
        chunk = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio[:, start:stop]), format="fltp", layout=layout
        )
        chunk.sample_rate = sr
        chunk.pts = start
        chunk.time_base = Fraction(1, sr)
        container.mux(stream.encode(chunk))
    return stop
