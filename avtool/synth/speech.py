"""Speech from the espeak-ng library that the `espeakng-loader` wheel ships, through ctypes.

`synthesize` turns text into float32 mono samples; the same arguments give the same samples,
in any process and whatever was said before. `VOICES` are the voice variants that a speaker
encoder (resemblyzer) tells apart, each with a gender, so that they can stand in for the
speakers of GRID and RAVDESS. `make_speech_corpus` writes a corpus of such clips with a
manifest (`avtool synth speech`).

Why each utterance loads its own copy of the library: espeak-ng keeps synthesis state in C
statics that neither `espeak_Terminate` nor `espeak_Initialize` resets (the pitch flutter phase,
the gain control, the roughness cycle, the breath filters), so one loaded library says the same
text differently depending on what it said before, and a resumed corpus would differ from an
uninterrupted one. A private copy of the library (an in-memory file, so that no other user of
the wheel's library shares it), loaded before and unloaded after each utterance, starts every
utterance from the library's initial state. That costs about 4 ms per utterance, and about
3 KB of memory that espeak-ng's voice lookup allocates and never frees.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import functools
import importlib.metadata
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core import atomic
from avtool.core.errors import AvtoolError, InputError
from avtool.core.journal import Journal, write_jsonl
from avtool.core.stage import Stage, describe_status

NATIVE_SR = 22050
"""espeak-ng's own sample rate; `synthesize` resamples from it when asked for another."""

MIN_CLIP_SECONDS = 1.0
"""Shortest `duration` of a corpus clip: room for at least the first word of a sentence."""

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4

# Limits of espeak-ng's parameters; it clamps silently outside them, so out-of-range values
# are refused here instead of giving audio that does not match the arguments.
_LIMITS = {"rate": (80, 450), "pitch": (0, 100), "pitch_range": (0, 100), "volume": (0, 200)}

_FADE_SECONDS = 0.01
# For estimating how long sentences take to say: the pause after each, and a margin.
_SENTENCE_PAUSE_SECONDS = 0.4
_OVERFILL = 1.3


class _Event(ctypes.Structure):
    """espeak_EVENT of speak_lib.h."""

    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    )


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)

# espeak-ng is one global state per loaded copy: one utterance at a time per process.
_LOCK = threading.Lock()
_library_file: str | None = None


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an espeak-ng voice name and the gender it sounds like."""

    speaker: str
    name: str
    gender: str


@dataclass(frozen=True)
class Word:
    """Where a word of the text starts: sample index in the audio, character offset in the text."""

    start: int
    offset: int


def _voice_table(gender: str, variants: str) -> tuple[Voice, ...]:
    # Alternate American and British pronunciation; the accent hardly moves a voice's speaker
    # embedding (cosine 0.98 between en-us+X and en+X), the variant does.
    return tuple(
        Voice(variant.lower(), f"{('en-us', 'en')[index % 2]}+{variant}", gender)
        for index, variant in enumerate(variants.split())
    )


# Chosen so that no two voices' resemblyzer embeddings (six sentences each) have a cosine
# above 0.92; same-voice embeddings of different sentences score 0.98 and pitch or rate
# changes of one voice 0.90-0.99, so a voice variant, not a pitch, makes a speaker. Left out:
# near-duplicates (m3, m5, robert, Henrique, michel, Gene2, f4, f5, aunty ...), the plain voice
# (0.96 to m4), unvoiced or echoing variants (whisper, croak, grandpa, RicishayMax), and the
# `klatt 6` variants, whose generator draws on the process-wide libc rand().
VOICES: tuple[Voice, ...] = _voice_table(
    "male",
    "m1 m2 m4 m6 m7 m8 john max paul norbert quincy rob travis victor ed iven iven4 Andy Denis "
    "Diogo Gene Hugo Jacky Lee Mario Mike Storm sandro marcelo gustave boris kaukovalta pablo",
) + _voice_table("female", "f1 f2 f3 Alicia Andrea Annie anika belinda linda grandma shelby steph")


def voices(gender: str | None = None) -> list[Voice]:
    """The synthetic speakers, all or those of one gender ('male' or 'female')."""
    if gender not in (None, "male", "female"):
        raise InputError(f"gender {gender!r}: expected 'male' or 'female'")
    return [v for v in VOICES if gender is None or v.gender == gender]


def data_dir() -> Path:
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


@functools.cache
def variants() -> tuple[str, ...]:
    """Names of espeak-ng's voice variants, the part after '+' in a voice name."""
    return tuple(sorted(p.name for p in (data_dir() / "voices" / "!v").iterdir()))


def _check_voice(voice: str) -> None:
    # espeak-ng accepts a voice whose variant does not exist and silently speaks without it.
    language, plus, variant = voice.partition("+")
    if not language or (plus and variant not in variants()):
        raise InputError(_unknown_voice(voice))


def _unknown_voice(voice: str) -> str:
    return (
        f"unknown espeak-ng voice {voice!r}: use LANGUAGE or LANGUAGE+VARIANT, e.g. en-us, en, "
        f"en-us+m3, en+f2 (en-gb is no voice name; use en); the variants are the files in "
        f"{data_dir() / 'voices' / '!v'}, and avtool's speakers are avtool.synth.speech.voices()"
    )


def _check_parameters(**values: int) -> None:
    for name, value in values.items():
        low, high = _LIMITS[name]
        if not low <= value <= high:
            raise InputError(f"{name}={value}: espeak-ng takes {low} to {high}")


def _library() -> str:
    """Path of this process's private copy of libespeak-ng (created once, under _LOCK)."""
    global _library_file
    if _library_file is None:
        import espeakng_loader

        image = Path(espeakng_loader.get_library_path()).read_bytes()
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("avtool-espeak-ng")
            with open(fd, "wb", closefd=False) as handle:
                handle.write(image)
            _library_file = f"/proc/self/fd/{fd}"
        else:
            directory = tempfile.mkdtemp(prefix="avtool-espeak-ng-")
            atexit.register(shutil.rmtree, directory, True)
            path = Path(directory) / Path(espeakng_loader.get_library_path()).name
            path.write_bytes(image)
            _library_file = str(path)
    return _library_file


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_Callback]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]


def _speak(text: str, voice: str, parameters: dict[int, int]) -> tuple[np.ndarray, list[Word]]:
    """int16 samples at NATIVE_SR and the words' starts, from a freshly loaded library."""
    chunks: list[np.ndarray] = []
    words: list[Word] = []

    def collect(wav: Any, count: int, events: Any) -> int:
        if count > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            if events[index].type == _EVENT_WORD:
                words.append(Word(events[index].sample, events[index].text_position - 1))
            index += 1
        return 0

    callback = _Callback(collect)
    encoded = text.encode("utf-8")
    with _LOCK:
        lib = ctypes.CDLL(_library())
        try:
            _declare(lib)
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_dir()).encode(), 0)
            if rate != NATIVE_SR:
                raise AvtoolError(
                    f"espeak-ng did not start from {data_dir()} (status {rate}); "
                    "reinstall the espeakng-loader package"
                )
            try:
                lib.espeak_SetSynthCallback(callback)
                if lib.espeak_SetVoiceByName(voice.encode("utf-8")) != 0:
                    raise InputError(_unknown_voice(voice))
                for parameter, value in parameters.items():
                    lib.espeak_SetParameter(parameter, value, 0)
                # Breath noise (f2, f3, Alicia ...) comes from espeak-ng's own generator.
                lib.espeak_ng_SetRandSeed(0)
                status = lib.espeak_Synth(
                    encoded,
                    len(encoded) + 1,
                    0,
                    _POS_CHARACTER,
                    0,
                    _CHARS_UTF8 | _ENDPAUSE,
                    None,
                    None,
                )
                if status != 0:
                    raise AvtoolError(
                        f"espeak-ng failed to synthesise {text[:40]!r} (status {status})"
                    )
                lib.espeak_Synchronize()
            finally:
                lib.espeak_Terminate()
        finally:
            _ctypes.dlclose(lib._handle)
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return audio, words


def synthesize_words(
    text: str,
    voice: str = "en-us",
    rate: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    volume: int = 100,
    sr: int | None = None,
) -> tuple[np.ndarray, list[Word]]:
    """Like `synthesize`, with where each word starts (in samples at the returned rate)."""
    if not text.strip():
        raise InputError("nothing to synthesise: the text is empty")
    if sr is not None and sr <= 0:
        raise InputError(f"sample rate {sr}: must be a positive number of Hz")
    _check_voice(voice)
    _check_parameters(rate=rate, pitch=pitch, pitch_range=pitch_range, volume=volume)
    parameters = {_RATE: rate, _PITCH: pitch, _RANGE: pitch_range, _VOLUME: volume}
    samples, words = _speak(text, voice, parameters)
    audio = samples.astype(np.float32) / 32768.0
    if sr is None or sr == NATIVE_SR:
        return audio, words
    import soxr

    resampled = np.clip(soxr.resample(audio, NATIVE_SR, sr), -1.0, 1.0).astype(np.float32)
    moved = [Word(min(round(w.start * sr / NATIVE_SR), len(resampled)), w.offset) for w in words]
    return resampled, moved


def synthesize(
    text: str,
    voice: str = "en-us",
    rate: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    volume: int = 100,
    sr: int | None = None,
) -> np.ndarray:
    """Speech for `text` as float32 mono in [-1, 1] at `sr` Hz (espeak-ng's 22050 by default).

    `voice` is an espeak-ng voice name (`en-us`, `en`, `en-us+m3`, `en+f2`; see `VOICES`),
    `rate` words per minute (80-450), `pitch` the base pitch and `pitch_range` the intonation
    range (0-100, 50 normal), `volume` 0-200 (100 normal). Deterministic: the same arguments
    give the same samples. Raises InputError for an unknown voice or an out-of-range value.
    """
    return synthesize_words(text, voice, rate, pitch, pitch_range, volume, sr)[0]


# --- sentences ---------------------------------------------------------------------------

# fmt: off
_NAMES = (
    "Anna", "Ben", "Carla", "David", "Emma", "Frank", "Grace", "Henry", "Irene", "Jack", "Laura",
    "Martin", "Nina", "Oscar", "Paula", "Peter", "Rosa", "Simon", "Tina", "Victor",
)
_ADJECTIVES = (
    "old", "new", "small", "large", "quiet", "bright", "dark", "heavy", "empty", "warm", "cold",
    "green", "blue", "yellow", "wooden", "broken", "clean", "narrow", "famous", "strange",
)
_NOUNS = (
    "table", "window", "garden", "river", "letter", "bottle", "basket", "ladder", "kitchen",
    "station", "market", "bridge", "camera", "blanket", "candle", "wagon", "pencil", "mirror",
    "jacket", "kettle",
)
_PLURALS = (
    "apples", "boats", "books", "chairs", "coins", "cups", "flowers", "horses", "keys", "lamps",
    "maps", "oranges", "pictures", "rings", "shoes", "stones", "tickets", "trees", "birds",
    "boxes",
)
_VERBS = (
    ("open", "opened"), ("carry", "carried"), ("clean", "cleaned"), ("paint", "painted"),
    ("move", "moved"), ("fix", "fixed"), ("check", "checked"), ("watch", "watched"),
    ("visit", "visited"), ("close", "closed"), ("find", "found"), ("bring", "brought"),
    ("sell", "sold"), ("build", "built"), ("draw", "drew"), ("take", "took"),
)
_PLACES = (
    "in the garden", "near the station", "by the river", "at the market", "behind the house",
    "on the hill", "in the kitchen", "under the bridge", "at the end of the street",
    "next to the school",
)
_TIMES = (
    "this morning", "last night", "on Sunday", "after lunch", "before dinner", "every evening",
    "in the spring", "at noon", "yesterday", "tomorrow",
)
_ADVERBS = (
    "slowly", "quickly", "carefully", "quietly", "gladly", "again", "together", "early", "late",
    "twice",
)
_NUMBERS = (
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "twenty",
)
# fmt: on


def random_sentence(rng: np.random.Generator) -> str:
    """One English sentence (5 to 15 words), drawn from `rng` alone."""

    def pick(options: Any) -> Any:
        return options[int(rng.integers(len(options)))]

    base, past = pick(_VERBS)
    template = int(rng.integers(8))
    if template == 0:
        return f"The {pick(_ADJECTIVES)} {pick(_NOUNS)} is {pick(_PLACES)}."
    if template == 1:
        return f"{pick(_NAMES)} {past} the {pick(_ADJECTIVES)} {pick(_NOUNS)} {pick(_TIMES)}."
    if template == 2:
        return f"Could you {base} the {pick(_NOUNS)} {pick(_PLACES)}, please?"
    if template == 3:
        return f"There were {pick(_NUMBERS)} {pick(_PLURALS)} {pick(_PLACES)} {pick(_TIMES)}."
    if template == 4:
        return f"Please {base} the {pick(_NOUNS)} {pick(_ADVERBS)}."
    if template == 5:
        return f"I think {pick(_NAMES)} will {base} the {pick(_PLURALS)} {pick(_TIMES)}."
    if template == 6:
        return f"Why did {pick(_NAMES)} {base} {pick(_NUMBERS)} {pick(_PLURALS)} {pick(_PLACES)}?"
    when = pick(_TIMES)
    thing = f"the {pick(_ADJECTIVES)} {pick(_NOUNS)}"
    return f"{when[0].upper()}{when[1:]}, we {past} {thing} {pick(_ADVERBS)}."


def sentences(seed: int, count: int) -> list[str]:
    """`count` sentences, the same for the same seed."""
    rng = np.random.default_rng(seed)
    return [random_sentence(rng) for _ in range(count)]


# --- corpus ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Clip:
    id: str
    voice: Voice
    rate: int
    pitch: int
    pitch_range: int
    rng: np.random.Generator


def _plan(seed: int, count: int) -> Iterator[_Clip]:
    """What each clip says and how; clip i depends on (seed, i) only, so a resume is exact."""
    order = np.random.default_rng(seed)
    by_gender = [
        [voices(g)[i] for i in order.permutation(len(voices(g)))] for g in ("female", "male")
    ]
    first = int(order.integers(2))
    for index in range(count):
        group = by_gender[(first + index) % 2]
        voice = group[(index // 2) % len(group)]
        rng = np.random.default_rng([seed, index])
        rate, pitch, pitch_range = (int(v) for v in rng.integers([150, 40, 30], [201, 61, 71]))
        yield _Clip(f"{index:05d}-{voice.speaker}", voice, rate, pitch, pitch_range, rng)


def _fade_out(audio: np.ndarray, sr: int) -> np.ndarray:
    # A cut inside running speech would click; ramp its last 10 ms down to silence.
    n = min(len(audio), int(_FADE_SECONDS * sr))
    faded = audio.copy()
    faded[len(faded) - n :] *= np.linspace(1.0, 0.0, n, dtype=np.float32)
    return faded


def _batch(clip: _Clip, seconds: float) -> str:
    """Sentences from the clip's generator that should take about `seconds` or more to say."""
    batch: list[str] = []
    estimate = 0.0
    while estimate < seconds:
        batch.append(random_sentence(clip.rng))
        estimate += len(batch[-1].split()) * 60 / clip.rate + _SENTENCE_PAUSE_SECONDS
    return " ".join(batch)


def _fill(clip: _Clip, target: int) -> tuple[np.ndarray, str]:
    """Speech at NATIVE_SR until `target` samples are reached, cut where a word starts.

    Loading the library dominates the cost of a short utterance, so the sentences are said
    in batches estimated to overfill the clip, usually one batch per clip.
    """
    pieces: list[np.ndarray] = []
    spoken: list[str] = []
    filled = 0
    while filled < target:
        room = target - filled
        text = _batch(clip, _OVERFILL * room / NATIVE_SR)
        audio, words = synthesize_words(
            text, clip.voice.name, clip.rate, clip.pitch, clip.pitch_range
        )
        if len(audio) <= room:
            pieces.append(audio)
            spoken.append(text)
            filled += len(audio)
            continue
        # Cut where a later word starts: the words before it are then whole.
        fitting = [w for w in words[1:] if w.start <= room]
        if fitting:
            pieces.append(_fade_out(audio[: fitting[-1].start], NATIVE_SR))
            spoken.append(text[: fitting[-1].offset].rstrip(" ,"))
        elif not pieces:
            # Not even the first word fits (a very slow voice): keep what fits of it.
            pieces.append(_fade_out(audio[:room], NATIVE_SR))
            end = words[1].offset if len(words) > 1 else len(text)
            spoken.append(text[:end].rstrip(" ,"))
        break
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return np.pad(audio, (0, target - len(audio))), " ".join(spoken)


def _to_pcm16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)


def _make_clip(clip: _Clip, out: Path, duration: float | None, sr: int) -> dict[str, Any]:
    import soundfile
    import soxr

    if duration is None:
        text = random_sentence(clip.rng)
        audio = synthesize(text, clip.voice.name, clip.rate, clip.pitch, clip.pitch_range, sr=sr)
    else:
        audio, text = _fill(clip, round(duration * NATIVE_SR))
        if sr != NATIVE_SR:
            audio = np.clip(soxr.resample(audio, NATIVE_SR, sr), -1.0, 1.0)
        # Resampling rounds the length; the clip must be exactly round(duration * sr) long.
        length = round(duration * sr)
        audio = np.pad(audio[:length], (0, max(0, length - len(audio))))
    relative = f"wav/{clip.id}.wav"
    with atomic.atomic_path(out / relative) as tmp:
        soundfile.write(tmp, _to_pcm16(audio), sr, format="WAV", subtype="PCM_16")
    return {
        "id": clip.id,
        "path": relative,
        "speaker": clip.voice.speaker,
        "voice": clip.voice.name,
        "gender": clip.voice.gender,
        "text": text,
        "sr": sr,
        "samples": len(audio),
        "duration": len(audio) / sr,
        "rate": clip.rate,
        "pitch": clip.pitch,
        "pitch_range": clip.pitch_range,
    }


def make_speech_corpus(
    out: str | Path,
    count: int,
    seed: int = 0,
    duration: float | None = None,
    sr: int = 16000,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any] | str | None:
    """Write `count` clips of synthetic speech under `out`; None when already up to date.

    With `dry_run`, change nothing and return what a run would do.

    Layout: `wav/NNNNN-SPEAKER.wav` (16-bit PCM at `sr`), `manifest.jsonl` (one line per clip:
    id, path relative to the manifest's folder, speaker, voice, gender, text, sr, samples,
    duration, rate, pitch, pitch_range), and the stage files. Speakers alternate between
    genders and cycle through `VOICES` in a seeded order. Without `duration` a clip is one
    sentence; with it, sentences follow each other until the clip is full, the last one cut
    where a word starts, and silence pads the clip to exactly round(duration * sr) samples.
    The same arguments give the same bytes; an interrupted run resumes where it stopped.
    Returns the stage stamp.
    """
    if count < 1:
        raise InputError(f"--count {count}: need at least one clip")
    if seed < 0:
        raise InputError(f"--seed {seed}: must be 0 or more")
    if sr <= 0:
        raise InputError(f"--sr {sr}: must be a positive number of Hz")
    if duration is not None and duration < MIN_CLIP_SECONDS:
        raise InputError(f"--duration {duration}: must be at least {MIN_CLIP_SECONDS} s")
    out = Path(out)
    config = {"count": count, "seed": seed, "duration": duration, "sr": sr}
    stage = Stage(name="synth.speech", version=1, out_dir=out, config=config)
    if dry_run:
        return describe_status(stage, force)
    if not stage.begin(force):
        return None
    # A clip is done when its wav is in place and its journal line is durable; a killed run
    # leaves at most a temporary wav behind.
    atomic.sweep_temporaries(out / "wav")
    journal = Journal(out / "journal.jsonl")
    rows = []
    for clip in _plan(seed, count):
        if clip.id not in journal:
            journal.record([_make_clip(clip, out, duration, sr)])
        rows.append(journal.entries[clip.id])
    write_jsonl(out / "manifest.jsonl", rows)
    return stage.finish(
        counts={"clips": count, "speakers": len({row["speaker"] for row in rows})},
        outputs=["manifest.jsonl", "wav", journal.path.name],
        audio_seconds=round(sum(row["duration"] for row in rows), 3),
        engine=f"espeakng-loader {importlib.metadata.version('espeakng-loader')}",
    )
