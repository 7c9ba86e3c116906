"""RAVDESS: `Actor_01` … `Actor_24` folders of `MM-CC-EE-II-SS-RR-AA.wav` files.

The seven fields are modality (01 audio-video, 02 video-only, 03 audio-only), vocal channel
(01 speech, 02 song), emotion (01-08), intensity (01 normal, 02 strong), statement (01 "Kids
are talking by the door", 02 "Dogs are sitting by the door"), repetition (01, 02) and actor
(01-24; odd actors are male). `prepare_ravdess` decodes every field into the manifest, with
the gender, sample rate, channels and duration of each file; files it cannot use go to
`rejects.jsonl` with the reason. Stereo files are kept (features down-mix them on loading).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avtool.core.errors import InputError, ItemError

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
STATEMENTS = ("Kids are talking by the door", "Dogs are sitting by the door")
MODALITIES = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
CHANNELS = {"01": "speech", "02": "song"}
INTENSITIES = {"01": "normal", "02": "strong"}
STAGE_VERSION = 1

_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_ACTOR_DIR = re.compile(r"^Actor_(\d{2})$")


def file_name(
    emotion: int, intensity: int, statement: int, repetition: int, actor: int, channel: int = 1
) -> str:
    """The RAVDESS name of an audio-only file, e.g. `03-01-06-01-02-01-12.wav`."""
    fields = (3, channel, emotion, intensity, statement, repetition, actor)
    return "-".join(f"{value:02d}" for value in fields) + ".wav"


def parse_name(name: str) -> dict[str, Any]:
    """Every field of a RAVDESS file name, decoded; ItemError says what is wrong with it."""
    stem, dot, extension = name.rpartition(".")
    if not dot or extension.lower() != "wav":
        raise ItemError(f"{name}: not a .wav file name")
    match = _NAME.match(stem)
    if not match:
        raise ItemError(f"{name}: expected MM-CC-EE-II-SS-RR-AA.wav (seven two-digit fields)")
    modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
    checks = [
        (modality in MODALITIES, f"modality {modality} (01-03)"),
        (channel in CHANNELS, f"vocal channel {channel} (01 speech, 02 song)"),
        (1 <= int(emotion) <= len(EMOTIONS), f"emotion {emotion} (01-08)"),
        (intensity in INTENSITIES, f"intensity {intensity} (01-02)"),
        (statement in ("01", "02"), f"statement {statement} (01-02)"),
        (repetition in ("01", "02"), f"repetition {repetition} (01-02)"),
        (1 <= int(actor) <= 24, f"actor {actor} (01-24)"),
    ]
    for valid, what in checks:
        if not valid:
            raise ItemError(f"{name}: unknown {what}")
    return {
        "id": stem,
        "modality": MODALITIES[modality],
        "vocal_channel": CHANNELS[channel],
        "emotion": EMOTIONS[int(emotion) - 1],
        "emotion_code": int(emotion),
        "intensity": INTENSITIES[intensity],
        "statement": STATEMENTS[int(statement) - 1],
        "statement_code": int(statement),
        "repetition": int(repetition),
        "actor": int(actor),
        "gender": "male" if int(actor) % 2 else "female",
    }


@dataclass
class PrepareConfig:
    include_song: bool = False  # the report uses the 1440 speech files only


def _entry(path: Path, out: Path, actor_dir: int) -> dict[str, Any]:
    from avtool.core.audio import load_audio

    entry = parse_name(path.name)
    if entry["modality"] != "audio-only":
        raise ItemError(f"{path.name}: {entry['modality']} modality; only audio-only (03) files")
    if entry["actor"] != actor_dir:
        raise ItemError(f"{path.name}: actor {entry['actor']:02d} in folder Actor_{actor_dir:02d}")
    # Decoding the whole file is what catches zero-byte, truncated and non-audio files here,
    # rather than halfway through feature extraction.
    samples, sr = load_audio(path, mono=False)
    entry.update(
        path=os.path.relpath(path, out),
        sr=sr,
        channels=int(samples.shape[0]),
        duration=round(samples.shape[1] / sr, 4),
    )
    return entry


def prepare_ravdess(
    root: Path,
    out: Path,
    config: PrepareConfig,
    force: bool = False,
    dry_run: bool = False,
    max_reject_rate: float = 0.2,
) -> dict[str, Any]:
    """Write `out/manifest.jsonl` (usable files) and `out/rejects.jsonl` (the rest, with reasons).

    Song files are left out (not rejected) unless `config.include_song`. Returns the counts.
    """
    from avtool.core import rejects as rejects_module
    from avtool.core.journal import write_jsonl
    from avtool.core.stage import Stage, describe_status

    root, out = Path(root).resolve(), Path(out).resolve()
    actor_dirs = sorted(p for p in root.glob("Actor_*") if p.is_dir() and _ACTOR_DIR.match(p.name))
    if not actor_dirs:
        raise InputError(
            f"{root}: no Actor_NN folders; --root must be the folder holding Actor_01 … Actor_24"
        )
    stage = Stage("prepare.ravdess", STAGE_VERSION, out, config, inputs=[root])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **stage.status().counts}
    entries: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    song = 0
    for actor_dir in actor_dirs:
        actor = int(_ACTOR_DIR.match(actor_dir.name)[1])  # type: ignore[index]
        for path in sorted(p for p in actor_dir.iterdir() if p.is_file()):
            try:
                fields = parse_name(path.name)
                if fields["vocal_channel"] == "song" and not config.include_song:
                    song += 1
                    continue
                entries.append(_entry(path, out, actor))
            except ItemError as exc:
                rejects.append({"id": path.stem, "path": str(path), "reason": str(exc)})
    if not entries:
        raise InputError(f"{root}: no usable RAVDESS file; see {out / 'rejects.jsonl'}")
    write_jsonl(out / "manifest.jsonl", entries)
    write_jsonl(out / "rejects.jsonl", rejects)
    rejects_module.enforce(
        rejects_module.RejectSummary(len(entries) + len(rejects), rejects, [out / "rejects.jsonl"]),
        "prepare.ravdess",
        max_reject_rate,
    )
    counts = {
        "files": len(entries),
        "actors": len({e["actor"] for e in entries}),
        "song_skipped": song,
        "rejected": len(rejects),
    }
    stage.finish(counts=counts, outputs=["manifest.jsonl", "rejects.jsonl"])
    return {"state": "done", **counts}
