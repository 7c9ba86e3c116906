"""`avtool report atl`: the ATL results on one page (report.md) with its figures.

Sections: the generator (parameters, loss per epoch and its curve), BLEU on token lists per
evaluated split, the genre classifiers (accuracy on held-out real lyrics and on generated
lyrics, beside the report's 95% and 43%), their confusion matrices, and sample generations
per genre.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

from avtool.core.errors import InputError

REPORT_VERSION = 1
# The ATL report's figures: LSTM accuracy on MetroLyrics' test split (§3.2.1) and on the
# generated lyrics (§3.2.2: 22% + 21% on the diagonal).
PAPER_ACCURACY = {"real": 0.95, "generated": 0.43}
SAMPLES_PER_GENRE = 2
SAMPLE_LINES = 4


def _json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{path}: missing; run {what} first")
    return json.loads(path.read_text())


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def report_atl(
    lyrics_run: Path,
    genre_runs: list[Path],
    classified: list[Path],
    out: Path,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Write OUT/report.md and OUT/figures/*.png from finished ATL stages."""
    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status
    from avtool.recipes.atl.figures import curves_figure
    from avtool.recipes.atl.genre import DISPLAY

    lyrics_run, out = Path(lyrics_run), Path(out)
    genre_runs, classified = [Path(r) for r in genre_runs], [Path(c) for c in classified]
    evaluations = sorted(lyrics_run.glob("evaluation-*/stage.json"))
    if not evaluations:
        raise InputError(f"{lyrics_run}: not evaluated; run `avtool evaluate lyrics` first")
    inputs = [lyrics_run / "stage.json", *evaluations]
    inputs += [r / "evaluation" / "stage.json" for r in genre_runs]
    inputs += [c / "stage.json" for c in classified]
    missing = [str(p) for p in inputs if not p.is_file()]
    if missing:
        raise InputError(f"{', '.join(missing)}: missing; run the ATL stages before the report")
    config = {
        "lyrics": str(lyrics_run),
        "genre": [str(r) for r in genre_runs],
        "classified": [str(c) for c in classified],
    }
    stage = Stage("report.atl", REPORT_VERSION, out, config, inputs)
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", "report": str(out / "report.md")}
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    outputs = ["report.md", "figures/generator-loss.png"]
    summary = _json(lyrics_run / "summary.json", "`avtool train lyrics`")
    history = [
        json.loads(line) for line in (lyrics_run / "metrics.jsonl").read_text().splitlines() if line
    ]
    curves_figure(
        figures / "generator-loss.png", history, ["train_loss", "val_loss"],
        "Lyric generator: cross-entropy per epoch",
    )  # fmt: skip
    md = ["# ATL: audio to lyrics", "", "## Lyric generator", ""]
    md += [
        f"Parameters: {summary['parameters']['total']:,}; vocabulary {summary['vocabulary']:,} "
        "(with padding); songs "
        + ", ".join(f"{split} {count}" for split, count in summary["songs"].items())
        + f"; epochs {summary['epochs_run']}.",
        "",
        f"Training loss: {summary['first_train_loss']:.3f} (epoch 1) -> "
        f"{summary['last_train_loss']:.3f} (epoch {summary['epochs_run']}).",
        "",
        "![generator loss](figures/generator-loss.png)",
        "",
        "## BLEU (token lists; continuation of each line from `startseq` + its first word)",
        "",
    ]
    rows, bleu = [], {}
    for stamp in evaluations:
        results = json.loads((stamp.parent / "results.json").read_text())
        bleu[results["split"]] = results
        rows.append([
            results["split"], str(results["songs"]), str(results["lines"]),
            f"{results['bleu_corpus']:.2f}", f"{results['bleu_sentence_mean']:.4f}",
        ])  # fmt: skip
    md += _table(
        ["Split", "Songs", "Lines", "corpus BLEU (sacrebleu, 0-100)", "mean sentence BLEU (NLTK)"],
        rows,
    )
    generated_accuracy = {}
    for directory in classified:
        results = json.loads((directory / "results.json").read_text())
        generated_accuracy[str(Path(results["classifier_run"]))] = results
    md += ["", "## Genre classifier", ""]
    rows = []
    for run in genre_runs:
        real = json.loads((run / "evaluation" / "results.json").read_text())
        params = real.get("parameters") or {}
        generated = generated_accuracy.get(str(run), {})
        rows.append([
            DISPLAY[real["model"]],
            f"{params['torch']:,} (Keras {params['keras']:,})" if params else "–",
            f"{_percent(real['accuracy'])} of {real['items']}",
            f"{_percent(generated.get('accuracy'))} of {generated.get('items', 0)}"
            if generated else "–",
        ])  # fmt: skip
    md += _table(["Model", "Parameters", "Real lyrics (held out)", "Generated lyrics"], rows)
    md += [
        "",
        f"The report: LSTM {_percent(PAPER_ACCURACY['real'])} on MetroLyrics' test split, "
        f"{_percent(PAPER_ACCURACY['generated'])} on its generated lyrics.",
        "",
    ]
    for index, run in enumerate(genre_runs):
        name = f"figures/genre-{index}-{run.name}-real.png"
        shutil.copyfile(run / "evaluation" / "confusion.png", out / name)
        outputs.append(name)
        md.append(f"![{run.name} on real lyrics]({name})")
    for index, directory in enumerate(classified):
        name = f"figures/generated-{index}-{directory.name}.png"
        shutil.copyfile(directory / "confusion.png", out / name)
        outputs.append(name)
        md.append(f"![{directory.name} on generated lyrics]({name})")
    md += ["", "## Sample generations (sampled from `startseq`, per song's clip)", ""]
    md += _samples(lyrics_run, bleu)
    atomic.write_text(out / "report.md", "\n".join(md) + "\n")
    stage.finish(counts={"genre_runs": len(genre_runs)}, outputs=outputs)
    return {"state": "done", "report": str(out / "report.md")}


def _samples(lyrics_run: Path, bleu: dict[str, Any]) -> list[str]:
    split = "test" if "test" in bleu else next(iter(bleu))
    path = lyrics_run / f"evaluation-{split}" / "generated.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    lines: list[str] = []
    for genre in sorted({row["Genre"] for row in rows}):
        lines += [f"### {genre} ({split} songs)", ""]
        songs = list(dict.fromkeys(r["id"] for r in rows if r["Genre"] == genre))
        for song in songs[:SAMPLES_PER_GENRE]:
            text = [r["Lyric Generated"] for r in rows if r["id"] == song][:SAMPLE_LINES]
            lines += [f"- `{song}`:"] + [f"  > {line}" for line in text] + [""]
    return lines
