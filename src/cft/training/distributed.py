"""Data-parallel training across processes started by `torchrun` or `accelerate launch`.

Each process holds the whole model with its own LoRA copy and trains on its shard of every batch
(`epoch_batches` with rank and world size, the paper's seed formula), so `batch_size` is per process
and a step sees `world_size * batch_size` examples. The loss runs through torch's
DistributedDataParallel (`data_parallel`), whose backward pass averages the LoRA gradients across
processes in buckets while it runs, which keeps every copy identical; process 0 alone writes
checkpoints, logs and the adapter. A single process (no launcher) is world size 1 and none of this runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


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


class _LossModule(torch.nn.Module):
    """`loss(batch)` as the forward of a module that holds `model`. DistributedDataParallel reduces
    gradients only after a forward through itself, and the training losses call the decoder and the
    LM head on their own (`cft.training.losses`) rather than the model's forward."""

    def __init__(self, model: torch.nn.Module, loss: Callable[[Mapping[str, torch.Tensor]], torch.Tensor]):
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.loss(batch)


def data_parallel(model: torch.nn.Module, loss: Callable[[Mapping[str, torch.Tensor]], torch.Tensor]
                  ) -> Callable[[Mapping[str, torch.Tensor]], torch.Tensor]:
    """`loss` (a function of the batch computed with `model`) through DistributedDataParallel when
    this process is one of several, so that backward averages the gradients of `model`'s trainable
    parameters over the processes; `loss` itself in a single process.

    Building it is collective: DDP checks that every process holds parameters of the same shapes and
    copies process 0's weights to the others.
    """
    if world()[1] == 1:
        return loss
    device = next(model.parameters()).device
    return DistributedDataParallel(
        _LossModule(model, loss), device_ids=[device] if device.type == "cuda" else None,
        # Gemma 3's checkpoints load as an image-text model whose vision tower has q/k/v_proj layers
        # too: LoRA wraps them, and text prompts never reach them. DDP then has to look for the
        # parameters without a gradient at every step; their gradients stay None, as in a single
        # process, so AdamW leaves them as they are.
        find_unused_parameters=True,
        # The model's buffers (rotary frequencies) are constants, the same in every process; a
        # broadcast of them before every forward would be a collective for nothing.
        forward_sync_buffers=False,
    )


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
