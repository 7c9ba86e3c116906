"""One process or many: the same training code runs alone or under `torchrun` (DDP).

`torchrun` describes the job in the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...);
when it is there we join the process group (gloo on the CPU, nccl on GPUs), otherwise the
context is a world of one and every collective is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum `values` over ranks; every rank gets the same result (same order of additions)."""
        if not self.is_distributed:
            return values
        # nccl only reduces tensors on the GPU; gloo wants them on the CPU.
        on_wire = values.to(self.device)
        dist.all_reduce(on_wire, op=dist.ReduceOp.SUM)
        return on_wire.to(values.device)

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, indexed by rank (on every rank)."""
        if not self.is_distributed:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def barrier(self) -> None:
        if not self.is_distributed:
            return
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group, if we were the ones who joined it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' picks the GPU when there is one; a bare 'cuda' under torchrun means this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def setup(device: str = "auto") -> DistContext:
    """Join the `torchrun` process group when launched by it; else a world of one."""
    if dist.is_available() and dist.is_initialized():
        # The caller set the group up (a notebook, a custom launcher): use it, leave it to them.
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        resolved = resolve_device(device, local_rank)
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        return DistContext(rank, world, local_rank, resolved, owns_group=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(0, 1, 0, resolve_device(device), owns_group=False)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if resolved.type == "cuda":
        # Before the group exists, so nccl binds each rank to its own GPU.
        torch.cuda.set_device(resolved)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
    return DistContext(rank, world, local_rank, resolved, owns_group=True)
