"""DCASE 2018 task 4 in miniature: soundscapes of the 10 classes, real-format metadata, videos.

Layout under `out`:

- `metadata/train/weak.csv`, `metadata/train/unlabel_in_domain.csv`, `metadata/test/test.csv`:
  the released format (TAB despite `.csv`, one header line, LF, not sorted by name, labels
  joined by commas) with the quirks of the real files: multi-labels in no particular order, a
  label repeated in a row, clips shorter than 10 s, an offset past the clip end, a same-class
  triple (two events less than 150 ms apart plus the merged event spanning both), an event out
  of onset order, YouTube ids starting with `-` or holding `_`; the test list also has one clip
  without events (a row with empty onset, offset and label, as eval lists allow);
- `media/<youtube_id>.mp4`: the "YouTube video" of each clip (H.264 and MPEG-1 layer II sound,
  which mp4 holds like AAC at half the encoding time; 64×64, 15 fps, 16 kHz mono), as long as the clip's end plus half a second, so that `download dcase2018`
  has to cut [start, end] out of it (`--serve-dir out/media` serves them on 127.0.0.1);
- `truth/strong.tsv`: the strong labels of every clip, weak and unlabeled ones included, for
  checking what a model learnt (not part of the real corpus).

Each class is a distinct synthetic sound (a beeping two-tone alarm, a band-limited motor whirr,
a gliding harmonic "meow", ringing clicks, short harmonic barks, a sawtooth buzz, crackle,
low-passed fluctuating noise, vowel-like formant pulses at a syllable rate, a broadband roar
with a whine) over quiet pink noise, and the picture shows a coloured tile per active class
at the class's own place, so audio and video both tell the classes apart.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import numpy as np

from avtool.corpora.dcase2018 import CLASSES

SR = 16000
FPS = 15
SIZE = 64
STAGE_VERSION = 1
STATIONARY = {"Blender", "Electric_shaver_toothbrush", "Frying", "Running_water", "Vacuum_cleaner"}
_ID_CHARS = string.ascii_letters + string.digits
# A colour and a tile (row, column on a 3×4 grid) per class.
_COLOURS = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (250, 250, 250),
        (128, 128, 0),
    ],
    dtype=np.uint8,
)


def _band(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    """White noise band-passed to [`low`, `high`] Hz (4th-order Butterworth), unit RMS."""
    from scipy.signal import butter, sosfilt

    sos = butter(4, [low, min(high, 0.45 * SR)], btype="bandpass", fs=SR, output="sos")
    signal = sosfilt(sos, rng.standard_normal(n))
    return signal / (np.sqrt(np.mean(signal**2)) + 1e-12)


def _harmonics(f0: np.ndarray, count: int, decay: float = 0.6) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0) / SR
    return sum(decay**k * np.sin((k + 1) * phase) for k in range(count))


def class_sound(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of class `name`'s synthetic sound, peak about 1."""
    t = np.arange(n) / SR
    if name == "Alarm_bell_ringing":
        tone = np.where((t * 4) % 1 < 0.5, 1000.0, 1300.0)
        signal = _harmonics(tone, 3) * ((t * 8) % 1 < 0.7)
    elif name == "Blender":
        signal = _band(rng, n, 1500, 3000) * (0.6 + 0.4 * np.sin(2 * np.pi * 30 * t))
    elif name == "Cat":
        cycle = (t % 0.8) / 0.8
        f0 = 500 + 300 * np.sin(np.pi * cycle)
        signal = _harmonics(f0, 4) * np.sin(np.pi * cycle) ** 2 * (cycle < 0.75)
    elif name == "Dishes":
        signal = np.zeros(n)
        ring = np.exp(-np.arange(int(0.08 * SR)) / (0.015 * SR))
        ring = ring * np.sin(2 * np.pi * rng.uniform(3000, 4500) * np.arange(ring.size) / SR)
        for start in rng.integers(0, max(1, n - ring.size), size=max(1, int(6 * n / SR))):
            signal[start : start + ring.size] += ring[: n - start]
    elif name == "Dog":
        gate = (t % 0.45) < 0.15
        signal = (_harmonics(np.full(n, 250.0), 5, 0.7) + 0.3 * _band(rng, n, 200, 1200)) * gate
    elif name == "Electric_shaver_toothbrush":
        signal = 2 * ((t * 120) % 1) - 1
        signal = signal + 0.3 * np.sin(2 * np.pi * 2400 * t)
    elif name == "Frying":
        signal = _band(rng, n, 5000, 7500) * (rng.random(n) < 0.02) * 4
    elif name == "Running_water":
        slow = np.interp(t, np.linspace(0, t[-1] + 1e-9, 12), rng.uniform(0.4, 1.0, 12))
        signal = _band(rng, n, 80, 400) * slow
    elif name == "Speech":
        from scipy.signal import butter, sosfilt

        pulses = np.zeros(n)
        pulses[:: SR // 130] = 1.0
        vowel = sum(
            sosfilt(butter(2, [f - 100, f + 100], btype="bandpass", fs=SR, output="sos"), pulses)
            for f in (700, 1200, 2600)
        )
        signal = vowel * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    elif name == "Vacuum_cleaner":
        signal = _band(rng, n, 100, 7000) + 0.5 * np.sin(2 * np.pi * 2500 * t)
    else:
        raise ValueError(f"unknown class {name!r}")
    return signal / (np.max(np.abs(signal)) + 1e-12)


def _youtube_id(rng: np.random.Generator, index: int, taken: set[str]) -> str:
    while True:
        chars = [_ID_CHARS[i] for i in rng.integers(0, len(_ID_CHARS), 11)]
        if index % 7 == 1:
            chars[0] = "-"
        if index % 5 == 2:
            chars[4] = "_"
        candidate = "".join(chars)
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def _events(rng: np.random.Generator, duration: float) -> list[dict[str, Any]]:
    count = int(rng.integers(1, 4))
    names = rng.choice(len(CLASSES), size=count, replace=False)
    events = []
    for index in names:
        name = CLASSES[int(index)]
        if name in STATIONARY:
            length = float(rng.uniform(3.0, duration))
        else:
            length = float(rng.uniform(0.5, min(2.5, duration)))
        onset = round(float(rng.uniform(0, duration - length)), 3)
        offset = round(min(duration, onset + length), 3)
        events.append({"onset": onset, "offset": offset, "event_label": name})
    return sorted(events, key=lambda e: e["onset"])


def _render_audio(
    clip: dict[str, Any], media_seconds: float, rng: np.random.Generator
) -> np.ndarray:
    n = round(media_seconds * SR)
    audio = 0.01 * _band(rng, n, 50, 7500)
    for event in clip["events"]:
        start = round((clip["start"] + event["onset"]) * SR)
        stop = min(n, round((clip["start"] + min(event["offset"], clip["duration"])) * SR))
        if stop <= start:
            continue
        sound = class_sound(event["event_label"], stop - start, rng)
        ramp = np.minimum(
            1, np.minimum(np.arange(stop - start), np.arange(stop - start)[::-1]) / 80
        )
        audio[start:stop] += 0.3 * sound * ramp
    return np.clip(audio, -1, 1).astype(np.float32)


def _render_frames(clip: dict[str, Any], media_seconds: float) -> np.ndarray:
    count = round(media_seconds * FPS)
    frames = np.full((count, SIZE, SIZE, 3), 40, dtype=np.uint8)
    tile_h, tile_w = SIZE // 3, SIZE // 4
    for event in clip["events"]:
        index = CLASSES.index(event["event_label"])
        row, col = divmod(index, 4)
        first = int(np.floor((clip["start"] + event["onset"]) * FPS))
        last = int(np.ceil((clip["start"] + min(event["offset"], clip["duration"])) * FPS))
        frames[first:last, row * tile_h : (row + 1) * tile_h, col * tile_w : (col + 1) * tile_w] = (
            _COLOURS[index]
        )
    return frames


def _clip_list(clips: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Clips with their split, segment and strong labels (the quirks are added when writing)."""
    taken: set[str] = set()
    result = []
    for index in range(clips):
        split = ("weak", "unlabel_in_domain", "test", "weak", "unlabel_in_domain")[index % 5]
        duration = 10.0 if index % 9 != 4 else float(rng.integers(4, 10))
        start = float((0, 0, 0, 2, 5)[index % 5]) if duration == 10.0 else 0.0
        youtube_id = _youtube_id(rng, index, taken)
        end = start + duration
        filename = f"Y{youtube_id}_{start:.3f}_{end:.3f}.wav"
        result.append(
            {
                "id": filename[:-4],
                "filename": filename,
                "youtube_id": youtube_id,
                "split": split,
                "start": start,
                "end": end,
                "duration": duration,
                "events": _events(rng, duration),
            }
        )
    return result


def _add_test_quirks(test: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[dict]]]:
    """Each test clip with its rows, the real file's quirks put in (events updated to match)."""
    roles = ["triple", "past_end", "out_of_order", "empty"]
    result = []
    for clip in test:
        rows = [dict(e) for e in clip["events"]]
        role = next((r for r in roles if _fits(r, clip)), None)
        if role is not None:
            roles.remove(role)
        if role == "triple":
            # The merged event and both originals, as in the released test list.
            rows = [
                {"onset": 1.000, "offset": 1.400, "event_label": "Dishes"},
                {"onset": 1.000, "offset": 2.000, "event_label": "Dishes"},
                {"onset": 1.480, "offset": 2.000, "event_label": "Dishes"},
                *[r for r in rows if r["event_label"] != "Dishes"],
            ]
            clip["events"] = sorted(rows, key=lambda e: e["onset"])
        elif role == "past_end":
            rows.append({"onset": 9.865, "offset": 10.115, "event_label": "Dog"})
            clip["events"] = [*clip["events"], rows[-1]]
        elif role == "out_of_order":
            rows = rows[1:] + rows[:1]
        elif role == "empty":
            clip["events"] = []
            rows = []
        result.append((clip, rows))
    return result


def _fits(role: str, clip: dict[str, Any]) -> bool:
    labels = [e["event_label"] for e in clip["events"]]
    if role == "past_end":
        return clip["duration"] == 10.0 and "Dog" not in labels
    if role == "out_of_order":
        onsets = [e["onset"] for e in clip["events"]]
        return len(onsets) > 1 and onsets[0] < onsets[1]
    return True


def write_metadata(out: Path, clips: list[dict[str, Any]]) -> None:
    from avtool.core import atomic

    weak = [c for c in clips if c["split"] == "weak"]
    lines = ["filename\tevent_labels"]
    for number, clip in enumerate(weak):
        labels = list(dict.fromkeys(e["event_label"] for e in clip["events"]))
        if number % 3 == 0:
            labels = labels[::-1]
        if number == 1:
            labels.append(labels[0])
        lines.append(f"{clip['filename']}\t{','.join(labels)}")
    atomic.write_text(out / "metadata/train/weak.csv", "\n".join(lines) + "\n")
    unlabeled = [c for c in clips if c["split"] == "unlabel_in_domain"]
    lines = ["filename"] + [c["filename"] for c in unlabeled]
    atomic.write_text(out / "metadata/train/unlabel_in_domain.csv", "\n".join(lines) + "\n")
    test = [c for c in clips if c["split"] == "test"]
    lines = ["filename\tonset\toffset\tevent_label"]
    for clip, rows in _add_test_quirks(test):
        if not rows:
            lines.append(f"{clip['filename']}\t\t\t")
        for row in rows:
            lines.append(
                f"{clip['filename']}\t{row['onset']:.3f}\t{row['offset']:.3f}\t{row['event_label']}"
            )
    atomic.write_text(out / "metadata/test/test.csv", "\n".join(lines) + "\n")
    truth = ["filename\tonset\toffset\tevent_label"]
    for clip in clips:
        for event in clip["events"]:
            truth.append(
                f"{clip['filename']}\t{event['onset']:.3f}\t{event['offset']:.3f}\t"
                f"{event['event_label']}"
            )
    atomic.write_text(out / "truth/strong.tsv", "\n".join(truth) + "\n")


def synth_dcase2018(
    out: Path,
    clips: int = 60,
    seed: int = 0,
    media: bool = True,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any] | str | None:
    """Write the miniature corpus (module docstring); None when up to date, a plan on dry run.

    Without `media` only the lists and the truth are written (the same ones: the clips do not
    depend on it), in a fraction of the time.
    """
    from avtool.core.errors import InputError
    from avtool.core.stage import Stage, describe_status
    from avtool.core.video import write_video

    if clips < 5:
        raise InputError(f"--clips {clips}: at least 5, one per split and quirk")
    out = Path(out)
    config = {"clips": clips, "seed": seed, "sr": SR, "fps": FPS, "size": SIZE, "media": media}
    stage = Stage("synth.dcase2018", STAGE_VERSION, out, config)
    if dry_run:
        return describe_status(stage, force)
    if not stage.begin(force=force):
        return None
    rng = np.random.default_rng(seed)
    clip_list = _clip_list(clips, rng)
    # Metadata first: the test quirks add events that the media must then show.
    write_metadata(out, clip_list)
    for clip in clip_list if media else []:
        video = out / "media" / f"{clip['youtube_id']}.mp4"
        if video.exists():
            continue
        media_seconds = clip["end"] + 0.5
        clip_rng = np.random.default_rng(
            [seed, int.from_bytes(clip["youtube_id"].encode(), "big") % 2**32]
        )
        audio = _render_audio(clip, media_seconds, clip_rng)
        frames = _render_frames(clip, media_seconds)
        write_video(
            video,
            frames,
            FPS,
            audio=audio,
            sr=SR,
            codec="libx264",
            audio_codec="mp2",
            bit_rate=200_000,
        )
    counts = {
        "clips": len(clip_list),
        **{
            f"{split}_clips": sum(1 for c in clip_list if c["split"] == split)
            for split in ("weak", "unlabel_in_domain", "test")
        },
        "events": sum(len(c["events"]) for c in clip_list),
    }
    return stage.finish(
        counts=counts,
        outputs=["metadata", "truth/strong.tsv", *(["media"] if media else [])],
    )
