"""Calibration fine-tuning: soft (trie KL) and hard (sampled-answer CE) targets with LoRA."""

from cft.training.config import TrainConfig
from cft.training.losses import answer_logits, hard_target_ce, soft_target_kl
from cft.training.trainer import (
    CalibrationTrainer,
    HardTargetTrainer,
    SoftTargetTrainer,
    StaleRunError,
    TrainingAlreadyDone,
    train,
    train_from_workflow,
)

__all__ = [
    "CalibrationTrainer", "HardTargetTrainer", "SoftTargetTrainer", "StaleRunError", "TrainConfig",
    "TrainingAlreadyDone", "answer_logits", "hard_target_ce", "soft_target_kl", "train", "train_from_workflow",
]
