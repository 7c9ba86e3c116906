"""GRID: the utterance index, the speaker split and the mixture lists of LiMuSE.

Layout under `--root`: speaker folders `s1` ... `s34` (no s21) holding `<code>.mpg` (MPEG-PS,
MPEG-1 video at 25 fps, 75 frames or now and then 74; MP2 audio at 44.1 kHz, 131,328 samples =
2.978 s; also found under `sN/video/mpg_6000/`), optional separate audio
`audio_25k/sN/<code>.wav` or `audio_50k/sN/<code>.wav`, and word alignments
`alignments/sN/<code>.align` (or `alignments/sN/align/<code>.align`): `start end word` lines
in 1/25,000 s with CRLF endings and `sil` for silence. Codes are GRID's six characters
`command colour preposition letter digit adverb`, where the digit zero is `z` (`bbizzn`: bin
blue in z zero now).

`prepare grid` runs three stages under `--out`:
- `index/`: `utterances.jsonl` (one line per usable utterance; audio from the wav when there
  is one, else the video's audio track; `pad_s`: the zeros a mixture appends to reach
  `samples`, 0.022 s for real GRID's 2.978 s tracks; `align_warning` where the .align file
  is unreadable: alignments are optional, so the clip stays) and `rejects.jsonl` (unreadable
  video or audio, or audio shorter than `samples` by more than `length_tolerance_s`).
  Configured speakers absent from the corpus are counted (`speakers_missing`), not rejected;
- `lists/`: `mixtures.jsonl` (every mixture's utterances, enrolment, SNR, geometry and padding),
  `enrolment.jsonl` and `videos.jsonl` (manifests for the voiceprint and face stages; the
  videos carry their audio `seconds`, which the face stage checks the frame count against),
  and `unbuildable.jsonl` (list mixtures whose utterances are not in the index, with why).
  The splits covered by `--mixture-list` files come from them; every other split is drawn
  from (seed, split) with `mixtures.<split>` mixtures. A split with fewer than two speakers
  on disk is skipped (a partial corpus); one whose speakers are on disk but whose utterances
  were rejected fails, naming the commonest reasons and the rejects file;
- `mix/`: the per-item mixing stage (avtool.corpora.grid_mixtures).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError, ItemError

INDEX_VERSION = 2
LISTS_VERSION = 2
SPLITS = ("train", "valid", "test")
ALIGN_RATE = 25000
_SPEAKER = re.compile(r"^s(\d+)$")
# command colour preposition letter digit adverb; the digit zero is `z`.
_CODE = re.compile(r"^[a-z]{4}[0-9z][a-z]$")
# Official list mixture names: <index>_RIR<k>_<spk>_<utt>_<spk>_<utt>_mix.wav
_LIST_NAME = re.compile(
    r"^(?P<index>\d+)_RIR\d+_(?P<ts>s\d+)_(?P<tu>[a-z0-9]{6})_(?P<is>s\d+)_(?P<iu>[a-z0-9]{6})_mix\.wav$"
)
log = logging.getLogger(__name__)


@dataclass
class SplitSpeakers:
    """The authors' split; `train` empty means every speaker found that is in no other split."""

    train: list[str] = field(default_factory=list)
    valid: list[str] = field(default_factory=lambda: ["s1", "s27", "s30", "s4", "s11", "s25"])
    test: list[str] = field(default_factory=lambda: ["s6", "s12", "s17", "s16", "s18", "s23"])


@dataclass
class MixtureCounts:
    """Mixtures per split: 3 s each, the paper's 30 h / 2.5 h / 2.5 h."""

    train: int = 36000
    valid: int = 3000
    test: int = 3000


@dataclass
class GridConfig:
    speakers: SplitSpeakers = field(default_factory=SplitSpeakers)
    mixtures: MixtureCounts = field(default_factory=MixtureCounts)
    seed: int = 0
    sr: int = 16000
    samples: int = 48000
    snr_db: list[float] = field(default_factory=lambda: [-5.0, 5.0])
    distance_m: list[float] = field(default_factory=lambda: [1.0, 5.0])
    mic_spacing_m: float = 0.07
    audio_dirs: list[str] = field(default_factory=lambda: ["audio_25k", "audio_50k"])
    # Real GRID audio is 131,328 samples at 44.1 kHz = 2.978 s, 0.022 s short of 3 s: audio up to
    # this much shorter than `samples` is zero-padded (and the padding recorded); more is rejected.
    length_tolerance_s: float = 0.1


def parse_align(path: str | Path) -> list[tuple[int, int, str]]:
    """(start, end, word) lines of a GRID .align file, times in 1/25,000 s; CRLF or LF."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ItemError(f"{path}: unreadable .align file ({exc}); re-extract it") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            raise ItemError(f"{path}:{number}: expected `start end word`, got {line.strip()!r}")
        start, end = int(parts[0]), int(parts[1])
        if end < start or (rows and start < rows[-1][1]):
            raise ItemError(f"{path}:{number}: times go backwards ({line.strip()!r})")
        rows.append((start, end, parts[2]))
    if not rows:
        raise ItemError(f"{path}: empty .align file; re-extract the alignments")
    return rows


def speaker_split(found: list[str], config: SplitSpeakers) -> dict[str, str]:
    """speaker -> split, for the speakers found on disk."""
    fixed = {s: "valid" for s in config.valid} | {s: "test" for s in config.test}
    twice = sorted(set(config.valid) & set(config.test) | set(config.train) & set(fixed))
    if twice:
        raise InputError(f"speakers {', '.join(twice)} are in two splits; fix speakers.*")
    train = config.train or [s for s in found if s not in fixed]
    return {s: split for s, split in ({s: "train" for s in train} | fixed).items() if s in found}


def _videos(speaker_dir: Path) -> list[Path]:
    videos = sorted(speaker_dir.glob("*.mpg"))
    return videos or sorted((speaker_dir / "video" / "mpg_6000").glob("*.mpg"))


def _first(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c.is_file()), None)


def _utterance(root: Path, out: Path, video: Path, split: str, config: GridConfig) -> dict:
    from avtool.core.audio import audio_info
    from avtool.core.video import video_info

    speaker, code = video.parent.name, video.stem
    if not _SPEAKER.match(speaker):
        speaker = video.parents[2].name  # sN/video/mpg_6000/<code>.mpg
    if not _CODE.match(code):
        raise ItemError(
            f"{video}: {code!r} is not a six-character GRID code such as bbaf2n or bbizzn"
        )
    info = video_info(video)
    wav = _first(*(root / d / speaker / f"{code}.wav" for d in config.audio_dirs))
    audio = wav or video
    seconds = audio_info(audio).duration
    needed = config.samples / config.sr
    if seconds < needed - config.length_tolerance_s:
        raise ItemError(
            f"{audio}: {seconds:.3f} s of audio, shorter than the {needed:g} s needed "
            f"by more than length_tolerance_s={config.length_tolerance_s:g}"
        )
    entry: dict[str, Any] = {
        "id": f"{speaker}_{code}",
        "speaker": speaker,
        "code": code,
        "split": split,
        "path": os.path.relpath(audio, out),
        "audio_source": "wav" if wav else "video",
        "video": os.path.relpath(video, out),
        "seconds": round(seconds, 6),
        "pad_s": round(max(0.0, needed - seconds), 6),
        "frames": info.frames,
        "width": info.width,
        "height": info.height,
        "words": None,
        "speech": None,
    }
    align = _first(
        root / "alignments" / speaker / f"{code}.align",
        root / "alignments" / speaker / "align" / f"{code}.align",
    )
    if align is not None:
        try:
            words = [(a, b, w) for a, b, w in parse_align(align) if w != "sil"]
        except ItemError as exc:  # alignments are optional: the clip's audio and video stay
            entry["align_warning"] = str(exc)
            return entry
        entry["words"] = " ".join(w for _, _, w in words)
        if words:
            entry["speech"] = [words[0][0] / ALIGN_RATE, words[-1][1] / ALIGN_RATE]
    return entry


def build_index(
    root: Path,
    out: Path,
    config: GridConfig,
    force: bool = False,
    dry_run: bool = False,
    max_reject_rate: float = 0.2,
) -> dict[str, Any]:
    """Stage `prepare.grid.index`: `out/utterances.jsonl` and `out/rejects.jsonl`."""
    from avtool.core import rejects as rejects_module
    from avtool.core.journal import write_jsonl
    from avtool.core.stage import Stage, describe_status

    root, out = Path(root).resolve(), Path(out).resolve()
    if not root.is_dir():
        raise InputError(f"{root}: GRID root not found; give the folder holding s1 ... s34")
    index_config = {
        "speakers": config.speakers,
        "sr": config.sr,
        "samples": config.samples,
        "audio_dirs": config.audio_dirs,
        "length_tolerance_s": config.length_tolerance_s,
    }
    stage = Stage("prepare.grid.index", INDEX_VERSION, out, index_config, inputs=[root])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **stage.status().counts}
    found = sorted(
        (p.name for p in root.iterdir() if p.is_dir() and _SPEAKER.match(p.name)),
        key=lambda s: int(s[1:]),
    )
    if not found:
        raise InputError(f"{root}: no speaker folders s1 ... s34; is this the GRID root?")
    split_of = speaker_split(found, config.speakers)
    missing = [s for split in SPLITS for s in getattr(config.speakers, split) if s not in found]
    if missing:
        log.warning(
            "%s: %d configured speaker(s) not in the corpus (%s); their splits use the rest",
            root,
            len(missing),
            ", ".join(missing),
        )
    rejects: list[dict[str, Any]] = []
    entries = []
    for speaker in found:
        if speaker not in split_of:
            continue
        split = split_of[speaker]
        videos = _videos(root / speaker)
        if not videos:
            rejects.append(
                {
                    "id": speaker,
                    "path": str(root / speaker),
                    "reason": f"{root / speaker}: no .mpg video",
                    "speaker": speaker,
                    "split": split,
                }
            )
        for video in videos:
            try:
                entries.append(_utterance(root, out, video, split, config))
            except ItemError as exc:
                rejects.append(
                    {
                        "id": f"{speaker}_{video.stem}",
                        "path": str(video),
                        "reason": str(exc),
                        "speaker": speaker,
                        "split": split,
                    }
                )
    write_jsonl(out / "utterances.jsonl", entries)
    write_jsonl(out / "rejects.jsonl", rejects)
    counts = {
        "utterances": len(entries),
        "speakers": len(split_of),
        "speakers_missing": len(missing),
        "rejected": len(rejects),
        "padded": sum(1 for e in entries if e["pad_s"] > 0),
        "align_warnings": sum(1 for e in entries if "align_warning" in e),
    }
    rejects_module.enforce(
        rejects_module.RejectSummary(len(entries) + len(rejects), rejects, [out / "rejects.jsonl"]),
        "prepare.grid.index",
        max_reject_rate,
    )
    unaligned = [e for e in entries if "align_warning" in e]
    if unaligned:
        log.warning(
            "%d clip(s) kept without words: their .align file is unreadable (e.g. %s); "
            "see align_warning in %s",
            len(unaligned),
            unaligned[0]["align_warning"],
            out / "utterances.jsonl",
        )
    stage.finish(counts=counts, outputs=["utterances.jsonl", "rejects.jsonl"])
    return {"state": "done", **counts}


def _geometry(rng: np.random.Generator, config: GridConfig) -> dict[str, float]:
    low, high = config.distance_m
    return {
        "snr_db": float(rng.uniform(*config.snr_db)),
        "target_azimuth": float(rng.uniform(0, 2 * np.pi)),
        "target_distance": float(rng.uniform(low, high)),
        "interferer_azimuth": float(rng.uniform(0, 2 * np.pi)),
        "interferer_distance": float(rng.uniform(low, high)),
    }


def reject_summary(rejects: list[dict[str, Any]], path: Path) -> str:
    """'N rejected; commonest: reason (count); ...; see PATH', reasons grouped as core's."""
    from avtool.core.rejects import RejectSummary

    common = RejectSummary(len(rejects), rejects).commonest()
    reasons = "; ".join(f"{reason} ({count})" for reason, count in common)
    return f"{len(rejects)} rejected; commonest: {reasons}; see {path}"


def seeded_mixtures(
    utterances: list[dict],
    config: GridConfig,
    splits: tuple[str, ...] | list[str] = SPLITS,
    rejects: list[dict[str, Any]] | None = None,
    rejects_path: Path | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each split's mixtures from (seed, split) alone: two different speakers, an SNR, a
    geometry, and an enrolment utterance of the target speaker other than the target.

    Returns (mixtures, notes): a split with fewer than two speakers on disk (with usable or
    rejected utterances) is skipped with a note; one with two or more on disk but fewer than
    two usable raises InputError saying which rejects (`rejects`, from `rejects_path`) did it.
    """
    mixtures, notes = [], []
    rejects = rejects or []
    for split in splits:
        number = SPLITS.index(split)
        count = getattr(config.mixtures, split)
        if count == 0:
            continue
        by_speaker: dict[str, list[str]] = {}
        for u in utterances:
            if u["split"] == split:
                by_speaker.setdefault(u["speaker"], []).append(u["id"])
        speakers = sorted(by_speaker, key=lambda s: int(s[1:]))
        # A target needs a second utterance to enrol with.
        targets = [s for s in speakers if len(by_speaker[s]) >= 2]
        rejected = [r for r in rejects if r.get("split") == split]
        on_disk = sorted(set(speakers) | {r["speaker"] for r in rejected}, key=lambda s: int(s[1:]))
        if len(on_disk) < 2:
            notes.append(
                f"split {split}: {len(on_disk)} speaker(s) on disk ({', '.join(on_disk) or 'none'}); "
                "a mixture needs two: no mixtures drawn"
            )
            continue
        if not targets or len(speakers) < 2:
            why = (
                f"the index {reject_summary(rejected, rejects_path or Path('rejects.jsonl'))}"
                if rejected
                else "no utterance was rejected, so the speakers have too few videos"
            )
            raise InputError(
                f"split {split}: {len(speakers)} speaker(s) with usable utterances of "
                f"{len(on_disk)} on disk, {len(targets)} with two or more; need two speakers, "
                f"one with two utterances; {why} (or set mixtures.{split}=0)"
            )
        rng = np.random.default_rng([config.seed, number])
        for index in range(count):
            target_speaker = targets[int(rng.integers(len(targets)))]
            others = [s for s in speakers if s != target_speaker]
            interferer_speaker = others[int(rng.integers(len(others)))]
            own = by_speaker[target_speaker]
            target = own[int(rng.integers(len(own)))]
            rest = [u for u in own if u != target]
            enrol = rest[int(rng.integers(len(rest)))]
            pool = by_speaker[interferer_speaker]
            interferer = pool[int(rng.integers(len(pool)))]
            mixtures.append(
                {
                    "id": f"{split}-{index:06d}",
                    "split": split,
                    "target": target,
                    "interferer": interferer,
                    "enrol": enrol,
                    **_geometry(rng, config),
                }
            )
    return mixtures, notes


def read_mixture_list(path: str | Path, config: GridConfig) -> list[dict[str, Any]]:
    """The LiMuSE authors' list format (see data/limuse_official_lists/README.md).

    Their lists carry no SNR: it is drawn from (seed, line number). `enrol_is_target` marks
    lines whose enrolment is the target utterance itself (the authors' lists hold a few).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: mixture list not found")
    mixtures = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        name = _LIST_NAME.match(Path(fields[0]).name) if len(fields) == 10 else None
        ref = Path(fields[2]) if name else None
        if not name or ref is None or len(ref.parts) < 2:
            raise InputError(
                f"{path}:{number}: expected the authors' 10 fields "
                "(mixture target ref lip_fea az dist az dist gender gender)"
            )
        split = Path(fields[0]).parts[1] if len(Path(fields[0]).parts) > 2 else "test"
        rng = np.random.default_rng([config.seed, number, 7])
        target = f"{name['ts']}_{name['tu']}"
        enrol = f"{ref.parts[-2]}_{ref.stem}"
        mixtures.append(
            {
                "id": f"{split}-{int(name['index']):06d}",
                "split": split,
                "target": target,
                "interferer": f"{name['is']}_{name['iu']}",
                "enrol": enrol,
                "snr_db": float(rng.uniform(*config.snr_db)),
                "target_azimuth": float(fields[4]),
                "target_distance": float(fields[5]),
                "interferer_azimuth": float(fields[6]),
                "interferer_distance": float(fields[7]),
                "enrol_is_target": enrol == target,
                "source": f"{path.name}:{number}",
            }
        )
    return mixtures


def build_lists(
    index_dir: Path,
    out: Path,
    config: GridConfig,
    mixture_lists: list[Path] | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Stage `prepare.grid.lists`: mixtures.jsonl, enrolment.jsonl and videos.jsonl."""
    from avtool.core.journal import read_jsonl, write_jsonl
    from avtool.core.manifest import read_manifest
    from avtool.core.stage import Stage, describe_status

    out = Path(out).resolve()
    index_file = Path(index_dir).resolve() / "utterances.jsonl"
    rejects_file = index_file.parent / "rejects.jsonl"
    lists = [Path(p).resolve() for p in mixture_lists or []]
    stage = Stage(
        "prepare.grid.lists",
        LISTS_VERSION,
        out,
        {"config": config, "mixture_lists": [p.name for p in lists]},
        inputs=[index_file, *lists],
    )
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **stage.status().counts}
    utterances = {u["id"]: u for u in read_manifest(index_file)}
    rejects = list(read_jsonl(rejects_file)) if rejects_file.is_file() else []
    rejected = {r["id"]: r["reason"] for r in rejects}
    listed = [m for p in lists for m in read_mixture_list(p, config)]
    mixtures, unbuildable = [], []
    for m in listed:
        absent = [
            f"{role} {m[role]} "
            + (f"was rejected ({rejected[m[role]]})" if m[role] in rejected else "is not on disk")
            for role in ("target", "interferer", "enrol")
            if m[role] not in utterances
        ]
        if absent:
            unbuildable.append({"id": m["id"], "source": m["source"], "reason": "; ".join(absent)})
        else:
            mixtures.append(m)
    covered = {m["split"] for m in listed}
    seeded, notes = seeded_mixtures(
        list(utterances.values()),
        config,
        [s for s in SPLITS if s not in covered],
        rejects,
        rejects_file,
    )
    mixtures += seeded
    for note in notes:
        log.warning("%s", note)
    if unbuildable:
        log.warning(
            "%d of %d listed mixture(s) name utterances that are not in the index; "
            "see %s (e.g. %s: %s)",
            len(unbuildable),
            len(listed),
            out / "unbuildable.jsonl",
            unbuildable[0]["id"],
            unbuildable[0]["reason"],
        )

    def where(uid: str, key: str) -> str | None:
        # read_manifest made `path` absolute; `video` is still relative to the index folder.
        u = utterances.get(uid)
        return os.path.relpath(index_file.parent / u[key], out) if u else None

    for m in mixtures:
        m["path"] = f"../mix/{m['split']}/{m['id']}-mix.wav"
        m["target_path"] = f"../mix/{m['split']}/{m['id']}-target.wav"
        for role in ("target", "interferer", "enrol"):
            m[f"{role}_audio"] = where(m[role], "path")
        for role in ("target", "interferer"):
            m[f"{role}_pad_s"] = utterances[m[role]]["pad_s"]
        m["target_video"] = where(m["target"], "video")

    def manifest(role: str, key: str) -> list[dict[str, Any]]:
        chosen = sorted({m[role] for m in mixtures})
        return [
            {
                "id": uid,
                "path": where(uid, key),
                "speaker": utterances[uid]["speaker"],
                "seconds": utterances[uid]["seconds"],
            }
            for uid in chosen
        ]

    write_jsonl(out / "mixtures.jsonl", mixtures)
    write_jsonl(out / "enrolment.jsonl", manifest("enrol", "path"))
    write_jsonl(out / "videos.jsonl", manifest("target", "video"))
    write_jsonl(out / "unbuildable.jsonl", unbuildable)
    counts = {f"mixtures_{s}": sum(1 for m in mixtures if m["split"] == s) for s in SPLITS}
    counts["enrol_is_target"] = sum(1 for m in mixtures if m.get("enrol_is_target"))
    counts["unbuildable"] = len(unbuildable)
    counts["splits_skipped"] = len(notes)
    outputs = ["mixtures.jsonl", "enrolment.jsonl", "videos.jsonl", "unbuildable.jsonl"]
    stage.finish(counts=counts, outputs=outputs)
    return {"state": "done", **counts}
