"""`train limuse`: LiMuSE (or a TasNet baseline) on the mixtures of `prepare grid` with the
voiceprint and face stores: negative SI-SDR, Adam lr 1e-3, gradient L2 norm clipped at 5,
lr halved after 2 epochs without validation improvement, stop after 6, 50 epochs. Writes
final.pt, metrics.jsonl and summary.json, resumable through `avtool.train.loop.fit`; a
finished run is read back by the later stages with `read_run`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from avtool.core.errors import InputError
from avtool.recipes.limuse.config import TRAIN_VERSION, LimuseConfig
from avtool.recipes.limuse.data import LimuseMixtures, stage_inputs
from avtool.recipes.limuse.model import build_model, loss, parameter_count, run_header, validate


def train_limuse(
    data: Path,
    out: Path,
    config: LimuseConfig,
    voiceprint: Path | None = None,
    face: Path | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Train one network; writes final.pt, metrics.jsonl and summary.json into `out`."""
    import torch

    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status
    from avtool.train.loop import fit

    out, data = Path(out), Path(data).resolve()
    voiceprint = Path(voiceprint).resolve() if voiceprint else None
    face = Path(face).resolve() if face else None
    stage_config = {
        "config": asdict(config),
        "data": str(data),
        "voiceprint": str(voiceprint),
        "face": str(face),
    }
    stage = Stage(
        "train.limuse", TRAIN_VERSION, out, stage_config, stage_inputs(data, voiceprint, face)
    )
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if stage.status().state == "done" and not force:
        return {"state": "up-to-date", **headline(json.loads((out / "summary.json").read_text()))}
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        stage.begin(force=force)
    train_set = LimuseMixtures(data, "train", voiceprint, face, config, config.max_train_items)
    if not len(train_set):
        raise InputError(f"{data}: no training mixture with its cues; check the stores' items")
    val_set = LimuseMixtures(data, "valid", voiceprint, face, config)
    dims = train_set.dims()
    header = run_header(config, dims)
    torch.manual_seed(config.train.seed)
    model = build_model(header)
    arch = config.arch
    result = fit(
        model,
        train_set,
        config.train,
        out,
        step_fn=lambda net, teacher, batch: loss(net, arch, batch),
        val_set=val_set if len(val_set) else None,
        evaluate_fn=validate(arch) if len(val_set) else None,
    )
    summary = {
        **header,
        "data": str(data),
        "voiceprint": str(voiceprint) if voiceprint else None,
        "face": str(face) if face else None,
        "visual_order": config.visual_order,
        "visual_features": config.visual_features,
        "params": parameter_count(model),
        "train_items": len(train_set),
        "valid_items": len(val_set),
        "left_out_missing_cues": train_set.missing + val_set.missing,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "final_train_loss": result.last_metrics.get("train_loss"),
    }
    if main_process:
        atomic.write_json(out / "summary.json", summary)
        stage.finish(
            counts={"train_items": len(train_set), "epochs": result.epochs_run},
            outputs=["final.pt", "metrics.jsonl", "summary.json"],
        )
    return {"state": "done", **headline(summary)}


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "arch",
        "params",
        "train_items",
        "epochs_run",
        "final_train_loss",
        "bytes",
        "max_deviation",
    )
    return {k: summary[k] for k in keys if summary.get(k) is not None}


def read_run(run: Path) -> tuple[dict[str, Any], LimuseConfig]:
    import yaml

    from avtool.core.config import from_dict

    run = Path(run)
    stamp = run / "stage.json"
    if not stamp.is_file() or not (run / "summary.json").is_file():
        raise InputError(f"{run}: no finished LiMuSE run here; run `avtool train limuse` first")
    name = json.loads(stamp.read_text()).get("name")
    if name not in ("train.limuse", "quantize.limuse"):
        raise InputError(f"{run}: holds stage {name!r}, not a `train limuse` run")
    summary = json.loads((run / "summary.json").read_text())
    train_run = Path(summary.get("source_run", run))
    stored = yaml.safe_load((train_run / "config.yaml").read_text())["config"]
    return summary, from_dict(LimuseConfig, stored)
