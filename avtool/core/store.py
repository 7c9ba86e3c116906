"""Feature store: a directory of HDF5 files, one writer per file, crash-safe at any instant.

A writer for shard TAG commits items in parts: `part-TAG-00007.h5` is built under a temporary
name and renamed only when complete, so a SIGKILL leaves finished parts readable and no file
half-written under its final name. `finalize()` merges the parts into `shard-TAG.h5` (items in
sorted id order, no timestamps, so the bytes depend only on the items) and removes the parts.
Readers see one mapping over every shard file and every part not yet merged.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from avtool import __version__
from avtool.core import atomic
from avtool.core.errors import InputError

FORMAT = "avtool-feature-store/1"
_PART = re.compile(r"^part-(?P<tag>\d{5}-of-\d{5})-(?P<seq>\d{5})\.h5$")
_SHARD = re.compile(r"^shard-(?P<tag>\d{5}-of-\d{5})\.h5$")


def _attr_value(value: Any) -> Any:
    # HDF5 attributes hold scalars and arrays; anything nested is stored as JSON text.
    if isinstance(value, str | int | float | bool | np.integer | np.floating):
        return value
    return json.dumps(value, sort_keys=True)


def _read_attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, str) and value[:1] in "[{":
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        elif isinstance(value, np.generic):
            value = value.item()
        result[key] = value
    return result


COMPRESSION = {
    None: {},
    "gzip": {"compression": "gzip", "compression_opts": 4, "shuffle": True},
    "lzf": {"compression": "lzf"},
}


def _write_items(
    path: Path,
    items: Mapping[str, Any],
    attrs: Mapping[str, Any],
    compression: str | None = None,
) -> None:
    """Write `items` (arrays or h5py datasets, sorted by id) to a new HDF5 file, atomically.

    `compression` (gzip, lzf) is lossless and transparent to readers; scalars are stored
    plain, as HDF5 cannot chunk them.
    """
    options = COMPRESSION[compression]
    # track_order/track_times off: identical items give identical bytes.
    with (
        atomic.atomic_path(path) as tmp,
        h5py.File(tmp, "w", libver=("earliest", "v110"), track_order=False) as handle,
    ):
        for key, value in sorted(attrs.items()):
            handle.attrs[key] = _attr_value(value)
        for item_id in sorted(items):
            value = items[item_id][()]
            handle.create_dataset(
                item_id, data=value, track_times=False, **(options if np.ndim(value) else {})
            )


def store_attrs(extractor: str, params: Mapping[str, Any], weights_sha256: str = "") -> dict:
    return {
        "format": FORMAT,
        "extractor": extractor,
        "params": dict(params),
        "weights_sha256": weights_sha256,
        "avtool_version": __version__,
    }


def _check_item_id(item_id: str) -> None:
    if not item_id or "/" in item_id or item_id in (".", ".."):
        raise InputError(f"item id {item_id!r}: ids must be non-empty and contain no '/'")


class StoreWriter:
    """The one writer of shard `tag` in `directory`; resumes after the parts already there."""

    def __init__(
        self,
        directory: str | os.PathLike,
        tag: str,
        attrs: Mapping[str, Any],
        commit_items: int = 64,
        commit_bytes: int = 64 << 20,
        commit_seconds: float = 10.0,
        compression: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.tag = tag
        self.attrs = dict(attrs)
        if compression not in COMPRESSION:
            raise InputError(f"compression {compression!r}: expected gzip, lzf or none")
        self.compression = compression
        self.commit_items = commit_items
        self.commit_bytes = commit_bytes
        # Slow items (a face track, a training per image) would otherwise sit uncommitted for
        # minutes: a kill then loses at most this much work.
        self.commit_seconds = commit_seconds
        self._last_commit = time.monotonic()
        self._pending: dict[str, np.ndarray] = {}
        self._pending_bytes = 0
        seqs = [int(m["seq"]) for m in self._parts_matching() if m]
        self._next_seq = max(seqs, default=-1) + 1

    def _parts_matching(self) -> Iterator[re.Match[str]]:
        for path in self.directory.glob(f"part-{self.tag}-*.h5"):
            match = _PART.match(path.name)
            if match:
                yield match

    def add(self, item_id: str, value: np.ndarray) -> list[str]:
        """Buffer an item; returns the ids made durable by this call (possibly none)."""
        _check_item_id(item_id)
        self._pending[item_id] = np.ascontiguousarray(value)
        self._pending_bytes += self._pending[item_id].nbytes
        if (
            len(self._pending) >= self.commit_items
            or self._pending_bytes >= self.commit_bytes
            or time.monotonic() - self._last_commit >= self.commit_seconds
        ):
            return self.commit()
        return []

    def commit(self) -> list[str]:
        """Write buffered items as one new part file; returns their ids."""
        self._last_commit = time.monotonic()
        if not self._pending:
            return []
        path = self.directory / f"part-{self.tag}-{self._next_seq:05d}.h5"
        _write_items(path, self._pending, self.attrs, self.compression)
        self._next_seq += 1
        committed = sorted(self._pending)
        self._pending, self._pending_bytes = {}, 0
        return committed

    def finalize(self, keep: set[str] | None = None) -> Path:
        """Merge every part of this tag into `shard-TAG.h5`; `keep` drops ids not in it."""
        self.commit()
        final = self.directory / f"shard-{self.tag}.h5"
        parts = sorted(self.directory / m.string for m in self._parts_matching())
        # A crash after an earlier merge leaves the shard file and maybe no parts: keep its items.
        sources = ([final] if final.exists() else []) + parts
        handles = [h5py.File(source, "r") for source in sources]
        try:
            # Later sources win: a part written after a crash replaces an earlier copy.
            where = {
                item_id: handle
                for handle in handles
                for item_id in handle
                if keep is None or item_id in keep
            }
            _write_items(final, {i: where[i][i] for i in where}, self.attrs, self.compression)
        finally:
            for handle in handles:
                handle.close()
        for part in parts:
            part.unlink()
        atomic.fsync_dir(self.directory)
        return final


class FeatureStore(Mapping[str, np.ndarray]):
    """Read-only mapping over every shard (and unmerged part) of a store directory."""

    def __init__(self, path: str | os.PathLike, expect: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError(
                f"{self.path}: feature store not found; run `avtool features ...` first"
            )
        self.files = self._data_files()
        self._index: dict[str, Path] = {}
        self.attrs: dict[str, Any] = {}
        for file in self.files:
            try:
                with h5py.File(file, "r") as handle:
                    attrs = _read_attrs(handle.attrs)
                    keys = list(handle.keys())
            except OSError as exc:
                raise InputError(
                    f"{file}: not a readable HDF5 file ({exc}); delete it and rerun"
                ) from None
            if not self.attrs:
                self.attrs = attrs
            elif _identity(attrs) != _identity(self.attrs):
                raise InputError(
                    f"{file}: made by another extractor or parameters than the rest of {self.path}; "
                    "remove the store and rerun the extraction"
                )
            for key in keys:
                self._index.setdefault(key, file)
        if expect:
            for key, value in expect.items():
                if self.attrs.get(key) != value:
                    raise InputError(
                        f"{self.path}: store has {key}={self.attrs.get(key)!r}, expected {value!r}; "
                        "re-extract with matching options"
                    )
        self._handles: dict[Path, h5py.File] = {}
        self._pid = os.getpid()

    def _data_files(self) -> list[Path]:
        shards = sorted(p for p in self.path.glob("shard-*.h5") if _SHARD.match(p.name))
        merged_tags = {_SHARD.match(p.name)["tag"] for p in shards}  # type: ignore[index]
        parts = []
        for path in sorted(self.path.glob("part-*.h5")):
            match = _PART.match(path.name)
            # A part whose shard file already exists was merged before a crash removed it.
            if match and match["tag"] not in merged_tags:
                parts.append(path)
        return shards + parts

    def _handle(self, file: Path) -> h5py.File:
        if os.getpid() != self._pid:  # h5py handles must not cross a fork
            self._handles, self._pid = {}, os.getpid()
        if file not in self._handles:
            self._handles[file] = h5py.File(file, "r")
        return self._handles[file]

    def __getitem__(self, item_id: str) -> np.ndarray:
        try:
            file = self._index[item_id]
        except KeyError:
            raise KeyError(f"{item_id!r} not in feature store {self.path}") from None
        return self._handle(file)[item_id][()]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._index))

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def dataset(self, keys: list[str] | None = None, labels: Mapping[str, Any] | None = None):
        """A `torch.utils.data.Dataset` over (a subset of) the items, as float tensors."""
        from avtool.core.torch_data import StoreDataset

        return StoreDataset(self, list(keys) if keys is not None else list(self), labels)


def _identity(attrs: Mapping[str, Any]) -> tuple:
    return tuple(attrs.get(k) for k in ("format", "extractor", "params", "weights_sha256"))


def check_store(path: str | os.PathLike) -> tuple[int, list[str]]:
    """Open every file and read every item; returns (items, problems)."""
    problems: list[str] = []
    directory = Path(path)
    for leftover in directory.glob(".*.tmp"):
        problems.append(f"{leftover.name}: temporary file of an interrupted writer (harmless)")
    store = FeatureStore(directory)
    with store:
        for item_id in store:
            value = store[item_id]
            if not np.all(np.isfinite(value)) if value.dtype.kind == "f" else False:
                problems.append(f"{item_id}: holds NaN or infinite values")
    return len(store), problems
