"""Training settings: one flat dataclass for both methods (the TRL pattern of a config per trainer,
with the method-specific defaults filled in from the paper's final configs).

Reference: structured-sampling.md sections 5.6, 6 and 7. The names match the `train` section of the
workflow config, so `TrainConfig.from_dict(train_settings(config, model, method))` is the whole glue.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cft.training.methods import get_method

# Keys that only some methods read. They are left out of `to_dict` while unset, so that adding such a
# key does not change the settings record (and run fingerprint) of the methods that ignore it.
METHOD_ONLY_KEYS = ("max_nodes_per_step",)
# Keys that never change the trained adapter: left out of the run fingerprint (a resume may change them).
RUN_CONTROL_KEYS = ("checkpoint_every", "snapshots")


@dataclass(frozen=True)
class TrainConfig:
    method: str = "soft"
    seed: int = 11
    epochs: int | None = None                  # None: 3 (soft) or 2 (hard)
    batch_size: int = 8
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.03
    lora_r: int = 16
    lora_alpha: float = 32
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    # Target construction (structured-sampling.md section 4).
    decimals: int = 5
    max_bins: int | None = None                # None: 1001 (soft) or 16384 (hard)
    quantile_low: float = 0.001
    quantile_high: float = 0.999
    # Hard targets: sampled completions per prompt and epoch.
    samples_per_prompt: int = 16
    # Soft targets: softmax temperature of the model and the floor on target probabilities.
    temperature: float = 1.0
    epsilon: float = 1e-8
    # Full-support matching: the trie nodes per prompt and step (the highest-weight ones; None = all).
    max_nodes_per_step: int | None = None
    # Run control: an optional cap on optimizer steps (the schedule then spans the cap), the
    # checkpoint interval in optimizer steps, and the number of adapter snapshots kept for the
    # fidelity curve, evenly spaced before the last step (None: none). Neither changes the adapter.
    max_steps: int | None = None
    checkpoint_every: int = 50
    snapshots: int | None = None

    def __post_init__(self) -> None:
        # The paper's final configs fill in what is unset: soft trains 3 epochs on a 1001-atom
        # target, hard 2 epochs of 16 samples per prompt drawn from a 16384-atom target.
        for key, value in get_method(self.method).defaults.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        object.__setattr__(self, "lora_target_modules", tuple(self.lora_target_modules))
        positive = ("epochs", "batch_size", "lora_r", "max_bins", "samples_per_prompt", "checkpoint_every")
        for key in positive:
            if getattr(self, key) < 1:
                raise ValueError(f"train config key {key!r} must be at least 1, got {getattr(self, key)}")
        for key in ("max_steps", "max_nodes_per_step", "snapshots"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"train config key {key!r} must be at least 1 or null, got {getattr(self, key)}")
        if not self.lr > 0 or not self.temperature > 0 or not 0 < self.epsilon < 0.01:
            raise ValueError("train config keys 'lr' and 'temperature' must be positive and 'epsilon' in (0, 0.01)")
        if not 0 <= self.warmup_ratio <= 1 or not 0 <= self.lora_dropout < 1:
            raise ValueError("train config keys 'warmup_ratio' must lie in [0, 1] and 'lora_dropout' in [0, 1)")
        if not 0 < self.quantile_low < self.quantile_high < 1:
            raise ValueError("train config keys 'quantile_low' < 'quantile_high' must lie in (0, 1)")

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> TrainConfig:
        """Build from flat settings; an unknown key is an error that names it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(
                f"unknown train config key {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(known))}"
            )
        return cls(**settings)

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["lora_target_modules"] = list(self.lora_target_modules)
        for key in (*METHOD_ONLY_KEYS, "snapshots"):
            if record[key] is None:
                del record[key]
        return record
