"""DistributedDataParallel plumbing. One process is the single-device run; `torchrun` starts several.

NCCL on GPUs, gloo on CPUs. Nothing here runs unless WORLD_SIZE > 1 is set by the launcher.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .devices import pick_device

__all__ = ["World", "setup", "wrap", "barrier", "ranks_agree", "cleanup"]


@dataclass
class World:
    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str | torch.device | None = None) -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(0, 1, 0, pick_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return World(rank, size, local_rank, dev)


def wrap(module: nn.Module, world: World, find_unused: bool) -> nn.Module:
    """DDP around the loss module when there are several processes; the module itself otherwise.

    find_unused: the criterion's own `find_unused_parameters` (Base and Base+Pivot leave some heads unused).
    """
    if world.size <= 1:
        return module
    ids = [world.device.index] if world.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def ranks_agree(model: nn.Module, world: World) -> bool:
    """True when every process holds the same weights (checked by a checksum all-gather)."""
    if world.size <= 1:
        return True
    with torch.no_grad():
        checksum = torch.stack([p.double().sum() for p in model.parameters()]).sum().reshape(1).to(world.device)
    gathered = [torch.zeros_like(checksum) for _ in range(world.size)]
    dist.all_gather(gathered, checksum)
    return all(torch.allclose(g, gathered[0], rtol=0, atol=1e-6) for g in gathered)


def cleanup(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
