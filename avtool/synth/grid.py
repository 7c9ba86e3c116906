"""Synthetic GRID in the real layout and format: speaker folders of .mpg videos, .align files.

Each utterance is a GRID grammar sentence (command colour preposition letter digit adverb,
e.g. "bin blue at f two now" -> `bbaf2n`, "bin blue in z zero now" -> `bbizzn`: the digit zero
is `z`, as in GRID) said by the speaker's espeak-ng voice after a short lead-in silence.
What the real files measure (../shared/data/real_samples/grid/FACTS.md) and these reproduce:

- `sN/<code>.mpg`: MPEG-PS holding MPEG-1 video at 25 fps (FFmpeg's base_rate reads 50, as in
  GRID, and the video bit rate is MPEG-1's variable-rate marker) and MP2 audio, stereo,
  44.1 kHz, 224 kb/s, exactly 131,328 samples per channel (114 MP2 frames = 2.978 s). Clips have
  75 frames, except about one in eight with 74 (utterance n of speaker sK when (K + n) % 8 == 1,
  so s1's first one), as GRID has a few. No separate .wav: the audio is the video's track.
  The drawn face's mouth opening follows the speech envelope, so the visual cue carries
  information about the target. Frames are 360x288 (GRID's size) by default.
- `alignments/sN/<code>.align`: `start end word` lines in 1/25,000 s, CRLF, `sil` for silence,
  the last ending at 74500 as in GRID.
- `synth_speakers.jsonl`: who each synthetic speaker is (voice, pitch, gender).

Not reproduced: the real streams start at timestamp 0; FFmpeg's muxer starts the video at 0.54 s
and the audio 11 ms earlier (its MP2 encoder delay), which no PyAV option here undoes.

Speakers take GRID's numbering (s21 is skipped, as in GRID) and GRID's genders. GRID has 18
male and 15 female speakers but `voices("female")` has 12 voices: female speakers beyond the
12th reuse a voice at a pitch raised by 15 per round, which resemblyzer still tells apart less
well than two different voices.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core import atomic
from avtool.core.errors import InputError
from avtool.core.journal import Journal, write_jsonl
from avtool.core.stage import Stage, describe_status

STAGE_VERSION = 2
FPS = 25
SECONDS = 3.0
AUDIO_SR = 44100
AUDIO_SAMPLES = 131328  # 114 MP2 frames of 1152 samples: every real GRID clip's length
AUDIO_BIT_RATE = 224000
ALIGN_RATE = 25000  # GRID's .align time unit: 1/25,000 s
ALIGN_END = 74500  # where GRID's last `sil` ends

COMMANDS = ("bin", "lay", "place", "set")
COLOURS = ("blue", "green", "red", "white")
PREPOSITIONS = ("at", "by", "in", "with")
LETTERS = tuple("abcdefghijklmnopqrstuvxyz")  # GRID has no "w": its name is three syllables
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ADVERBS = ("again", "now", "please", "soon")

# GRID's speakers and genders (the LiMuSE authors' gender.txt); s21 was never released.
GENDERS: dict[str, str] = {
    f"s{n}": (
        "female" if n in {4, 7, 11, 15, 16, 18, 20, 22, 23, 24, 25, 29, 31, 33, 34} else "male"
    )
    for n in range(1, 35)
    if n != 21
}
SPEAKERS: tuple[str, ...] = tuple(GENDERS)

_LEAD_SECONDS = 0.4
_TAIL_SECONDS = 0.15
_PITCH_STEP = 15


@dataclass(frozen=True)
class SynthSpeaker:
    speaker: str
    gender: str
    voice: str
    pitch: int
    rate: int
    look: tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int], float]


def sentence_code(words: list[str]) -> str:
    """GRID's six-character code of a sentence: first letters, the letter itself, the digit
    (`z` for zero)."""
    command, colour, preposition, letter, digit, adverb = words
    number = "z" if digit == "zero" else str(DIGITS.index(digit))
    return f"{command[0]}{colour[0]}{preposition[0]}{letter}{number}{adverb[0]}"


def frame_count(speaker: str, number: int) -> int:
    """75, or 74 for about one clip in eight (see the module docstring)."""
    return 74 if (int(speaker[1:]) + number) % 8 == 1 else 75


def speakers(count: int, seed: int = 0) -> list[SynthSpeaker]:
    """The first `count` GRID speakers with a voice, a pitch, a speaking rate and a face each."""
    from avtool.synth.speech import voices

    if not 1 <= count <= len(SPEAKERS):
        raise InputError(f"--speakers {count}: GRID has 1 to {len(SPEAKERS)} speakers")
    used = {"male": 0, "female": 0}
    result = []
    for name in SPEAKERS[:count]:
        gender = GENDERS[name]
        pool = voices(gender)
        index = used[gender]
        used[gender] += 1
        rng = np.random.default_rng([seed, int(name[1:])])
        skin = tuple(int(v) for v in rng.integers([150, 100, 70], [235, 185, 150]))
        hair = tuple(int(v) for v in rng.integers(10, 90, size=3))
        background = tuple(int(v) for v in rng.integers(60, 160, size=3))
        result.append(
            SynthSpeaker(
                speaker=name,
                gender=gender,
                voice=pool[index % len(pool)].name,
                pitch=min(100, 45 + _PITCH_STEP * (index // len(pool))),
                rate=int(rng.integers(170, 200)),
                look=(skin, hair, background, float(rng.uniform(0.24, 0.3))),
            )
        )
    return result


def _sentences(speaker: SynthSpeaker, count: int, seed: int) -> list[list[str]]:
    """`count` sentences with distinct codes, from (seed, speaker) alone."""
    rng = np.random.default_rng([seed, int(speaker.speaker[1:]), 1])
    chosen: dict[str, list[str]] = {}
    while len(chosen) < count:
        words = [
            str(options[int(rng.integers(len(options)))])
            for options in (COMMANDS, COLOURS, PREPOSITIONS, LETTERS, DIGITS, ADVERBS)
        ]
        chosen.setdefault(sentence_code(words), words)
    return list(chosen.values())


def _speak(speaker: SynthSpeaker, words: list[str]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Speech at AUDIO_SR that fits the clip, and each word's (start, end) sample."""
    from avtool.synth.speech import synthesize_words

    room = round((SECONDS - _LEAD_SECONDS - _TAIL_SECONDS) * AUDIO_SR)
    rate = speaker.rate
    while True:
        audio, starts = synthesize_words(
            " ".join(words), speaker.voice, rate=rate, pitch=speaker.pitch, sr=AUDIO_SR
        )
        voiced = np.flatnonzero(np.abs(audio) > 0.01)
        end = int(voiced[-1]) + 1 if voiced.size else len(audio)
        if end <= room or rate >= 400:
            break
        rate += 30  # a slow voice: say it faster until it fits, as GRID's speakers were asked to
    audio = audio[: min(end, room)]
    # espeak-ng may report two words as one ("at a"): place a word without its own event
    # evenly between its neighbours' starts.
    by_offset = {w.offset: min(w.start, len(audio)) for w in starts}
    offsets = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
    known = [by_offset.get(int(o)) for o in offsets] + [len(audio)]
    known[0] = known[0] or 0
    for i in range(1, len(words)):
        if known[i] is None:
            j = next(k for k in range(i + 1, len(known)) if known[k] is not None)
            known[i] = known[i - 1] + (known[j] - known[i - 1]) // (j - i + 1)
    return audio, [(known[i], known[i + 1]) for i in range(len(words))]


def align_text(words: list[str], spans: list[tuple[int, int]], offset: int) -> str:
    """GRID .align text: `start end word` in 1/25,000 s, silence as `sil`, CRLF line ends."""

    def unit(sample: int) -> int:
        return round(sample * ALIGN_RATE / AUDIO_SR)

    lines = [(0, unit(offset + spans[0][0]), "sil")]
    lines += [
        (unit(offset + a), unit(offset + b), w) for w, (a, b) in zip(words, spans, strict=True)
    ]
    lines.append((unit(offset + spans[-1][1]), ALIGN_END, "sil"))
    return "".join(f"{a} {b} {w}\r\n" for a, b, w in lines)


def mouth_openings(audio: np.ndarray, sr: int, frames: int) -> np.ndarray:
    """Per video frame, the speech envelope (RMS over the frame's 40 ms) scaled to [0, 1]."""
    hop = sr // FPS
    padded = np.pad(audio, (0, max(0, frames * hop - len(audio))))[: frames * hop]
    rms = np.sqrt(np.mean(padded.reshape(frames, hop) ** 2, axis=1))
    return np.clip(rms / max(float(rms.max()), 1e-6), 0.0, 1.0).astype(np.float32)


def draw_face(
    height: int, width: int, opening: float, look: SynthSpeaker | tuple, sway: float = 0.0
) -> np.ndarray:
    """A frontal cartoon face (RGB uint8) that dlib's HOG and OpenCV's Haar detectors find.

    Detectors key on the dark eye band above bright cheeks and the nose bridge between the
    eyes, so the drawing keeps those contrasts; `opening` in [0, 1] opens the mouth.
    """
    skin, hair, background, scale = look.look if isinstance(look, SynthSpeaker) else look
    image = np.empty((height, width, 3), np.float32)
    image[:] = background

    def ellipse(cy: float, cx: float, ry: float, rx: float, colour: Any) -> None:
        # Only the ellipse's bounding box is tested: most features are small.
        top, bottom = max(0, int(cy - ry)), min(height, int(cy + ry) + 2)
        left, right = max(0, int(cx - rx)), min(width, int(cx + rx) + 2)
        if top >= bottom or left >= right or ry <= 0 or rx <= 0:
            return
        yy = ((np.arange(top, bottom, dtype=np.float32) - cy) / ry) ** 2
        xx = ((np.arange(left, right, dtype=np.float32) - cx) / rx) ** 2
        image[top:bottom, left:right][yy[:, None] + xx[None, :] <= 1] = colour

    cy, cx = height * 0.52, width * 0.5 + sway
    fh, fw = height * (scale + 0.08), height * scale
    ellipse(cy - fh * 0.25, cx, fh * 0.85, fw * 1.05, hair)
    ellipse(cy, cx, fh, fw, skin)
    columns = np.arange(width, dtype=np.float32)
    image *= np.clip(1 - 0.25 * ((columns - cx) / fw) ** 2, 0.6, 1)[None, :, None]  # cheeks
    eye_y, eye_dx = cy - fh * 0.22, fw * 0.42
    for side in (-1, 1):
        ellipse(eye_y - fh * 0.17, cx + side * eye_dx, fh * 0.035, fw * 0.25, (50, 35, 25))
        ellipse(eye_y, cx + side * eye_dx, fh * 0.07, fw * 0.2, (235, 235, 235))
        ellipse(eye_y, cx + side * eye_dx, fh * 0.065, fw * 0.09, (40, 30, 20))
    ellipse(cy + fh * 0.15, cx, fh * 0.06, fw * 0.12, tuple(0.75 * np.asarray(skin)))
    mouth_y = cy + fh * 0.5
    ellipse(mouth_y, cx, fh * (0.03 + 0.12 * opening) + 1, fw * 0.38, (150, 60, 60))
    ellipse(mouth_y, cx, fh * (0.01 + 0.11 * opening), fw * 0.32, (40, 15, 15))
    return np.clip(image, 0, 255).astype(np.uint8)


def _make_utterance(
    out: Path, speaker: SynthSpeaker, words: list[str], size: tuple[int, int], number: int
) -> dict[str, Any]:
    from avtool.core.video import write_video

    code = sentence_code(words)
    speech, spans = _speak(speaker, words)
    offset = round(_LEAD_SECONDS * AUDIO_SR)
    audio = np.zeros(AUDIO_SAMPLES, np.float32)
    audio[offset : offset + len(speech)] = speech[: AUDIO_SAMPLES - offset]
    frames = frame_count(speaker.speaker, number)
    openings = mouth_openings(audio, AUDIO_SR, frames)
    width, height = size
    video = np.stack(
        [
            draw_face(height, width, float(o), speaker, sway=1.5 * np.sin(i / 9.0))
            for i, o in enumerate(openings)
        ]
    )
    spk = speaker.speaker
    # GRID's tracks are stereo with the same speech on both channels.
    write_video(
        out / spk / f"{code}.mpg",
        video,
        FPS,
        audio=np.stack([audio, audio]),
        sr=AUDIO_SR,
        audio_bit_rate=AUDIO_BIT_RATE,
    )
    atomic.write_bytes(
        out / "alignments" / spk / f"{code}.align", align_text(words, spans, offset).encode()
    )
    return {
        "id": f"{spk}_{code}",
        "speaker": spk,
        "code": code,
        "text": " ".join(words),
        "frames": frames,
    }


def synth_grid(
    out: str | Path,
    n_speakers: int,
    n_utterances: int,
    seed: int = 0,
    size: tuple[int, int] = (360, 288),
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any] | str | None:
    """Write a miniature GRID under `out` (see the module docstring); None when up to date.

    `size` is (width, height), both even (MPEG-1). Resumable: an utterance is done when its
    three files are in place and its journal line is durable. Returns the stage stamp.
    """
    if n_utterances < 1:
        raise InputError(f"--utterances {n_utterances}: need at least one per speaker")
    if size[0] % 2 or size[1] % 2 or min(size) < 64:
        raise InputError(f"frame size {size[0]}x{size[1]}: need even sides of 64 pixels or more")
    out = Path(out)
    config = {
        "speakers": n_speakers,
        "utterances": n_utterances,
        "seed": seed,
        "size": list(size),
    }
    stage = Stage("synth.grid", STAGE_VERSION, out, config)
    if dry_run:
        return describe_status(stage, force)
    cast = speakers(n_speakers, seed)
    if not stage.begin(force):
        return None
    journal = Journal(out / "journal.jsonl")
    for speaker in cast:
        for number, words in enumerate(_sentences(speaker, n_utterances, seed)):
            uid = f"{speaker.speaker}_{sentence_code(words)}"
            if uid not in journal:
                journal.record([_make_utterance(out, speaker, words, size, number)])
    write_jsonl(
        out / "synth_speakers.jsonl",
        [
            {"speaker": s.speaker, "gender": s.gender, "voice": s.voice, "pitch": s.pitch}
            for s in cast
        ],
    )
    return stage.finish(
        counts={"speakers": n_speakers, "utterances": len(journal)},
        outputs=[*(s.speaker for s in cast), "alignments", "synth_speakers.jsonl"],
        engine=f"espeakng-loader {importlib.metadata.version('espeakng-loader')}",
    )
