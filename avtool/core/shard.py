"""Stable sharding of item ids, shared by `--shard I/N`, `--jobs N` and SLURM job arrays."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from avtool.core.errors import InputError


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise InputError(f"shard {self.index}/{self.count}: need 0 <= I < N, e.g. --shard 0/4")

    @property
    def tag(self) -> str:
        """File-name tag, e.g. `00001-of-00003`."""
        return f"{self.index:05d}-of-{self.count:05d}"

    @property
    def is_whole(self) -> bool:
        return self.count == 1

    def owns(self, item_id: str) -> bool:
        return shard_of(item_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Shard(0, 1)


def shard_of(item_id: str, count: int) -> int:
    """Shard index of an item: a hash of its id, the same in every process and Python version."""
    digest = hashlib.blake2b(item_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parse_shard(text: str) -> Shard:
    index, sep, count = text.partition("/")
    try:
        if not sep:
            raise ValueError
        return Shard(int(index), int(count))
    except ValueError:
        raise InputError(
            f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. --shard 0/4"
        ) from None


def shard_from_env(environ: dict[str, str] | None = None) -> Shard | None:
    """The shard of a SLURM array task (`SLURM_ARRAY_TASK_ID` of `SLURM_ARRAY_TASK_COUNT`)."""
    env = os.environ if environ is None else environ
    task, count = env.get("SLURM_ARRAY_TASK_ID"), env.get("SLURM_ARRAY_TASK_COUNT")
    if task is None or count is None:
        return None
    first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
    return Shard(int(task) - first, int(count))


def resolve_shard(option: str | None) -> Shard:
    """`--shard` wins; otherwise a SLURM array task's position; otherwise the whole set."""
    if option:
        return parse_shard(option)
    return shard_from_env() or WHOLE
