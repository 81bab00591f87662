"""Calibration fine-tuning with LoRA: soft (trie KL) and hard (sampled-answer CE) targets, full-support
matching and exact-digit soft targets. Importing the package registers every method
(`cft.training.methods.METHODS`)."""

from cft.training.config import TrainConfig
from cft.training.losses import (
    answer_hidden,
    answer_logits,
    full_support_kl,
    hard_target_ce,
    head_log_probs,
    soft_target_kl,
)
from cft.training.trainer import (
    CalibrationTrainer,
    HardTargetTrainer,
    SoftTargetTrainer,
    StaleRunError,
    TrainingAlreadyDone,
    train,
    train_from_workflow,
)
# Registered after the trainer module they build on, in the order the figures list the methods.
from cft.training.fullsupport import FullSupportTrainer  # noqa: E402
from cft.training.exact_digit import DigitLaw, exact_digit_path  # noqa: E402
from cft.training.methods import METHODS, register_method  # noqa: E402

__all__ = [
    "METHODS", "CalibrationTrainer", "DigitLaw", "FullSupportTrainer", "HardTargetTrainer", "SoftTargetTrainer",
    "StaleRunError", "TrainConfig", "TrainingAlreadyDone", "answer_hidden", "answer_logits", "exact_digit_path",
    "full_support_kl", "hard_target_ce", "head_log_probs", "register_method", "soft_target_kl", "train",
    "train_from_workflow",
]
