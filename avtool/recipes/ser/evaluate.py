"""`evaluate ser`: every fold's test accuracy, their mean and deviation, pooled confusion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError
from avtool.corpora.ravdess import EMOTIONS
from avtool.recipes.ser.config import DISPLAY
from avtool.recipes.ser.data import prepared_features
from avtool.recipes.ser.train import FOLD_RECORD, fold_dir, fold_predictor, run_config

EVALUATE_VERSION = 2


def protocol_label(protocol: dict[str, Any]) -> str:
    """'random 80/20', 'random, 5 folds', 'actors, 7 folds of 2' or 'actors 3, 4 held out'."""
    if protocol["split"] == "random":
        if protocol.get("folds", 1) == 1:
            share = round(100 * protocol["test_size"])
            return f"random {100 - share}/{share}"
        return f"random, {protocol['folds']} folds"
    groups = protocol["test_actors"]
    if len(groups) == 1:
        return f"actors {', '.join(map(str, groups[0]))} held out"
    sizes = sorted({len(g) for g in groups})
    return f"actors, {len(groups)} folds of {'/'.join(map(str, sizes))}"


def evaluate_ser(run: Path, force: bool = False, dry_run: bool = False) -> dict[str, Any]:
    """Accuracy per fold, mean ± std, classification report and confusion pooled over folds."""
    from sklearn.metrics import classification_report, confusion_matrix

    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status

    run = Path(run)
    config = run_config(run)
    out = run / "evaluation"
    stage = Stage("evaluate.ser", EVALUATE_VERSION, out, {"run": str(run)}, [run / "stage.json"])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **_headline(json.loads((out / "results.json").read_text()))}
    summary = json.loads((run / "summary.json").read_text())
    items, x, y, _ = prepared_features(Path(summary["features"]), Path(summary["manifest"]), config)
    row_of = {item["id"]: i for i, item in enumerate(items)}
    folds, truth, predicted = [], [], []
    for fold in summary["folds"]:
        record = json.loads((fold_dir(run, fold["index"]) / FOLD_RECORD).read_text())
        missing = [i for i in record["test_ids"] if i not in row_of]
        if missing:
            raise InputError(f"{run}: test item {missing[0]} left the feature store; retrain")
        rows = np.array([row_of[i] for i in record["test_ids"]])
        guess = fold_predictor(run, config, record, x.shape[1])(x[rows])
        folds.append({
            "index": record["index"],
            **({"test_actors": record["test_actors"]} if "test_actors" in record else {}),
            "test_items": len(rows),
            "train_accuracy": record["train_accuracy"],
            "accuracy": float((guess == y[rows]).mean()),
        })  # fmt: skip
        truth.append(y[rows])
        predicted.append(guess)
    truth, predicted = np.concatenate(truth), np.concatenate(predicted)
    labels = list(range(len(EMOTIONS)))
    names = list(EMOTIONS)
    report = classification_report(
        truth, predicted, labels=labels, target_names=names, output_dict=True, zero_division=0
    )
    text = classification_report(
        truth, predicted, labels=labels, target_names=names, zero_division=0
    )
    confusion = confusion_matrix(truth, predicted, labels=labels)
    recall = {e: report[e]["recall"] for e in EMOTIONS if report[e]["support"]}
    accuracies = [f["accuracy"] for f in folds]
    results = {
        "model": config.model,
        "protocol": summary["protocol"],
        "folds": folds,
        "accuracy": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "pooled_accuracy": float((predicted == truth).mean()),
        "test_items": len(truth),
        "train_accuracy": summary.get("train_accuracy"),
        "seeds": summary.get("seeds"),
        "chance": 1.0 / len(EMOTIONS),
        "per_class_f1": {e: report[e]["f1-score"] for e in EMOTIONS},
        "best_emotion": max(recall, key=recall.get),
        "weakest_emotion": min(recall, key=recall.get),
        "recall": recall,
        "classification_report": report,
        "classification_report_text": text,
        "confusion": confusion.tolist(),
        "parameters": summary.get("parameters"),
    }
    title = (
        f"{DISPLAY[config.model]}, {protocol_label(summary['protocol'])}: "
        f"{100 * results['accuracy']:.1f}%"
    )
    if len(folds) > 1:
        title += f" ± {100 * results['accuracy_std']:.1f}"
    confusion_figure(out / "confusion.png", confusion, title)
    atomic.write_text(out / "classification_report.txt", text)
    atomic.write_json(out / "results.json", results)
    stage.finish(
        counts={"items": len(truth), "folds": len(folds)},
        outputs=["results.json", "classification_report.txt", "confusion.png"],
    )
    return {"state": "done", **_headline(results)}


def _headline(results: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": results["model"],
        "split": results["protocol"]["split"],
        "folds": len(results["folds"]),
        "accuracy": results["accuracy"],
        "accuracy_std": results["accuracy_std"],
        "test_items": results["test_items"],
    }


def confusion_figure(path: Path, confusion: np.ndarray, title: str) -> None:
    """The confusion matrix as a PNG, counts in the cells, true emotions down the side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from avtool.core import atomic

    figure, axes = plt.subplots(figsize=(6, 5))
    axes.imshow(confusion, cmap="Blues")
    axes.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    axes.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=9)
    for (row, col), value in np.ndenumerate(confusion):
        axes.text(col, row, str(value), ha="center", va="center", fontsize=8)
    figure.tight_layout()
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
