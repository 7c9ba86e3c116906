"""Synthetic BSDS500 in the real layout: region images with known segments and a few annotators.

Each image is a Voronoi partition of 3-5 regions; every region has its own colour and texture
(a sinusoidal grating of its own frequency and orientation), and the whole image gets Gaussian
noise. Each "annotator" draws the same partition from seeds jittered by a pixel or two, so the
human maps agree inside the regions and differ slightly at the boundaries, as BSDS annotators do.
Ground truth is written the way the BSDS .mat files are: a 1×K cell `groundTruth` of structs with
`Segmentation` (uint16 labels 1..max, consecutive) and `Boundaries` (uint8 0/1) fields. As in
BSDS500 (137 landscape and 63 portrait train images), every third image is portrait: its
`height` and `width` are swapped, and the label maps follow the image's numpy shape (H, W).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core import atomic

SPLITS = ("train", "val", "test")
STAGE_VERSION = 2  # 2: portrait images, consecutive annotator labels
# Far apart in RGB so that every method can in principle separate the regions.
_PALETTE = np.array(
    [
        [200, 40, 40],
        [40, 170, 60],
        [50, 70, 210],
        [230, 200, 60],
        [150, 60, 180],
        [60, 200, 200],
        [240, 140, 40],
        [90, 90, 90],
    ],
    dtype=np.float32,
)


def _voronoi(points: np.ndarray, height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    distance = (rows[None] - points[:, 0, None, None]) ** 2 + (
        cols[None] - points[:, 1, None, None]
    ) ** 2
    return np.argmin(distance, axis=0)


def boundaries(segmentation: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label (BSDS's thin boundary maps)."""
    edge = np.zeros(segmentation.shape, dtype=bool)
    edge[:, :-1] |= segmentation[:, 1:] != segmentation[:, :-1]
    edge[:-1, :] |= segmentation[1:, :] != segmentation[:-1, :]
    return edge


def make_image(
    rng: np.random.Generator, height: int, width: int, noise: float = 12.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint8 RGB image, true labels 0..R-1, region seed points [R, 2])."""
    regions = int(rng.integers(3, 6))
    points = rng.uniform([0, 0], [height, width], size=(regions, 2))
    labels = _voronoi(points, height, width)
    colours = _PALETTE[rng.permutation(len(_PALETTE))[:regions]]
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), dtype=np.float32)
    for region in range(regions):
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(4, 12)
        phase = (rows * np.sin(angle) + cols * np.cos(angle)) * 2 * np.pi / period
        texture = 18.0 * np.sin(phase)[..., None]
        mask = labels == region
        image[mask] = (colours[region] + texture)[mask]
    image += rng.normal(0.0, noise, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels, points


def consecutive(segmentation: np.ndarray) -> np.ndarray:
    """Labels renamed to 1..n in order of value, as every BSDS annotator map is (no gaps)."""
    _, inverse = np.unique(segmentation, return_inverse=True)
    return inverse.reshape(segmentation.shape) + 1


def ground_truth_cell(segmentations: list[np.ndarray]) -> np.ndarray:
    """A 1×K object array of 1×1 structs, which `savemat` writes as BSDS's cell of structs."""
    cell = np.empty((1, len(segmentations)), dtype=object)
    for k, segmentation in enumerate(segmentations):
        struct = np.empty((1, 1), dtype=[("Segmentation", object), ("Boundaries", object)])
        struct[0, 0]["Segmentation"] = consecutive(segmentation).astype(np.uint16)
        struct[0, 0]["Boundaries"] = boundaries(segmentation).astype(np.uint8)
        cell[0, k] = struct
    return cell


def write_mat(path: Path, segmentations: list[np.ndarray]) -> None:
    import scipy.io

    with atomic.atomic_path(path) as tmp, tmp.open("wb") as handle:
        scipy.io.savemat(handle, {"groundTruth": ground_truth_cell(segmentations)})


def parse_splits(text: str) -> tuple[str, ...]:
    """`--splits val,test` → ("val", "test"); InputError naming an unknown split."""
    from avtool.core.errors import InputError

    splits = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [s for s in splits if s not in SPLITS]
    if not splits or unknown:
        raise InputError(f"--splits {text!r}: expected a comma list of {', '.join(SPLITS)}")
    return splits


def _stage(out: Path, count: int, height: int, width: int, seed: int, splits: tuple[str, ...]):
    from avtool.core.stage import Stage

    config = {"count": count, "height": height, "width": width, "seed": seed, "splits": splits}
    return Stage("synth.bsds", STAGE_VERSION, Path(out), config)


def describe_synth(
    out: Path, count: int, height: int, width: int, seed: int, splits: tuple[str, ...] = ("test",)
) -> str:
    """What `synth_bsds` would do, for `--dry-run`."""
    status = _stage(out, count, height, width, seed, splits).status()
    return f"synth.bsds: {status.state} ({status.reason})"


def synth_bsds(
    out: Path,
    count: int = 12,
    height: int = 48,
    width: int = 64,
    seed: int = 0,
    splits: tuple[str, ...] = ("test",),
    force: bool = False,
) -> dict[str, Any]:
    """Write `count` images (spread round-robin over `splits`) with 3-5 annotators each.

    `height` × `width` is the landscape size; every third image is portrait (width × height).

    A stage: rerun with the same options, it does nothing, so the stamp that `prepare bsds`
    fingerprints stays the same. Returns each image's true region and annotator counts.
    """
    from PIL import Image

    out = Path(out)
    stage = _stage(out, count, height, width, seed, splits)
    if not stage.begin(force=force):
        return json.loads((out / "synth.json").read_text())["images"]
    rng = np.random.default_rng(seed)
    truth: dict[str, Any] = {}
    for index in range(count):
        split = splits[index % len(splits)]
        image_id = f"{100000 + index}"
        rows, cols = (width, height) if index % 3 == 2 else (height, width)
        image, labels, points = make_image(rng, rows, cols)
        annotators = int(rng.integers(3, 6))
        segmentations = [
            _voronoi(points + rng.normal(0, 1.0, points.shape), rows, cols) + 1
            for _ in range(annotators)
        ]
        image_path = out / "images" / split / f"{image_id}.jpg"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(image_path) as tmp:
            Image.fromarray(image).save(tmp, format="JPEG", quality=95)
        write_mat(out / "groundTruth" / split / f"{image_id}.mat", segmentations)
        truth[image_id] = {
            "split": split,
            "regions": int(labels.max() + 1),
            "annotators": annotators,
            "shape": [rows, cols],
        }
    atomic.write_text(out / "synth.json", json.dumps({"seed": seed, "images": truth}, indent=2))
    stage.finish(counts={"images": count}, outputs=["images", "groundTruth", "synth.json"])
    return truth
