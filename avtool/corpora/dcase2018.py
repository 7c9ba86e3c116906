"""DCASE 2018 task 4 metadata: weak, unlabeled in-domain, test and eval lists, and the manifest.

Input (`--metadata DIR`, the task's `metadata/` folder or the folder above it), tab-separated
with one header line despite the `.csv` extension; the DESED `.tsv` names are read too:

| split               | file (first found)                                             | columns |
|---------------------|----------------------------------------------------------------|---------|
| `weak`              | `train/weak.csv`, `train/weak.tsv`                              | filename, event_labels (joined by `,` in the released file, `;` in the readme: both accepted) |
| `unlabel_in_domain` | `train/unlabel_in_domain.csv`, `train/unlabel_in_domain.tsv`    | filename |
| `test`              | `test/test.csv`, `test/test.tsv`, `validation/validation.tsv`   | filename, onset, offset, event_label (one event a row; empty onset, offset and label: a clip without events) |
| `eval`              | `eval/eval.csv`, `eval/eval.tsv`, `eval/public.tsv`             | as test |

File names are `Y<11-char YouTube id>_<start>_<end>.wav`; the id itself may hold `_` and `-`,
so the name splits on its last two underscores.

Output contract (`<out>/manifest.jsonl`, one JSON object a clip, in file order per split):

    {"id": "YKK227gPpRn4_30.000_40.000",          # file name without ".wav"
     "filename": "YKK227gPpRn4_30.000_40.000.wav",
     "youtube_id": "KK227gPpRn4", "start": 30.0, "end": 40.0, "duration": 10.0,  # end - start
     "split": "weak" | "unlabel_in_domain" | "test" | "eval",
     "labels": ["Alarm_bell_ringing", "Speech"],  # sorted, unique; test/eval: classes of events
     "events": [{"onset": 0.0, "offset": 9.971, "event_label": "Speech"}, ...]}  # test/eval only

Events are kept as annotated (in file order, overlaps and all), so scores against them equal
scores against the released files. The manifest has no `path`: the clips are not on disk yet;
`avtool download dcase2018` adds `path` (the wav) and `video` (the mp4).

Beside it: `rejects.jsonl` (malformed rows: id, path of the list file, split, line, reason, text; a clip with a
rejected event row is left out whole, since its strong labels would be incomplete),
`quirks.jsonl` (rows that are valid but odd, kept and reported: duplicate labels in a row,
unsorted multi-labels, clips shorter than 10 s, offsets past the clip end, overlapping
same-class events, events out of onset order, a clip's rows split apart, an empty row beside
events), and `reference/<split>.tsv` for the strongly labelled splits, the event lists to score
against (`avtool evaluate sed --reference`). The stage fails only when the share of rejected
rows passes `--max-reject-rate`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avtool.core.errors import InputError, ItemError

CLASSES = (
    "Alarm_bell_ringing",
    "Blender",
    "Cat",
    "Dishes",
    "Dog",
    "Electric_shaver_toothbrush",
    "Frying",
    "Running_water",
    "Speech",
    "Vacuum_cleaner",
)
SPLIT_FILES = {
    "weak": ("train/weak.csv", "train/weak.tsv"),
    "unlabel_in_domain": ("train/unlabel_in_domain.csv", "train/unlabel_in_domain.tsv"),
    "test": ("test/test.csv", "test/test.tsv", "validation/validation.tsv"),
    "eval": ("eval/eval.csv", "eval/eval.tsv", "eval/public.tsv"),
}
STRONG_SPLITS = ("test", "eval")
HEADERS = {
    "weak": ("filename", "event_labels"),
    "unlabel_in_domain": ("filename",),
    "test": ("filename", "onset", "offset", "event_label"),
    "eval": ("filename", "onset", "offset", "event_label"),
}
YOUTUBE_ID_LENGTH = 11
STAGE_VERSION = 1


@dataclass
class PrepareConfig:
    clip_seconds: float = 10.0  # nominal clip length: shorter clips are reported as quirks


def parse_filename(filename: str) -> dict[str, Any]:
    """id, YouTube id, start, end and duration of `Y<id>_<start>_<end>.wav`; ItemError if not."""
    if not filename.endswith(".wav"):
        raise ItemError(f"file name {filename!r} does not end in .wav")
    stem = filename[: -len(".wav")]
    parts = stem.rsplit("_", 2)
    if len(parts) != 3 or not parts[0].startswith("Y"):
        raise ItemError(f"file name {filename!r} is not Y<YouTube id>_<start>_<end>.wav")
    youtube_id = parts[0][1:]
    if len(youtube_id) != YOUTUBE_ID_LENGTH or not all(
        c.isascii() and (c.isalnum() or c in "-_") for c in youtube_id
    ):
        raise ItemError(
            f"file name {filename!r}: YouTube id {youtube_id!r} is not 11 characters of "
            "letters, digits, - and _"
        )
    try:
        start, end = float(parts[1]), float(parts[2])
    except ValueError:
        raise ItemError(f"file name {filename!r}: start/end are not numbers") from None
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
        raise ItemError(f"file name {filename!r}: segment {parts[1]}-{parts[2]} is empty")
    return {
        "id": stem,
        "filename": filename,
        "youtube_id": youtube_id,
        "start": start,
        "end": end,
        "duration": round(end - start, 6),
    }


def find_metadata_files(metadata: Path) -> dict[str, Path]:
    """The list file of each split present under `metadata` (or its `metadata/` child)."""
    metadata = Path(metadata)
    if (metadata / "metadata").is_dir() and not (metadata / "train").is_dir():
        metadata = metadata / "metadata"
    found = {}
    for split, names in SPLIT_FILES.items():
        for name in names:
            if (metadata / name).is_file():
                found[split] = metadata / name
                break
    if not found:
        expected = ", ".join(names[0] for names in SPLIT_FILES.values())
        raise InputError(
            f"{metadata}: no DCASE 2018 metadata file ({expected}); --metadata must be the "
            "task's metadata folder"
        )
    return found


class _Collector:
    """Clips, rejects and quirks of every split, in the order the files list them."""

    def __init__(self, clip_seconds: float) -> None:
        self.clip_seconds = clip_seconds
        self.clips: dict[str, dict[str, Any]] = {}
        self.rejects: list[dict[str, Any]] = []
        self.quirks: list[dict[str, Any]] = []
        self.rows = 0
        self.dropped: set[tuple[str, str]] = set()
        self.paths: dict[str, Path] = {}

    def reject(
        self, split: str, path: Path, line: int, reason: str, text: str, kind: str = "row"
    ) -> None:
        name = text.split("\t", 1)[0].strip()
        self.rejects.append(
            {
                "id": name[: -len(".wav")] if name.endswith(".wav") else f"{split}:{line}",
                "path": str(path),
                "kind": kind,
                "split": split,
                "line": line,
                "reason": reason,
                "text": text,
            }
        )

    def quirk(self, split: str, path: Path, line: int, kind: str, clip: str, detail: str) -> None:
        self.quirks.append(
            {
                "split": split,
                "path": str(path),
                "line": line,
                "kind": kind,
                "id": clip,
                "detail": detail,
            }
        )

    def check_new(self, info: dict[str, Any]) -> None:
        """ItemError if a one-row-a-clip list names a clip that is already listed."""
        existing = self.clips.get(info["id"])
        if existing is not None:
            raise ItemError(
                f"clip {info['filename']} listed twice (first in split {existing['split']}, "
                f"line {existing['_lines'][0]})"
            )

    def clip(self, split: str, path: Path, line: int, filename: str) -> dict[str, Any]:
        """The clip a row names: new, or the one this split already holds; ItemError if taken."""
        info = parse_filename(filename)
        existing = self.clips.get(info["id"])
        if existing is not None:
            if existing["split"] != split:
                raise ItemError(f"clip {filename} is already listed in split {existing['split']}")
            return existing
        if info["duration"] < self.clip_seconds - 1e-6:
            self.quirk(
                split,
                path,
                line,
                "short_clip",
                info["id"],
                f"{info['duration']:g} s by its name, not {self.clip_seconds:g} s",
            )
        clip = {**info, "split": split, "labels": [], "events": [], "_lines": [line]}
        self.clips[info["id"]] = clip
        return clip


def _read_rows(path: Path, split: str) -> list[tuple[int, list[str], str]]:
    text = path.read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    expected = HEADERS[split]
    if not lines:
        raise InputError(f"{path}: empty file; expected a header {'<TAB>'.join(expected)}")
    header = [h.strip() for h in lines[0].split("\t")]
    if header[: len(expected)] != list(expected):
        raise InputError(
            f"{path}: header {lines[0]!r}, expected {'<TAB>'.join(expected)} (tab-separated); "
            "is this the right file?"
        )
    return [
        (number, line.split("\t"), line)
        for number, line in enumerate(lines[1:], start=2)
        if line.strip()
    ]


def _read_weak(collector: _Collector, path: Path) -> None:
    for number, fields, text in _read_rows(path, "weak"):
        collector.rows += 1
        try:
            if len(fields) != 2:
                raise ItemError(f"{len(fields)} fields, expected 2 (filename, event_labels)")
            labels = [x.strip() for x in fields[1].replace(";", ",").split(",")]
            if not fields[1].strip() or any(not x for x in labels):
                raise ItemError(f"empty label in {fields[1]!r}")
            unknown = [x for x in labels if x not in CLASSES]
            if unknown:
                raise ItemError(
                    f"unknown class {unknown[0]!r}; the classes are {', '.join(CLASSES)}"
                )
            info = parse_filename(fields[0].strip())
            collector.check_new(info)
            clip = collector.clip("weak", path, number, info["filename"])
        except ItemError as exc:
            collector.reject("weak", path, number, str(exc), text)
            continue
        repeated = sorted(name for name, n in Counter(labels).items() if n > 1)
        if repeated:
            collector.quirk(
                "weak",
                path,
                number,
                "duplicate_label",
                clip["id"],
                f"{', '.join(repeated)} repeated",
            )
        if len(set(labels)) > 1 and labels != sorted(labels):
            collector.quirk(
                "weak", path, number, "unsorted_labels", clip["id"], f"{fields[1]} not sorted"
            )
        clip["labels"] = sorted(set(labels))


def _read_unlabeled(collector: _Collector, path: Path) -> None:
    for number, fields, text in _read_rows(path, "unlabel_in_domain"):
        collector.rows += 1
        try:
            if len(fields) != 1:
                raise ItemError(f"{len(fields)} fields, expected 1 (filename)")
            info = parse_filename(fields[0].strip())
            collector.check_new(info)
            collector.clip("unlabel_in_domain", path, number, info["filename"])
        except ItemError as exc:
            collector.reject("unlabel_in_domain", path, number, str(exc), text)


def _parse_event(fields: list[str]) -> dict[str, Any] | None:
    """An event of a strong-label row; None for a clip without events; ItemError if malformed."""
    if len(fields) != 4:
        raise ItemError(f"{len(fields)} fields, expected 4 (filename, onset, offset, event_label)")
    onset, offset, label = (f.strip() for f in fields[1:])
    if not onset and not offset and not label:
        return None
    if not (onset and offset and label):
        raise ItemError("onset, offset and event_label must be all given or all empty")
    if label not in CLASSES:
        raise ItemError(f"unknown class {label!r}; the classes are {', '.join(CLASSES)}")
    try:
        start, end = float(onset), float(offset)
    except ValueError:
        raise ItemError(f"onset {onset!r} / offset {offset!r} are not numbers") from None
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
        raise ItemError(f"event {onset}-{offset} is empty or negative")
    return {"onset": start, "offset": end, "event_label": label}


def _read_strong(collector: _Collector, path: Path, split: str) -> None:
    previous_clip = None
    for number, fields, text in _read_rows(path, split):
        collector.rows += 1
        try:
            event = _parse_event(fields)
            clip = collector.clip(split, path, number, fields[0].strip())
        except ItemError as exc:
            collector.reject(split, path, number, str(exc), text)
            if fields and fields[0].strip().endswith(".wav"):
                # Whatever else this clip has, its reference would be incomplete without the row.
                collector.dropped.add((split, fields[0].strip()[: -len(".wav")]))
            previous_clip = None
            continue
        if clip["id"] != previous_clip and number not in clip["_lines"]:
            collector.quirk(
                split,
                path,
                number,
                "split_rows",
                clip["id"],
                f"rows of this clip also at line {clip['_lines'][-1]}",
            )
        clip["_lines"].append(number)
        previous_clip = clip["id"]
        if event is None:
            clip["_empty_row"] = number
            continue
        _check_event(collector, split, path, number, clip, event)
        clip["events"].append(event)
    for clip in collector.clips.values():
        if clip["split"] == split and clip.get("_empty_row") and clip["events"]:
            collector.quirk(
                split,
                path,
                clip["_empty_row"],
                "empty_row_beside_events",
                clip["id"],
                f"an empty row, and {len(clip['events'])} events",
            )


def _check_event(
    collector: _Collector,
    split: str,
    path: Path,
    line: int,
    clip: dict[str, Any],
    event: dict[str, Any],
) -> None:
    if event["offset"] > clip["duration"] + 1e-6:
        collector.quirk(
            split,
            path,
            line,
            "offset_past_end",
            clip["id"],
            f"offset {event['offset']:.3f} s past the {clip['duration']:g} s clip",
        )
    if clip["events"] and event["onset"] < clip["events"][-1]["onset"]:
        before = clip["events"][-1]
        collector.quirk(
            split,
            path,
            line,
            "out_of_order",
            clip["id"],
            f"{event['event_label']} at {event['onset']:.3f} s after "
            f"{before['event_label']} at {before['onset']:.3f} s",
        )
    for other in clip["events"]:
        if (
            other["event_label"] == event["event_label"]
            and event["onset"] < other["offset"]
            and other["onset"] < event["offset"]
        ):
            collector.quirk(
                split,
                path,
                line,
                "overlapping_events",
                clip["id"],
                f"{event['event_label']} {event['onset']:.3f}-{event['offset']:.3f} overlaps "
                f"{other['onset']:.3f}-{other['offset']:.3f} (line {other.get('_line', '?')})",
            )
    event["_line"] = line


def read_metadata(
    metadata: Path, config: PrepareConfig | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], int]:
    """Manifest entries, rejects, quirks and the number of data rows of every split found."""
    config = config or PrepareConfig()
    collector = _Collector(config.clip_seconds)
    collector.paths = find_metadata_files(metadata)
    for split, path in collector.paths.items():
        if split == "weak":
            _read_weak(collector, path)
        elif split == "unlabel_in_domain":
            _read_unlabeled(collector, path)
        else:
            _read_strong(collector, path, split)
    entries = []
    for clip in collector.clips.values():
        if (clip["split"], clip["id"]) in collector.dropped:
            collector.reject(
                clip["split"],
                collector.paths[clip["split"]],
                clip["_lines"][0],
                f"clip {clip['filename']} left out: one of its rows was rejected",
                clip["filename"],
                kind="clip",
            )
            continue
        events = [{k: v for k, v in e.items() if not k.startswith("_")} for e in clip["events"]]
        entry = {k: v for k, v in clip.items() if not k.startswith("_")}
        entry["events"] = events
        if clip["split"] in STRONG_SPLITS:
            entry["labels"] = sorted({e["event_label"] for e in events})
        entries.append(entry)
    return entries, collector.rejects, collector.quirks, collector.rows


def reference_rows(entries: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    """The event list of a strongly labelled split: a row an event, an empty row a silent clip."""
    rows = []
    for entry in entries:
        if entry["split"] != split:
            continue
        if not entry["events"]:
            rows.append({"filename": entry["filename"], "onset": None, "offset": None})
        for event in entry["events"]:
            rows.append({"filename": entry["filename"], **event})
    return rows


def write_event_list(path: Path, rows: list[dict[str, Any]]) -> None:
    """A DCASE event list (header, tab-separated, 3 decimals), written atomically."""
    from avtool.core import atomic

    lines = ["filename\tonset\toffset\tevent_label"]
    for row in rows:
        if row.get("event_label"):
            lines.append(
                f"{row['filename']}\t{row['onset']:.3f}\t{row['offset']:.3f}\t{row['event_label']}"
            )
        else:
            lines.append(f"{row['filename']}\t\t\t")
    atomic.write_text(path, "\n".join(lines) + "\n")


def prepare_dcase2018(
    metadata: Path,
    out: Path,
    config: PrepareConfig,
    *,
    force: bool = False,
    dry_run: bool = False,
    max_reject_rate: float = 0.2,
) -> dict[str, Any]:
    """Write the manifest, rejects, quirks and reference lists (module docstring); the counts."""
    from avtool.core.journal import write_jsonl
    from avtool.core.rejects import RejectSummary, enforce
    from avtool.core.stage import Stage, describe_status

    out = Path(out).resolve()
    files = find_metadata_files(Path(metadata).resolve())
    stage = Stage("prepare.dcase2018", STAGE_VERSION, out, config, inputs=list(files.values()))
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **stage.status().counts}
    entries, rejects, quirks, rows = read_metadata(Path(metadata).resolve(), config)
    write_jsonl(out / "rejects.jsonl", rejects)
    write_jsonl(out / "quirks.jsonl", quirks)
    row_rejects = [r for r in rejects if r["kind"] == "row"]
    rejected_rows = len(row_rejects)
    # The verdict is over rows: a clip left out for one bad row is not counted twice.
    summary = RejectSummary(rows, row_rejects, [out / "rejects.jsonl"])
    enforce(summary, "prepare.dcase2018", max_reject_rate)
    outputs = ["manifest.jsonl", "rejects.jsonl", "quirks.jsonl"]
    for split in STRONG_SPLITS:
        if split in files:
            write_event_list(out / "reference" / f"{split}.tsv", reference_rows(entries, split))
            outputs.append(f"reference/{split}.tsv")
    write_jsonl(out / "manifest.jsonl", entries)
    counts: dict[str, int] = {"clips": len(entries), "rows": rows, "rejected_rows": rejected_rows}
    for split in SPLIT_FILES:
        if split in files:
            counts[f"{split}_clips"] = sum(1 for e in entries if e["split"] == split)
    for split in STRONG_SPLITS:
        if split in files:
            counts[f"{split}_events"] = sum(
                len(e["events"]) for e in entries if e["split"] == split
            )
    for kind, number in sorted(Counter(q["kind"] for q in quirks).items()):
        counts[f"quirk_{kind}"] = number
    stage.finish(
        counts=counts, outputs=outputs, metadata={k: str(v) for k, v in sorted(files.items())}
    )
    return {"state": "done", **counts}
