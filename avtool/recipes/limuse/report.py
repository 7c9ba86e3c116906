"""`report limuse`: Table 2's columns for every evaluated run found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError
from avtool.recipes.limuse.config import PAPER, REPORT_VERSION
from avtool.recipes.limuse.evaluate import histogram


def find_runs(paths: list[Path]) -> list[Path]:
    """Evaluated runs at or under each path, sorted."""
    found = set()
    for path in map(Path, paths):
        if (path / "evaluation" / "results.json").is_file():
            found.add(path.resolve())
        found.update(p.parent.parent.resolve() for p in path.glob("**/evaluation/results.json"))
    return sorted(found)


def report_limuse(
    paths: list[Path], out: Path, force: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """Table 2 (table.md): method, K, SI-SDR, SI-SDRi, #params, model size, compression ratio,
    with the paper's figures beside ours, and the SI-SDRi histogram of every run."""
    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status

    runs = find_runs(paths)
    if not runs:
        raise InputError(
            f"{', '.join(map(str, paths))}: no evaluated run; run `avtool evaluate limuse`"
        )
    stamps = [r / "evaluation" / "stage.json" for r in runs]
    stage = Stage("report.limuse", REPORT_VERSION, out, {"runs": [str(r) for r in runs]}, stamps)
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", "table": (Path(out) / "table.md").read_text()}
    header = ["Run", "Method", "K", "SI-SDR (dB)", "SI-SDRi (dB)", "#Params", "Model size",
              "Compression ratio", "Paper SI-SDR", "Paper #Params", "Paper size"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    gains = {}
    for run in runs:
        results = json.loads((run / "evaluation" / "results.json").read_text())
        k = results["groups"] if results["arch"] == "limuse" else 1
        method = results["method"]
        paper = PAPER.get((method.replace(" [visual shuffled]", ""), k), ("–", "–", "–"))
        size = results["bytes"]
        ratio = results.get("compression_ratio")
        lines.append(
            "| " + " | ".join([
                run.name, method, str(k) if k > 1 else "-",
                f"{results['si_sdr']:.2f} ± {results['si_sdr_std']:.2f}",
                f"{results['si_sdri']:.2f} ± {results['si_sdri_std']:.2f}",
                f"{results['params']:,}",
                f"{size:,} B ({size / 1e6:.3f} MB{', packed' if results['packed'] else ''})",
                f"{ratio:.2f}" if ratio else "-",
                str(paper[0]), paper[1], paper[2],
            ]) + " |"
        )  # fmt: skip
        per_item = [
            json.loads(line)
            for line in (run / "evaluation" / "items.jsonl").read_text().splitlines()
            if line
        ]
        gains[f"{run.name}: {method}"] = np.array([r["si_sdri"] for r in per_item])
    table = "\n".join(lines)
    Path(out).mkdir(parents=True, exist_ok=True)
    histogram(Path(out) / "si_sdri.png", gains)
    atomic.write_text(Path(out) / "table.md", table + "\n\n![SI-SDRi](si_sdri.png)\n")
    stage.finish(counts={"runs": len(runs)}, outputs=["table.md", "si_sdri.png"])
    return {"state": "done", "table": table}
