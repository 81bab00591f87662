"""Model variants: what an evaluation loads for `{variant}` of one model.

Every evaluation (fidelity, transfer, retention) calls `load_variant`, so a new variant kind
(a trained adapter, a logit transform, a prompting protocol) becomes available to all of them at once.
`base` is the pretrained model; a variant named after a training method is the base model with that
method's LoRA adapter (`results/adapters/{model}/{method}/adapter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cft.models import load_model


def load_variant(model_record: Mapping[str, Any], adapter_dir: str | Path | None, device: str):
    """The base model, or the base model with a LoRA adapter, in eval mode."""
    model = load_model(model_record["path"], dtype=model_record["dtype"], device=device)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
    return model
