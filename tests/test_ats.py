"""Adaptive Temperature Scaling: the head starts at temperature 1, never reorders tokens, its loss is
the paper's selective smoothing, and both training objectives run end to end on the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cft.baselines.ats import (
    MAX_INVERSE_TEMPERATURE,
    PACKAGED_INSTRUCTIONS,
    ATSHead,
    instruction_data,
    load_ats_head,
    save_ats_head,
    selective_smoothing_loss,
    train_ats,
)
from cft.io import write_jsonl
from cft.prompts import PromptSpec
from tiny_models import save_tiny_record


def test_head_starts_at_temperature_one():
    torch.manual_seed(0)
    head = ATSHead(hidden_size=16, head_size=8)
    hidden, logits = torch.randn(3, 5, 16), torch.randn(3, 5, 50)
    assert torch.equal(head.inverse_temperature(hidden), torch.ones(3, 5, 1))
    assert torch.equal(head(hidden, logits), logits)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_head_preserves_the_token_ranking(seed):
    torch.manual_seed(seed)
    head = ATSHead(hidden_size=16, head_size=8)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 1.0)
    hidden, logits = torch.randn(4, 16), torch.randn(4, 30)
    scaled = head(hidden, logits)
    inverse = head.inverse_temperature(hidden)
    assert torch.all(inverse > 0) and torch.all(inverse <= MAX_INVERSE_TEMPERATURE)
    assert not torch.allclose(scaled, logits)
    # Each row is multiplied by one positive number: same order of tokens (strict ties cannot arise).
    assert torch.equal(torch.argsort(scaled, dim=-1), torch.argsort(logits, dim=-1))


def test_selective_smoothing_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    labels = torch.tensor([0, 2, -100])  # row 0 correct, row 1 wrong, row 2 unsupervised
    log_p = torch.log_softmax(logits, -1)
    expected = 0.7 * -log_p[0, 0] + 0.3 * -log_p[1].mean()
    assert selective_smoothing_loss(logits, labels, alpha=0.3).item() == pytest.approx(expected.item())
    # Only correct tokens: plain cross-entropy, whatever alpha.
    only_correct = selective_smoothing_loss(logits[:1], labels[:1], alpha=0.3)
    assert only_correct.item() == pytest.approx(0.7 * -log_p[0, 0].item())


def test_smoothing_pushes_wrong_tokens_toward_uniform():
    # A wrong, confident prediction: raising the temperature must lower the loss.
    logits = torch.tensor([[5.0, 0.0, 0.0]])
    labels = torch.tensor([1])
    assert selective_smoothing_loss(logits / 4, labels) < selective_smoothing_loss(logits, labels)


def test_save_and_load_round_trip(tmp_path):
    head = ATSHead(hidden_size=16, head_size=8)
    with torch.no_grad():
        head.net[-1].bias.fill_(0.3)
    save_ats_head(head, tmp_path / "head.pt", {"loss": "kl"})
    loaded = load_ats_head(tmp_path / "head.pt")
    hidden = torch.randn(2, 16)
    assert torch.equal(loaded.inverse_temperature(hidden), head.inverse_temperature(hidden))
    assert not loaded.training


def test_instruction_data_packaged_and_alpaca(tmp_path):
    pairs = instruction_data(PACKAGED_INSTRUCTIONS)
    assert len(pairs) == 164 and all(instruction and response for instruction, response in pairs)
    path = tmp_path / "alpaca.jsonl"
    write_jsonl(path, [{"instruction": "Name a color.", "input": "", "output": "Blue."},
                       {"instruction": "Add.", "input": "2 + 3", "output": "5"}])
    assert instruction_data(str(path)) == [("Name a color.", "Blue."), ("Add.\n\n2 + 3", "5")]


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ats")
    save_tiny_record(root)
    specs = [PromptSpec.from_params("binomial", {"n": 4.0, "p": 0.5}),
             PromptSpec.from_params("uniform", {"a": 0.0, "b": 1.0}),
             PromptSpec.from_params("geometric", {"p": 0.5})]
    write_jsonl(root / "prompts.jsonl", [{"spec": s.to_dict()} for s in specs])
    alpaca = [{"instruction": f"Say the number {i}.", "input": "", "output": f"{i}"} for i in range(6)]
    write_jsonl(root / "alpaca.jsonl", alpaca)
    return root


@pytest.mark.parametrize("loss", ["kl", "smooth"])
def test_training_lowers_the_loss_and_writes_a_loadable_head(tiny_setup, tmp_path, loss):
    torch.set_num_threads(1)
    settings_ = dict(head_size=16, lr=0.05, steps=12, batch_size=3, target={"decimals": 1, "max_bins": 16},
                     instruction_data=str(tiny_setup / "alpaca.jsonl"), max_response_tokens=8)
    frame = train_ats(model_record_path=tiny_setup / "model.json", loss=loss, prompts_path=tiny_setup / "prompts.jsonl",
                      settings=settings_, head_out=tmp_path / "head.pt", record_out=tmp_path / "head.json",
                      log_csv=tmp_path / "log.csv", device="cpu", threads=1)
    assert list(frame["step"]) == list(range(1, 13))
    # The same batches recur (3 prompts / 6 instructions, batch 3): compare the first and last epoch.
    period = 1 if loss == "kl" else 2
    assert frame["loss"].iloc[-period:].mean() < frame["loss"].iloc[:period].mean()
    record = json.loads((tmp_path / "head.json").read_text())
    assert record["loss"] == loss and record["temperature_mean"] != 1.0
    assert pd.read_csv(tmp_path / "log.csv").shape[0] == 12
    head = load_ats_head(tmp_path / "head.pt")
    assert not np.allclose(head.inverse_temperature(torch.randn(5, 32)).detach().numpy(), 1.0)


def test_unknown_loss_is_refused(tiny_setup, tmp_path):
    with pytest.raises(ValueError, match="kl"):
        train_ats(model_record_path=tiny_setup / "model.json", loss="xent", prompts_path=tiny_setup / "prompts.jsonl",
                  settings={}, head_out=tmp_path / "h.pt", record_out=tmp_path / "h.json", log_csv=tmp_path / "l.csv")


def test_global_temperature_fit_on_the_tiny_model(tiny_setup, tmp_path):
    """The workflow's fit end to end: the fitted temperature lies in its bounds, scores no worse
    than T=1, and is written with the objective beside it."""
    from cft.baselines.temperature import fit_global_temperature
    from cft.io import read_json

    torch.set_num_threads(1)
    fit = fit_global_temperature(model_record_path=tiny_setup / "model.json",
                                 prompts_path=tiny_setup / "prompts.jsonl",
                                 settings=dict(num_train_prompts=3, target={"decimals": 1, "max_bins": 16}, xatol=0.05),
                                 out_json=tmp_path / "temperature.json", device="cpu", threads=1)
    assert 0.05 <= fit.temperature <= 20.0
    assert fit.objective <= fit.objective_at_1 + 1e-9
    written = read_json(tmp_path / "temperature.json")
    assert written["temperature"] == pytest.approx(fit.temperature)
