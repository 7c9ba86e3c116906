"""`evaluate limuse`: SI-SDR and SI-SDRi per test mixture (the packed model for a quantized
run), mean and spread, a histogram.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError
from avtool.recipes.limuse.config import EVALUATE_VERSION, PACKED
from avtool.recipes.limuse.data import LimuseMixtures, stage_inputs
from avtool.recipes.limuse.model import build_model, estimate_target, fp32_no_gc_bytes
from avtool.recipes.limuse.train import read_run


def load_run_model(run: Path):
    """(model in eval mode, summary): the packed model of a quantized run, else final.pt."""
    from avtool.quant.pack import load_packed
    from avtool.train import checkpoint

    run = Path(run)
    summary, _ = read_run(run)
    if (run / PACKED).is_file() and "source_run" in summary:
        model, _ = load_packed(run / PACKED, build_model)
        return model, summary
    model = build_model({"arch": summary["arch"], "model": summary["model"]})
    model.load_state_dict(checkpoint.load(run / "final.pt")["model"])
    return model.eval(), summary


def evaluate_limuse(
    run: Path,
    data: Path | None = None,
    split: str = "test",
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """SI-SDR and SI-SDRi of every `split` mixture (one at a time), into `run/evaluation`."""
    import torch

    from avtool.core import atomic
    from avtool.core.journal import write_jsonl
    from avtool.core.stage import Stage, describe_status
    from avtool.metrics.si_sdr import si_sdr_improvement

    run = Path(run).resolve()
    summary, run_config = read_run(run)
    data = Path(data).resolve() if data else Path(summary["data"])
    paths = [Path(summary[k]) if summary.get(k) else None for k in ("voiceprint", "face")]
    out = run / "evaluation"
    stage = Stage(
        "evaluate.limuse", EVALUATE_VERSION, out, {"run": str(run), "data": str(data), "split": split},
        [run / "stage.json", *stage_inputs(data, *paths)],
    )  # fmt: skip
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **_scores(json.loads((out / "results.json").read_text()))}
    model, _ = load_run_model(run)
    mixtures = LimuseMixtures(data, split, *paths, run_config)
    if not len(mixtures):
        raise InputError(f"{data}: no {split} mixture with its cues to evaluate on")
    rows = []
    with torch.no_grad():
        for position in range(len(mixtures)):
            mixture, vp, vis, target = (t.unsqueeze(0) for t in mixtures[position])
            estimate = estimate_target(model, summary["arch"], mixture, vp, vis, target)
            value, gain = si_sdr_improvement(estimate, mixture[:, 0], target)
            rows.append(
                {
                    "id": mixtures.items[position]["id"],
                    "si_sdr": float(value),
                    "si_sdri": float(gain),
                }
            )
    values = np.array([r["si_sdr"] for r in rows])
    gains = np.array([r["si_sdri"] for r in rows])
    results = {
        "arch": summary["arch"],
        "groups": summary["model"].get("groups", 1),
        "method": method_name(summary),
        "split": split,
        "items": len(rows),
        "si_sdr": float(values.mean()),
        "si_sdr_std": float(values.std()),
        "si_sdri": float(gains.mean()),
        "si_sdri_std": float(gains.std()),
        "si_sdri_median": float(np.median(gains)),
        "params": summary["params"],
        "bytes": summary.get("bytes", 4 * summary["params"]),
        "packed": "bytes" in summary,
        # Table 2 gives no ratio for the baselines, which are not LiMuSE models.
        "compression_ratio": None
        if summary["arch"] == "tasnet"
        else summary.get("compression_ratio")
        or fp32_no_gc_bytes(summary) / (4 * summary["params"]),
        "max_deviation": summary.get("max_deviation"),
    }
    write_jsonl(out / "items.jsonl", rows)
    histogram(out / "si_sdri.png", {results["method"]: gains})
    atomic.write_json(out / "results.json", results)
    stage.finish(
        counts={"items": len(rows)}, outputs=["results.json", "items.jsonl", "si_sdri.png"]
    )
    return {"state": "done", **_scores(results)}


def method_name(summary: dict[str, Any]) -> str:
    if summary["arch"] == "tasnet":
        mics = summary["model"]["channels"]
        return f"TasNet ({'dual' if mics == 2 else 'single'}-channel)"
    model = summary["model"]
    missing = [] if "source_run" in summary else ["Q"]
    if not model["voiceprint_dim"]:
        missing.append("VP")
    if not model["face_dim"]:
        missing.append("VIS")
    if model["groups"] == 1:
        missing.append("GC")
    name = "LiMuSE" + (f" (w/o {' and '.join(missing)})" if missing else "")
    if summary.get("visual_order") == "shuffled":
        name += " [visual shuffled]"
    return name


def _scores(results: dict[str, Any]) -> dict[str, Any]:
    keys = ("method", "items", "si_sdr", "si_sdri", "bytes")
    return {k: results[k] for k in keys}


def histogram(path: Path, gains: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from avtool.core import atomic

    figure, axes = plt.subplots(figsize=(6, 4))
    for label, values in gains.items():
        axes.hist(values, bins=20, alpha=0.5, label=label)
    axes.set_xlabel("SI-SDRi (dB)")
    axes.set_ylabel("mixtures")
    axes.legend(fontsize=7)
    figure.tight_layout()
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
