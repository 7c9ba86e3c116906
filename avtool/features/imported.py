"""Features that arrive as arrays: an `.npz` with `features` and `filenames`, into a store.

`import_features` stores row i of `features` ([N, D] vectors or [N, T, D] sequences) under the
id derived from `filenames[i]` (its stem: `03-01-05-01-02-01-12.wav` -> `03-01-05-01-02-01-12`,
the id `avtool prepare ravdess` gives the same file). The store records extractor "imported",
the source file's name and sha256, and what the arrays are said to be (`describes`): the
arrays' provenance is the user's word, so no model that needs a specific extractor (wav2vec2)
accepts them. With `manifest="ravdess"` it also writes `manifest.jsonl` decoded from the
RAVDESS names (emotion, actor, gender, ...), so `avtool train ser` runs on the store; names
that are not RAVDESS names go to `rejects.jsonl` and their rows stay out of the manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import ConfigError, InputError, ItemError

STAGE_VERSION = 1
MANIFEST_KINDS = ("none", "ravdess")


@dataclass
class ImportConfig:
    describes: str = "unspecified"  # what the arrays are, e.g. "ser-mfcc 160-d (report code)"
    manifest: str = "none"  # none | ravdess

    def __post_init__(self) -> None:
        if self.manifest not in MANIFEST_KINDS:
            raise ConfigError(f"manifest={self.manifest!r}: expected one of {MANIFEST_KINDS}")


def read_arrays(npz: Path) -> tuple[np.ndarray, list[str]]:
    """(features [N, ...] float32, filenames) from an .npz, checked for shape and unique ids."""
    npz = Path(npz)
    if not npz.is_file():
        raise InputError(f"{npz}: file not found; give an .npz with `features` and `filenames`")
    try:
        with np.load(npz, allow_pickle=False) as data:
            missing = [key for key in ("features", "filenames") if key not in data]
            if missing:
                raise InputError(
                    f"{npz}: no array named {', '.join(missing)}; the file must hold `features` "
                    f"[N, D] and `filenames` [N] (it has {', '.join(sorted(data.files))})"
                )
            features, filenames = data["features"], data["filenames"]
    except (OSError, ValueError) as exc:
        raise InputError(f"{npz}: not a readable .npz without pickled objects ({exc})") from None
    if features.ndim not in (2, 3) or not np.issubdtype(features.dtype, np.number):
        raise InputError(
            f"{npz}: `features` must be numeric [N, D] or [N, T, D], got {features.shape}"
        )
    names = [str(name) for name in np.asarray(filenames).reshape(-1)]
    if len(names) != len(features):
        raise InputError(f"{npz}: {len(features)} feature rows but {len(names)} filenames")
    if not np.isfinite(features).all():
        raise InputError(f"{npz}: `features` holds NaN or infinite values; clean them first")
    return features.astype(np.float32), names


def item_id(filename: str) -> str:
    """The store id of a file name: its stem, without folders."""
    return Path(filename.replace("\\", "/")).name.rsplit(".", 1)[0]


def import_features(
    npz: Path, out: Path, config: ImportConfig, force: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """Write the arrays as a feature store (and a manifest); a stage, stamped last."""
    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status
    from avtool.core.store import StoreWriter, store_attrs
    from avtool.corpora.ravdess import parse_name

    out = Path(out)
    stage = Stage("features.import", STAGE_VERSION, out, config, [Path(npz)])
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **json.loads((out / "stage.json").read_text())["counts"]}
    features, names = read_arrays(npz)
    ids = [item_id(name) for name in names]
    duplicates = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) < len(ids) else []
    if duplicates:
        raise InputError(f"{npz}: filenames give the same id twice (e.g. {duplicates[0]!r})")
    attrs = store_attrs(
        "imported",
        {
            "describes": config.describes,
            "source": Path(npz).name,
            "sha256": hashlib.sha256(Path(npz).read_bytes()).hexdigest(),
            "shape": list(features.shape[1:]),
        },
    )
    writer = StoreWriter(out, "00000-of-00001", attrs)
    for identifier, row in zip(ids, features, strict=True):
        writer.add(identifier, row)
    writer.finalize()
    outputs = ["shard-00000-of-00001.h5"]
    counts = {"items": len(ids)}
    if config.manifest == "ravdess":
        rows, rejects = [], []
        for identifier, name in zip(ids, names, strict=True):
            try:
                rows.append({**parse_name(Path(name).name), "id": identifier, "path": name})
            except ItemError as exc:
                rejects.append({"id": identifier, "reason": str(exc)})
        if not rows:
            raise InputError(
                f"{npz}: no filename is a RAVDESS name (e.g. {names[0]!r}); "
                "use --manifest none and write the manifest yourself"
            )
        atomic.write_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        atomic.write_text(out / "rejects.jsonl", "".join(json.dumps(r) + "\n" for r in rejects))
        outputs += ["manifest.jsonl", "rejects.jsonl"]
        counts.update(manifest_items=len(rows), rejected=len(rejects))
    stage.finish(counts=counts, outputs=outputs)
    return {"state": "done", **counts}
