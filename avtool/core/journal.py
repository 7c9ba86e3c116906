"""Append-only JSONL journals: a line is durable once `record` returns."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Parsed lines of a JSONL file; a torn last line (a writer killed mid-line) is skipped."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            line = raw.strip()
            if line:
                yield json.loads(line)


class Journal:
    """A JSONL file of finished entries, keyed by `id`, fsynced per batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._repair_torn_tail()
        self.entries: dict[str, dict[str, Any]] = {e["id"]: e for e in read_jsonl(path)}

    def _repair_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.path.open("r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def record(self, entries: Iterable[dict[str, Any]]) -> None:
        """Append entries (each with an `id`) and make them durable before returning."""
        lines = []
        for entry in entries:
            self.entries[entry["id"]] = entry
            lines.append(json.dumps(entry, sort_keys=True, default=str) + "\n")
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(lines))
            handle.flush()
            os.fsync(handle.fileno())


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write a whole JSONL file atomically."""
    from avtool.core import atomic

    text = "".join(json.dumps(row, sort_keys=True, default=str) + "\n" for row in rows)
    atomic.write_text(path, text)
