"""Per-item stages: journal, rejects, sharding, local pools and SLURM arrays, in one runner.

A stage supplies an `ItemWorker` (picklable: it travels to worker processes and array jobs)
and its items; `run_item_stage` does the rest. An item is done when its data is committed to
the store and its journal line is flushed; a rerun skips done and rejected items, so a crash
loses only the items in flight.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from avtool.core import rejects as rejects_module
from avtool.core.errors import AvtoolError, InputError
from avtool.core.journal import Journal, write_jsonl
from avtool.core.progress import track
from avtool.core.shard import WHOLE, Shard, resolve_shard
from avtool.core.stage import STAMP, STARTED_SUFFIX, Stage, stamp_name
from avtool.core.store import StoreWriter

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

log = logging.getLogger(__name__)


class ItemWorker(Protocol):
    """Computes one item's array; `setup`/`teardown` bracket a process's items."""

    def setup(self) -> None: ...

    def teardown(self) -> None: ...

    def store_attrs(self) -> dict[str, Any]: ...

    def __call__(self, item: dict[str, Any]) -> Any: ...


class SingleThreadWorker:
    """Base of item workers: one BLAS/OpenMP thread per process while items are computed.

    Item bits then do not depend on --jobs or --shard (GEMM kernels split products by thread
    count), and --jobs N uses N cores. Subclasses build their extractor or model in `load`.
    """

    def load(self) -> None:
        """Build what the items need; runs once per process, under the single thread."""

    def setup(self) -> None:
        from threadpoolctl import threadpool_limits

        self._thread_limits = threadpool_limits(limits=1)
        self.load()

    def teardown(self) -> None:
        self._thread_limits.restore_original_limits()


class SingleThreadTorchWorker(SingleThreadWorker):
    """A `SingleThreadWorker` that computes with torch: its intra-op pool is pinned to 1 too."""

    def setup(self) -> None:
        import torch

        self._torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        super().setup()

    def teardown(self) -> None:
        import torch

        super().teardown()
        torch.set_num_threads(self._torch_threads)


@dataclass
class ItemStageSpec:
    name: str
    version: int
    out_dir: Path
    config: Any
    worker: ItemWorker
    items: list[dict[str, Any]]
    inputs: list[Path] = field(default_factory=list)
    max_reject_rate: float = 0.2
    force: bool = False
    show_progress: bool = True
    keys: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = {item["id"]: item_key(item) for item in self.items}

    @property
    def items_fingerprint(self) -> str:
        digest = hashlib.blake2b(digest_size=8)
        for item_id, key in sorted(self.keys.items()):
            digest.update(f"{item_id}\0{key}\n".encode())
        return digest.hexdigest()


@dataclass
class ItemStageResult:
    state: str  # done | up-to-date | dry-run
    out_dir: Path
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    message: str = ""
    computed: int = 0
    reused: int = 0

    def __post_init__(self) -> None:
        if self.reused and not self.message:
            self.message = f"reused {self.reused} items, computed {self.computed}"


def journal_path(out_dir: Path, shard: Shard) -> Path:
    return out_dir / ("journal.jsonl" if shard.is_whole else f"journal-{shard.tag}.jsonl")


def rejects_path(out_dir: Path, shard: Shard) -> Path:
    return out_dir / ("rejects.jsonl" if shard.is_whole else f"rejects-{shard.tag}.jsonl")


def _stage(spec: ItemStageSpec, shard: Shard) -> Stage:
    return Stage(
        spec.name,
        spec.version,
        spec.out_dir,
        spec.config,
        spec.inputs,
        shard,
        content={"items": spec.items_fingerprint},
    )


def _check_layout(spec: ItemStageSpec, count: int) -> None:
    """Refuse to mix shard counts: a partial run's journals belong to its own sharding."""
    if spec.force or not spec.out_dir.is_dir():
        return
    for marker in spec.out_dir.glob(f"stage*{STARTED_SUFFIX}"):
        other = (
            1 if marker.name == f"stage{STARTED_SUFFIX}" else int(marker.name.split("-of-")[1][:5])
        )
        if other != count and _stage(spec, WHOLE).status().state != "done":
            raise InputError(
                f"{spec.out_dir}: an unfinished run split into {other} shard(s) is there; resume it "
                f"with --jobs {other} (or --shard I/{other}), or pass --force to start over"
            )


def item_key(item: dict[str, Any]) -> str:
    """What identifies an item's content: its manifest fields and the size and mtime of the
    files they name. A rerun reuses an item whose key is unchanged, whatever else changed."""
    digest = hashlib.blake2b(
        json.dumps(item, sort_keys=True, default=str).encode("utf-8"), digest_size=12
    )
    for _, value in sorted(item.items()):
        if isinstance(value, str) and ("/" in value or "." in value):
            try:
                info = os.stat(value)
            except (OSError, ValueError):
                continue
            if stat.S_ISREG(info.st_mode):
                digest.update(f"\0{value}\0{info.st_size}\0{info.st_mtime_ns}".encode())
    return digest.hexdigest()


def _current(journal: Journal, item_id: str, key: str) -> bool:
    entry = journal.entries.get(item_id)
    return entry is not None and entry.get("key") == key


def _drop_other_layouts(out_dir: Path, shard: Shard) -> None:
    """Remove a finished earlier run's files made under another shard count.

    Items are reused only within one layout: another count's files would otherwise be read
    beside this run's as stale copies.
    """
    for path in out_dir.glob("*-of-*"):
        if path.is_file() and path.name.split("-of-")[1][:5] != f"{shard.count:05d}":
            path.unlink(missing_ok=True)
    if not shard.is_whole:
        for name in ("journal.jsonl", "rejects.jsonl", STAMP):
            (out_dir / name).unlink(missing_ok=True)


def run_shard(spec: ItemStageSpec, shard: Shard, conclude: bool = True) -> ItemStageResult:
    """Run one shard of the stage to completion in this process.

    With `conclude`, the shard that finds every shard finished takes the whole stage's reject
    verdict and writes its stamp (a fan-out concludes once, after all its shards, instead).
    """
    started = time.monotonic()
    stage = _stage(spec, shard)
    if stage.status().state == "done" and not spec.force:
        if conclude and not shard.is_whole:
            _conclude(spec, shard.count)
        return ItemStageResult("up-to-date", spec.out_dir, stage.status().counts)
    # Everything that can refuse (missing weights, bad options) runs before the stage begins,
    # so a refused command leaves nothing in --out.
    attrs = spec.worker.store_attrs()
    setup_started = time.monotonic()
    spec.worker.setup()
    try:
        stage.begin(force=spec.force, keep_items=True)
        _drop_other_layouts(spec.out_dir, shard)
        result = _run_items(spec, shard, stage, attrs, setup_started)
    finally:
        spec.worker.teardown()
    if conclude:
        _conclude(spec, shard.count)
    result.seconds = time.monotonic() - started
    return result


def _run_items(
    spec: ItemStageSpec, shard: Shard, stage: Stage, attrs: dict[str, Any], setup_started: float
) -> ItemStageResult:
    journal = Journal(journal_path(spec.out_dir, shard))
    rejects = Journal(rejects_path(spec.out_dir, shard))
    owned = [item for item in spec.items if shard.owns(item["id"])]
    keys = {item["id"]: spec.keys[item["id"]] for item in owned}
    todo = [
        item
        for item in owned
        if not _current(journal, item["id"], keys[item["id"]])
        and not _current(rejects, item["id"], keys[item["id"]])
    ]
    if len(todo) < len(owned):
        log.info(
            "%s: %d of %d items already done with the same content; computing %d",
            spec.name,
            len(owned) - len(todo),
            len(owned),
            len(todo),
        )
    # A worker whose items compress well (label maps) asks for it with `store_compression`.
    writer = StoreWriter(
        spec.out_dir, shard.tag, attrs, compression=getattr(spec.worker, "store_compression", None)
    )
    label = spec.name if shard.is_whole else f"{spec.name} [{shard}]"
    items_started = time.monotonic()
    for item in track(todo, len(todo), label, enabled=spec.show_progress):
        try:
            value = spec.worker(item)
        except Exception as exc:  # an item's failure is logged as a reject; the stage goes on
            reason = str(exc) if isinstance(exc, AvtoolError) else f"{type(exc).__name__}: {exc}"
            # One summary line at the end replaces a warning per item (see core.rejects).
            log.debug("rejected %s: %s", item["id"], reason)
            rejects.record(
                [
                    {
                        "id": item["id"],
                        "key": keys[item["id"]],
                        "path": item.get("path"),
                        "reason": reason,
                    }
                ]
            )
            continue
        journal.record({"id": i, "key": keys[i]} for i in writer.add(item["id"], value))
    journal.record({"id": i, "key": keys[i]} for i in writer.commit())
    done = {i for i in keys if _current(journal, i, keys[i])}
    rejected = {i for i in keys if i not in done and _current(rejects, i, keys[i])}
    _keep_only(journal, done)
    _keep_only(rejects, rejected)
    final = writer.finalize(keep=done)
    work = {
        "setup_seconds": round(items_started - setup_started, 3),
        "items_seconds": round(time.monotonic() - items_started, 3),
        "items_computed": len(todo),
        "items_reused": len(owned) - len(todo),
    }
    counts = {"items": len(owned), "done": len(done), "rejected": len(rejected)}
    if shard.is_whole:
        # One shard is the whole stage: judge before the stamp, so a failed stage has none.
        rejects_module.enforce(
            rejects_module.summarise(spec.out_dir, len(owned), set(keys)),
            spec.name,
            spec.max_reject_rate,
        )
    stage.finish(
        counts=counts, outputs=[final.name, journal.path.name, rejects.path.name], work=work
    )
    return ItemStageResult(
        "done",
        spec.out_dir,
        counts,
        computed=work["items_computed"],
        reused=work["items_reused"],
    )


def _keep_only(journal: Journal, ids: set[str]) -> None:
    """Rewrite a journal without entries of items gone from the manifest or changed since."""
    if set(journal.entries) == ids:
        return
    journal.entries = {i: e for i, e in journal.entries.items() if i in ids}
    write_jsonl(journal.path, journal.entries.values())


def _conclude(spec: ItemStageSpec, count: int) -> None:
    """Once every shard is stamped: the whole stage's reject verdict, then its own stamp."""
    if count == 1:
        return
    shard_stamps = [spec.out_dir / stamp_name(Shard(i, count)) for i in range(count)]
    if not all(path.exists() for path in shard_stamps):
        return
    whole = _stage(spec, WHOLE)
    if whole.status().state == "done":
        return
    summary = rejects_module.summarise(spec.out_dir, len(spec.items), {i["id"] for i in spec.items})
    rejects_module.enforce(summary, spec.name, spec.max_reject_rate)
    counts = _stage(spec, Shard(0, count)).sharded_counts(count)
    whole.finish(counts=counts, outputs=[p.name for p in shard_stamps], shards=count)


def describe_plan(spec: ItemStageSpec, shards: list[Shard]) -> str:
    lines = []
    for shard in shards:
        status = _stage(spec, shard).status()
        where = "" if shard.is_whole else f" shard {shard}"
        owned = sum(1 for it in spec.items if shard.owns(it["id"]))
        if status.state == "done" and not spec.force:
            lines.append(f"{spec.name}{where}: up to date, nothing to do")
        elif status.state == "stale" and "input" not in status.reason and not spec.force:
            lines.append(f"{spec.name}{where}: would refuse ({status.reason}); --force replaces it")
        elif status.state == "partial" and not spec.force:
            done = len(Journal(journal_path(spec.out_dir, shard)))
            lines.append(f"{spec.name}{where}: would resume, {done} of {owned} items done")
        else:
            why = "--force" if spec.force else status.reason
            lines.append(f"{spec.name}{where}: would run {owned} items ({why})")
    return "\n".join(lines)


def run_item_stage(
    spec: ItemStageSpec,
    shard: str | None = None,
    jobs: int = 1,
    launcher: str = "local",
    dry_run: bool = False,
) -> ItemStageResult:
    """Run the stage: one shard (`--shard`/SLURM task), or all of it over `jobs` workers."""
    chosen = resolve_shard(shard)
    fan_out = jobs > 1 and chosen.is_whole
    shards = [Shard(i, jobs) for i in range(jobs)] if fan_out else [chosen]
    if dry_run:
        return ItemStageResult("dry-run", spec.out_dir, message=describe_plan(spec, shards))
    _check_layout(spec, shards[0].count)
    if not fan_out:
        return run_shard(spec, chosen)
    if _stage(spec, WHOLE).status().state == "done" and not spec.force:
        return ItemStageResult("up-to-date", spec.out_dir, _stage(spec, WHOLE).status().counts)
    started = time.monotonic()
    results = _fan_out(spec, shards, launcher)
    _conclude(spec, len(shards))
    counts: dict[str, int] = {}
    for result in results:
        for key, value in result.counts.items():
            counts[key] = counts.get(key, 0) + value
    return ItemStageResult(
        "done",
        spec.out_dir,
        counts,
        time.monotonic() - started,
        computed=sum(r.computed for r in results),
        reused=sum(r.reused for r in results),
    )


START_METHOD_ENV = "AVTOOL_START_METHOD"


def _pool_context() -> BaseContext:
    """fork where it is safe, else spawn; `AVTOOL_START_METHOD=fork|spawn` decides instead.

    A forked worker starts in milliseconds; a spawned one spends 0.3-0.5 s re-importing what
    this process already has, as long as a few hundred short items take. Fork is safe only
    while this process runs no other thread and has not loaded torch (whose thread pools do
    not survive a fork); HDF5 files are opened by the shards, after the fork.
    """
    import multiprocessing
    import sys
    import threading

    chosen = os.environ.get(START_METHOD_ENV)
    if chosen:
        if chosen not in multiprocessing.get_all_start_methods():
            raise InputError(
                f"{START_METHOD_ENV}={chosen}: expected one of "
                f"{', '.join(multiprocessing.get_all_start_methods())}"
            )
        return multiprocessing.get_context(chosen)
    if (
        "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
        and "torch" not in sys.modules
    ):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def travelling_copy(worker: ItemWorker) -> ItemWorker:
    """The worker as it was constructed, without what `setup`/`load`/`store_attrs` built.

    Workers are dataclasses of their parameters; rebuilding one from its fields drops the
    models and handles a worker holds once loaded, which may not pickle at all (a
    weight-normed wav2vec2 refuses) and would be rebuilt in the new process anyway.
    """
    import dataclasses

    if not dataclasses.is_dataclass(worker):
        raise TypeError(
            f"{type(worker).__name__}: item workers must be dataclasses of their parameters"
        )
    return dataclasses.replace(worker)  # type: ignore[type-var]


def _fan_out(spec: ItemStageSpec, shards: list[Shard], launcher: str) -> list[ItemStageResult]:
    from dataclasses import replace

    quiet = replace(spec, show_progress=False)
    travelling = replace(quiet, worker=travelling_copy(spec.worker))
    if launcher == "local":
        from concurrent.futures import ProcessPoolExecutor

        # This process runs the first shard itself, the pool the others.
        with ProcessPoolExecutor(max_workers=len(shards) - 1, mp_context=_pool_context()) as pool:
            futures = [pool.submit(run_shard, travelling, shard, False) for shard in shards[1:]]
            first = run_shard(quiet, shards[0], conclude=False)
            return [first, *(future.result() for future in futures)]
    if launcher in ("slurm", "submitit-local"):
        import submitit

        cluster = "slurm" if launcher == "slurm" else "local"
        executor = submitit.AutoExecutor(folder=spec.out_dir / ".submitit" / "%j", cluster=cluster)
        executor.update_parameters(timeout_min=24 * 60, slurm_array_parallelism=len(shards))
        jobs = executor.map_array(
            run_shard, [travelling] * len(shards), shards, [False] * len(shards)
        )
        log.info("%s: submitted %d array tasks (%s)", spec.name, len(jobs), jobs[0].job_id)
        return [job.result() for job in jobs]
    raise InputError(f"--launcher {launcher!r}: expected local, slurm or submitit-local")


def run_manifest_stage(
    name: str,
    version: int,
    manifest: Path,
    out: Path,
    config: Any,
    worker: ItemWorker,
    *,
    shard: str | None = None,
    jobs: int = 1,
    launcher: str = "local",
    force: bool = False,
    dry_run: bool = False,
    max_reject_rate: float = 0.2,
) -> ItemStageResult:
    """Run `worker` over every item of a manifest (the manifest is the stage's input)."""
    from avtool.core.manifest import read_manifest

    spec = ItemStageSpec(
        name=name,
        version=version,
        out_dir=Path(out),
        config=config,
        worker=worker,
        items=read_manifest(manifest),
        inputs=[Path(manifest)],
        max_reject_rate=max_reject_rate,
        force=force,
    )
    return run_item_stage(spec, shard=shard, jobs=jobs, launcher=launcher, dry_run=dry_run)
