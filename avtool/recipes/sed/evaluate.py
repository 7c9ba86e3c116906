"""`evaluate sed --run`: per-seed predictions and scores, and §5's seed protocol."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError
from avtool.recipes.sed.data import (
    CLIP_SECONDS,
    HEADLINE,
    STEP_SECONDS,
    ClipInputs,
    available_clips,
    read_clips,
    torch_threads,
)

EVALUATE_VERSION = 1


@dataclass
class SedEvaluateConfig:
    validation_split: str = "test"  # DCASE 2018's "test" set is the paper's validation set
    test_split: str = "eval"
    threshold: float = 0.5
    median_frames: int = 7
    best: int = 5  # seeds kept by validation score (§5)


def _run_summary(run: Path) -> dict[str, Any]:
    stamp = run / "stage.json"
    if not stamp.is_file() or not (run / "summary.json").is_file():
        raise InputError(f"{run}: no finished `avtool train sed` run here; train it first")
    if json.loads(stamp.read_text()).get("name") != "train.sed":
        raise InputError(f"{run}: holds another stage than `train sed`")
    return json.loads((run / "summary.json").read_text())


def predict(model, loader: ClipInputs, ids: list[str], batch: int = 16) -> dict[str, tuple]:
    """clip id -> (frame probabilities [151, classes], clip probabilities [classes])."""
    import torch

    model.eval()
    outputs: dict[str, tuple] = {}
    with torch.no_grad():
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            clips = [loader(i) for i in chunk]
            inputs = {s: torch.from_numpy(np.stack([c[s] for c in clips])) for s in clips[0]}
            frames, tags = model(inputs)
            for i, clip_id in enumerate(chunk):
                outputs[clip_id] = (frames[i].numpy(), tags[i].numpy())
    return outputs


def decode_events(
    frames: np.ndarray,
    clip: np.ndarray,
    classes: tuple[str, ...],
    duration: float = CLIP_SECONDS,
    threshold: float = 0.5,
    median: int = 7,
) -> list[dict[str, Any]]:
    """Events (onset, offset, event_label) of one clip: frames > threshold, median filter over
    `median` frames, kept for classes whose clip probability is > threshold."""
    from scipy.ndimage import median_filter

    active = median_filter((frames > threshold).astype(np.uint8), size=(median, 1), mode="nearest")
    events = []
    for c, label in enumerate(classes):
        if clip[c] <= threshold:
            continue
        edges = np.flatnonzero(np.diff(np.concatenate([[0], active[:, c], [0]])))
        for onset, offset in zip(edges[::2], edges[1::2], strict=True):
            start = onset * STEP_SECONDS
            if start >= duration:
                continue
            end = min(offset * STEP_SECONDS, duration)
            events.append({"onset": round(start, 3), "offset": round(end, 3), "event_label": label})
    return sorted(events, key=lambda e: (e["onset"], e["event_label"]))


def _event_rows(clips: list[dict], events: dict[str, list[dict]]) -> list[dict[str, Any]]:
    rows = []
    for clip in clips:
        found = events.get(clip["id"], [])
        if not found:
            rows.append({"filename": clip["filename"], "onset": None, "offset": None})
        rows += [{"filename": clip["filename"], **e} for e in found]
    return rows


def evaluate_run(
    run: Path, out: Path | None = None, config: SedEvaluateConfig | None = None,
    force: bool = False, dry_run: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Score every seed of a `train sed` run on the validation and test splits; §5's protocol.

    `config` defaults to the run's own `evaluation` settings (splits, threshold, filter, best).
    Writes, under `out` (default RUN/evaluation): per seed `seed-XX/{split}_predictions.tsv`
    and `results.json` of every seed, the reference lists, and the protocol's mean test scores.
    """
    from avtool.core import atomic
    from avtool.core.config import from_dict
    from avtool.core.stage import Stage, describe_status
    from avtool.corpora.dcase2018 import CLASSES, write_event_list
    from avtool.metrics.sed import evaluate_event_lists, metric_versions

    run = Path(run)
    out = Path(out) if out is not None else run / "evaluation"
    summary = _run_summary(run)
    config = config or from_dict(SedEvaluateConfig, summary["evaluation"])
    stage = Stage("evaluate.sed", EVALUATE_VERSION, out, config, [run / "stage.json"])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **_headline(json.loads((out / "results.json").read_text()))}
    scaler = summary.get("scaler")
    loader = ClipInputs(
        {k: Path(v) for k, v in summary["stores"].items()},
        np.array(scaler["mean"], np.float32) if scaler else None,
        np.array(scaler["std"], np.float32) if scaler else None,
        summary["clip_seconds"],
    )
    clips = available_clips(read_clips(Path(summary["manifest"])), loader)
    splits = {
        "validation": [c for c in clips if c.get("split") == config.validation_split],
        "test": [c for c in clips if c.get("split") == config.test_split],
    }
    for name, chosen in splits.items():
        if not chosen:
            split = getattr(config, f"{name}_split")
            raise InputError(
                f"{summary['manifest']}: no {name} clip (split {split!r}) is in the stores; "
                f"set {name}_split to a strongly labelled split that is"
            )
    outputs = []
    for name, chosen in splits.items():
        reference = [{"filename": c["filename"], **e} for c in chosen for e in c.get("events", [])]
        reference += [
            {"filename": c["filename"], "onset": None, "offset": None}
            for c in chosen
            if not c.get("events")
        ]
        write_event_list(out / f"{name}_reference.tsv", reference)
        outputs.append(f"{name}_reference.tsv")
    seeds: dict[str, Any] = {}
    durations = {
        c["id"]: min(c.get("duration") or loader.clip_seconds, loader.clip_seconds) for c in clips
    }
    for seed_dir in sorted(run.glob("seed-*")):
        model = _load_student(seed_dir, summary["inputs"])
        scores = {}
        for name, chosen in splits.items():
            with torch_threads(summary.get("threads", 0)):
                probabilities = predict(model, loader, [c["id"] for c in chosen])
            events = {
                clip_id: decode_events(
                    frames,
                    tags,
                    CLASSES,
                    durations[clip_id],
                    threshold=config.threshold,
                    median=config.median_frames,
                )
                for clip_id, (frames, tags) in probabilities.items()
            }
            rows = _event_rows(chosen, events)
            write_event_list(out / seed_dir.name / f"{name}_predictions.tsv", rows)
            outputs.append(f"{seed_dir.name}/{name}_predictions.tsv")
            reference = [
                {"filename": c["filename"], **e} for c in chosen for e in c.get("events", [])
            ]
            scores[name] = evaluate_event_lists(
                reference, rows, [c["filename"] for c in chosen], classes=list(CLASSES)
            )
        seeds[seed_dir.name] = scores
    if not seeds:
        raise InputError(f"{run}: no seed-XX folder with a trained model")
    results = {
        "system": "sed",
        "inputs": summary["inputs"],
        "run": str(run.resolve()),
        "clips": {name: len(chosen) for name, chosen in splits.items()},
        "clip_seconds": loader.clip_seconds,
        "protocol": select_seeds(seeds, config.best),
        "seeds": seeds,
        "metric_versions": metric_versions(),
    }
    atomic.write_json(out / "results.json", results)
    stage.finish(counts={"seeds": len(seeds)}, outputs=[*outputs, "results.json"])
    return {"state": "done", **_headline(results)}


def _load_student(seed_dir: Path, inputs: list[str]):
    from avtool.models.crnn import CRNN, CRNNConfig
    from avtool.train import checkpoint

    if not (seed_dir / "final.pt").is_file():
        raise InputError(f"{seed_dir}: training did not finish (no final.pt); rerun `train sed`")
    model = CRNN(CRNNConfig(inputs=tuple(inputs)))
    model.load_state_dict(checkpoint.load(seed_dir / "final.pt")["model"])
    return model.eval()


def _mean_f1(scores: dict[str, Any]) -> float:
    return float(np.mean([_score(scores, k) for k in HEADLINE]))


def _score(scores: dict[str, Any], key: str) -> float:
    """A headline score; sed_eval's undefined values (no event anywhere) count as 0."""
    value = scores[key]
    return 0.0 if value is None else float(value)


def select_seeds(seeds: dict[str, dict[str, Any]], best: int = 5) -> dict[str, Any]:
    """§5: the `best` seeds by validation (mean of the three F1), their mean test scores."""
    ranked = sorted(seeds, key=lambda s: (-_mean_f1(seeds[s]["validation"]), s))
    chosen = ranked[:best]
    return {
        "selected": chosen,
        "of": len(seeds),
        "select_by": "mean of validation clip, segment and event F1",
        "test": {
            k: float(np.mean([_score(seeds[s]["test"], k) for s in chosen])) for k in HEADLINE
        },
        "test_std": {
            k: float(np.std([_score(seeds[s]["test"], k) for s in chosen])) for k in HEADLINE
        },
    }


def _headline(results: dict[str, Any]) -> dict[str, Any]:
    test = results["protocol"]["test"]
    return {"inputs": "+".join(results["inputs"]), "seeds": results["protocol"]["of"], **test}
