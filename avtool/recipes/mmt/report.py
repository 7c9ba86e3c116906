"""Report: the table (every run and grid value, the chosen one marked) and a figure per image.

Figure colours are matched to the ground truth shown (annotator 1): each human segment has a
colour, and each predicted segment takes the colour of the human segment it is paired with by
the same Hungarian matching that scores it; unpaired segments get colours no human segment uses.
The same object then has the same colour in every panel.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError

REPORT_VERSION = 2  # 2: per-run rows with settings and selection, matched colours

_SELECTION_NOTE = {
    "val": "grid values chosen on the val split and applied to test",
    "test": "grid values chosen on the reported split itself (optimistic: the test set tunes them)",
    "fixed": "grid values fixed in advance with --fixed",
}


def _setting(value: Any) -> str:
    return "–" if value is None else f"{value:g}"


def table_markdown(summary: dict[str, Any]) -> str:
    rows = summary["rows"]
    lines = [
        "| Run | Method | Chosen | Selection-split accuracy | T | q | M | --max-side | Images "
        "| Accuracy "
        "| ± seeds (corpus) | ± seeds (per image) | mIoU | Segments | ± seeds (per image) "
        "| Paper accuracy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        images = f"{row['images']}"
        if row["missing"]:
            images += f" ⚠ {row['missing']} missing"
        chosen = f"✓ {row['selection']}" if row["chosen"] else ""
        selection = "–" if row["selection_accuracy"] is None else f"{row['selection_accuracy']:.4f}"
        lines.append(
            f"| {row['run_name']} | {row['label']} | {chosen} | {selection} | {_setting(row['iterations'])} | {_setting(row['channels'])} "
            f"| {_setting(row['n_conv'])} | {row['max_side'] or 'full'} | {images} "
            f"| {row['accuracy']:.4f} | {row['accuracy_std_over_seeds']:.4f} "
            f"| {row['accuracy_std_per_image']:.4f} | {row['miou']:.4f} | {row['segments']:.1f} "
            f"| {row['segments_std_per_image']:.2f} | {row['paper_accuracy']:.4f} |"
        )
    seeds = max((len(row["seeds"]) for row in rows), default=0)
    flagged = sorted({row["run_name"] for row in rows if row["missing"]})
    lines += [
        "",
        f"Split {summary['on']}, up to {seeds} seeds per run; "
        f"{_SELECTION_NOTE[summary['select']]}. Scores: {summary['protocol']}. "
        "✓ marks each run's chosen grid value (the row to compare with the paper) and says how "
        "it was chosen; beside it, each grid value's accuracy on the split that chose it. "
        "T iterations, q output channels, M 3×3 conv components; '–' where a method has none. "
        "'± seeds (corpus)' is the standard deviation over seeds of the corpus-mean accuracy; "
        "'± seeds (per image)' the standard deviation over seeds on one image, averaged over "
        "images. Felzenszwalb is deterministic (one run). Paper accuracy: Table 1 (BSDS500).",
    ]
    if flagged:
        lines += [
            "",
            f"⚠ Runs lacking images of the manifest: {', '.join(flagged)}; their rows average "
            "over fewer images than the others.",
        ]
    return "\n".join(lines) + "\n"


def palette(count: int) -> np.ndarray:
    """`count` distinct RGB colours: tab20's ten strong hues, its ten light ones, then random.

    Strong hues first, so neighbouring indices (a human segment, an unpaired one) never get a
    hue and its light twin.
    """
    from matplotlib import colormaps

    tab20 = np.asarray(colormaps["tab20"].colors)
    base = (np.concatenate([tab20[0::2], tab20[1::2]]) * 255).astype(np.uint8)
    extra = np.random.default_rng(0).integers(0, 256, size=(max(0, count - len(base)), 3))
    return np.concatenate([base, extra.astype(np.uint8)])[:count]


def matched_colours(truth: np.ndarray, panels: list[np.ndarray]) -> tuple[np.ndarray, list]:
    """RGB pictures of `truth` and each label map, segments coloured by their matched truth.

    Human segment j (in sorted label order) has colour j. A predicted segment paired with it
    by the maximal-overlap one-to-one matching takes colour j; the others take colours after
    the human ones, so no unpaired segment looks like a human segment.
    """
    from scipy.optimize import linear_sum_assignment

    from avtool.metrics.segmentation import contingency

    _, true_index = np.unique(truth, return_inverse=True)
    true_index = true_index.reshape(truth.shape)
    n_true = int(true_index.max()) + 1
    counts = [len(np.unique(labels)) for labels in panels]
    colours = palette(n_true + max(counts, default=0))
    pictures = []
    for labels in panels:
        _, pred_index = np.unique(labels, return_inverse=True)
        pred_index = pred_index.reshape(labels.shape)
        rows, cols = linear_sum_assignment(contingency(labels, truth), maximize=True)
        colour_of = np.full(pred_index.max() + 1, -1)
        colour_of[rows] = cols
        unpaired = np.flatnonzero(colour_of < 0)
        colour_of[unpaired] = n_true + np.arange(len(unpaired))
        pictures.append(colours[colour_of[pred_index]])
    return colours[true_index], pictures


def _figure(path: Path, image: np.ndarray, truth: np.ndarray, panels: list[tuple[str, np.ndarray]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from avtool.core import atomic

    truth_picture, pictures = matched_colours(truth, [labels for _, labels in panels])
    columns = 2 + len(panels)
    figure, axes = plt.subplots(1, columns, figsize=(2.6 * columns, 2.4))
    shown = [("input", image), ("ground truth (annotator 1)", truth_picture)]
    shown += [(title, picture) for (title, _), picture in zip(panels, pictures, strict=True)]
    for axis, (title, picture) in zip(axes, shown, strict=True):
        axis.imshow(picture)
        axis.set_title(title, fontsize=7)
        axis.axis("off")
    figure.tight_layout()
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def report(
    evaluation: Path, out: Path, max_figures: int = 20, force: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """`table.md` (every run and grid value, paper column beside) and `figures/<id>.png`.

    Figures show each run's chosen grid value, first seed, coloured to match annotator 1.
    """
    from avtool.core import atomic
    from avtool.core.manifest import read_manifest
    from avtool.core.stage import Stage
    from avtool.core.store import FeatureStore
    from avtool.corpora.bsds import read_ground_truth, read_image

    summary_path = Path(evaluation) / "summary.json"
    if not summary_path.is_file():
        raise InputError(f"{evaluation}: no summary.json; run `avtool evaluate mmt` first")
    summary = json.loads(summary_path.read_text())
    if "select" not in summary:
        raise InputError(
            f"{evaluation}: written by an older `avtool evaluate mmt`; rerun it with --force"
        )
    stage = Stage(
        "mmt.report", REPORT_VERSION, out, {"max_figures": max_figures}, inputs=[Path(evaluation)]
    )
    if dry_run:
        status = stage.status()
        return {"state": "dry-run", "message": f"mmt.report: {status.state} ({status.reason})"}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **stage.status().counts}
    table = table_markdown(summary)
    atomic.write_text(Path(out) / "table.md", table)
    manifest = _evaluated_manifest(Path(evaluation))
    items = [
        it for it in read_manifest(manifest) if it.get("gt") and it.get("split") == summary["on"]
    ][:max_figures]
    chosen = [row for row in summary["rows"] if row["chosen"]]
    stores = {row["run"]: FeatureStore(row["run"]) for row in chosen}
    seed_index = 0
    outputs = ["table.md"]
    try:
        for item in items:
            panels = [
                (
                    f"{row['run_name']}: {row['label']}",
                    np.asarray(stores[row["run"]][item["id"]][row["variant"], seed_index]),
                )
                for row in chosen
                if item["id"] in stores[row["run"]]
            ]
            truth = read_ground_truth(manifest.parent / item["gt"])[0]
            name = f"figures/{item['id']}.png"
            _figure(Path(out) / name, read_image(manifest.parent / item["path"]), truth, panels)
            outputs.append(name)
    finally:
        for store in stores.values():
            store.close()
    stage.finish(
        counts={"figures": len(outputs) - 1, "rows": len(summary["rows"])}, outputs=outputs
    )
    return {"state": "done", "table": table, "figures": len(outputs) - 1}


def _evaluated_manifest(evaluation: Path) -> Path:
    import yaml

    config = yaml.safe_load((evaluation / "config.yaml").read_text())
    return Path(config["manifest"])
