"""`report ser`: one table row per evaluated run (Markdown and HTML), and its confusion figure.

The report's published accuracy appears only on rows run under the report's own protocol
(one stratified random 80/20 split); on other protocols its cell reads "n/a (other protocol)".
Figures are named after each run's path below the runs' common folder, so `runs/random/cnn`
and `runs/actors/cnn` give `random-cnn-confusion.png` and `actors-cnn-confusion.png`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from avtool.core.errors import InputError
from avtool.recipes.ser.config import DISPLAY, PAPER
from avtool.recipes.ser.data import is_paper_protocol
from avtool.recipes.ser.evaluate import protocol_label

REPORT_VERSION = 2


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def figure_names(runs: list[Path]) -> list[str]:
    """A distinct file-name stem per run: its path below the runs' common folder."""
    resolved = [Path(r).resolve() for r in runs]
    common = Path(os.path.commonpath(resolved)) if len(resolved) > 1 else resolved[0].parent
    stems = []
    for path in resolved:
        relative = path.relative_to(common) if path != common else Path(path.name)
        stem = re.sub(r"[^A-Za-z0-9_.]+", "-", "-".join(relative.parts)).strip("-") or "run"
        stems.append(stem)
    seen: dict[str, int] = {}
    unique = []
    for stem in stems:  # the same run given twice
        seen[stem] = seen.get(stem, 0) + 1
        unique.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return unique


def test_cell(results: dict[str, Any]) -> str:
    if len(results["folds"]) == 1:
        return _percent(results["accuracy"])
    return f"{100 * results['accuracy']:.2f}% ± {100 * results['accuracy_std']:.2f}"


def report_ser(
    runs: list[Path], out: Path, force: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """The report's comparison table (Markdown and HTML), one row per run, and the figures."""
    import html

    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status

    runs = [Path(r) for r in runs]
    stamps = [r / "evaluation" / "stage.json" for r in runs]
    missing = [str(r) for r, s in zip(runs, stamps, strict=True) if not s.exists()]
    if missing:
        raise InputError(f"{', '.join(missing)}: not evaluated; run `avtool evaluate ser` first")
    stage = Stage("report.ser", REPORT_VERSION, out, {"runs": [str(r) for r in runs]}, stamps)
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", "table": (Path(out) / "table.md").read_text()}
    header = [
        "Model", "Protocol", "Folds (accuracy each)", "Params (torch)", "Train acc.",
        "Test acc. (mean ± std over folds)", "Report test acc.", "Best recognized emotion",
        "Weakest recognized emotion",
    ]  # fmt: skip
    rows, outputs = [], ["table.md", "table.html"]
    (Path(out) / "figures").mkdir(parents=True, exist_ok=True)
    for run, stem in zip(runs, figure_names(runs), strict=True):
        results = json.loads((run / "evaluation" / "results.json").read_text())
        model, protocol = results["model"], results["protocol"]
        best, weakest = results["best_emotion"], results["weakest_emotion"]
        params = results.get("parameters") or {}
        if model not in PAPER:
            paper = "–"
        elif is_paper_protocol(protocol):
            paper = _percent(PAPER[model]["test"])
        else:
            paper = "n/a (other protocol)"
        each = ", ".join(f"{100 * f['accuracy']:.1f}" for f in results["folds"])
        rows.append([
            DISPLAY[model],
            protocol_label(protocol),
            f"{len(results['folds'])} ({each})",
            f"{params['total']:,}" if params else "–",
            _percent(results.get("train_accuracy")),
            test_cell(results),
            paper,
            f"{best.capitalize()} ({100 * results['recall'][best]:.0f}% recall)",
            f"{weakest.capitalize()} ({100 * results['recall'][weakest]:.0f}% recall)",
        ])  # fmt: skip
        figure = f"figures/{stem}-confusion.png"
        shutil.copyfile(run / "evaluation" / "confusion.png", Path(out) / figure)
        outputs.append(figure)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    figures = [f"![{Path(f).stem}]({f})" for f in outputs[2:]]
    markdown = "\n".join(lines) + "\n\n" + "\n".join(figures) + "\n"
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    images = "".join(f'<img src="{html.escape(f)}" width="420">' for f in outputs[2:])
    page = (
        "<!doctype html><meta charset='utf-8'><title>SER comparison</title>"
        f"<table border='1'><tr>{cells}</tr>{body}</table><div>{images}</div>\n"
    )
    atomic.write_text(Path(out) / "table.md", markdown)
    atomic.write_text(Path(out) / "table.html", page)
    stage.finish(counts={"runs": len(runs)}, outputs=outputs)
    return {"state": "done", "table": "\n".join(lines)}
