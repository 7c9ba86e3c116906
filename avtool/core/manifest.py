"""Manifests: JSONL files whose lines carry at least `id` and `path` (relative to the file).

File fields are `path`, `video` and any `*_path` (e.g. `lyrics_path`): relative ones are
resolved against the manifest's folder, so a manifest can move with the files it lists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from avtool.core.errors import InputError


def is_file_field(key: str) -> bool:
    return key in ("path", "video") or key.endswith("_path")


def read_manifest(
    path: str | Path, require: tuple[str, ...] = ("id", "path")
) -> list[dict[str, Any]]:
    """Items of a manifest, `path` resolved against the manifest's folder; ids must be unique."""
    manifest = Path(path)
    if not manifest.is_file():
        raise InputError(
            f"{manifest}: manifest not found; run the `prepare` or `synth` stage first"
        )
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{manifest}:{number}: not JSON ({exc.msg}); fix or remove the line"
            ) from None
        if not isinstance(item, dict):
            raise InputError(f"{manifest}:{number}: expected a JSON object per line")
        missing = [key for key in require if key not in item]
        if missing:
            raise InputError(
                f"{manifest}:{number}: missing {', '.join(missing)}; every line needs {', '.join(require)}"
            )
        item["id"] = str(item["id"])
        if item["id"] in seen:
            raise InputError(
                f"{manifest}:{number}: duplicate id {item['id']!r}; ids must be unique"
            )
        seen.add(item["id"])
        for key, value in item.items():
            if is_file_field(key) and isinstance(value, str) and value:
                item[key] = str((manifest.parent / value).resolve())
        items.append(item)
    return items
