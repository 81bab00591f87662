"""`train.report_to: [tensorboard]`: the event files hold every logged loss and learning rate, once per
optimizer step, also across a crash and resume (the attempt after the crash purges the steps that
the crashed attempt logged past its last checkpoint)."""

from __future__ import annotations

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_models import save_tiny_checkpoint

import cft.training.trainer as trainer_module
from cft.launch import tensorboard_dir
from cft.prompts import PromptSpec
from cft.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = [
    PromptSpec.from_params("gaussian", {"mu": 0.0, "sigma": 1.0}),
    PromptSpec.from_params("binomial", {"n": 5.0, "p": 0.5}),
    PromptSpec.from_params("uniform", {"a": 0.0, "b": 2.0}),
    PromptSpec.from_params("geometric", {"p": 0.5}),
]


def scalars(folder, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def test_event_files_hold_the_logged_losses_across_a_resume(tmp_path, monkeypatch):
    model_dir = save_tiny_checkpoint(tmp_path / "tiny")
    config = TrainConfig(method="hard", epochs=2, batch_size=2, lr=3e-2, checkpoint_every=2, samples_per_prompt=2)
    board = tmp_path / "tensorboard"
    original_step = trainer_module.CalibrationTrainer.training_step
    calls = []

    def crashing_step(self, batch_items, epoch):
        if len(calls) == 5:  # after step 5, one past the step-4 checkpoint
            raise RuntimeError("simulated crash")
        calls.append(epoch)
        return original_step(self, batch_items, epoch)

    monkeypatch.setattr(trainer_module.CalibrationTrainer, "training_step", crashing_step)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train("hard", PROMPTS, model_dir, tmp_path / "run", config, progress=False, tensorboard_dir=board)
    assert [step for step, _ in scalars(board, "train/loss")] == [1, 2, 3, 4, 5]

    monkeypatch.setattr(trainer_module.CalibrationTrainer, "training_step", original_step)
    train("hard", PROMPTS, model_dir, tmp_path / "run", config, progress=False, tensorboard_dir=board)
    log = pd.read_csv(tmp_path / "run" / "train_log.csv")
    assert log["step"].tolist() == list(range(1, 9))
    for tag, column in (("train/loss", "loss"), ("train/lr", "lr")):
        logged = scalars(board, tag)
        assert [step for step, _ in logged] == log["step"].tolist(), tag
        assert [value for _, value in logged] == pytest.approx(log[column].tolist(), rel=1e-6, abs=1e-12), tag
    assert len(scalars(board, "train/tokens_per_second")) == 8


def test_report_to_chooses_the_event_folder():
    assert tensorboard_dir({"train": {"report_to": []}}, "m", "soft") is None
    assert tensorboard_dir({"train": {}}, "m", "soft") is None
    assert tensorboard_dir({"train": {"report_to": ["tensorboard"]}}, "m", "soft") == "results/tensorboard/m/soft"


def test_config_defaults_off_and_paper_on():
    from cft.config import load_config

    assert load_config("config/config.yaml")["train"]["report_to"] == []
    assert load_config("config/config.yaml", "config/paper.yaml")["train"]["report_to"] == ["tensorboard"]
