"""The foundation's demo task: which synthetic speaker is talking, from log-mel features.

It exercises the whole chain on the machinery every system uses: a feature store read through
its torch Dataset view, the one training loop (DDP-aware, resumable), a stage-stamped
evaluation with a results JSON. Clips are split by a stable hash of their id (1 in 5 held out).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avtool.core.errors import InputError
from avtool.core.manifest import read_manifest
from avtool.core.shard import shard_of
from avtool.core.stage import Stage, describe_status
from avtool.train.loop import TrainConfig

STAGE_VERSION = 2


@dataclass
class DemoModelConfig:
    channels: int = 32
    frames: int = 128  # clips are cropped or zero-padded to this many frames


@dataclass
class DemoConfig:
    label: str = "gender"  # manifest field to predict
    held_out_every: int = 5  # 1 in N clips (by id hash) is held out for evaluation
    model: DemoModelConfig = field(default_factory=DemoModelConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=12, batch_size=16, lr=3e-3, deterministic=True, device="cpu"
        )
    )


def is_held_out(item_id: str, every: int) -> bool:
    return shard_of(item_id, every) == 0


def _labelled_items(
    features: Path, manifest: Path, config: DemoConfig
) -> tuple[list[dict], list[str]]:
    from avtool.core.store import FeatureStore

    store = FeatureStore(features)
    items = [item for item in read_manifest(manifest) if item["id"] in store]
    if not items:
        raise InputError(
            f"{features}: no item of {manifest} is in the store; extract features first"
        )
    missing = [item["id"] for item in items if config.label not in item]
    if missing:
        raise InputError(
            f"{manifest}: items lack the label field {config.label!r} (e.g. {missing[0]})"
        )
    classes = sorted({str(item[config.label]) for item in items})
    return items, classes


class _ClipDataset:
    """(spectrogram [n_mels, frames] cropped/padded, class index) from a feature store."""

    def __init__(
        self, features: Path, items: list[dict], classes: list[str], config: DemoConfig
    ) -> None:
        from avtool.core.store import FeatureStore

        self.store = FeatureStore(features)
        self.items = items
        self.index = {name: i for i, name in enumerate(classes)}
        self.config = config

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int):
        import torch

        item = self.items[position]
        spectrogram = torch.from_numpy(self.store[item["id"]]).float()
        frames = self.config.model.frames
        spectrogram = torch.nn.functional.pad(
            spectrogram, (0, max(0, frames - spectrogram.shape[1]))
        )
        return spectrogram[:, :frames], self.index[str(item[self.config.label])]


def _split(items: list[dict], config: DemoConfig) -> tuple[list[dict], list[dict]]:
    held = [item for item in items if is_held_out(item["id"], config.held_out_every)]
    kept = [item for item in items if not is_held_out(item["id"], config.held_out_every)]
    return kept, held


def train_demo(
    features: Path,
    manifest: Path,
    out: Path,
    config: DemoConfig,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Train the tiny classifier; returns the training summary (also in `out/summary.json`)."""
    import torch

    from avtool.core import atomic
    from avtool.models.tiny import TinyAudioClassifier
    from avtool.train.loop import fit

    out = Path(out)
    stage = Stage("train.demo", STAGE_VERSION, out, config, [Path(features), Path(manifest)])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if stage.status().state == "done" and not force:
        return {"state": "up-to-date", **json.loads((out / "summary.json").read_text())}
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        stage.begin(force=force)
    items, classes = _labelled_items(features, manifest, config)
    train_items, held_items = _split(items, config)
    n_mels = _ClipDataset(features, items[:1], classes, config)[0][0].shape[0]
    torch.manual_seed(config.train.seed)
    model = TinyAudioClassifier(n_mels, len(classes), config.model.channels)
    result = fit(
        model,
        _ClipDataset(features, train_items, classes, config),
        config.train,
        out,
        loss_fn=torch.nn.functional.cross_entropy,
        val_set=_ClipDataset(features, held_items, classes, config),
        evaluate_fn=_accuracy,
    )
    summary = {
        "features": str(Path(features).resolve()),
        "manifest": str(Path(manifest).resolve()),
        "classes": classes,
        "n_mels": int(n_mels),
        "train_items": len(train_items),
        "held_out_items": len(held_items),
        "epochs_run": result.epochs_run,
        "final_train_loss": result.last_metrics.get("train_loss"),
        "final_val_accuracy": result.last_metrics.get("val_accuracy"),
    }
    if main_process:
        atomic.write_json(out / "summary.json", summary)
        stage.finish(
            counts={"train_items": len(train_items), "epochs": result.epochs_run},
            outputs=["final.pt", "summary.json", "metrics.jsonl"],
        )
    return {"state": "done", **summary}


def _accuracy(model, teacher, loader) -> dict[str, float]:
    import torch

    correct = total = 0
    losses = []
    with torch.no_grad():
        for spectrogram, target in loader:
            logits = model(spectrogram)
            losses.append(float(torch.nn.functional.cross_entropy(logits, target, reduction="sum")))
            correct += int((logits.argmax(dim=1) == target).sum())
            total += int(target.numel())
    return {"accuracy": correct / max(total, 1), "loss": sum(losses) / max(total, 1)}


def evaluate_demo(run: Path, force: bool = False, dry_run: bool = False) -> dict[str, Any]:
    """Accuracy of the trained classifier on the held-out clips, in `run/evaluation/results.json`."""
    import numpy as np
    import torch
    import yaml

    from avtool.core import atomic
    from avtool.core.config import from_dict
    from avtool.models.tiny import TinyAudioClassifier
    from avtool.train import checkpoint

    run = Path(run)
    if not (run / "stage.json").exists():
        raise InputError(f"{run}: no finished training run here; run `avtool train demo` first")
    config = from_dict(DemoConfig, yaml.safe_load((run / "config.yaml").read_text()))
    summary = json.loads((run / "summary.json").read_text())
    features, manifest = Path(summary["features"]), Path(summary["manifest"])
    out = run / "evaluation"
    stage = Stage("evaluate.demo", STAGE_VERSION, out, config, [run, features, manifest])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **json.loads((out / "results.json").read_text())}
    classes = summary["classes"]
    model = TinyAudioClassifier(summary["n_mels"], len(classes), config.model.channels)
    model.load_state_dict(checkpoint.load(run / "final.pt")["model"])
    model.eval()
    items, _ = _labelled_items(features, manifest, config)
    _, held_items = _split(items, config)
    dataset = _ClipDataset(features, held_items, classes, config)
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    with torch.no_grad():
        for position in range(len(dataset)):
            spectrogram, target = dataset[position]
            predicted = int(model(spectrogram[None]).argmax(dim=1))
            confusion[target, predicted] += 1
    results = {
        "held_out_items": len(dataset),
        "accuracy": float(np.trace(confusion) / max(confusion.sum(), 1)),
        "chance": 1.0 / len(classes),
        "classes": classes,
        "confusion": confusion.tolist(),
    }
    atomic.write_json(out / "results.json", results)
    stage.finish(counts={"items": len(dataset)}, outputs=["results.json"])
    return {"state": "done", **results}
