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
