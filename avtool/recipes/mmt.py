"""MMT recipe: segment every image with one method (per-image stage), evaluate, report.

Segmentation runs through the per-item runner, so it is resumable per image, shards with
`--shard I/N` / `--jobs N`, and stores one int32 array per image, shaped
[variants, seeds, H, W] at the image's own resolution. Store attributes record the method,
its parameters, the variant list (e.g. k-means' k grid) and the seeds, so every label map can be
traced to the run that made it. Each worker process uses one torch thread: the maps then do not
depend on `--jobs`/`--shard`, and parallelism comes from running images side by side.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError
from avtool.core.items import ItemStageResult, SingleThreadTorchWorker, run_manifest_stage

METHODS = ("mmt", "kanezaki", "kim", "kmeans", "felzenszwalb")
SEGMENT_VERSION = 2  # 2: channels-last nets (same algorithm, different float rounding)
EVALUATE_VERSION = 1
REPORT_VERSION = 1
# Paper's Table 1 (BSDS500 test, pixel accuracy).
PAPER_ACCURACY = {
    "kmeans": 0.3639,
    "felzenszwalb": 0.4661,
    "kanezaki": 0.5269,
    "kim": 0.5023,
    "mmt": 0.5384,
}
DISPLAY = {
    "kmeans": "k-means",
    "felzenszwalb": "Felzenszwalb (GS)",
    "kanezaki": "Kanezaki 2018",
    "kim": "Kim 2020",
    "mmt": "MMT (ours in the paper)",
}
# Grid methods report the grid value that is best over the whole corpus ("experimentally
# determined" in the paper); Kim's µ values are two settings of its paper, reported each.
_SELECT_BEST = {"kmeans", "felzenszwalb"}


@dataclass
class SegmentConfig:
    """Per-image segmentation options; defaults are the paper's (§4) and the baselines' code."""

    method: str = "mmt"
    seeds: int = 1
    seed: int = 0
    iterations: int = 1000
    channels: int = 100
    n_conv: int = 0  # 3×3 conv components; 0 = the method's own (MMT 3, Kanezaki/Kim 2)
    lr: float = 0.1
    momentum: float = 0.9
    min_labels: int = 3
    ema: float = 0.999
    beta: float = 1.0
    mu: list[float] = field(default_factory=lambda: [1.0, 5.0])
    slic_segments: int = 10000
    slic_compactness: float = 100.0
    kmeans_k: list[int] = field(default_factory=lambda: [2, 5, 8, 11, 14, 17, 20])
    felzenszwalb_scale: list[float] = field(
        default_factory=lambda: [100.0, 500.0, 1000.0, 1500.0, 2000.0]
    )
    max_side: int = 0  # 0 = full resolution; else segment a downscaled copy, upsample the labels


_NET_KEYS = ("iterations", "channels", "n_conv", "lr", "momentum")
_METHOD_KEYS = {
    "mmt": (*_NET_KEYS, "ema", "beta"),
    "kanezaki": (*_NET_KEYS, "min_labels", "slic_segments", "slic_compactness"),
    "kim": (*_NET_KEYS, "min_labels", "mu"),
    "kmeans": ("kmeans_k",),
    "felzenszwalb": ("felzenszwalb_scale",),
}


def stage_params(config: SegmentConfig) -> dict[str, Any]:
    """The options that shape this method's output: only these enter the stage's config hash."""
    if config.method not in METHODS:
        raise InputError(f"--method {config.method!r}: expected one of {', '.join(METHODS)}")
    if config.seeds < 1:
        raise InputError(f"--seeds {config.seeds}: need at least 1")
    params: dict[str, Any] = {"method": config.method, "max_side": config.max_side}
    params.update({key: getattr(config, key) for key in _METHOD_KEYS[config.method]})
    if "n_conv" in params and params["n_conv"] == 0:
        params["n_conv"] = 3 if config.method == "mmt" else 2
    # Felzenszwalb is deterministic: one run per image, whatever --seeds says.
    count = 1 if config.method == "felzenszwalb" else config.seeds
    params["seeds"] = [config.seed + i for i in range(count)]
    params["variants"] = _variants(config)
    params["selection"] = "best" if config.method in _SELECT_BEST else "each"
    return params


def _variants(config: SegmentConfig) -> list[dict[str, Any]]:
    if config.method == "kmeans":
        return [{"k": k} for k in config.kmeans_k]
    if config.method == "felzenszwalb":
        return [{"scale": s} for s in config.felzenszwalb_scale]
    if config.method == "kim":
        return [{"mu": m} for m in config.mu]
    return [{}]


def _resize(image: np.ndarray, max_side: int) -> np.ndarray:
    from PIL import Image

    height, width = image.shape[:2]
    if not max_side or max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def _upsample(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = np.arange(height) * labels.shape[0] // height
    cols = np.arange(width) * labels.shape[1] // width
    return labels[np.ix_(rows, cols)]


@dataclass
class SegmentWorker(SingleThreadTorchWorker):
    """Segments one image with every (variant, seed) of a method: int32 [V, S, H, W]."""

    params: dict[str, Any]
    device: str = "cpu"

    def store_attrs(self) -> dict[str, Any]:
        from avtool.core.store import store_attrs

        return store_attrs(f"mmt.segment.{self.params['method']}", self.params)

    def run_one(self, image: np.ndarray, variant: dict[str, Any], seed: int) -> np.ndarray:
        from avtool.models import segmentation as seg

        p = self.params
        method = p["method"]
        if method == "kmeans":
            return seg.segment_kmeans(image, variant["k"], seed)
        if method == "felzenszwalb":
            return seg.segment_felzenszwalb(image, variant["scale"])
        net = seg.NetConfig(
            iterations=p["iterations"],
            channels=p["channels"],
            n_conv=p["n_conv"],
            lr=p["lr"],
            momentum=p["momentum"],
            min_labels=p.get("min_labels", 3),
        )
        if method == "mmt":
            return seg.segment_mmt(image, seed, net, p["ema"], p["beta"], self.device)[0]
        if method == "kanezaki":
            return seg.segment_kanezaki(
                image, seed, net, p["slic_segments"], p["slic_compactness"], self.device
            )[0]
        return seg.segment_kim(image, seed, net, variant["mu"], self.device)[0]

    def __call__(self, item: dict[str, Any]) -> np.ndarray:
        from avtool.corpora.bsds import read_image

        image = read_image(item["path"])
        height, width = image.shape[:2]
        small = _resize(image, self.params["max_side"])
        maps = [
            [
                _upsample(self.run_one(small, variant, seed), height, width)
                for seed in self.params["seeds"]
            ]
            for variant in self.params["variants"]
        ]
        return np.asarray(maps, dtype=np.int32)


def segment(
    manifest: Path,
    out: Path,
    config: SegmentConfig,
    device: str = "cpu",
    shard: str | None = None,
    jobs: int = 1,
    launcher: str = "local",
    force: bool = False,
    dry_run: bool = False,
    max_reject_rate: float = 0.2,
) -> ItemStageResult:
    """Segment every image of a BSDS manifest with `config.method`; store [V, S, H, W] per image."""
    params = stage_params(config)
    return run_manifest_stage(
        f"mmt.segment.{config.method}",
        SEGMENT_VERSION,
        manifest,
        out,
        params,
        SegmentWorker(params, device),
        shard=shard,
        jobs=jobs,
        launcher=launcher,
        force=force,
        dry_run=dry_run,
        max_reject_rate=max_reject_rate,
    )


# --- evaluation ---------------------------------------------------------------------------


def variant_label(method: str, variant: dict[str, Any]) -> str:
    symbols = {"mu": "µ", "k": "k", "scale": "scale"}
    settings = ", ".join(f"{symbols[k]}={v:g}" for k, v in variant.items())
    return DISPLAY[method] + (f" ({settings})" if settings else "")


def _stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means, and the spread over seeds two ways: of the corpus mean, and per image."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    by_image: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_seed[row["seed"]].append(row["accuracy"])
        by_image[row["id"]].append(row)

    def per_image_std(key: str) -> float:
        return float(np.mean([np.std([r[key] for r in group]) for group in by_image.values()]))

    return {
        "images": len(by_image),
        "seeds": sorted(by_seed),
        "accuracy": float(np.mean([r["accuracy"] for r in rows])),
        "accuracy_std_over_seeds": float(np.std([np.mean(v) for v in by_seed.values()])),
        "accuracy_std_per_image": per_image_std("accuracy"),
        "miou": float(np.mean([r["miou"] for r in rows])),
        "segments": float(np.mean([r["segments"] for r in rows])),
        "segments_std_per_image": per_image_std("segments"),
    }


def evaluate(
    manifest: Path, runs: list[Path], out: Path, force: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """Score every run's label maps against each image's annotators; write the table's data.

    Writes `scores.jsonl` (one line per method, variant, image, seed) and `summary.json`
    (one row per table line, with the chosen variant of grid methods).
    """
    from avtool.core.journal import write_jsonl
    from avtool.core.manifest import read_manifest
    from avtool.core.stage import Stage
    from avtool.core.store import FeatureStore
    from avtool.corpora.bsds import read_ground_truth
    from avtool.metrics.segmentation import score_against_annotators, segment_count

    if not runs:
        raise InputError("evaluate mmt: give at least one --run directory")
    runs = [Path(r).resolve() for r in runs]
    items = [it for it in read_manifest(manifest) if it.get("gt")]
    if not items:
        raise InputError(f"{manifest}: no image has ground truth; nothing to evaluate")
    config = {"runs": [str(r) for r in runs], "manifest": str(Path(manifest).resolve())}
    stage = Stage("mmt.evaluate", EVALUATE_VERSION, out, config, inputs=[Path(manifest), *runs])
    if dry_run:
        status = stage.status()
        return {"state": "dry-run", "message": f"mmt.evaluate: {status.state} ({status.reason})"}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **stage.status().counts}
    gt_dir = Path(manifest).resolve().parent
    truths = {it["id"]: read_ground_truth(gt_dir / it["gt"]) for it in items}
    scores: list[dict[str, Any]] = []
    run_info = []
    for run in runs:
        with FeatureStore(run) as store:
            params = store.attrs.get("params") or {}
            if "method" not in params:
                raise InputError(f"{run}: not an `avtool train mmt` output; pass segmentation runs")
            method = params["method"]
            missing = [it["id"] for it in items if it["id"] not in store]
            run_info.append({"run": str(run), "method": method, "missing": missing})
            for item in items:
                if item["id"] not in store:
                    continue
                maps = store[item["id"]]
                for v, variant in enumerate(params["variants"]):
                    for s, seed in enumerate(params["seeds"]):
                        accuracy, miou = score_against_annotators(maps[v, s], truths[item["id"]])
                        scores.append(
                            {
                                "method": method,
                                "variant": v,
                                "label": variant_label(method, variant),
                                "id": item["id"],
                                "seed": seed,
                                "accuracy": accuracy,
                                "miou": miou,
                                "segments": segment_count(maps[v, s]),
                            }
                        )
            run_info[-1]["params"] = params
    rows = _table_rows(scores, run_info)
    write_jsonl(Path(out) / "scores.jsonl", scores)
    summary = {
        "protocol": (
            "pixel accuracy and mean IoU under the best one-to-one (Hungarian) mapping of "
            "predicted to human segments, averaged over each image's annotators"
        ),
        "rows": rows,
        "runs": [{k: v for k, v in r.items() if k != "params"} for r in run_info],
    }
    from avtool.core import atomic

    atomic.write_json(Path(out) / "summary.json", summary)
    counts = {"runs": len(runs), "images": len(items), "scores": len(scores)}
    stage.finish(counts=counts, outputs=["scores.jsonl", "summary.json"])
    return {"state": "done", **counts, "rows": rows}


def _table_rows(scores: list[dict[str, Any]], run_info: list[dict[str, Any]]) -> list[dict]:
    rows = []
    for info in run_info:
        method, params = info["method"], info["params"]
        candidates = []
        for v, variant in enumerate(params["variants"]):
            mine = [s for s in scores if s["method"] == method and s["variant"] == v]
            if mine:
                candidates.append(
                    {
                        "method": method,
                        "label": variant_label(method, variant),
                        "variant": v,
                        "settings": variant,
                        "run": info["run"],
                        "paper_accuracy": PAPER_ACCURACY[method],
                        **_stats(mine),
                    }
                )
        if params["selection"] == "best" and candidates:
            candidates = [max(candidates, key=lambda row: row["accuracy"])]
        rows.extend(candidates)
    return rows


# --- report -------------------------------------------------------------------------------


def _table_markdown(rows: list[dict[str, Any]], protocol: str) -> str:
    lines = [
        "| Method | Accuracy | ± seeds (corpus) | ± seeds (per image) | mIoU | Segments "
        "| ± seeds (per image) | Paper accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['accuracy']:.4f} | {row['accuracy_std_over_seeds']:.4f} "
            f"| {row['accuracy_std_per_image']:.4f} | {row['miou']:.4f} | {row['segments']:.1f} "
            f"| {row['segments_std_per_image']:.2f} | {row['paper_accuracy']:.4f} |"
        )
    images = max((row["images"] for row in rows), default=0)
    seeds = max((len(row["seeds"]) for row in rows), default=0)
    lines += [
        "",
        f"{images} images, up to {seeds} seeds per method. Scores: {protocol}. "
        "'± seeds (corpus)' is the standard deviation over seeds of the corpus-mean accuracy; "
        "'± seeds (per image)' the standard deviation over seeds on one image, averaged over "
        "images. k-means and Felzenszwalb show their best grid value over the corpus, as in the "
        "paper; Felzenszwalb is deterministic (one run). Paper accuracy: Table 1 (BSDS500).",
    ]
    return "\n".join(lines) + "\n"


def _colourise(labels: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(labels, return_inverse=True)
    palette = np.random.default_rng(0).integers(0, 256, size=(inverse.max() + 1, 3))
    return palette[inverse.reshape(labels.shape)].astype(np.uint8)


def _figure(path: Path, image: np.ndarray, truth: np.ndarray, panels: list[tuple[str, np.ndarray]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 2 + len(panels)
    figure, axes = plt.subplots(1, columns, figsize=(2.6 * columns, 2.4))
    shown = [("input", image), ("ground truth (annotator 1)", _colourise(truth))]
    shown += [(title, _colourise(labels)) for title, labels in panels]
    for axis, (title, picture) in zip(axes, shown, strict=True):
        axis.imshow(picture)
        axis.set_title(title, fontsize=7)
        axis.axis("off")
    figure.tight_layout()
    from avtool.core import atomic

    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def report(
    evaluation: Path, out: Path, max_figures: int = 20, force: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """`table.md` (all methods, paper column beside) and `figures/<id>.png` per image."""
    from avtool.core import atomic
    from avtool.core.manifest import read_manifest
    from avtool.core.stage import Stage
    from avtool.core.store import FeatureStore
    from avtool.corpora.bsds import read_ground_truth, read_image

    summary_path = Path(evaluation) / "summary.json"
    if not summary_path.is_file():
        raise InputError(f"{evaluation}: no summary.json; run `avtool evaluate mmt` first")
    stage = Stage(
        "mmt.report", REPORT_VERSION, out, {"max_figures": max_figures}, inputs=[Path(evaluation)]
    )
    if dry_run:
        status = stage.status()
        return {"state": "dry-run", "message": f"mmt.report: {status.state} ({status.reason})"}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **stage.status().counts}
    summary = json.loads(summary_path.read_text())
    rows = summary["rows"]
    table = _table_markdown(rows, summary["protocol"])
    atomic.write_text(Path(out) / "table.md", table)
    manifest = _evaluated_manifest(Path(evaluation))
    items = [it for it in read_manifest(manifest) if it.get("gt")][:max_figures]
    stores = {row["run"]: FeatureStore(row["run"]) for row in rows}
    seed_index = 0  # figures show each method's first seed
    outputs = ["table.md"]
    try:
        for item in items:
            panels = [
                (row["label"], stores[row["run"]][item["id"]][row["variant"], seed_index])
                for row in rows
                if item["id"] in stores[row["run"]]
            ]
            truth = read_ground_truth(manifest.parent / item["gt"])[0]
            name = f"figures/{item['id']}.png"
            _figure(Path(out) / name, read_image(item["path"]), truth, panels)
            outputs.append(name)
    finally:
        for store in stores.values():
            store.close()
    stage.finish(counts={"figures": len(outputs) - 1, "methods": len(rows)}, outputs=outputs)
    return {"state": "done", "table": table, "figures": len(outputs) - 1}


def _evaluated_manifest(evaluation: Path) -> Path:
    import yaml

    config = yaml.safe_load((evaluation / "config.yaml").read_text())
    return Path(config["manifest"])
