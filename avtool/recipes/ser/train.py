"""`train ser`: fit one model on every fold of a protocol; a fold is durable once its fold.json is.

Run directory: `config.yaml`, `fold-KK/` (the fold's models: `seed-S.pt` per ensemble member,
or `model.pkl` for scikit-learn, then `fold.json` with its train/test ids and scaler, written
last), `summary.json`, `stage.json`. An interrupted run resumes at the first unfinished fold.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError
from avtool.corpora.ravdess import EMOTIONS
from avtool.recipes.ser.config import NETWORKS, REPORT_NETWORKS, SerConfig
from avtool.recipes.ser.data import describe_protocol, prepared_features, protocol_folds
from avtool.recipes.ser.fit import Scaler, fit_baseline, fit_network, network_probabilities

TRAIN_VERSION = 3
# Models whose network changed since TRAIN_VERSION, so that only their runs go stale.
MODEL_TRAIN_VERSION = {"lstm": 4}  # 4: the LSTM reads the vector back to front


def train_version(model: str) -> int:
    """The stage version of `train ser` runs of this model."""
    return MODEL_TRAIN_VERSION.get(model, TRAIN_VERSION)


FOLD_RECORD = "fold.json"


def check_features(config: SerConfig, x: np.ndarray, attrs: dict[str, Any], features: Path) -> None:
    """Refuse features the model was not made for, naming the store and the fix."""
    from avtool.models.ser import FEATURES

    extractor = str(attrs.get("extractor", ""))
    if config.model == "w2v_rf" and extractor != "wav2vec2":
        raise InputError(
            f"{features}: store made by extractor {extractor!r}; --model w2v_rf is the report's "
            "random forest on wav2vec2 features (use `avtool features wav2vec2`), or use "
            "--model rf for a forest on these features"
        )
    if config.model in REPORT_NETWORKS and x.shape[1] != FEATURES:
        raise InputError(
            f"{features}: the {config.model} network takes the {FEATURES}-d ser-mfcc vectors; "
            f"these features have {x.shape[1]} dimensions (use `avtool features ser-mfcc`)"
        )


def fold_dir(run: Path, index: int) -> Path:
    return Path(run) / f"fold-{index:02d}"


def member_seeds(config: SerConfig) -> list[int]:
    return list(range(config.seed, config.seed + config.seeds))


def _train_fold(
    x: np.ndarray, y: np.ndarray, fold: dict[str, Any], config: SerConfig, directory: Path
) -> dict[str, Any]:
    from avtool.core import atomic

    directory.mkdir(parents=True, exist_ok=True)
    train = fold["train"]
    scaler = Scaler.fit(x[train], config.scaling())
    inputs = scaler(x[train])
    if config.model in NETWORKS:
        from avtool.train import checkpoint

        models = []
        for seed in member_seeds(config):
            model = fit_network(inputs, y[train], config, seed)
            checkpoint.save(directory / f"seed-{seed}.pt", {"model": model.state_dict()})
            models.append(model)
        predicted = network_probabilities(models, inputs, config.device).argmax(axis=1)
        files = [f"seed-{seed}.pt" for seed in member_seeds(config)]
    else:
        classifier = fit_baseline(inputs, y[train], config)
        atomic.write_bytes(directory / "model.pkl", pickle.dumps(classifier))
        predicted = classifier.predict(inputs)
        files = ["model.pkl"]
    return {
        "scaler": scaler.state(),
        "train_accuracy": float((predicted == y[train]).mean()),
        "files": files,
    }


def train_ser(
    features: Path,
    manifest: Path,
    out: Path,
    config: SerConfig,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Train one model on every fold of the configured protocol."""
    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status

    out = Path(out)
    stage = Stage(
        "train.ser", train_version(config.model), out, config, [Path(features), Path(manifest)]
    )
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if stage.status().state == "done" and not force:
        return {"state": "up-to-date", **_scalars(json.loads((out / "summary.json").read_text()))}
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        stage.begin(force=force)
    items, x, y, attrs = prepared_features(features, manifest, config)
    check_features(config, x, attrs, Path(features))
    folds = protocol_folds(items, y, config)
    records = []
    for index, fold in enumerate(folds):
        record_path = fold_dir(out, index) / FOLD_RECORD
        if record_path.exists():  # finished before an interruption
            records.append(json.loads(record_path.read_text()))
            continue
        record = {
            "index": index,
            **({"test_actors": fold["test_actors"]} if "test_actors" in fold else {}),
            "train_ids": [items[i]["id"] for i in fold["train"]],
            "test_ids": [items[i]["id"] for i in fold["test"]],
            **_train_fold(x, y, fold, config, fold_dir(out, index)),
        }
        if main_process:
            atomic.write_json(record_path, record)
        records.append(record)
    summary: dict[str, Any] = {
        "model": config.model,
        "features": str(features),
        "manifest": str(manifest),
        "extractor": attrs.get("extractor"),
        "classes": list(EMOTIONS),
        "feature_dim": int(x.shape[1]),
        "protocol": describe_protocol(config, folds),
        "folds": [
            {
                "index": r["index"],
                "train_items": len(r["train_ids"]),
                "test_items": len(r["test_ids"]),
                "train_accuracy": r["train_accuracy"],
                **({"test_actors": r["test_actors"]} if "test_actors" in r else {}),
            }
            for r in records
        ],
        "train_accuracy": float(np.mean([r["train_accuracy"] for r in records])),
        "seeds": member_seeds(config) if config.model in NETWORKS else [config.seed],
    }
    if config.model in NETWORKS:
        from avtool.models.ser import build_model, keras_parameter_count, parameter_count

        model = build_model(config.model, len(EMOTIONS), config.recipe("dropout"), x.shape[1])
        summary["parameters"] = {
            **parameter_count(model),
            "keras_equivalent": keras_parameter_count(model),
        }
        summary["epochs"] = config.recipe("epochs")
    if main_process:
        atomic.write_json(out / "summary.json", summary)
        outputs = [
            f"{fold_dir(Path(''), r['index'])}/{name}" for r in records for name in r["files"]
        ]
        stage.finish(
            counts={"folds": len(records), "items": len(items)},
            outputs=[*outputs, *[f"fold-{r['index']:02d}/{FOLD_RECORD}" for r in records],
                     "summary.json"],
        )  # fmt: skip
    return {"state": "done", **_scalars(summary)}


def _scalars(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": summary["model"],
        "split": summary["protocol"]["split"],
        "folds": len(summary["folds"]),
        "train_accuracy": summary["train_accuracy"],
    }


def run_config(run: Path) -> SerConfig:
    """The resolved config of a finished `train ser` run."""
    import yaml

    from avtool.core.config import from_dict

    run = Path(run)
    if not (run / "stage.json").exists() or not (run / "summary.json").exists():
        raise InputError(f"{run}: no finished SER training run here; run `avtool train ser` first")
    stamp = json.loads((run / "stage.json").read_text())
    if stamp.get("name") != "train.ser":
        raise InputError(f"{run}: holds stage {stamp.get('name')!r}, not a `train ser` run")
    config = from_dict(SerConfig, yaml.safe_load((run / "config.yaml").read_text()))
    if stamp.get("version") != train_version(config.model):
        raise InputError(f"{run}: made by an older `train ser`; rerun it with --force")
    return config


def fold_networks(run: Path, config: SerConfig, record: dict[str, Any], feature_dim: int) -> list:
    """The networks (eval mode) of one finished fold of a network run."""
    from avtool.models.ser import build_model
    from avtool.train import checkpoint

    models = []
    for name in record["files"]:
        model = build_model(config.model, len(EMOTIONS), config.recipe("dropout"), feature_dim)
        model.load_state_dict(checkpoint.load(fold_dir(run, record["index"]) / name)["model"])
        models.append(model.eval())
    return models


def fold_predictor(run: Path, config: SerConfig, record: dict[str, Any], feature_dim: int):
    """features [N, D] -> predicted class indices, from one finished fold."""
    scaler = Scaler(record["scaler"]["mean"], record["scaler"]["std"])
    if config.model not in NETWORKS:
        with open(fold_dir(run, record["index"]) / "model.pkl", "rb") as handle:
            classifier = pickle.load(handle)  # our own file, written by train_ser
        return lambda x: classifier.predict(scaler(x))
    models = fold_networks(run, config, record, feature_dim)
    return lambda x: network_probabilities(models, scaler(x)).argmax(axis=1)
