"""Segment every image with one method: the per-image stage of the MMT recipe.

Segmentation runs through the per-item runner, so it is resumable per image, shards with
`--shard I/N` / `--jobs N`, and stores one label array per image, shaped [variants, seeds, H, W]
at the image's own resolution, in the smallest unsigned integer type that holds its labels
(uint8 for every CNN method and k-means; uint16 only for Felzenszwalb at small scales): label
maps are ids, so the narrowing is lossless, and a full-size k-means grid shrinks 4× against
int32. Store attributes record the method, its parameters, the variant list (e.g. k-means' k
grid) and the seeds, so every label map can be traced to the run that made it. Each worker
process uses one torch thread: the maps then do not depend on `--jobs`/`--shard`, and
parallelism comes from running images side by side.

Progress inside an image (iteration, loss, segment count) is logged every few seconds on a
terminal and every 30 s elsewhere (batch jobs' logs), since one full-size image can take hours.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError
from avtool.core.items import ItemStageResult, SingleThreadTorchWorker, run_manifest_stage

log = logging.getLogger("avtool.mmt")

METHODS = ("mmt", "kanezaki", "kim", "kmeans", "felzenszwalb")
# 2: channels-last nets (float rounding); 3: labels stored in the smallest unsigned type, and
# `precision` enters the parameters; 4: the CE + TV gradient written out, fp32 nets trained
# channels-last on AVX-512 (float rounding), `auto` stored as the precision it resolved to.
SEGMENT_VERSION = 4
LABEL_TYPES = (np.uint8, np.uint16, np.uint32)
PROGRESS_SECONDS = (5.0, 30.0)  # between progress lines: on a terminal, in a log


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
    # MMT's TV weight β: the paper gives none. 5 was chosen on the 3 real BSDS500 train samples
    # at full size (bench/mmt.py --real, README); several values make a grid chosen on val
    # like Kim's µ, e.g. `--set beta=[1,5]`.
    beta: list[float] = field(default_factory=lambda: [5.0])
    mu: list[float] = field(default_factory=lambda: [1.0, 5.0])
    slic_segments: int = 10000
    slic_compactness: float = 100.0
    kmeans_k: list[int] = field(default_factory=lambda: [2, 5, 8, 11, 14, 17, 20])
    felzenszwalb_scale: list[float] = field(
        default_factory=lambda: [100.0, 500.0, 1000.0, 1500.0, 2000.0]
    )
    max_side: int = 0  # 0 = full resolution; else segment a downscaled copy, upsample the labels
    # fp32 (portable), bf16 (autocast, channels-last) or auto: bf16 only where this CPU runs it
    # natively and a probe finds it faster (AMX / AVX512-BF16); CNN methods only. auto is
    # resolved where the stage starts, and the stage's parameters and table state the result.
    precision: str = "fp32"


_NET_KEYS = ("iterations", "channels", "n_conv", "lr", "momentum", "precision")
_METHOD_KEYS = {
    "mmt": (*_NET_KEYS, "ema", "beta"),
    "kanezaki": (*_NET_KEYS, "min_labels", "slic_segments", "slic_compactness"),
    "kim": (*_NET_KEYS, "min_labels", "mu"),
    "kmeans": ("kmeans_k",),
    "felzenszwalb": ("felzenszwalb_scale",),
}


def stage_params(config: SegmentConfig, device: str = "cpu") -> dict[str, Any]:
    """The options that shape this method's output: only these enter the stage's config hash."""
    if config.method not in METHODS:
        raise InputError(f"--method {config.method!r}: expected one of {', '.join(METHODS)}")
    if config.seeds < 1:
        raise InputError(f"--seeds {config.seeds}: need at least 1")
    if config.precision not in ("fp32", "bf16", "auto"):
        raise InputError(f"precision={config.precision!r}: expected fp32, bf16 or auto")
    params: dict[str, Any] = {"method": config.method, "max_side": config.max_side}
    params.update({key: getattr(config, key) for key in _METHOD_KEYS[config.method]})
    if params.get("precision") == "auto":
        from avtool.models.segmentation import use_bf16

        params["precision"] = "bf16" if use_bf16("auto", device) else "fp32"
    if "n_conv" in params and params["n_conv"] == 0:
        params["n_conv"] = 3 if config.method == "mmt" else 2
    # Felzenszwalb is deterministic: one run per image, whatever --seeds says.
    count = 1 if config.method == "felzenszwalb" else config.seeds
    params["seeds"] = [config.seed + i for i in range(count)]
    params["variants"] = _variants(config)
    return params


def _variants(config: SegmentConfig) -> list[dict[str, Any]]:
    if config.method == "kmeans":
        return [{"k": k} for k in config.kmeans_k]
    if config.method == "felzenszwalb":
        return [{"scale": s} for s in config.felzenszwalb_scale]
    if config.method == "kim":
        return [{"mu": m} for m in config.mu]
    if config.method == "mmt":
        return [{"beta": b} for b in config.beta]
    return [{}]


def compact_labels(maps: np.ndarray) -> np.ndarray:
    """Label maps in the smallest unsigned type that holds them (lossless: labels are ids ≥ 0)."""
    maps = np.asarray(maps)
    if maps.size and maps.min() < 0:
        raise ValueError("label maps must be non-negative ids")
    top = int(maps.max()) if maps.size else 0
    for kind in LABEL_TYPES:
        if top <= np.iinfo(kind).max:
            return maps.astype(kind)
    raise ValueError(f"label {top} does not fit in uint32")


def check_label_maps(maps: np.ndarray, where: str) -> np.ndarray:
    """Stored maps of this (uint8/16/32) or an older store (int32): any integer ids are read."""
    if maps.dtype.kind not in "ui" or maps.ndim != 4:
        raise InputError(
            f"{where}: stored maps are {maps.dtype} {maps.shape}, not integer [variants, seeds, "
            "H, W] label maps; rerun `avtool train mmt` into a new --out"
        )
    return maps


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


def progress_logger(tag: str, iterations: int):
    """A throttled progress callback: every 5 s on a terminal, every 30 s in logs."""
    from avtool.models.segmentation import Throttle

    def report(iteration: int, loss: float, segments: int) -> None:
        log.info(
            "%s: iteration %d/%d, loss %.4f, %d segments",
            tag,
            iteration,
            iterations,
            loss,
            segments,
        )

    return Throttle(report, every=PROGRESS_SECONDS[0 if sys.stderr.isatty() else 1])


def _tag(item_id: str, variant: dict[str, Any], seed: int) -> str:
    settings = "".join(f" {name}={value:g}" for name, value in variant.items())
    return f"{item_id}{settings} seed {seed}"


@dataclass
class SegmentWorker(SingleThreadTorchWorker):
    """Segments one image with every (variant, seed) of a method: uint [V, S, H, W]."""

    params: dict[str, Any]
    device: str = "cpu"
    # Label maps are mostly runs of a few values: gzip stores a k-means run 19x smaller.
    store_compression = "gzip"

    def store_attrs(self) -> dict[str, Any]:
        from avtool.core.store import store_attrs

        return store_attrs(f"mmt.segment.{self.params['method']}", self.params)

    def run_one(self, image: np.ndarray, variant: dict[str, Any], seed: int, tag: str):
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
            precision=p.get("precision", "fp32"),
        )
        progress = progress_logger(tag, p["iterations"])
        if method == "mmt":
            return seg.segment_mmt(
                image, seed, net, p["ema"], variant["beta"], self.device, progress=progress
            )[0]
        if method == "kanezaki":
            return seg.segment_kanezaki(
                image,
                seed,
                net,
                p["slic_segments"],
                p["slic_compactness"],
                self.device,
                progress=progress,
            )[0]
        return seg.segment_kim(image, seed, net, variant["mu"], self.device, progress=progress)[0]

    def __call__(self, item: dict[str, Any]) -> np.ndarray:
        from avtool.corpora.bsds import read_image

        image = read_image(item["path"])
        height, width = image.shape[:2]
        small = _resize(image, self.params["max_side"])
        maps = [
            [
                _upsample(
                    self.run_one(small, variant, seed, _tag(item["id"], variant, seed)),
                    height,
                    width,
                )
                for seed in self.params["seeds"]
            ]
            for variant in self.params["variants"]
        ]
        return compact_labels(np.asarray(maps))


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
    params = stage_params(config, device)
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
