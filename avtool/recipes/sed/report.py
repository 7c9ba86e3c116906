"""`report sed`: Table 3 over every evaluated run, per-class F1 bars, event timelines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError
from avtool.recipes.sed.data import CLIP_SECONDS, HEADLINE, PAPER

REPORT_VERSION = 1


def find_evaluated_runs(paths: list[Path]) -> list[Path]:
    """Evaluated `train sed` runs at or below `paths` (their `evaluation/results.json`)."""
    found = []
    for path in paths:
        path = Path(path)
        candidates = [path] if (path / "evaluation" / "results.json").is_file() else []
        candidates += sorted(p.parent.parent for p in path.rglob("evaluation/results.json"))
        for run in candidates:
            results = json.loads((run / "evaluation" / "results.json").read_text())
            if results.get("system") == "sed" and run not in found:
                found.append(run)
    if not found:
        raise InputError(
            f"{', '.join(map(str, paths))}: no evaluated sed run; run `avtool evaluate sed --run`"
        )
    return found


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def report_sed(
    runs: list[Path],
    out: Path,
    clips: list[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Table 3 (Markdown) over every evaluated run found, per-class F1 bars, event timelines."""
    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status

    out = Path(out)
    found = find_evaluated_runs(runs)
    stamps = [r / "evaluation" / "stage.json" for r in found]
    identity = {"runs": [str(r) for r in found], "clips": list(clips or [])}
    stage = Stage("report.sed", REPORT_VERSION, out, identity, stamps)
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", "table": (out / "table.md").read_text()}
    results = [json.loads((r / "evaluation" / "results.json").read_text()) for r in found]
    order = list(PAPER)
    rows = sorted(
        zip(found, results, strict=True),
        key=lambda rr: (order.index(tuple(rr[1]["inputs"])), str(rr[0])),
    )
    mark = {True: "✓", False: "–"}
    header = [
        "Spectral", "Pretrained auditory", "Pretrained visual", "Clip-based micro F1",
        "Segment-based micro F1", "Event-based macro F1", "Seeds (best/all)", "Run",
        "Paper (clip / segment / event)",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run, result in rows:
        inputs, protocol = result["inputs"], result["protocol"]
        paper = PAPER[tuple(inputs)]
        cells = [mark["spectral" in inputs], mark["vggish" in inputs], mark["vgg16" in inputs]]
        cells += [
            f"{_percent(protocol['test'][k])} ± {100 * protocol['test_std'][k]:.2f}"
            for k in HEADLINE
        ]
        cells += [
            f"{len(protocol['selected'])}/{protocol['of']}",
            run.name,
            " / ".join(_percent(v) for v in paper),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    figures = ["figures/per_class_f1.png"]
    _per_class_figure(out / figures[0], rows)
    for clip_id in _timeline_clips(rows, clips):
        name = f"figures/timeline-{clip_id}.png"
        _timeline_figure(out / name, clip_id, rows)
        figures.append(name)
    versions = results[0].get("metric_versions", {})
    notes = (
        "\n\nTest scores: mean ± std over the seeds with the best validation scores (§5). "
        f"Metrics: sed_eval {versions.get('sed_eval', '?')}; segments 1 s; event onset "
        "collar 200 ms, offset 20% of the length (at least 200 ms).\n\n"
    )
    markdown = table + notes + "\n".join(f"![{Path(f).stem}]({f})" for f in figures) + "\n"
    atomic.write_text(out / "table.md", markdown)
    stage.finish(counts={"runs": len(found)}, outputs=["table.md", *figures])
    return {"state": "done", "table": table}


def _label(inputs: list[str]) -> str:
    return " + ".join(
        {"spectral": "log-mel", "vggish": "VGGish", "vgg16": "VGG16"}[s] for s in inputs
    )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> None:
    from avtool.core import atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90)


def _per_class(result: dict[str, Any], kind: str) -> dict[str, float]:
    """Per-class F1 of `kind` (segment/event) averaged over the selected seeds' test scores."""
    from avtool.corpora.dcase2018 import CLASSES

    chosen = result["protocol"]["selected"]
    values = {}
    for label in CLASSES:
        scores = [result["seeds"][s]["test"]["per_class"][label][f"{kind}_f1"] for s in chosen]
        values[label] = float(np.mean([v for v in scores if v is not None] or [0.0]))
    return values


def _per_class_figure(path: Path, rows: list[tuple[Path, dict]]) -> None:
    from avtool.corpora.dcase2018 import CLASSES

    plt = _pyplot()
    figure, axes = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    width = 0.8 / len(rows)
    x = np.arange(len(CLASSES))
    for panel, kind in zip(axes, ("segment", "event"), strict=True):
        for i, (_, result) in enumerate(rows):
            values = _per_class(result, kind)
            panel.bar(
                x + i * width, [values[c] for c in CLASSES], width, label=_label(result["inputs"])
            )
        panel.set_ylabel(f"{kind}-based F1")
        panel.set_ylim(0, 1)
    axes[1].set_xticks(x + 0.4 - width / 2, CLASSES, rotation=30, ha="right")
    axes[0].legend(fontsize=7, ncol=2)
    axes[0].set_title("Per-class test F1 (selected seeds)")
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)


def _timeline_clips(rows: list[tuple[Path, dict]], clips: list[str] | None) -> list[str]:
    """The clips asked for, else the three test clips with the most reference events."""
    from avtool.metrics.sed import clip_key, read_event_list

    reference = read_event_list(rows[0][0] / "evaluation" / "test_reference.tsv")
    counts: dict[str, int] = {}
    for row in reference:
        key = clip_key(row["filename"])
        counts[key] = counts.get(key, 0) + (1 if row.get("event_label") else 0)
    if clips:
        unknown = [c for c in clips if clip_key(c) not in counts]
        if unknown:
            raise InputError(f"--clip {unknown[0]}: not a test clip of {rows[0][0]}")
        return [clip_key(c) for c in clips]
    return sorted(counts, key=lambda k: (-counts[k], k))[:3]


def _timeline_figure(path: Path, clip_id: str, rows: list[tuple[Path, dict]]) -> None:
    """Reference events and each setting's best seed's predictions of one clip, per class."""
    from avtool.corpora.dcase2018 import CLASSES
    from avtool.metrics.sed import clip_key, read_event_list

    tracks = [("reference", rows[0][0] / "evaluation" / "test_reference.tsv")]
    for run, result in rows:
        best = result["protocol"]["selected"][0]
        tracks.append(
            (
                f"{_label(result['inputs'])} ({best})",
                run / "evaluation" / best / "test_predictions.tsv",
            )
        )
    plt = _pyplot()
    figure, axes = plt.subplots(len(tracks), 1, figsize=(10, 1.2 + 1.1 * len(tracks)), sharex=True)
    axes = np.atleast_1d(axes)
    colours = plt.get_cmap("tab10")
    for panel, (name, events_file) in zip(axes, tracks, strict=True):
        for row in read_event_list(events_file):
            if clip_key(row["filename"]) != clip_id or not row.get("event_label"):
                continue
            c = CLASSES.index(row["event_label"])
            panel.broken_barh(
                [(row["onset"], row["offset"] - row["onset"])], (c - 0.4, 0.8), color=colours(c)
            )
        panel.set_yticks(range(len(CLASSES)), CLASSES, fontsize=6)
        panel.set_ylim(-0.6, len(CLASSES) - 0.4)
        panel.set_title(name, fontsize=8, loc="left")
    axes[-1].set_xlim(0, rows[0][1].get("clip_seconds", CLIP_SECONDS))
    axes[-1].set_xlabel("seconds")
    figure.suptitle(clip_id, fontsize=9)
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)
