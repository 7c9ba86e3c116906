"""BSDS500: images, human segmentations from the groundTruth .mat files, and the manifest.

Layout: `images/{train,val,test}/<id>.jpg` and `groundTruth/{train,val,test}/<id>.mat`; each
.mat holds `groundTruth`, a 1×K cell of structs whose `Segmentation` is a uint16 label map (one
per annotator, K = 4-9) and whose `Boundaries` is a logical edge map. `scipy.io.loadmat` reads
it as a (1, K) object array of (1, 1) structured arrays: `mat['groundTruth'][0, k]['Segmentation'][0, 0]`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError, ItemError

SPLITS = ("train", "val", "test")
STAGE_VERSION = 1


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 [H, W, 3]; ItemError names the file when it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise ItemError(f"{path}: unreadable image ({exc}); replace or remove the file") from None


def read_ground_truth(path: str | Path, shape: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Every annotator's label map (int32, as stored: labels from 1) from a BSDS .mat file."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError... for broken files
        raise ItemError(f"{path}: not a readable .mat file ({exc}); re-export it") from None
    cell = mat.get("groundTruth")
    if not isinstance(cell, np.ndarray) or cell.dtype != object or cell.size == 0:
        raise ItemError(f"{path}: no `groundTruth` cell of structs; not a BSDS ground-truth file")
    maps = []
    for k, struct in enumerate(cell.ravel()):
        try:
            segmentation = np.asarray(struct["Segmentation"][0, 0])
        except (ValueError, IndexError, TypeError, KeyError):
            raise ItemError(
                f"{path}: annotator {k + 1} has no `Segmentation` field; not a BSDS ground-truth file"
            ) from None
        if segmentation.ndim != 2 or segmentation.dtype.kind not in "ui":
            raise ItemError(
                f"{path}: annotator {k + 1}'s Segmentation is {segmentation.dtype} "
                f"{segmentation.shape}, expected a 2-D integer label map"
            )
        if shape is not None and segmentation.shape != tuple(shape):
            raise ItemError(
                f"{path}: annotator {k + 1}'s map is {segmentation.shape}, the image is "
                f"{tuple(shape)}; the .mat belongs to another image"
            )
        maps.append(segmentation.astype(np.int32))
    return maps


@dataclass
class PrepareConfig:
    splits: list[str] = field(default_factory=lambda: list(SPLITS))


def _entry(root: Path, out: Path, split: str, image_path: Path) -> dict[str, Any]:
    image = read_image(image_path)
    height, width = image.shape[:2]
    gt_path = root / "groundTruth" / split / f"{image_path.stem}.mat"
    entry: dict[str, Any] = {
        "id": image_path.stem,
        "path": os.path.relpath(image_path, out),
        "split": split,
        "height": height,
        "width": width,
        "gt": None,
        "annotators": 0,
    }
    if gt_path.exists():
        entry["gt"] = os.path.relpath(gt_path, out)
        entry["annotators"] = len(read_ground_truth(gt_path, (height, width)))
    return entry


def prepare_bsds(
    root: Path,
    out: Path,
    config: PrepareConfig,
    force: bool = False,
    dry_run: bool = False,
    max_reject_rate: float = 0.2,
) -> dict[str, Any]:
    """Write `out/manifest.jsonl` (one line per usable image) and `out/rejects.jsonl`.

    Images without a .mat are kept (segmentation only, `gt: null`); unreadable images and
    malformed .mat files are rejected with the reason. Returns the counts.
    """
    from avtool.core import rejects as rejects_module
    from avtool.core.journal import write_jsonl
    from avtool.core.stage import Stage

    root, out = Path(root).resolve(), Path(out).resolve()
    unknown = sorted(set(config.splits) - set(SPLITS))
    if unknown:
        raise InputError(f"--split {', '.join(unknown)}: BSDS splits are {', '.join(SPLITS)}")
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise InputError(
            f"{root}: no images/ folder; --root must be the BSDS500 data folder "
            "(holding images/ and groundTruth/)"
        )
    stage = Stage("prepare.bsds", STAGE_VERSION, out, config, inputs=[root])
    if dry_run:
        status = stage.status()
        return {"state": "dry-run", "message": f"prepare.bsds: {status.state} ({status.reason})"}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **stage.status().counts}
    entries: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    seen: set[str] = set()
    for split in config.splits:
        for image_path in sorted((images_dir / split).glob("*.jpg")):
            try:
                if image_path.stem in seen:
                    raise ItemError(f"{image_path}: id {image_path.stem} is in two splits")
                entry = _entry(root, out, split, image_path)
            except ItemError as exc:
                rejects.append({"id": image_path.stem, "path": str(image_path), "reason": str(exc)})
                continue
            seen.add(entry["id"])
            entries.append(entry)
    if not entries:
        raise InputError(f"{images_dir}: no readable .jpg in splits {', '.join(config.splits)}")
    write_jsonl(out / "manifest.jsonl", entries)
    write_jsonl(out / "rejects.jsonl", rejects)
    rejects_module.enforce(
        rejects_module.RejectSummary(len(entries) + len(rejects), rejects, [out / "rejects.jsonl"]),
        "prepare.bsds",
        max_reject_rate,
    )
    counts = {
        "images": len(entries),
        "with_gt": sum(1 for e in entries if e["gt"]),
        "rejected": len(rejects),
    }
    stage.finish(counts=counts, outputs=["manifest.jsonl", "rejects.jsonl"])
    return {"state": "done", **counts}
