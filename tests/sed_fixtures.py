"""A miniature DCASE 2018 corpus in the download stage's manifest layout, for the sed tests.

Each clip is 16 kHz audio where a class sounds as its own tone while its events last, and
(optionally) an mp4 whose picture takes the class's colour while an event is active.
Pretrained feature stores can be written directly (`write_pretrained_store`) with rows that
carry the clip's activity, so recipe tests train in seconds without running VGGish or VGG16.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from avtool.corpora.dcase2018 import CLASSES

SR = 16000
USED = (0, 4, 8)  # Alarm_bell_ringing, Dog, Speech: three well-separated tones


def _events(rng: np.random.Generator, duration: float) -> list[dict]:
    events = []
    for c in rng.choice(USED, size=rng.integers(1, 3), replace=False):
        onset = float(np.round(rng.uniform(0, 0.5 * duration), 2))
        offset = float(np.round(onset + rng.uniform(0.2, 0.45) * duration, 2))
        events.append({"onset": onset, "offset": offset, "event_label": CLASSES[int(c)]})
    return sorted(events, key=lambda e: e["onset"])


def _audio(events: list[dict], duration: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(duration * SR)) / SR
    y = 0.01 * rng.standard_normal(t.size)
    for e in events:
        frequency = 300.0 * (1 + CLASSES.index(e["event_label"]))
        active = (t >= e["onset"]) & (t < e["offset"])
        y += 0.3 * active * np.sin(2 * np.pi * frequency * t)
    return y.astype(np.float32)


def _video(path: Path, events: list[dict], duration: float) -> None:
    from avtool.core.video import write_video

    fps = 25
    frames = np.zeros((int(duration * fps), 32, 32, 3), dtype=np.uint8)
    for e in events:
        c = CLASSES.index(e["event_label"])
        colour = np.array([(c * 90) % 256, 255 - c * 25, (c * 50) % 256], dtype=np.uint8)
        frames[int(e["onset"] * fps) : int(e["offset"] * fps)] = colour
    write_video(path, frames, fps, codec="mpeg4")


def make_corpus(
    root: Path,
    counts: dict[str, int] | None = None,
    duration: float = 10.0,
    video: bool = False,
    seed: int = 0,
) -> Path:
    """Write clips and `manifest.jsonl` under `root`; returns the manifest's path."""
    counts = counts or {"weak": 12, "unlabel_in_domain": 6, "test": 4, "eval": 4}
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for split, count in counts.items():
        for i in range(count):
            youtube = f"{split[:3]}{i:03d}xxxxxx"[:11]
            clip_id = f"Y{youtube}_{i}.000_{i + duration:.3f}"
            events = _events(rng, duration)
            labels = {e["event_label"] for e in events}
            path = root / f"{clip_id}.wav"
            sf.write(path, _audio(events, duration, rng), SR)
            row = {
                "id": clip_id,
                "filename": f"{clip_id}.wav",
                "youtube_id": youtube,
                "start": float(i),
                "end": float(i + duration),
                "duration": duration,
                "split": split,
                "labels": [] if split == "unlabel_in_domain" else sorted(labels),
                "path": str(path),
            }
            if split in ("test", "eval"):
                row["events"] = events
            if video:
                row["video"] = str(root / f"{clip_id}.mp4")
                _video(Path(row["video"]), events, duration)
            rows.append((row, events))
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r, _ in rows))
    (root / "events.json").write_text(json.dumps({r["id"]: e for r, e in rows}))
    return manifest


def write_pretrained_store(
    out: Path,
    corpus: Path,
    extractor: str,
    dim: int,
    params: dict,
    rows: int = 151,
    duration: float = 10.0,
) -> None:
    """A `features vggish|vgg16`-like store whose rows encode each clip's active classes."""
    from avtool.core.store import StoreWriter, store_attrs

    events = json.loads((corpus / "events.json").read_text())
    attrs = store_attrs(extractor, params, "random-seed-0")
    attrs["random_weights"] = True
    writer = StoreWriter(out, "00000-of-00001", attrs)
    rng = np.random.default_rng(1)
    projection = rng.standard_normal((len(CLASSES), dim)).astype(np.float32)
    for clip_id, clip_events in events.items():
        activity = np.zeros((rows, len(CLASSES)), np.float32)
        times = (np.arange(rows) + 0.5) * duration / rows
        for e in clip_events:
            active = (times >= e["onset"]) & (times < e["offset"])
            activity[active, CLASSES.index(e["event_label"])] = 1.0
        noise = 0.1 * rng.standard_normal((rows, dim)).astype(np.float32)
        writer.add(clip_id, np.maximum(activity @ projection + noise, 0))
    writer.finalize()
    (out / "stage.json").write_text(json.dumps({"name": f"features.{extractor}"}))
