"""Data-parallel training across processes started by `torchrun` or `accelerate launch`.

Each process holds the whole model with its own LoRA copy and trains on its shard of every batch
(`epoch_batches` with rank and world size, the paper's seed formula), so `batch_size` is per process
and a step sees `world_size * batch_size` examples. After the backward pass the LoRA gradients are
averaged across processes, which keeps every copy identical; process 0 alone writes checkpoints, logs
and the adapter. A single process (no launcher) is world size 1 and none of this runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world size) of this process: from the process group, else from the launcher's
    environment (RANK/WORLD_SIZE, set by torchrun and accelerate), else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_process_group() -> str | None:
    """Join the launcher's process group; return this process's device (cuda:<local rank> with NCCL,
    or None for CPU with gloo), or None when not launched with more than one process."""
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return None
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group("nccl")
        return f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return "cpu"


def is_main_process() -> bool:
    return world()[0] == 0


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Average the gradients of `parameters` over all processes (in place)."""
    world_size = world()[1]
    if world_size == 1:
        return
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world_size)


def sum_across_processes(value: float) -> float:
    """The sum of a scalar over all processes (the tokens of a data-parallel step)."""
    if world()[1] == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64,
                          device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.item()


def mean_across_processes(value: float) -> float:
    """The mean of a scalar over all processes (the logged loss of a data-parallel step)."""
    return sum_across_processes(value) / world()[1]


def destroy_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
