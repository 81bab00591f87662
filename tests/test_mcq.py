"""cft.transfer.mcq: the prompt, the strict parser (hand cases and properties), the position metrics
against hand-computed values, the evaluator end to end on a tiny model, the table and the figure."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transfer_fixtures import tiny_model_record

from cft.figures.transfer import plot_mcq_positions
from cft.io import read_json, read_jsonl
from cft.transfer.mcq import (
    LETTERS,
    MEDICAL_MCQ_PROMPT,
    McqParse,
    McqSettings,
    evaluate_mcq,
    mcq_table,
    parse_mcq,
    position_metrics,
)

VALID = """Question: Which drug is first-line for uncomplicated hypertension in a young adult?
A. Thiazide diuretic
B. Clonidine
C. Hydralazine
D. Minoxidil
Correct Answer: A
Explanation: Thiazides reduce events and are a recommended first choice."""


def mcq(answer: str) -> str:
    return VALID.replace("Correct Answer: A", f"Correct Answer: {answer}")


def test_prompt_states_the_format_and_the_balance_requirement():
    for line in ("Question: [", "A. [", "B. [", "C. [", "D. [", "Correct Answer: [A/B/C/D]", "Explanation: ["):
        assert f"\n{line}" in MEDICAL_MCQ_PROMPT
    assert "evenly over A, B, C and D" in MEDICAL_MCQ_PROMPT
    assert "Exactly one option is correct" in MEDICAL_MCQ_PROMPT
    assert MEDICAL_MCQ_PROMPT.endswith("\n")


def test_parser_accepts_the_format():
    parsed = parse_mcq(VALID)
    assert parsed.is_valid and parsed.answer == "A" and parsed.reason is None
    assert parsed.options["B"] == "Clonidine" and parsed.unique_options
    assert parsed.question.startswith("Which drug")


def test_parser_tolerates_indentation_blank_lines_and_thinking():
    text = "<think>I will pick C this time.</think>\n\n  Question:   What   is  it?\n\n A.  x\n B. y\nC. z\n D. w\n" \
           "Correct Answer:   C  \nExplanation: because"
    parsed = parse_mcq(text)
    assert parsed.is_valid and parsed.answer == "C"
    assert parsed.question == "What is it?" and parsed.options["A"] == "x"


@pytest.mark.parametrize("text, reason", [
    ("", "empty_response"),
    ("<think>only thinking", "empty_response"),
    (VALID.replace("Correct Answer: A\n", ""), "missing_correct_answer"),
    (mcq("E"), "invalid_correct_answer"),
    (mcq("a"), "invalid_correct_answer"),
    (mcq("A."), "invalid_correct_answer"),
    (mcq("B. Clonidine"), "invalid_correct_answer"),
    (mcq(""), "empty_correct_answer"),
    (VALID.replace("B. Clonidine", "A. Clonidine"), "duplicate_option_a;missing_option_b"),
    (VALID.replace("Question:", "**Question:**"), "unexpected_line;missing_question"),
    (VALID.replace("C. Hydralazine", "C) Hydralazine"), "unexpected_line;missing_option_c"),
    ("Sure! Here is your question:\n" + VALID, "unexpected_line"),
    (VALID + "\nIt lowers blood pressure.", "unexpected_line"),
    (VALID + "\n" + VALID, "duplicate_question;duplicate_option_a;duplicate_option_b;duplicate_option_c;"
                           "duplicate_option_d;duplicate_correct_answer;duplicate_explanation"),
    (VALID.replace("Explanation: Thiazides reduce events and are a recommended first choice.", "Explanation:"),
     "empty_explanation"),
])
def test_parser_rejects_with_a_reason(text, reason):
    parsed = parse_mcq(text)
    assert not parsed.is_valid and parsed.answer is None
    assert parsed.reason == reason


def test_declared_letter_survives_other_errors():
    parsed = parse_mcq("Preamble\n" + mcq("D"))
    assert parsed.declared == "D" and parsed.answer is None
    assert position_metrics([parsed])["declared_answer_rate"] == 1.0


def test_duplicate_option_texts_are_flagged_but_valid():
    parsed = parse_mcq(VALID.replace("B. Clonidine", "B. Minoxidil"))
    assert parsed.is_valid and not parsed.unique_options


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_is_classified(text):
    parsed = parse_mcq(text)
    assert isinstance(parsed, McqParse)
    assert parsed.is_valid == (parsed.answer in LETTERS)
    assert parsed.is_valid == (parsed.reason is None)
    assert parsed.is_valid or parsed.answer is None


LINE = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ,;()?%-]{0,30}", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(LINE, st.lists(LINE, min_size=4, max_size=4), st.sampled_from(LETTERS), LINE)
def test_any_well_formed_question_parses_to_its_letter(question, options, answer, explanation):
    text = "\n".join([f"Question: {question}", *(f"{letter}. {option}" for letter, option in zip(LETTERS, options)),
                      f"Correct Answer: {answer}", f"Explanation: {explanation}"])
    parsed = parse_mcq(text)
    assert parsed.is_valid and parsed.answer == answer
    assert parsed.options == {letter: " ".join(o.split()) for letter, o in zip(LETTERS, options)}


# ---- metrics -------------------------------------------------------------------------------------


def test_position_metrics_hand_computed():
    parses = [parse_mcq(mcq("A"))] * 8 + [parse_mcq(mcq("B"))] * 2 + [parse_mcq("C")] * 2
    metrics = position_metrics(parses)
    assert metrics["num_samples"] == 12 and metrics["num_valid"] == 10
    assert metrics["valid_rate"] == pytest.approx(10 / 12)
    assert [metrics[f"count_{x}"] for x in LETTERS] == [8, 2, 0, 0]
    assert [metrics[f"share_{x}"] for x in LETTERS] == [0.8, 0.2, 0.0, 0.0]
    # TV = (|0.8-0.25| + |0.2-0.25| + 0.25 + 0.25) / 2; chi2 = sum (o-2.5)^2/2.5 over (8, 2, 0, 0).
    assert metrics["tv_from_uniform"] == pytest.approx(0.55)
    assert metrics["max_abs_deviation"] == pytest.approx(0.55)
    assert metrics["chi_square"] == pytest.approx(17.2)
    assert metrics["chi_square_pvalue"] == pytest.approx(6.428602522538975e-4)


def test_balanced_answers_have_zero_tv():
    metrics = position_metrics([parse_mcq(mcq(x)) for x in LETTERS * 5])
    assert metrics["tv_from_uniform"] == 0.0 and metrics["chi_square_pvalue"] == pytest.approx(1.0)


def test_no_valid_generation_gives_a_missing_tv_not_zero():
    metrics = position_metrics([parse_mcq("nonsense"), parse_mcq("")])
    assert metrics["valid_rate"] == 0.0 and metrics["num_valid"] == 0
    for key in ("tv_from_uniform", "max_abs_deviation", "chi_square", "chi_square_pvalue", "share_A"):
        assert metrics[key] is None
    with pytest.raises(ValueError):
        position_metrics([])


# ---- evaluator, table, figure --------------------------------------------------------------------


def test_evaluator_end_to_end_on_a_tiny_model(tmp_path):
    torch.set_num_threads(1)
    record = tiny_model_record(tmp_path)
    settings_ = McqSettings(num_samples=5, max_new_tokens=12, batch_size=3)
    summary = evaluate_mcq(model_record_path=record, adapter_dir=None, variant="base", settings=settings_,
                           generations_jsonl=tmp_path / "gen.jsonl", summary_json=tmp_path / "summary.json")
    rows = read_jsonl(tmp_path / "gen.jsonl")
    assert len(rows) == 5 and len({r["seed"] for r in rows}) == 5
    # A random 2-layer model never writes the format: every generation is kept, invalid, with a reason.
    assert all(not r["is_valid"] and r["error"] for r in rows)
    assert summary["valid_rate"] == 0.0 and summary["tv_from_uniform"] is None
    assert sum(summary["error_counts"].values()) >= 5
    assert read_json(tmp_path / "summary.json")["settings"]["num_samples"] == 5

    second = tmp_path / "second.json"
    second.write_text(pd.Series({**read_json(tmp_path / "summary.json"), "variant": "soft", "num_valid": 4,
                                 "valid_rate": 0.8, "tv_from_uniform": 0.25, "share_A": 0.5, "share_B": 0.5,
                                 "share_C": 0.0, "share_D": 0.0}).to_json())
    table = mcq_table([tmp_path / "summary.json", second], tmp_path / "mcq_summary.csv")
    assert table["variant"].tolist() == ["base", "soft"]
    reread = pd.read_csv(tmp_path / "mcq_summary.csv")
    assert math.isnan(reread.loc[0, "tv_from_uniform"]) and reread.loc[1, "tv_from_uniform"] == 0.25
    plot_mcq_positions(tmp_path / "mcq_summary.csv", tmp_path / "mcq.pdf", tmp_path / "mcq.png", note="\nnote")
    assert (tmp_path / "mcq.pdf").stat().st_size > 1000 and (tmp_path / "mcq.png").stat().st_size > 1000
