"""What every bench script shares: the machine header, the matmul peak, FLOP accounting and goals.

The helpers below `matmul_peak_gflops` are pure functions (tested in tests/test_bench.py); the
scripts only time things and hand the numbers to them.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import math
import os
import platform
import time
from dataclasses import dataclass

import torch

from cft.provenance import cpu_name

DEFAULT_MODEL = "packaged:smollm2-135m-instruct"
# The machine and setup that the paper-code reference figures (bench/RESULTS.md) were measured on.
REFERENCE_MODEL, REFERENCE_DEVICE = DEFAULT_MODEL, "cpu"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model/--device/--dtype/--threads/--cache-dir, the same in every script."""
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="packaged:NAME, a local transformers folder or a hub id")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="auto", help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--cache-dir", default="resources/models", help="where packaged models are converted")


def is_reference_setup(args: argparse.Namespace) -> bool:
    """True when the run measures what the paper-code reference figures measured."""
    return args.model == REFERENCE_MODEL and torch.device(args.device).type == REFERENCE_DEVICE


def synchronize(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def machine_header(device: str = "cpu") -> dict[str, object]:
    """Machine, versions, date and load: printed first by every script, copied into RESULTS.md."""
    cpu = cpu_name()
    header: dict[str, object] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }
    for package in ("torch", "transformers", "peft", "scipy"):
        try:
            header[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            header[package] = None
    if torch.device(device).type == "cuda":
        header["gpu"] = torch.cuda.get_device_name(device)
    return header


def print_header(title: str, device: str = "cpu") -> None:
    print(f"== {title}")
    print("   " + ", ".join(f"{key} {value}" for key, value in machine_header(device).items()), flush=True)


def matmul_peak_gflops(size: int = 2048, repeats: int = 5, device: str = "cpu",
                       dtype: torch.dtype = torch.float32) -> float:
    """Best-of-`repeats` dense GEMM throughput (GFLOP/s) of two size x size matrices: the machine's
    practical peak, against which training FLOP/s are compared. The best run, not the median,
    because contention only ever slows a run down."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # first call: allocation and kernel selection
    synchronize(device)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


# ---- FLOP accounting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """What a training step's FLOP count needs to know about the model.

    base_linear_params: weights of the frozen matmuls in the decoder layers (q/k/v/o and MLP),
        the LM head excluded; lora_params: the trainable LoRA A and B weights; attention_dim:
        num_heads * head_dim (the width of the query-key and attention-value products).
    """

    base_linear_params: int
    lora_params: int
    num_layers: int
    attention_dim: int
    hidden_size: int
    vocab_size: int


def model_shape(model) -> ModelShape:
    """Count a (PEFT-wrapped) causal LM's linear weights: frozen ones as base, trainable ones as LoRA."""
    config = model.config.get_text_config()
    head = model.get_output_embeddings()
    base = lora = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            if module.weight.requires_grad:
                lora += module.weight.numel()
            else:
                base += module.weight.numel()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return ModelShape(base_linear_params=base, lora_params=lora, num_layers=config.num_hidden_layers,
                      attention_dim=config.num_attention_heads * head_dim,
                      hidden_size=config.hidden_size, vocab_size=config.vocab_size)


def training_step_flops(shape: ModelShape, batch_size: int, seq_len: int, logit_positions: int,
                        shared_prefix: int = 0) -> float:
    """FLOPs of one LoRA training step (forward + backward) over a [batch_size, seq_len] batch that
    projects `logit_positions` hidden states onto the vocabulary, its first `shared_prefix` tokens
    (the same in every row) computed once.

    With T = batch_size * seq_len - (batch_size - 1) * shared_prefix executed positions (padding
    included: the hardware computes it),
    N the frozen decoder matmul weights, n the LoRA weights, P the logit positions, d the hidden
    size, V the vocabulary, L layers and a the attention width:

        forward   2NT + 2nT + A + 2dVP,   with A = 4 L a seq_len T (QK^T and AV, full square)
        backward  2NT + 4nT + 2A + 2dVP   (activation gradients through every matmul; weight
                                           gradients only for LoRA: the base and the head are frozen)
        total     4NT + 6nT + 3A + 4dVP

    Elementwise work (norms, activations, softmax, the loss) is left out; so is the first layer's
    saving of not needing input gradients. The naive step has P = T, the gathered one P = B * S.
    """
    tokens = batch_size * seq_len - (batch_size - 1) * shared_prefix
    attention = 4 * shape.num_layers * shape.attention_dim * seq_len * tokens
    head = 4 * shape.hidden_size * shape.vocab_size * logit_positions
    return float(4 * shape.base_linear_params * tokens + 6 * shape.lora_params * tokens + 3 * attention + head)


# ---- goals -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """A target of issue #9: `measured` must be at most (or at least) `target`."""

    name: str
    measured: float
    target: float
    unit: str = ""
    higher_is_better: bool = False

    @property
    def met(self) -> bool:
        return self.measured >= self.target if self.higher_is_better else self.measured <= self.target

    @property
    def shortfall(self) -> float:
        """How many times the measurement would have to improve to meet the goal (1.0 when met)."""
        if self.met:
            return 1.0
        if self.higher_is_better:
            return self.target / self.measured if self.measured > 0 else math.inf
        return self.measured / self.target if self.target > 0 else math.inf

    def line(self) -> str:
        relation = ">=" if self.higher_is_better else "<="
        verdict = "met" if self.met else f"MISSED by x{self.shortfall:.2f}"
        unit = f" {self.unit}" if self.unit else ""
        return (f"GOAL {self.name}: measured {self.measured:.4g}{unit}, "
                f"goal {relation} {self.target:.4g}{unit}: {verdict}")


def print_goals(goals: list[Goal]) -> None:
    for goal in goals:
        print(goal.line(), flush=True)
