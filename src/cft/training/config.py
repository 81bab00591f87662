"""Training settings: one dataclass for every training method (the TRL pattern of a config per
trainer), with the method-specific defaults (`cft.training.methods`) filled in from the paper's final
configs.

Reference: structured-sampling.md sections 5.6, 6 and 7. The names match the `train` section of the
workflow config, so `TrainConfig.from_dict(train_settings(config, model, method))` is the whole glue;
the workflow config's schema holds the same defaults (tests/test_config.py checks that they agree).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cft.targets import TargetSettings
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
    epochs: int | None = None                  # None: the method's (cft.training.methods)
    batch_size: int = 8
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.03
    lora_r: int = 16
    lora_alpha: float = 32
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    # The discretized target (structured-sampling.md section 4; a mapping of its keys is accepted).
    # None: the method's, the paper's soft target or, for hard, its 16384-atom target.
    target: TargetSettings | None = None
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
        # The method fills in what is unset (the paper's final configs: soft trains 3 epochs on a
        # 1001-atom target, hard 2 epochs of 16 samples per prompt drawn from a 16384-atom target).
        for key, value in get_method(self.method).defaults.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        object.__setattr__(self, "lora_target_modules", tuple(self.lora_target_modules))
        try:
            object.__setattr__(self, "target", TargetSettings.of(self.target))
        except (TypeError, ValueError) as error:
            raise ValueError(f"train config key 'target': {error}") from None
        positive = ("epochs", "batch_size", "lora_r", "samples_per_prompt", "checkpoint_every")
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

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> TrainConfig:
        """Build from settings whose `target` is a mapping, or from a record of `to_dict` (the target's
        keys flat); an unknown key is an error that names it."""
        settings = dict(settings)
        flat = {key: settings.pop(key) for key in TargetSettings.setting_names() if key in settings}
        if flat:
            if "target" in settings:
                raise ValueError(f"train config keys {', '.join(map(repr, flat))} are keys of 'target'; "
                                 "give them there")
            settings["target"] = flat
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(
                f"unknown train config key {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(known))}"
            )
        return cls(**settings)

    def to_dict(self) -> dict[str, Any]:
        """The settings record (train_config.json) and the run fingerprint's settings. The target's
        keys stay flat in it, where they were before the target was one object, so that a run
        recorded then keeps its fingerprint and resumes."""
        record: dict[str, Any] = {}
        for key, value in dataclasses.asdict(self).items():
            if key == "target":
                record.update(value)
            elif key not in (*METHOD_ONLY_KEYS, "snapshots") or value is not None:
                record[key] = list(value) if key == "lora_target_modules" else value
        return record
