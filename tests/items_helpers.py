"""A numpy-only item worker for the per-item runner's tests (picklable, importable by workers)."""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avtool.core.errors import InputError, ItemError
from avtool.core.items import ItemStageSpec, run_item_stage
from avtool.core.store import store_attrs


@dataclass
class HashWorker:
    """Each item's array is a deterministic function of its id; ids starting 'bad' fail."""

    delay: float = 0.0

    def setup(self) -> None:
        self.calls = 0

    def teardown(self) -> None:
        pass

    def store_attrs(self) -> dict:
        return store_attrs("hash", {"delay": 0})

    def __call__(self, item: dict) -> np.ndarray:
        if item["id"].startswith("bad"):
            raise ItemError(f"{item['path']}: unreadable on purpose")
        time.sleep(self.delay)
        seed = int.from_bytes(hashlib.sha256(item["id"].encode()).digest()[:4], "big")
        return np.random.default_rng(seed).standard_normal((8, 5 + seed % 7)).astype(np.float32)


@dataclass
class LoadedWorker(HashWorker):
    """Holds an unpicklable object once loaded, as a worker holding a model does."""

    def store_attrs(self) -> dict:
        import threading

        self.model = threading.Lock()
        return super().store_attrs()


@dataclass
class RefusingWorker(HashWorker):
    """Refuses before any item, as an extractor without its weights does."""

    def store_attrs(self) -> dict:
        raise InputError("/weights/missing.pt: weights not found; run `avtool models fetch`")


def make_items(count: int, bad: int = 0) -> list[dict]:
    items = [{"id": f"item{i:04d}", "path": f"/nowhere/item{i}.wav"} for i in range(count)]
    return items + [{"id": f"bad{i}", "path": f"/nowhere/bad{i}.wav"} for i in range(bad)]


def spec(
    out: Path, items: list[dict], delay: float = 0.0, worker: type = HashWorker, **kwargs
) -> ItemStageSpec:
    return ItemStageSpec(
        name="test.hash",
        version=1,
        out_dir=out,
        config={"delay": 0},
        worker=worker(delay),
        items=items,
        show_progress=False,
        **kwargs,
    )


if __name__ == "__main__":  # used by the SIGKILL test: run the stage to completion
    out, count, delay = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    run_item_stage(spec(out, make_items(count), delay))
