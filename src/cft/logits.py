"""Logit transforms: the model's output head followed by a function of (hidden state, logits).

A fitted global temperature (`GlobalTemperature`) and an Adaptive Temperature Scaling head
(`cft.baselines.ats.ATSHead`) are transforms. `with_logit_transform` installs one as the model's output
embeddings, so that everything computing logits goes through it: the model's own forward and
``generate``, `cft.evaluation.sampling.HFSampler`, `cft.evaluation.exact.PromptScorer` and
`cft.training.losses.answer_logits` (the last two call ``get_output_embeddings()`` on the decoder's
hidden states). This module sits below both `cft.variants` and `cft.baselines`, which import it.
"""

from __future__ import annotations

import torch
from torch import nn


class TransformedHead(nn.Module):
    """The model's output head followed by ``transform(hidden, logits)``.

    It replaces the model's output embeddings, so the model's forward, `PromptScorer` and the training
    losses all see transformed logits. ``weight`` stays the head's (tied embeddings keep working).
    """

    def __init__(self, head: nn.Module, transform: nn.Module):
        super().__init__()
        self.head = head
        self.transform = transform

    @property
    def weight(self) -> torch.Tensor:
        return self.head.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.transform(hidden, self.head(hidden))


class GlobalTemperature(nn.Module):
    """Logits divided by one temperature; at 1.0 the logits are returned untouched."""

    def __init__(self, temperature: float):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, hidden: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits if self.temperature == 1.0 else logits / self.temperature


def with_logit_transform(model, transform: nn.Module):
    """``model`` with its output head followed by ``transform`` (in place; also returned)."""
    head = model.get_output_embeddings()
    if isinstance(head, TransformedHead):
        raise ValueError("the model already has a logit transform; stacking two is not supported")
    param = head.weight
    transform.to(device=param.device)
    model.set_output_embeddings(TransformedHead(head, transform))
    return model.eval()


class HeadFanout(nn.Module):
    """Several output heads on one decoder: the base head's matmul once, then each head's transform.

    ``transforms`` holds one entry per head: None for the base head itself, else a transform as in
    `TransformedHead`. Installed as a model's output embeddings (`cft.variants.output_head`), one
    forward gives every head's logits, stacked on a new first dimension ([heads, batch, positions,
    vocab]; fp32, which holds any head's dtype exactly). Each head's logits are those its own
    `TransformedHead` gives: the same decoder states, matmul and transform.
    """

    def __init__(self, head: nn.Module, transforms: list[nn.Module | None]):
        super().__init__()
        if not transforms:
            raise ValueError("a fan-out needs at least one head")
        self.head = head
        self.transforms = nn.ModuleList([nn.Identity() if t is None else t for t in transforms])
        self._is_base = [t is None for t in transforms]

    @property
    def weight(self) -> torch.Tensor:
        return self.head.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.head(hidden)
        return torch.stack([(logits if is_base else transform(hidden, logits)).float()
                            for is_base, transform in zip(self._is_base, self.transforms, strict=True)])


# Vocabulary entries per block of logits in `selected_log_probs`. A [256, 2048] fp32 block stays in the
# CPU's cache: on the 2-core machine a 262k-entry head (Gemma 3) with its logsumexp took 684 ms per 256
# positions in such blocks against 1041 ms as one matmul (SmolLM2: 124 against 171 ms), and never holds
# [positions, vocab] (bench/bench_vocab.py).
VOCAB_CHUNK = 2048


def is_plain_head(head: nn.Module) -> bool:
    """A bias-free linear output head, which `selected_log_probs` reads through its weight."""
    return isinstance(head, nn.Linear) and head.bias is None


def selected_log_probs(hidden: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor, tokens: torch.Tensor, *,
                       softcap: float | None = None, temperature: float = 1.0,
                       vocab_chunk: int = VOCAB_CHUNK) -> torch.Tensor:
    """``log_softmax(z / temperature)[rows, tokens]`` in fp32 for the logits ``z = softcap(hidden @ weight.T)``
    of a bias-free output head, without materializing ``z``: the log-normalizer is an online logsumexp
    over blocks of ``vocab_chunk`` entries, and each requested entry is read from its block, so it is
    the same number the normalizer summed. hidden [N, d], weight [V, d], rows and tokens [M]."""

    def finish(raw: torch.Tensor) -> torch.Tensor:
        # As the model's forward: Gemma-2-style soft-capping in the model's dtype, then fp32.
        if softcap is not None:
            raw = torch.tanh(raw / softcap) * softcap
        return raw.float().div(temperature)

    maximum = torch.full((hidden.size(0),), -torch.inf, device=hidden.device)
    total = torch.zeros(hidden.size(0), device=hidden.device)
    chosen = torch.empty(tokens.size(0), device=hidden.device)
    for begin in range(0, weight.size(0), vocab_chunk):
        block = finish(hidden @ weight[begin:begin + vocab_chunk].T)
        block_maximum = torch.maximum(maximum, block.amax(-1))
        total = total * torch.exp(maximum - block_maximum) + torch.exp(block - block_maximum[:, None]).sum(-1)
        maximum = block_maximum
        inside = (tokens >= begin) & (tokens < begin + vocab_chunk)
        chosen[inside] = block[rows[inside], tokens[inside] - begin]
    return chosen - (maximum + torch.log(total))[rows]


def logits_by_head(logits: torch.Tensor) -> torch.Tensor:
    """A forward's logits as [heads, batch, positions, vocab]: a `HeadFanout`'s as they are, a single
    head's with a heads dimension of one."""
    return logits if logits.dim() == 4 else logits.unsqueeze(0)
