"""DCASE sound event detection scores through sed_eval, with the settings of the SED paper (§4.3.2).

- clip-based (audio tagging) micro F1: a clip's tags are the classes of its events
  (`sed_eval.audio_tag.AudioTaggingMetrics`);
- segment-based micro F1 and error rate over 1 s segments (`SegmentBasedMetrics`,
  time_resolution=1.0);
- event-based macro and micro F1 (`EventBasedMetrics`, t_collar=0.2, percentage_of_length=0.2,
  onsets and offsets evaluated). sed_eval accepts an offset within max(200 ms, 20% of the
  reference event's length): the DCASE challenge setting the paper cites ("20% of the length,
  up to 200 ms" in its words).

A system that outputs nothing scores F1 = 0 rather than sed_eval's default NaN
(`empty_system_output_handling="zero_score"`, as the DCASE baselines set for events; the same
for segments and tags here). A class without reference events has no F1 of its own (None),
and sed_eval's macro average leaves it out. The error rate is (S + D + I) / N: it can pass 1.

As in the DCASE task 4 baselines, the evaluated clips are those of the reference (or `clip_ids`),
each scored on its own, and the classes are those named in either list unless `classes` is given.
Event lists are the DCASE text format: tab-separated, one event a row, columns found by their
header names (`filename`, `onset`, `offset`, `event_label`; `event_onset`/`event_offset` too)
in any order; without a header the order is `filename onset offset event_label`. A row whose
onset, offset and label are empty names a clip without events. Clips match on the file name
without folders and without `.wav`, so `Y..._30.000_40.000.wav`, `audio/Y..._30.000_40.000.wav`
and the manifest id `Y..._30.000_40.000` are one clip.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from avtool.core.errors import InputError

SEGMENT_SECONDS = 1.0
T_COLLAR = 0.2
PERCENTAGE_OF_LENGTH = 0.2
HEADLINE = (
    "clip_f1_micro",
    "segment_f1_micro",
    "segment_error_rate",
    "event_f1_macro",
    "event_f1_micro",
)
_ALIASES = {
    "filename": ("filename", "file", "file_name", "audio_filename"),
    "onset": ("onset", "event_onset"),
    "offset": ("offset", "event_offset"),
    "event_label": ("event_label", "label", "event"),
}
_POSITIONAL = ("filename", "onset", "offset", "event_label")


def clip_key(name: str) -> str:
    """The clip a file name or manifest id designates: no folders, no `.wav`."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    return base[: -len(".wav")] if base.lower().endswith(".wav") else base


def read_event_list(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a DCASE event list as dicts (filename, onset, offset, event_label).

    A clip without events comes back as one row whose onset, offset and label are None.
    Raises InputError naming the file and line of a row it cannot read.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: event list not found; check the path")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    rows: list[dict[str, Any]] = []
    columns = _header_columns(lines[0].split("\t")) if lines else None
    start = 1 if columns else 0
    columns = columns or dict(zip(_POSITIONAL, range(4), strict=True))
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        rows.append(_parse_row(fields, columns, f"{path}:{number}"))
    return rows


def _header_columns(fields: list[str]) -> dict[str, int] | None:
    names = [f.strip().lower() for f in fields]
    found = {}
    for key, aliases in _ALIASES.items():
        for index, name in enumerate(names):
            if name in aliases:
                found[key] = index
                break
    if "filename" not in found:
        return None
    if "event_label" not in found:
        raise InputError(
            f"header {fields!r} has no event_label column; an event list needs "
            "filename, onset, offset and event_label"
        )
    return found


def _parse_row(fields: list[str], columns: dict[str, int], where: str) -> dict[str, Any]:
    def field(key: str) -> str:
        index = columns.get(key)
        return fields[index].strip() if index is not None and index < len(fields) else ""

    filename = field("filename")
    if not filename:
        raise InputError(f"{where}: empty file name; every row needs one")
    onset, offset, label = field("onset"), field("offset"), field("event_label")
    if not onset and not offset and not label:
        return {"filename": filename, "onset": None, "offset": None, "event_label": None}
    try:
        start, end = float(onset), float(offset)
    except ValueError:
        raise InputError(
            f"{where}: onset {onset!r} / offset {offset!r} are not numbers; fix the row"
        ) from None
    if not label:
        raise InputError(f"{where}: event without a label; fix or remove the row")
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise InputError(f"{where}: offset {offset} before onset {onset}; fix the row")
    return {"filename": filename, "onset": start, "offset": end, "event_label": label}


def _as_rows(source: Path | str | Iterable[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    if isinstance(source, str | Path):
        return read_event_list(source)
    rows = []
    for index, row in enumerate(source):
        filename = row.get("filename", row.get("id"))
        if filename is None:
            raise InputError(f"{what} event {index}: no filename; each event needs one")
        label = row.get("event_label") or None
        onset, offset = row.get("onset"), row.get("offset")
        if label is not None and (onset is None or offset is None):
            raise InputError(
                f"{what} event {index} ({filename}): label {label!r} without onset and offset"
            )
        rows.append(
            {
                "filename": str(filename),
                "onset": None if onset is None or label is None else float(onset),
                "offset": None if offset is None or label is None else float(offset),
                "event_label": label,
            }
        )
    return rows


def _by_clip(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    clips: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        events = clips.setdefault(clip_key(row["filename"]), [])
        if row["event_label"] is not None:
            events.append(row)
    return clips


def metric_versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ("sed_eval", "dcase_util")}


def _import_sed_eval():
    with warnings.catch_warnings():
        # dcase_util imports pkg_resources, which warns about its own deprecation.
        warnings.simplefilter("ignore")
        import dcase_util
        import sed_eval
    return sed_eval, dcase_util


def evaluate_event_lists(
    reference: Path | list[dict],
    estimated: Path | list[dict],
    clip_ids: list[str] | None = None,
    *,
    classes: list[str] | None = None,
    segment_seconds: float = SEGMENT_SECONDS,
    t_collar: float = T_COLLAR,
    percentage_of_length: float = PERCENTAGE_OF_LENGTH,
) -> dict[str, Any]:
    """Clip, segment and event scores of `estimated` against `reference` (see the module doc).

    Returns the headline fractions (`HEADLINE`), precision/recall beside them, per-class F1 of
    each kind (None where sed_eval has no value), counts, the settings and metric versions.
    """
    sed_eval, dcase_util = _import_sed_eval()
    reference_clips = _by_clip(_as_rows(reference, "reference"))
    estimated_clips = _by_clip(_as_rows(estimated, "estimated"))
    if clip_ids is not None:
        evaluated = list(dict.fromkeys(clip_key(c) for c in clip_ids))
    else:
        evaluated = list(reference_clips)
    if not evaluated:
        raise InputError("the reference names no clip; nothing to evaluate")
    chosen = set(evaluated)
    if classes is None:
        labels = {
            e["event_label"]
            for clips in (reference_clips, estimated_clips)
            for key, events in clips.items()
            if key in chosen
            for e in events
        }
        classes = sorted(labels)
    if not classes:
        raise InputError(
            "neither list names an event label in the evaluated clips; nothing to score"
        )
    segment = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=classes, time_resolution=segment_seconds
    )
    # The base class's option, which this subclass's constructor does not pass on.
    segment.empty_system_output_handling = "zero_score"
    event = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=classes,
        t_collar=t_collar,
        percentage_of_length=percentage_of_length,
        evaluate_onset=True,
        evaluate_offset=True,
        empty_system_output_handling="zero_score",
    )
    tagging = sed_eval.audio_tag.AudioTaggingMetrics(tags=classes)
    container = dcase_util.containers.MetaDataContainer
    for key in evaluated:
        ref = [_sed_event(e) for e in reference_clips.get(key, [])]
        est = [_sed_event(e) for e in estimated_clips.get(key, [])]
        segment.evaluate(reference_event_list=container(ref), estimated_event_list=container(est))
        event.evaluate(reference_event_list=container(ref), estimated_event_list=container(est))
        tagging.evaluate(
            reference_tag_list=container([_tags(key, ref)]),
            estimated_tag_list=container([_tags(key, est)]),
        )
    return _collect(
        tagging,
        segment,
        event,
        classes,
        evaluated,
        ignored=sorted(set(estimated_clips) - chosen),
        missing=sum(1 for key in evaluated if key not in reference_clips),
        empty=sum(1 for key in evaluated if not reference_clips.get(key)),
        settings={
            "segment_seconds": segment_seconds,
            "t_collar": t_collar,
            "percentage_of_length": percentage_of_length,
            "evaluate_onset": True,
            "evaluate_offset": True,
            "empty_system_output_handling": "zero_score",
        },
    )


def _sed_event(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "filename": clip_key(row["filename"]) + ".wav",
        "onset": row["onset"],
        "offset": row["offset"],
        "event_label": row["event_label"],
    }


def _tags(key: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"filename": key + ".wav", "tags": sorted({e["event_label"] for e in events})}


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _collect(
    tagging: Any,
    segment: Any,
    event: Any,
    classes: list[str],
    evaluated: list[str],
    ignored: list[str],
    missing: int,
    empty: int,
    settings: dict[str, Any],
) -> dict[str, Any]:
    clip_overall = dict(tagging.results_overall_metrics()["f_measure"])
    if not tagging.overall["Nsys"] and tagging.overall["Nref"]:
        # No tag at all: sed_eval leaves F1 undefined here; zero, as its other metrics do.
        clip_overall.update(f_measure=0.0, precision=0.0, recall=0.0)
    segment_overall = segment.results_overall_metrics()
    event_overall = event.results_overall_metrics()
    event_average = event.results_class_wise_average_metrics()
    clip_classes = tagging.results_class_wise_metrics()
    segment_classes = segment.results_class_wise_metrics()
    event_classes = event.results_class_wise_metrics()
    results = {
        "clip_f1_micro": _number(clip_overall["f_measure"]),
        "clip_precision_micro": _number(clip_overall["precision"]),
        "clip_recall_micro": _number(clip_overall["recall"]),
        "segment_f1_micro": _number(segment_overall["f_measure"]["f_measure"]),
        "segment_precision_micro": _number(segment_overall["f_measure"]["precision"]),
        "segment_recall_micro": _number(segment_overall["f_measure"]["recall"]),
        "segment_error_rate": _number(segment_overall["error_rate"]["error_rate"]),
        "event_f1_macro": _number(event_average["f_measure"]["f_measure"]),
        "event_f1_micro": _number(event_overall["f_measure"]["f_measure"]),
        "event_error_rate": _number(event_overall["error_rate"]["error_rate"]),
        "per_class": {
            name: {
                "clip_f1": _number(clip_classes[name]["f_measure"]["f_measure"]),
                "segment_f1": _number(segment_classes[name]["f_measure"]["f_measure"]),
                "event_f1": _number(event_classes[name]["f_measure"]["f_measure"]),
            }
            for name in classes
        },
        "counts": {
            "clips": len(evaluated),
            "clips_not_in_reference": missing,
            "clips_without_reference_events": empty,
            "estimated_clips_not_evaluated": len(ignored),
            "reference_events": int(event.overall["Nref"]),
            "estimated_events": int(event.overall["Nsys"]),
        },
        "classes": classes,
        "settings": settings,
        "versions": metric_versions(),
    }
    return results


def evaluate_files(
    reference: Path,
    estimated: Path,
    out: Path,
    *,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """The `evaluate sed --reference --estimated` stage: `out/results.json`, then the stamp."""
    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status

    reference, estimated, out = Path(reference), Path(estimated), Path(out)
    for path, what in ((reference, "reference"), (estimated, "estimated")):
        if not path.is_file():
            raise InputError(f"{path}: {what} event list not found; check the path")
    settings = {
        "segment_seconds": SEGMENT_SECONDS,
        "t_collar": T_COLLAR,
        "percentage_of_length": PERCENTAGE_OF_LENGTH,
    }
    stage = Stage("evaluate.sed", 1, out, settings, inputs=[reference, estimated])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        results = json.loads((out / "results.json").read_text())
        return {"state": "up-to-date", **{k: results[k] for k in HEADLINE}}
    results = evaluate_event_lists(reference, estimated)
    results["reference"], results["estimated"] = str(reference), str(estimated)
    atomic.write_json(out / "results.json", results)
    stage.finish(counts=results["counts"], outputs=["results.json"])
    return {"state": "done", **{k: results[k] for k in HEADLINE}}
