"""SER recipe: train the report's four models on RAVDESS features, evaluate them, tabulate.

`train_ser` fits one model (LSTM, CNN, CNN+LSTM on the 160-d MFCC vectors, or a random forest
on wav2vec2 means) with the report's settings: Adam, batch 36, focal loss (alpha 0.25,
gamma 2), ReduceLROnPlateau (factor 0.5, patience 5, min 1e-6) and early stopping (patience
10, best weights restored), both on the validation loss. Two protocols:
- `random`: the report's stratified random 80/20 split of the files (seeded). The same actors
  then appear in training and test, so it measures recognition of known voices.
- `actors`: whole actors held out (20%, both genders when possible): speaker-independent.

Where we depart from the report, and why: the report monitored its test set for the LR
schedule and early stopping (`validation_data=(X_test, y_test)`), which tunes on the test
set; here a stratified `val_size` share of the training files is the validation set. The
report fed raw features; `standardize: global` (default) scales each dimension by the
training set's mean and deviation, since MFCC c0 sits near -300 and the rest near 0.
`standardize: actor` first standardises each actor's files by that actor's own statistics
(speaker normalisation, common in SER): label-free, but it uses a test actor's other test
files, so it assumes a few utterances of each new speaker are available at once.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import ConfigError, InputError
from avtool.corpora.ravdess import EMOTIONS
from avtool.train.loop import TrainConfig

MODELS = ("lstm", "cnn", "cnn_lstm", "w2v_rf")
SPLITS = ("random", "actors")
TRAIN_VERSION = 1
EVALUATE_VERSION = 1
REPORT_VERSION = 1
DISPLAY = {"lstm": "LSTM", "cnn": "CNN", "cnn_lstm": "CNN + LSTM", "w2v_rf": "wav2vec2 + RF"}
# The report's figures (random 80/20 split of the 1440 speech files).
PAPER = {
    "lstm": {"train": 0.2161, "test": 0.2188},
    "cnn": {"train": 0.4557, "test": 0.4618},
    "cnn_lstm": {"train": 0.8828, "test": 0.6389},
    "w2v_rf": {"train": 1.0, "test": 0.4861},
}


def _report_train_config() -> TrainConfig:
    return TrainConfig(
        epochs=100,
        batch_size=36,
        lr=1e-3,
        optimizer="adam",
        scheduler="plateau",
        plateau_factor=0.5,
        plateau_patience=5,
        min_lr=1e-6,
        early_stopping_patience=10,
        restore_best=True,
        deterministic=True,
        device="cpu",
        log_every=1000,
    )


@dataclass
class SerConfig:
    model: str = "cnn_lstm"
    split: str = "random"
    test_size: float = 0.2
    test_actors: list[int] = field(default_factory=list)  # actors split; empty = seeded choice
    val_size: float = 0.1  # share of the training files that drives the schedule and stopping
    seed: int = 0
    loss: str = "focal"  # focal | ce
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    dropout: float = 0.3
    standardize: str = "global"  # global | actor | none
    rf_trees: int = 100  # scikit-learn's default; the report gives none
    train: TrainConfig = field(default_factory=_report_train_config)

    def __post_init__(self) -> None:
        choices = (
            ("model", MODELS),
            ("split", SPLITS),
            ("loss", ("focal", "ce")),
            ("standardize", ("global", "actor", "none")),
        )
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected one of {allowed}")
        if not 0 < self.test_size < 1 or not 0 < self.val_size < 1:
            raise ConfigError("test_size and val_size must lie strictly between 0 and 1")


# --- data and splits ----------------------------------------------------------------------


def load_features(features: Path, manifest: Path) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """(manifest items in the store, features [N, D], emotion indices [N]).

    Per-frame sequences ([frames, D] items) are reduced to their time mean.
    """
    from avtool.core.manifest import read_manifest
    from avtool.core.store import FeatureStore

    with FeatureStore(features) as store:
        items = [item for item in read_manifest(manifest) if item["id"] in store]
        if not items:
            raise InputError(f"{features}: no item of {manifest} is in the store; extract first")
        unknown = [item["id"] for item in items if item.get("emotion") not in EMOTIONS]
        if unknown:
            raise InputError(
                f"{manifest}: items without a RAVDESS emotion (e.g. {unknown[0]}); "
                "use the manifest of `avtool prepare ravdess`"
            )
        x = np.stack([np.atleast_2d(store[item["id"]]).mean(axis=0) for item in items])
    y = np.array([EMOTIONS.index(item["emotion"]) for item in items])
    return items, x.astype(np.float32), y


def normalize_per_actor(items: list[dict], x: np.ndarray) -> np.ndarray:
    """Each actor's rows standardised by that actor's mean and deviation (no labels used)."""
    actors = np.array([int(item["actor"]) for item in items])
    out = np.empty_like(x)
    for actor in np.unique(actors):
        rows = actors == actor
        out[rows] = (x[rows] - x[rows].mean(axis=0)) / (x[rows].std(axis=0) + 1e-6)
    return out


def prepared_features(
    features: Path, manifest: Path, config: SerConfig
) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """`load_features`, speaker-normalised when `config.standardize` is "actor"."""
    items, x, y = load_features(features, manifest)
    return items, normalize_per_actor(items, x) if config.standardize == "actor" else x, y


def test_actors(items: list[dict], config: SerConfig) -> list[int]:
    """The actors held out: `config.test_actors`, or a seeded 20% alternating genders."""
    actors = sorted({int(item["actor"]) for item in items})
    if config.test_actors:
        missing = sorted(set(config.test_actors) - set(actors))
        if missing:
            raise InputError(f"test_actors {missing}: not in the data (actors {actors})")
        chosen = sorted(config.test_actors)
    else:
        if len(actors) < 2:
            raise InputError(f"--split actors needs at least two actors; the data has {actors}")
        count = min(len(actors) - 1, max(1, round(config.test_size * len(actors))))
        rng = np.random.default_rng(config.seed)
        by_gender = [
            list(rng.permutation([a for a in actors if a % 2 == parity])) for parity in (1, 0)
        ]
        chosen = []
        while len(chosen) < count:
            for group in by_gender:
                if group and len(chosen) < count:
                    chosen.append(int(group.pop()))
        chosen.sort()
    if len(chosen) == len(actors):
        raise InputError("test_actors: every actor is held out; nothing is left to train on")
    return chosen


def split_items(items: list[dict], y: np.ndarray, config: SerConfig) -> dict[str, Any]:
    """Indices of train / val / test under the configured protocol, with its description."""
    from sklearn.model_selection import train_test_split

    everything = np.arange(len(items))
    if config.split == "random":
        rest, test = train_test_split(
            everything, test_size=config.test_size, stratify=y, random_state=config.seed
        )
        protocol = {"split": "random", "test_size": config.test_size}
    else:
        held = set(test_actors(items, config))
        test = np.array([i for i in everything if int(items[i]["actor"]) in held])
        rest = np.array([i for i in everything if int(items[i]["actor"]) not in held])
        protocol = {"split": "actors", "test_actors": sorted(held)}
    train, val = train_test_split(
        rest, test_size=config.val_size, stratify=y[rest], random_state=config.seed
    )
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test), **protocol}


# --- models ---------------------------------------------------------------------------------


def _loss(config: SerConfig):
    import torch

    from avtool.models.ser import focal_loss

    if config.loss == "ce":
        return torch.nn.functional.cross_entropy
    return lambda logits, target: focal_loss(logits, target, config.focal_alpha, config.focal_gamma)


def _evaluate_fn(loss_fn):
    def evaluate(model, teacher, loader) -> dict[str, float]:
        correct = total = 0
        loss_sum = 0.0
        for features, target in loader:
            logits = model(features)
            loss_sum += float(loss_fn(logits, target)) * len(target)
            correct += int((logits.argmax(dim=1) == target).sum())
            total += len(target)
        return {"loss": loss_sum / max(total, 1), "accuracy": correct / max(total, 1)}

    return evaluate


class _Scaler:
    """Per-dimension standardisation fitted on the training files (identity when off)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    @classmethod
    def fit(cls, x: np.ndarray, enabled: bool) -> _Scaler:
        if not enabled:
            return cls(np.zeros(x.shape[1]), np.ones(x.shape[1]))
        return cls(x.mean(axis=0), x.std(axis=0) + 1e-6)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)


def _predictor(run: Path, config: SerConfig, summary: dict[str, Any]):
    """A function features [N, D] -> predicted class indices, from a finished run."""
    if config.model == "w2v_rf":
        import pickle

        with open(run / "forest.pkl", "rb") as handle:
            forest = pickle.load(handle)  # our own file, written by train_ser
        return forest.predict
    import torch

    from avtool.models.ser import build_model
    from avtool.train import checkpoint

    model = build_model(config.model, len(EMOTIONS), config.dropout)
    model.load_state_dict(checkpoint.load(run / "final.pt")["model"])
    model.eval()
    scaler = _Scaler(summary["scaler"]["mean"], summary["scaler"]["std"])

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(scaler(x))).argmax(dim=1).numpy()

    return predict


def train_ser(
    features: Path,
    manifest: Path,
    out: Path,
    config: SerConfig,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Train one model; writes split.json, summary.json and the model (final.pt / forest.pkl)."""
    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status

    out = Path(out)
    stage = Stage("train.ser", TRAIN_VERSION, out, config, [Path(features), Path(manifest)])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if stage.status().state == "done" and not force:
        return {"state": "up-to-date", **_scalars(json.loads((out / "summary.json").read_text()))}
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        stage.begin(force=force)
    items, x, y = prepared_features(features, manifest, config)
    split = split_items(items, y, config)
    train, val = split["train"], split["val"]
    summary: dict[str, Any] = {
        "model": config.model,
        "features": str(features),
        "manifest": str(manifest),
        "classes": list(EMOTIONS),
        "feature_dim": int(x.shape[1]),
        **{k: v for k, v in split.items() if k not in ("train", "val", "test")},
        "counts": {part: len(split[part]) for part in ("train", "val", "test")},
    }
    if config.model == "w2v_rf":
        outputs = _train_forest(
            x[np.concatenate([train, val])], y[np.concatenate([train, val])], config, out, summary
        )
    else:
        outputs = _train_net(x, y, split, config, out, summary)
    if main_process:
        ids = {part: [items[i]["id"] for i in split[part]] for part in ("train", "val", "test")}
        atomic.write_json(out / "split.json", ids)
        atomic.write_json(out / "summary.json", summary)
        stage.finish(
            counts={"train_items": len(train), "test_items": len(split["test"])},
            outputs=[*outputs, "split.json", "summary.json"],
        )
    return {"state": "done", **_scalars(summary)}


def _train_forest(
    x: np.ndarray, y: np.ndarray, config: SerConfig, out: Path, summary: dict[str, Any]
) -> list[str]:
    import pickle

    from sklearn.ensemble import RandomForestClassifier

    from avtool.core import atomic

    # No early stopping for a forest: the validation share goes back into training.
    forest = RandomForestClassifier(
        n_estimators=config.rf_trees, random_state=config.seed, n_jobs=1
    ).fit(x, y)
    atomic.write_bytes(out / "forest.pkl", pickle.dumps(forest))
    summary["train_accuracy"] = float((forest.predict(x) == y).mean())
    return ["forest.pkl"]


def _train_net(
    x: np.ndarray,
    y: np.ndarray,
    split: dict[str, Any],
    config: SerConfig,
    out: Path,
    summary: dict[str, Any],
) -> list[str]:
    import torch
    from torch.utils.data import TensorDataset

    from avtool.models.ser import FEATURES, build_model, keras_parameter_count, parameter_count
    from avtool.train.loop import fit

    if x.shape[1] != FEATURES:
        raise InputError(
            f"the {config.model} network takes the {FEATURES}-d ser-mfcc vectors; these features "
            f"have {x.shape[1]} dimensions (use `avtool features ser-mfcc`)"
        )
    scaler = _Scaler.fit(x[split["train"]], config.standardize != "none")

    def dataset(part: str) -> TensorDataset:
        index = split[part]
        return TensorDataset(torch.from_numpy(scaler(x[index])), torch.from_numpy(y[index]))

    torch.manual_seed(config.seed)
    model = build_model(config.model, len(EMOTIONS), config.dropout)
    loss_fn = _loss(config)
    result = fit(
        model,
        dataset("train"),
        config.train,
        out,
        loss_fn=loss_fn,
        val_set=dataset("val"),
        evaluate_fn=_evaluate_fn(loss_fn),
    )
    with torch.no_grad():
        predicted = model(torch.from_numpy(scaler(x[split["train"]]))).argmax(dim=1).numpy()
    summary.update(
        parameters={**parameter_count(model), "keras_equivalent": keras_parameter_count(model)},
        scaler={"mean": scaler.mean.tolist(), "std": scaler.std.tolist()},
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        stopped_early=result.stopped_early,
        val_accuracy=result.best_metrics.get("val_accuracy"),
        train_accuracy=float((predicted == y[split["train"]]).mean()),
    )
    return ["final.pt", "metrics.jsonl"]


def _scalars(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("model", "split", "train_accuracy", "val_accuracy", "epochs_run")
    return {k: summary[k] for k in keys if summary.get(k) is not None}


def _run_config(run: Path) -> SerConfig:
    import yaml

    from avtool.core.config import from_dict

    if not (run / "stage.json").exists() or not (run / "summary.json").exists():
        raise InputError(f"{run}: no finished SER training run here; run `avtool train ser` first")
    stamp = json.loads((run / "stage.json").read_text())
    if stamp.get("name") != "train.ser":
        raise InputError(f"{run}: holds stage {stamp.get('name')!r}, not a `train ser` run")
    return from_dict(SerConfig, yaml.safe_load((run / "config.yaml").read_text()))


# --- evaluation -----------------------------------------------------------------------------


def evaluate_ser(run: Path, force: bool = False, dry_run: bool = False) -> dict[str, Any]:
    """Test accuracy, classification report, per-class F1 and confusion matrix (JSON + PNG)."""
    from sklearn.metrics import classification_report, confusion_matrix

    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status

    run = Path(run)
    config = _run_config(run)
    out = run / "evaluation"
    stage = Stage("evaluate.ser", EVALUATE_VERSION, out, {"run": str(run)}, [run / "stage.json"])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **_headline(json.loads((out / "results.json").read_text()))}
    summary = json.loads((run / "summary.json").read_text())
    test_ids = set(json.loads((run / "split.json").read_text())["test"])
    items, x, y = prepared_features(Path(summary["features"]), Path(summary["manifest"]), config)
    chosen = np.array([i for i, item in enumerate(items) if item["id"] in test_ids])
    if len(chosen) != len(test_ids):
        raise InputError(f"{run}: {len(test_ids) - len(chosen)} test items left the feature store")
    predicted = _predictor(run, config, summary)(x[chosen])
    truth = y[chosen]
    labels = list(range(len(EMOTIONS)))
    report = classification_report(
        truth,
        predicted,
        labels=labels,
        target_names=list(EMOTIONS),
        output_dict=True,
        zero_division=0,
    )
    text = classification_report(
        truth, predicted, labels=labels, target_names=list(EMOTIONS), zero_division=0
    )
    confusion = confusion_matrix(truth, predicted, labels=labels)
    recall = {e: report[e]["recall"] for e in EMOTIONS if report[e]["support"]}
    results = {
        "model": config.model,
        "protocol": {k: summary[k] for k in ("split", "test_size", "test_actors") if k in summary},
        "test_items": len(chosen),
        "accuracy": float((predicted == truth).mean()),
        "train_accuracy": summary.get("train_accuracy"),
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
    _confusion_figure(
        out / "confusion.png",
        confusion,
        f"{DISPLAY[config.model]} ({results['protocol']['split']})",
    )
    atomic.write_text(out / "classification_report.txt", text)
    atomic.write_json(out / "results.json", results)
    stage.finish(
        counts={"items": len(chosen)},
        outputs=["results.json", "classification_report.txt", "confusion.png"],
    )
    return {"state": "done", **_headline(results)}


def _headline(results: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": results["model"],
        "split": results["protocol"]["split"],
        "accuracy": results["accuracy"],
        "test_items": results["test_items"],
    }


def _confusion_figure(path: Path, confusion: np.ndarray, title: str) -> None:
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
    axes.set_title(title)
    for (row, col), value in np.ndenumerate(confusion):
        axes.text(col, row, str(value), ha="center", va="center", fontsize=8)
    figure.tight_layout()
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


# --- report ---------------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


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
        "Model", "Split", "Params (torch)", "Train acc.", "Test acc.", "Report test acc.",
        "Best recognized emotion", "Weakest recognized emotion",
    ]  # fmt: skip
    rows, outputs = [], ["table.md", "table.html"]
    for run in runs:
        results = json.loads((run / "evaluation" / "results.json").read_text())
        model, protocol = results["model"], results["protocol"]
        split = (
            "random 80/20"
            if protocol["split"] == "random"
            else (f"actors {', '.join(map(str, protocol['test_actors']))} held out")
        )
        best, weakest = results["best_emotion"], results["weakest_emotion"]
        params = results.get("parameters") or {}
        rows.append([
            DISPLAY[model],
            split,
            f"{params['total']:,}" if params else "–",
            _percent(results.get("train_accuracy")),
            _percent(results["accuracy"]),
            _percent(PAPER[model]["test"]),
            f"{best.capitalize()} ({100 * results['recall'][best]:.0f}% recall)",
            f"{weakest.capitalize()} ({100 * results['recall'][weakest]:.0f}% recall)",
        ])  # fmt: skip
        figure = f"figures/{run.name}-confusion.png"
        (Path(out) / "figures").mkdir(parents=True, exist_ok=True)
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
