"""`train sed`: mean-teacher CRNNs on one input setting of Table 3, N seeds."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import ConfigError, InputError
from avtool.recipes.sed.data import (
    STREAMS,
    ClipInputs,
    available_clips,
    fit_scaler,
    multi_hot,
    read_clips,
    torch_threads,
)
from avtool.recipes.sed.evaluate import SedEvaluateConfig
from avtool.train.loop import TrainConfig

TRAIN_VERSION = 1


def _paper_train_config() -> TrainConfig:
    return TrainConfig(
        batch_size=24,  # weak clips a batch; each brings an unlabeled one: 48 clips
        lr=1e-3,
        optimizer="adam",
        ema_decay=0.999,
        restore_best=False,  # the paper scores the student after the last step
        drop_last=True,
        device="cpu",
        log_every=250,
    )


@dataclass
class SedTrainConfig:
    inputs: list[str] = field(default_factory=lambda: ["spectral"])
    seeds: int = 1  # the paper trains 20 a setting
    first_seed: int = 0
    steps: int = 50000  # optimiser steps: 200 epochs x 250 batches
    consistency_weight: float = 2.0
    rampup_steps: int = 12500
    lr_decay: float = 0.99995
    scaler_clips: int = 2000  # training clips the per-bin log-mel statistics come from
    clip_seconds: float = 10.0  # inputs are padded or cut to this length
    # torch threads, 0 for torch's default; 1 suits small batches (a GRU step is too small to
    # share, and each one would wait on an OpenMP barrier).
    threads: int = 0
    train: TrainConfig = field(default_factory=_paper_train_config)
    evaluation: SedEvaluateConfig = field(default_factory=SedEvaluateConfig)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.inputs) - set(STREAMS))
        if unknown or not self.inputs:
            raise ConfigError(f"inputs={self.inputs}: choose from {', '.join(STREAMS)}")
        self.inputs = [s for s in STREAMS if s in self.inputs]
        if self.seeds < 1 or self.steps < 1:
            raise ConfigError("seeds and steps must be at least 1")


def _stores_for(config: SedTrainConfig, stores: dict[str, Path | None]) -> dict[str, Path]:
    chosen = {}
    for stream in config.inputs:
        path = stores.get(stream)
        if path is None:
            option = "--logmel" if stream == "spectral" else f"--{stream}"
            raise InputError(f"inputs include {stream}: give its feature store with {option} DIR")
        chosen[stream] = Path(path)
    return chosen


def train_sed(
    manifest: Path,
    out: Path,
    config: SedTrainConfig,
    stores: dict[str, Path | None],
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Train `config.seeds` CRNNs on one input setting; each seed in `out/seed-XX/`."""
    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status

    out = Path(out)
    paths = _stores_for(config, stores)
    identity = {"config": asdict(config), "stores": {k: str(v) for k, v in paths.items()}}
    stage = Stage("train.sed", TRAIN_VERSION, out, identity, [Path(manifest), *paths.values()])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if stage.status().state == "done" and not force:
        return {"state": "up-to-date", **json.loads((out / "summary.json").read_text())["counts"]}
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        stage.begin(force=force)
    loader = ClipInputs(paths, clip_seconds=config.clip_seconds)
    clips = available_clips(read_clips(manifest), loader)
    weak = [c for c in clips if c.get("split") == "weak"]
    unlabeled = [c for c in clips if c.get("split") == "unlabel_in_domain"]
    if not weak:
        raise InputError(f"{manifest}: no weakly labelled clip (split 'weak') is in the stores")
    summary: dict[str, Any] = {
        "inputs": config.inputs,
        "manifest": str(Path(manifest).resolve()),
        "stores": {k: str(v.resolve()) for k, v in paths.items()},
        "counts": {"weak": len(weak), "unlabeled": len(unlabeled), "seeds": config.seeds},
        "clip_seconds": config.clip_seconds,
        "threads": config.threads,
        "evaluation": asdict(config.evaluation),
    }
    if "spectral" in paths:
        mean, std = fit_scaler(loader, [c["id"] for c in weak + unlabeled], config.scaler_clips)
        loader = ClipInputs(paths, mean, std, config.clip_seconds)
        summary["scaler"] = {"mean": mean.tolist(), "std": std.tolist()}
    labels = {c["id"]: multi_hot(c.get("labels", [])) for c in weak}
    with torch_threads(config.threads):
        for seed in range(config.first_seed, config.first_seed + config.seeds):
            name = f"seed-{seed:02d}"
            result = _train_seed(config, loader, weak, unlabeled, labels, seed, out / name)
            summary.setdefault("runs", {})[name] = result
    if main_process:
        atomic.write_json(out / "summary.json", summary)
        stage.finish(counts=summary["counts"], outputs=["summary.json"])
    return {"state": "done", **summary["counts"]}


def _train_seed(
    config: SedTrainConfig,
    loader: ClipInputs,
    weak: list[dict],
    unlabeled: list[dict],
    labels: dict[str, np.ndarray],
    seed: int,
    out: Path,
) -> dict[str, Any]:
    import torch

    from avtool.models.crnn import CRNN, CRNNConfig, parameter_count
    from avtool.train.loop import fit
    from avtool.train.mean_teacher import (
        PairedClips,
        collate_pairs,
        lr_factor,
        mean_teacher_step,
        scheduled_lr,
    )

    pairs = PairedClips([c["id"] for c in weak], labels, [c["id"] for c in unlabeled], loader)
    batches = max(1, len(pairs) // config.train.batch_size)
    train = replace(config.train, seed=seed, epochs=math.ceil(config.steps / batches))
    torch.manual_seed(seed)
    model = CRNN(CRNNConfig(inputs=tuple(config.inputs)))

    def factor(step: int) -> float:
        return lr_factor(step, config.rampup_steps, config.lr_decay)

    with scheduled_lr(model, train.lr, factor):
        result = fit(
            model,
            pairs,
            train,
            out,
            step_fn=mean_teacher_step(config.consistency_weight),
            collate_fn=collate_pairs,
        )
    return {
        "steps": result.global_step,
        "epochs": result.epochs_run,
        "parameters": parameter_count(model),
        "train_loss": result.last_metrics.get("train_loss"),
    }
