"""The registry of training methods: a name -> (trainer class, target builder, default settings).

A method is what `train.methods` lists and what `train_adapter` trains as `{method}`; its adapter is
evaluated as the variant of the same name, drawn in every figure with its entry's `Style`. Adding one is
a trainer class (or an existing one) plus one `register_method` call, and a `train.<name>` section in
the workflow config schema.

The target builder is the function the trainer asks for its targets, and its shape is the trainer's:
`SoftTargetTrainer` wants `(spec, tokenizer, eos_id, config, seed) -> (value ids, soft steps)` (one
answer and the soft targets along its path), `FullSupportTrainer` wants
`(spec, tokenizer, eos_id, config) -> TokenTrie` (the whole trie), `HardTargetTrainer` wants
`(spec, config) -> OutputSpace`.

This module imports no trainer, so that `TrainConfig` can validate method names against it; the
trainer modules register their methods when `cft.training` is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cft.styles import Style


@dataclass(frozen=True)
class TrainingMethod:
    name: str
    trainer: type
    targets: Callable[..., Any]
    style: Style
    # Settings a method fills in when the config leaves them unset (None), e.g. its epochs and target:
    # the schema's train.<name> defaults (tests/test_config.py checks that they agree).
    defaults: Mapping[str, Any] = field(default_factory=dict)


METHODS: dict[str, TrainingMethod] = {}


def register_method(name: str, trainer: type, targets: Callable[..., Any], *, style: Style,
                    **defaults: Any) -> TrainingMethod:
    if name in METHODS:
        raise ValueError(f"training method {name!r} is already registered")
    method = TrainingMethod(name, trainer, targets, style, defaults)
    METHODS[name] = method
    return method


def get_method(name: str) -> TrainingMethod:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"train config key 'method': {name!r} is not one of {', '.join(METHODS)}") from None
