"""torch.distributed glue: one process per device under torchrun, gloo on CPU, nccl on GPU."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int  # this process, 0 writes files
    world: int  # number of processes
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init(device: str = "auto") -> Dist:
    """Join the process group that torchrun describes in the environment (or run alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank, world, dev)


def all_gather(t: torch.Tensor, d: Dist) -> list[torch.Tensor]:
    """Every process's `t` (same shape, dtype and device class on all of them), in rank order."""
    if d.world == 1:
        return [t]
    out = [torch.empty_like(t) for _ in range(d.world)]
    dist.all_gather(out, t.contiguous())
    return out


def ordered_sum(t: torch.Tensor, d: Dist, count: int, acc: torch.Tensor | None = None) -> torch.Tensor:
    """acc + t[rank 0] + t[rank 1] + ... + t[rank count-1], added one at a time in that order.

    The guarantee of multi-process training rests here: an all_reduce sums in an order of the
    backend's choosing (ring, tree, by message arrival), so float sums change in the last bit
    with the number of processes. Gathering and adding in rank order is the same arithmetic as
    one process adding the same tensors in a loop. Ranks at or after `count` send padding.
    """
    if count < 1:
        raise ValueError(f"ordered_sum: count must be at least 1; got {count}")
    for x in all_gather(t, d)[:count]:
        acc = x.clone() if acc is None else acc.add_(x)
    return acc


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def shutdown(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
