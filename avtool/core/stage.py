"""The stage contract: outputs first, `stage.json` last; up to date only when the stamp matches.

Every stage directory holds, per shard tag (empty for an unsharded run):
- `stage[-TAG].started.json`: written when a run begins (name, version, config hash);
- `stage[-TAG].json`: the stamp, written last and atomically when the run is complete.
A stage is *done* when its stamp matches the config and input fingerprints (an unsharded stamp,
or one stamp per shard of a complete sharded run), *partial* when a run began with the same
config but has no stamp, and *stale* when what is on disk was made from another config or inputs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avtool import __version__
from avtool.core import atomic
from avtool.core.config import config_hash, write_resolved
from avtool.core.errors import InputError, StaleOutputError
from avtool.core.shard import WHOLE, Shard

STAMP = "stage.json"
STARTED_SUFFIX = ".started.json"
CONTENT_PREFIX = "content:"
_HASHED_FILE_LIMIT = 64 << 20
_VERSIONED_PACKAGES = ("numpy", "scipy", "torch", "h5py", "librosa", "soundfile", "soxr")


def stamp_name(shard: Shard) -> str:
    return STAMP if shard.is_whole else f"stage-{shard.tag}.json"


def started_name(shard: Shard) -> str:
    return ("stage" if shard.is_whole else f"stage-{shard.tag}") + STARTED_SUFFIX


def fingerprint(path: str | Path) -> str:
    """What identifies an input's content: a stage's stamp, a file's bytes, or a listing."""
    path = Path(path)
    if path.is_dir():
        stamps = sorted(path.glob("stage*.json"))
        stamps = [p for p in stamps if not p.name.endswith(STARTED_SUFFIX)]
        if stamps:
            digest = hashlib.sha256()
            for stamp in stamps:
                data = json.loads(stamp.read_text())
                digest.update(json.dumps(_stable_part(data), sort_keys=True).encode())
            return "stage:" + digest.hexdigest()[:16]
        digest = hashlib.sha256()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            stat = child.stat()
            digest.update(
                f"{child.relative_to(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
            )
        return "tree:" + digest.hexdigest()[:16]
    if path.is_file():
        stat = path.stat()
        if stat.st_size > _HASHED_FILE_LIMIT:
            return f"stat:{stat.st_size}:{stat.st_mtime_ns}"
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    raise InputError(f"{path}: input not found; run the stage that makes it first")


def _stable_part(stamp: dict[str, Any]) -> dict[str, Any]:
    return {k: stamp.get(k) for k in ("name", "version", "config_hash", "inputs", "counts")}


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "avtool": __version__}
    for name in _VERSIONED_PACKAGES:
        if name in sys.modules:
            try:
                versions[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions


@dataclass
class StageStatus:
    name: str
    out_dir: Path
    state: str  # done | partial | stale | missing
    reason: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Stage:
    """One stage's identity and its output directory; see the module docstring for the rules."""

    name: str
    version: int
    out_dir: Path
    config: Any
    inputs: list[Path] = field(default_factory=list)
    shard: Shard = WHOLE
    # Inputs that are not files (e.g. a per-item stage's item list): name -> fingerprint.
    # They are stamped as `content:NAME`; `avtool status` can check only the file inputs.
    content: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.inputs = [Path(p) for p in self.inputs]
        self.config_hash = config_hash(self.config)
        self._started_at = 0.0
        self._created: list[Path] = []
        self._listing_after_begin: set[str] = set()

    # --- reading the state -------------------------------------------------------------
    def input_fingerprints(self) -> dict[str, str]:
        content = {f"{CONTENT_PREFIX}{name}": value for name, value in self.content.items()}
        return {**{str(p): fingerprint(p) for p in self.inputs}, **content}

    def _read(self, name: str) -> dict[str, Any] | None:
        path = self.out_dir / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None

    def _mismatch(self, record: dict[str, Any], fingerprints: dict[str, str] | None) -> str:
        if record.get("name") != self.name:
            return f"directory holds stage {record.get('name')!r}, not {self.name!r}"
        if record.get("version") != self.version:
            return f"stage version changed ({record.get('version')} -> {self.version})"
        if record.get("config_hash") != self.config_hash:
            return "config changed since it was made"
        if fingerprints is not None:
            for path, value in fingerprints.items():
                if record.get("inputs", {}).get(path) != value:
                    return f"input {path} changed since it was made"
        return ""

    def _stamps_covering(self) -> list[dict[str, Any]] | None:
        """The stamp that makes this shard complete, or None.

        A sharded stage is complete only once its whole stamp is written: the shard that
        finds all shards finished writes it after the whole stage's reject verdict.
        """
        whole = self._read(STAMP)
        if whole is not None:
            return [whole]
        if not self.shard.is_whole:
            own = self._read(stamp_name(self.shard))
            return [own] if own is not None else None
        return None

    def sharded_counts(self, count: int) -> dict[str, int]:
        """The summed counts of the stamps of shards 0..count-1."""
        stamps = [self._read(stamp_name(Shard(i, count))) or {} for i in range(count)]
        return _sum_counts(s.get("counts", {}) for s in stamps)

    def status(self) -> StageStatus:
        fingerprints = self.input_fingerprints()
        stamps = self._stamps_covering()
        if stamps:
            reasons = [r for r in (self._mismatch(s, fingerprints) for s in stamps) if r]
            counts = _sum_counts(s.get("counts", {}) for s in stamps)
            if reasons:
                return StageStatus(self.name, self.out_dir, "stale", reasons[0], counts)
            return StageStatus(self.name, self.out_dir, "done", "up to date", counts)
        started = self._read(started_name(self.shard))
        if started is None and self.shard.is_whole:
            # A sharded run in progress (or awaiting its verdict) is this stage's partial run.
            markers = sorted(self.out_dir.glob(f"stage-*-of-*{STARTED_SUFFIX}"))
            started = self._read(markers[0].name) if markers else None
        if started is None:
            return StageStatus(self.name, self.out_dir, "missing", "never run")
        reason = self._mismatch(started, fingerprints)
        if reason:
            return StageStatus(self.name, self.out_dir, "stale", reason)
        return StageStatus(self.name, self.out_dir, "partial", "interrupted; will resume")

    # --- running ----------------------------------------------------------------------
    def begin(self, force: bool = False, keep_items: bool = False) -> bool:
        """Prepare to run; False when already up to date (and not forced).

        Raises StaleOutputError when the directory holds another config's outputs and
        `force` is not set. A changed input reruns from scratch, unless `keep_items`: a
        per-item stage then keeps its journal and store and recomputes only the items whose
        content changed. An interruption resumes.
        """
        status = self.status()
        if status.state == "done" and not force:
            return False
        config_changed = status.state == "stale" and "input" not in status.reason
        if config_changed and not force:
            raise StaleOutputError(
                f"{self.out_dir}: {status.reason}; rerun with --force to replace it, "
                "or choose another --out"
            )
        if status.state == "stale" and keep_items and not force:
            (self.out_dir / STAMP).unlink(missing_ok=True)
            (self.out_dir / stamp_name(self.shard)).unlink(missing_ok=True)
        elif force or status.state == "stale":
            self.reset()
        before = set(os.listdir(self.out_dir)) if self.out_dir.is_dir() else None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # Other shards may be writing into this directory right now: sweep only our own.
        atomic.sweep_temporaries(self.out_dir, "" if self.shard.is_whole else self.shard.tag)
        write_resolved(self.out_dir, self.config)
        atomic.write_json(
            self.out_dir / started_name(self.shard),
            {
                "name": self.name,
                "version": self.version,
                "config_hash": self.config_hash,
                "inputs": self.input_fingerprints(),
                "shard": str(self.shard),
            },
        )
        self._started_at = time.time()
        self._listing_after_begin = set(os.listdir(self.out_dir))
        if before is None:
            self._created = [self.out_dir]
        else:
            self._created = [self.out_dir / n for n in self._listing_after_begin - before]
        _BEGUN.append(self)
        return True

    def abandon(self) -> None:
        """Undo `begin` when the run wrote nothing after it (a refusal, not a failure midway)."""
        _forget(self)
        if not self.out_dir.is_dir() or set(os.listdir(self.out_dir)) != self._listing_after_begin:
            return
        for path in self._created:
            if path == self.out_dir:
                shutil.rmtree(path)
                return
            path.unlink(missing_ok=True)

    def reset(self) -> None:
        """Remove what this stage (this shard only, when sharded) wrote before."""
        if not self.out_dir.exists():
            return
        owned = any(self.out_dir.glob("stage*.json"))
        if not owned:
            if any(self.out_dir.iterdir()):
                raise InputError(
                    f"{self.out_dir}: not an avtool output directory and not empty; "
                    "choose an empty --out"
                )
            return
        if self.shard.is_whole:
            shutil.rmtree(self.out_dir)
            return
        (self.out_dir / STAMP).unlink(missing_ok=True)
        for path in self.out_dir.glob(f"*{self.shard.tag}*"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def finish(self, counts: dict[str, int], outputs: list[str], **extra: Any) -> dict[str, Any]:
        """Write the stamp, last and atomically; returns it."""
        finished = time.time()
        stamp = {
            "name": self.name,
            "version": self.version,
            "config_hash": self.config_hash,
            "inputs": self.input_fingerprints(),
            "packages": package_versions(),
            "counts": counts,
            "outputs": sorted(outputs),
            "shard": str(self.shard),
            "timings": {
                "started": self._started_at,
                "finished": finished,
                "seconds": round(finished - self._started_at, 3) if self._started_at else None,
            },
            **extra,
        }
        atomic.write_json(self.out_dir / stamp_name(self.shard), stamp)
        _forget(self)
        return stamp


# Stages begun in this process and not finished: a command that fails undoes the ones that
# wrote nothing, so a refused command leaves no config.yaml or marker behind.
_BEGUN: list[Stage] = []


def _forget(stage: Stage) -> None:
    _BEGUN[:] = [s for s in _BEGUN if s is not stage]


def abandon_unfinished(since: int = 0) -> None:
    """Undo the unfinished stages begun after the `since`-th (see `begun_count`) that wrote
    nothing since they began."""
    for stage in list(_BEGUN[since:]):
        stage.abandon()


def begun_count() -> int:
    return len(_BEGUN)


def describe_status(stage: Stage, force: bool = False) -> str:
    """What running `stage` now would do, and why (for --dry-run)."""
    status = stage.status()
    if force:
        return f"{stage.name}: would run (--force)"
    if status.state == "done":
        return f"{stage.name}: up to date, nothing to do"
    if status.state == "stale" and "input" not in status.reason:
        return f"{stage.name}: would refuse ({status.reason}); --force replaces it"
    if status.state == "partial":
        return f"{stage.name}: would resume ({status.reason})"
    return f"{stage.name}: would run ({status.reason})"


def _sum_counts(all_counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in all_counts:
        for key, value in counts.items():
            if isinstance(value, int | float):
                total[key] = total.get(key, 0) + value
    return total


def find_stage_dirs(roots: list[Path]) -> list[Path]:
    """Directories under `roots` that hold a stage's stamp or started marker."""
    found = set()
    for root in roots:
        candidates = [root, *root.rglob("*")] if root.is_dir() else []
        for directory in candidates:
            if directory.is_dir() and any(directory.glob("stage*.json")):
                found.add(directory)
    return sorted(found)


def describe_directory(directory: Path) -> StageStatus:
    """Status of a stage directory from what it holds alone (for `avtool status DIR`)."""
    records = []
    for path in sorted(directory.glob("stage*.json")):
        try:
            records.append((path.name, json.loads(path.read_text())))
        except json.JSONDecodeError:
            continue
    stamps = [r for n, r in records if not n.endswith(STARTED_SUFFIX)]
    started = [r for n, r in records if n.endswith(STARTED_SUFFIX)]
    reference = (stamps or started or [{}])[0]
    name = reference.get("name", "?")
    current_hash = _resolved_config_hash(directory)
    counts = _sum_counts(s.get("counts", {}) for s in stamps)
    journal_counts = _journal_counts(directory)
    for key, value in journal_counts.items():
        counts.setdefault(key, value)
    whole = next((s for n, s in records if n == STAMP), None)
    if whole is not None:
        for stamp in [whole]:
            for path, value in stamp.get("inputs", {}).items():
                if path.startswith(CONTENT_PREFIX):
                    continue
                try:
                    now = fingerprint(path)
                except InputError:
                    return StageStatus(name, directory, "stale", f"input {path} is gone", counts)
                if now != value:
                    return StageStatus(name, directory, "stale", f"input {path} changed", counts)
            if current_hash and stamp.get("config_hash") != current_hash:
                return StageStatus(name, directory, "stale", "config.yaml edited", counts)
        return StageStatus(name, directory, "done", "up to date", counts)
    if any((directory / n).exists() for n, _ in records if n.startswith("stage-")):
        shards = [
            r for n, r in records if n.startswith("stage-") and not n.endswith(STARTED_SUFFIX)
        ]
        expected = {int(r["shard"].split("/")[1]) for r in stamps + started if "shard" in r}
        if expected and len(shards) >= max(expected):
            return StageStatus(
                name,
                directory,
                "partial",
                "every shard finished, the whole stage's verdict "
                "did not pass or is pending; rerun to see it",
                counts,
            )
    return StageStatus(name, directory, "partial", "interrupted; will resume", counts)


def _resolved_config_hash(directory: Path) -> str | None:
    import yaml

    path = directory / "config.yaml"
    if not path.exists():
        return None
    return config_hash(yaml.safe_load(path.read_text()) or {})


def _journal_counts(directory: Path) -> dict[str, int]:
    def lines(pattern: str) -> int:
        total = 0
        for path in directory.glob(pattern):
            with path.open("rb") as handle:
                total += sum(1 for raw in handle if raw.endswith(b"\n"))
        return total

    if not any(directory.glob("journal*.jsonl")):
        return {}
    return {"done": lines("journal*.jsonl"), "rejected": lines("rejects*.jsonl")}
