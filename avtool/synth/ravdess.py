"""Synthetic RAVDESS: the two statements by espeak-ng voices, with emotion-dependent prosody.

Layout and names are the real corpus': `Actor_NN/03-01-EE-II-SS-RR-NN.wav`, 16-bit 48 kHz mono,
odd actors male. Each actor is one distinct espeak-ng voice with its own base pitch, range and
rate, so a split by actor tests generalisation to unseen voices. Each emotion moves the
prosody away from the actor's base in its own direction (`EMOTION_PROSODY`): pitch, pitch
range, rate, level, and a voice-quality stand-in that espeak's API does not offer (spectral
tilt: a first-order bright/dark filter; tremolo: a slow amplitude wobble for fear). Strong
intensity moves 1.6x as far; each repetition draws its own small jitter, so no two takes are
identical. As in RAVDESS, neutral has no strong intensity: 60 files per actor.

The files carry the real corpus' RIFF layout (../shared/data/real_samples/ravdess/FACTS.md):
chunks `fmt ` (16 bytes, PCM), `FLLR` (4,044 zero bytes), `data`, then `LIST`/INFO with a
recording date, `bext` (602 bytes) and Adobe `_PMX` XMP of odd or even size with its RIFF pad
byte, so readers that assume a 44-byte header or `data` last fail here as on the real files.
The highest-numbered actor's two takes that are stereo in RAVDESS (Actor_20) are stereo here
too, left and right identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError
from avtool.corpora.ravdess import EMOTIONS, STATEMENTS, file_name

STAGE_VERSION = 2
MAX_ACTORS = 24
# (emotion, intensity, statement, repetition) of Actor_20's two dual-mono stereo files.
STEREO_TAKES = ((3, 1, 2, 1), (6, 1, 1, 2))
_FILLER_BYTES = 4044
_BEXT_BYTES = 602


def _chunk(tag: bytes, payload: bytes) -> bytes:
    import struct

    pad = b"\0" if len(payload) % 2 else b""
    return tag + struct.pack("<I", len(payload)) + payload + pad


def ravdess_wav_bytes(pcm: np.ndarray, sr: int, take_seed: int) -> bytes:
    """A 16-bit PCM WAV (`pcm` [frames] or [frames, channels]) in RAVDESS's chunk layout."""
    import struct

    frames = pcm.reshape(len(pcm), -1)
    channels = frames.shape[1]
    fmt = struct.pack("<HHIIHH", 1, channels, sr, sr * channels * 2, channels * 2, 16)
    recorded = f"2013-05-{1 + take_seed % 28:02d}T21:05:37-04:00".encode() + b"\0"
    info = _chunk(b"LIST", b"INFO" + _chunk(b"ICRD", recorded))
    # XMP packets of 42-56 kB; every other one of odd length, as in the real files.
    xmp_size = 42273 + (take_seed * 7919) % 13954
    xmp = b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    xmp = xmp + b" " * (xmp_size - len(xmp))
    body = (
        b"WAVE"
        + _chunk(b"fmt ", fmt)
        + _chunk(b"FLLR", bytes(_FILLER_BYTES))
        + _chunk(b"data", frames.astype("<i2").tobytes())
        + info
        + _chunk(b"bext", bytes(_BEXT_BYTES))
        + _chunk(b"_PMX", xmp)
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


@dataclass(frozen=True)
class Prosody:
    """Offsets from an actor's base voice; `rate` and nothing else is a factor."""

    pitch: float  # espeak pitch units (0-100)
    pitch_range: float  # espeak range units (0-100)
    rate: float  # multiplies the words per minute
    volume: float  # espeak volume units (100 normal)
    tilt: float  # > 0 brighter (more high-frequency energy), < 0 darker
    tremolo: float  # depth of a 6 Hz amplitude modulation


# Chosen to resemble the acoustic correlates reported for acted emotions (arousal raises pitch,
# range, rate and vocal effort; sadness lowers them), with several emotions sharing a
# direction on each knob so that no single knob separates the classes.
EMOTION_PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(0, 0, 1.00, 0, 0.0, 0.0),
    "calm": Prosody(-3, -12, 0.90, -15, -0.3, 0.0),
    "happy": Prosody(9, 18, 1.10, 20, 0.2, 0.0),
    "sad": Prosody(-9, -22, 0.80, -30, -0.5, 0.0),
    "angry": Prosody(6, 28, 1.18, 60, 0.6, 0.0),
    "fearful": Prosody(13, 8, 1.14, -10, 0.0, 0.3),
    "disgust": Prosody(-6, 10, 0.86, 10, 0.3, 0.0),
    "surprised": Prosody(15, 36, 1.00, 30, 0.2, 0.0),
}
STRONG = 1.6


@dataclass(frozen=True)
class _Actor:
    number: int
    voice: str
    gender: str
    pitch: float
    pitch_range: float
    rate: float


def _actors(count: int, seed: int) -> list[_Actor]:
    from avtool.synth.speech import voices

    by_gender = {"male": voices("male"), "female": voices("female")}
    actors = []
    for number in range(1, count + 1):
        gender = "male" if number % 2 else "female"
        rng = np.random.default_rng([seed, number])
        low = 30 if gender == "male" else 45
        actors.append(
            _Actor(
                number,
                by_gender[gender][(number - 1) // 2].name,
                gender,
                pitch=float(rng.uniform(low, low + 20)),
                pitch_range=float(rng.uniform(40, 60)),
                rate=float(rng.uniform(150, 185)),
            )
        )
    return actors


def _takes() -> list[tuple[int, int, int, int]]:
    """(emotion code, intensity, statement, repetition) of one actor's 60 speech files."""
    return [
        (emotion, intensity, statement, repetition)
        for emotion in range(1, len(EMOTIONS) + 1)
        for intensity in ((1,) if emotion == 1 else (1, 2))
        for statement in (1, 2)
        for repetition in (1, 2)
    ]


def _voice_quality(audio: np.ndarray, sr: int, tilt: float, tremolo: float) -> np.ndarray:
    if tilt:
        # y + tilt * (y[n] - y[n-1]): a first-difference boost (tilt > 0) or cut (tilt < 0).
        audio = audio + tilt * np.diff(audio, prepend=audio[:1])
    if tremolo:
        t = np.arange(audio.size) / sr
        audio = audio * (1.0 - tremolo * 0.5 * (1 + np.sin(2 * np.pi * 6.0 * t)))
    return audio


def _take(actor: _Actor, take: tuple[int, int, int, int], seed: int, sr: int) -> np.ndarray:
    import soxr

    from avtool.synth.speech import NATIVE_SR, synthesize

    emotion, intensity, statement, _ = take
    prosody = EMOTION_PROSODY[EMOTIONS[emotion - 1]]
    scale = STRONG if intensity == 2 else 1.0
    jitter = np.random.default_rng([seed, actor.number, *take]).normal(size=3)
    pitch = actor.pitch + scale * prosody.pitch + 2.0 * jitter[0]
    pitch_range = actor.pitch_range + scale * prosody.pitch_range + 3.0 * jitter[1]
    rate = actor.rate * (1 + scale * (prosody.rate - 1)) * (1 + 0.04 * jitter[2])
    volume = 100 + scale * prosody.volume
    audio = synthesize(
        STATEMENTS[statement - 1],
        actor.voice,
        rate=int(np.clip(round(rate), 80, 450)),
        pitch=int(np.clip(round(pitch), 0, 100)),
        pitch_range=int(np.clip(round(pitch_range), 0, 100)),
        volume=int(np.clip(round(volume), 0, 200)),
    )
    audio = _voice_quality(audio, NATIVE_SR, scale * prosody.tilt, scale * prosody.tremolo)
    # Half a second of silence either side, as RAVDESS recordings have; trimming removes it.
    pad = np.zeros(NATIVE_SR // 2, dtype=np.float32)
    audio = np.concatenate([pad, audio.astype(np.float32), pad])
    return np.clip(soxr.resample(audio, NATIVE_SR, sr), -1.0, 1.0)


def synth_ravdess(
    out: Path,
    actors: int = 4,
    seed: int = 0,
    sr: int = 48000,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any] | str | None:
    """Write `actors` × 60 speech files in the RAVDESS layout under `out`; None if up to date.

    With `dry_run` returns what a run would do. Resumable: files are written atomically and
    deterministically, so a rerun after a kill skips the ones already there.
    """
    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status

    if not 1 <= actors <= MAX_ACTORS:
        raise InputError(f"--actors {actors}: RAVDESS has 1 to {MAX_ACTORS} actors")
    if sr <= 0:
        raise InputError(f"--sr {sr}: must be a positive number of Hz")
    out = Path(out)
    config = {"actors": actors, "seed": seed, "sr": sr}
    stage = Stage("synth.ravdess", STAGE_VERSION, out, config)
    if dry_run:
        return describe_status(stage, force)
    if not stage.begin(force):
        return None
    files = 0
    stereo_actor = max(a.number for a in _actors(actors, seed))
    for actor in _actors(actors, seed):
        folder = out / f"Actor_{actor.number:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        atomic.sweep_temporaries(folder)
        for take in _takes():
            path = folder / file_name(*take, actor.number)
            files += 1
            if path.exists():
                continue
            audio = _take(actor, take, seed, sr)
            pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
            if actor.number == stereo_actor and take in STEREO_TAKES:
                pcm = np.stack([pcm, pcm], axis=1)
            atomic.write_bytes(path, ravdess_wav_bytes(pcm, sr, files))
    return stage.finish(
        counts={"files": files, "actors": actors},
        outputs=[f"Actor_{n:02d}" for n in range(1, actors + 1)],
        voices={f"Actor_{a.number:02d}": a.voice for a in _actors(actors, seed)},
    )
