"""Logit transforms: the model's output head followed by a function of (hidden state, logits).

A fitted global temperature (`GlobalTemperature`) and an Adaptive Temperature Scaling head
(`cft.baselines.ats.ATSHead`) are transforms. `with_logit_transform` installs one as the model's output
embeddings, so that everything computing logits goes through it: the model's own forward and
``generate``, `cft.evaluation.sampling.HFSampler`, `cft.evaluation.exact.PromptScorer` and
`cft.training.losses` (the last two call ``get_output_embeddings()`` on the decoder's
hidden states). This module sits below both `cft.variants` and `cft.baselines`, which import it.

It also reads log-probabilities of a bias-free head in blocks of the vocabulary, never holding
[positions, vocab]: `selected_log_probs` for the exact scorer (no gradients), `blocked_log_probs` for
the training losses (exact gradients, temperature transforms included through `blocked_head`).
"""

from __future__ import annotations

from typing import Any

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

    def logit_scale(self, hidden: torch.Tensor) -> torch.Tensor | None:
        """The per-position multiplier of the logits that `blocked_log_probs` applies (None for 1)."""
        return None if self.temperature == 1.0 else hidden.new_full(hidden.shape[:-1], 1 / self.temperature,
                                                                   dtype=torch.float32)


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


def blocked_head(head: nn.Module) -> tuple[torch.Tensor, Any] | None:
    """``(weight, logit_scale)`` for a head whose logits are ``logit_scale(hidden) * (hidden @ weight.T)``
    (``logit_scale`` None for a plain head): a bias-free linear head, alone or followed by a transform
    with a ``logit_scale`` (the temperature transforms), which `blocked_log_probs` reads in vocabulary
    blocks. None for any other head."""
    if is_plain_head(head):
        return head.weight, None
    if isinstance(head, TransformedHead) and is_plain_head(head.head) and hasattr(head.transform, "logit_scale"):
        return head.head.weight, head.transform.logit_scale
    return None


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


class _BlockedLogNormalizer(torch.autograd.Function):
    """``logsumexp_v softcap(scale_n * (hidden @ weight.T)_nv) / temperature`` per row n, in fp32, over blocks
    of the vocabulary, never holding more than one [rows, block] tensor.

    d lse / d logits is the softmax, so the gradients to the hidden states and to the scale are
    softmax-weighted sums over the vocabulary: ``sum_v p_v c_v weight_v`` and ``sum_v p_v c_v raw_v``
    (``c_v`` the soft-cap's derivative). The forward accumulates both beside the logsumexp, rescaled
    with the running maximum like the sum itself, so the backward needs no second pass over the head
    for them: one matmul per block instead of a recomputed block plus one. Only a trained head's
    gradient, [vocab, d], is recomputed block by block in the backward."""

    @staticmethod
    def forward(ctx, hidden, weight, scale, softcap, temperature, vocab_chunk, wants_input_grads):
        rows_count = hidden.size(0)
        maximum = torch.full((rows_count,), -torch.inf, device=hidden.device)
        total = torch.zeros(rows_count, device=hidden.device)
        weighted_rows = torch.zeros(rows_count, hidden.size(1), device=hidden.device) if wants_input_grads else None
        wants_raw = wants_input_grads and scale is not None
        weighted_raw = torch.zeros(rows_count, device=hidden.device) if wants_raw else None
        for begin in range(0, weight.size(0), vocab_chunk):
            rows = weight[begin:begin + vocab_chunk]
            block, (raw, squash) = _scaled_block(hidden, rows, scale, softcap, temperature)
            block_maximum = torch.maximum(maximum, block.amax(-1))
            rescale = torch.exp(maximum - block_maximum)
            unnormalized = torch.exp(block - block_maximum[:, None])
            total = total * rescale + unnormalized.sum(-1)
            maximum = block_maximum
            if wants_input_grads:
                if squash is not None:
                    unnormalized = unnormalized * (1 - squash * squash)
                weighted_rows = weighted_rows * rescale[:, None] + unnormalized @ rows.float()
                if wants_raw:
                    weighted_raw = weighted_raw * rescale + (unnormalized * raw).sum(-1)
        log_normalizer = maximum + torch.log(total)
        if wants_input_grads:
            weighted_rows = weighted_rows / total[:, None]
        if wants_raw:
            weighted_raw = weighted_raw / total
        ctx.save_for_backward(hidden, weight, scale, log_normalizer, weighted_rows, weighted_raw)
        ctx.softcap, ctx.temperature, ctx.vocab_chunk = softcap, temperature, vocab_chunk
        return log_normalizer

    @staticmethod
    def backward(ctx, grad_log_normalizer):
        hidden, weight, scale, log_normalizer, weighted_rows, weighted_raw = ctx.saved_tensors
        wants_hidden, wants_weight, wants_scale = ctx.needs_input_grad[:3]
        per_row = grad_log_normalizer / ctx.temperature
        grad_scale = per_row * weighted_raw if wants_scale else None
        grad_hidden = None
        if wants_hidden:
            grad_hidden = per_row if scale is None else per_row * scale
            grad_hidden = (grad_hidden[:, None] * weighted_rows).to(hidden.dtype)
        grad_weight = None
        if wants_weight:
            grad_weight = torch.empty(weight.shape, dtype=weight.dtype, device=weight.device)
            hidden32 = hidden.float()
            for begin in range(0, weight.size(0), ctx.vocab_chunk):
                block, (_, squash) = _scaled_block(hidden, weight[begin:begin + ctx.vocab_chunk], scale,
                                                   ctx.softcap, ctx.temperature)
                grad = torch.exp(block - log_normalizer[:, None]) * per_row[:, None]
                if squash is not None:
                    grad = grad * (1 - squash * squash)
                if scale is not None:
                    grad = grad * scale[:, None]
                grad_weight[begin:begin + ctx.vocab_chunk] = (grad.T @ hidden32).to(weight.dtype)
        return grad_hidden, grad_weight, grad_scale, None, None, None, None


def _scaled_block(hidden, rows, scale, softcap, temperature):
    """One block of ``softcap(scale * (hidden @ rows.T)) / temperature`` in fp32, with the fp32 matmul
    result and the soft-cap's tanh (None without one) that the backward needs."""
    raw = (hidden @ rows.T).float()
    scaled = raw if scale is None else raw * scale[:, None]
    squash = None
    if softcap is not None:
        squash = torch.tanh(scaled / softcap)
        scaled = squash * softcap
    return scaled / temperature, (raw, squash)


def blocked_log_probs(hidden: torch.Tensor, weight: torch.Tensor, token_ids: torch.Tensor, *,
                   scale: torch.Tensor | None = None, softcap: float | None = None, temperature: float = 1.0,
                   vocab_chunk: int = VOCAB_CHUNK) -> torch.Tensor:
    """``log_softmax(softcap(scale * (hidden @ weight.T)) / temperature)`` read at ``token_ids``, in fp32,
    differentiable in ``hidden``, ``weight`` and ``scale`` and never holding [positions, vocab].

    hidden [..., d]; token_ids [..., C] (entries must be valid ids); scale [...] a per-position
    multiplier of the logits (a temperature transform's, `logit_scale`), None for 1. The selected
    logits come from the gathered rows of ``weight`` under autograd; the log-normalizer from
    `_BlockedLogNormalizer`."""
    lead = hidden.shape[:-1]
    flat_hidden = hidden.reshape(-1, hidden.size(-1))
    flat_scale = None if scale is None else scale.reshape(-1).float()
    # The softmax-weighted sums for the input gradients cost a matmul per block: only when asked for.
    wants_input_grads = torch.is_grad_enabled() and (hidden.requires_grad or (scale is not None and scale.requires_grad))
    log_normalizer = _BlockedLogNormalizer.apply(flat_hidden, weight, flat_scale, softcap, temperature, vocab_chunk,
                                                 wants_input_grads)
    chosen = torch.einsum("...d,...cd->...c", hidden, weight[token_ids]).float()
    if scale is not None:
        chosen = chosen * scale.float()[..., None]
    if softcap is not None:
        chosen = torch.tanh(chosen / softcap) * softcap
    return chosen / temperature - log_normalizer.reshape(lead)[..., None]


def logits_by_head(logits: torch.Tensor) -> torch.Tensor:
    """A forward's logits as [heads, batch, positions, vocab]: a `HeadFanout`'s as they are, a single
    head's with a heads dimension of one."""
    return logits if logits.dim() == 4 else logits.unsqueeze(0)
