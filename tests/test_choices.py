"""Exact answer probabilities on closed answer sets (`cft.transfer.choices`): the teacher-forced line
probability against a brute-force forward, the rows' shares, ranks and entropy, the rank preservation
of a global temperature, SSoT refused, and the table and figure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_models import char_tokenizer, tiny_llama
from transfer_fixtures import tiny_model_record

from cft.evaluation.exact import PromptScorer
from cft.figures.transfer import plot_openended_choices
from cft.models import encode_prompt, format_prompt
from cft.transfer.choices import (CHOICE_SETS, answer_line_probabilities, choice_rows, choices_table,
                                  evaluate_choices)
from cft.transfer.openended import CATEGORIES
from cft.logits import GlobalTemperature, with_logit_transform

ANSWERS = ("Mon", "Tue", "Sat", "Sun")


def brute_force_line_probability(model, prompt_ids, answer_ids, line_ends) -> tuple[float, float]:
    """The same probability from one plain forward over prompt + answer: product of the answer's
    next-token probabilities, times the summed probability of the line-end tokens after it."""
    ids = torch.tensor([list(prompt_ids) + list(answer_ids)])
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    start = len(prompt_ids) - 1
    steps = [probs[start + k, token].item() for k, token in enumerate(answer_ids)]
    return math.prod(steps) * probs[start + len(answer_ids), line_ends].sum().item(), steps[0]


def scorer_and_prompt(model, tokenizer):
    prompt_ids = encode_prompt(tokenizer, format_prompt(tokenizer, "Choose a random weekday."))
    return PromptScorer(model.eval(), prompt_ids), prompt_ids


def test_line_probability_equals_a_plain_forward():
    tokenizer = char_tokenizer()
    model = tiny_llama(len(tokenizer)).eval()
    scorer, prompt_ids = scorer_and_prompt(model, tokenizer)
    line, first = answer_line_probabilities(scorer, tokenizer, ANSWERS)
    line_ends = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("\n")]
    for answer, got_line, got_first in zip(ANSWERS, line, first):
        want_line, want_first = brute_force_line_probability(
            model, prompt_ids, tokenizer.encode(answer, add_special_tokens=False), line_ends)
        assert got_line == pytest.approx(want_line, rel=1e-5)
        assert got_first == pytest.approx(want_first, rel=1e-5)
    assert 0 < line.sum() < 1


def test_rows_on_a_hand_made_case():
    rows = choice_rows(np.array([0.1, 0.2, 0.1]), ["a", "b", "c"], first_token=np.array([0.3, 0.2, 0.5]))
    assert [row["share"] for row in rows] == pytest.approx([0.25, 0.5, 0.25])
    assert [row["rank"] for row in rows] == [2, 1, 3]  # ties in list order
    assert [row["first_token_rank"] for row in rows] == [2, 3, 1]
    assert rows[0]["set_mass"] == pytest.approx(0.4)
    entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)) / math.log(3)
    assert all(row["normalized_entropy"] == pytest.approx(entropy) for row in rows)
    uniform = choice_rows(np.full(4, 0.05), list("abcd"))
    assert uniform[0]["normalized_entropy"] == pytest.approx(1.0)


def test_a_global_temperature_flattens_without_reordering_first_tokens():
    tokenizer = char_tokenizer()
    base = tiny_llama(len(tokenizer)).eval()
    _, base_first = answer_line_probabilities(scorer_and_prompt(base, tokenizer)[0], tokenizer, ANSWERS)
    hot = with_logit_transform(tiny_llama(len(tokenizer)), GlobalTemperature(4.0))
    _, hot_first = answer_line_probabilities(scorer_and_prompt(hot, tokenizer)[0], tokenizer, ANSWERS)
    base_rows, hot_rows = choice_rows(base_first, ANSWERS), choice_rows(hot_first, ANSWERS)
    assert [r["rank"] for r in hot_rows] == [r["rank"] for r in base_rows]
    assert hot_rows[0]["normalized_entropy"] > base_rows[0]["normalized_entropy"]


def test_every_answer_set_is_an_open_ended_category():
    assert set(CHOICE_SETS) <= set(CATEGORIES)


def test_evaluate_table_and_figure(tmp_path):
    record = tiny_model_record(tmp_path)
    frames = [evaluate_choices(model_record_path=record, adapter_dir=None, variant="base",
                               categories=["weekday", "month"], out_csv=tmp_path / "base.csv")]
    assert list(frames[0].groupby("category").size()) == [12, 7]  # month, weekday
    assert frames[0]["share"].groupby(frames[0]["category"]).sum().to_numpy() == pytest.approx([1.0, 1.0])
    temperature = tmp_path / "temperature.json"
    temperature.write_text('{"temperature": 2.0}')
    evaluate_choices(model_record_path=record, adapter_dir=None, variant="temperature",
                     categories=["weekday", "month"], out_csv=tmp_path / "temperature.csv",
                     variant_files={"temperature": str(temperature)})
    table = choices_table([tmp_path / "base.csv", tmp_path / "temperature.csv"], tmp_path / "table.csv")
    by_variant = table.pivot_table(index=["category", "answer"], columns="variant", values="first_token_rank")
    assert (by_variant["base"] == by_variant["temperature"]).all()
    plot_openended_choices(tmp_path / "table.csv", tmp_path / "fig.pdf", tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 0
    assert pd.read_csv(tmp_path / "table.csv")["variant"].unique().tolist() == ["base", "temperature"]


def test_ssot_is_refused(tmp_path):
    record = tiny_model_record(tmp_path)
    with pytest.raises(ValueError, match="teacher-forced"):
        evaluate_choices(model_record_path=record, adapter_dir=None, variant="ssot", categories=["weekday"],
                         out_csv=tmp_path / "x.csv")
