"""Retention tasks: answer extraction, calibration metrics, item construction and missing-asset errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cft.retention.answers import extract_flexible, extract_strict, gold_answer, normalize_number, truncate_at_stop
from cft.retention.calibration import brier_score, choice_probabilities, expected_calibration_error
from cft.retention.tasks import TASKS, TaskDataUnavailable, hellaswag_ending, item_from_dict, load_items


@pytest.mark.parametrize(("response", "strict", "flexible"), [
    ("#### $1,234.50.", "1234.5", "1234.5"),
    ("#### 18 dollars and 5 cents", None, "5"),
    ("The answer is 42.", None, "42"),
    ("x #### 7\n#### 9", "7", "9"),
    ("work\n#### 1,234.00", "1234", "1234"),
    ("no digits here", None, None),
    ("#### -3", "-3", "-3"),
])
def test_gsm8k_strict_and_flexible_extraction(response, strict, flexible):
    assert extract_strict(response)[0] == strict
    assert extract_flexible(response)[0] == flexible


def test_extraction_failures_carry_a_reason():
    assert extract_strict("The answer is 42.") == (None, "no_marker")
    assert extract_strict("#### 18 and 5") == (None, "marker_without_single_number")
    assert extract_flexible("none") == (None, "no_number")


def test_normalization_and_gold():
    assert normalize_number("12.50") == "12.5"
    assert normalize_number("007") == "7"
    assert gold_answer("She pays 3 * 4 = 12.\n#### 12") == "12"
    with pytest.raises(ValueError):
        gold_answer("#### twelve")
    assert truncate_at_stop(" 42\n\nQuestion: next one") == "42"


def test_ece_on_hand_made_cases():
    # Perfectly calibrated: in the 0.8 bin, 4 of 5 right; in the 0.6 bin, 3 of 5 right.
    conf = [0.8] * 5 + [0.6] * 5
    right = [1, 1, 1, 1, 0] + [1, 1, 1, 0, 0]
    assert expected_calibration_error(conf, right) == pytest.approx(0.0)
    # Always sure, half right: ECE = |0.5 - 1.0| = 0.5.
    assert expected_calibration_error([1.0] * 4, [1, 0, 1, 0]) == pytest.approx(0.5)
    # Two bins, half the items each: |0.5 - 0.9| and |0.0 - 0.4|.
    assert expected_calibration_error([0.9, 0.9, 0.4, 0.4], [1, 0, 0, 0]) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    # 15 equal-width bins: 0.55 and 0.6 share bin (8/15, 9/15]; 0.5 lies in (7/15, 8/15].
    assert expected_calibration_error([0.55, 0.6], [1, 0]) == pytest.approx(abs(0.5 - 0.575))
    assert expected_calibration_error([0.5, 0.55], [1, 0]) == pytest.approx(0.5 * 0.5 + 0.5 * 0.55)


def test_brier_and_choice_probabilities_by_hand():
    assert brier_score([[1.0, 0.0], [0.5, 0.5]], [0, 1]) == pytest.approx((0.0 + 0.5) / 2)
    assert brier_score([[0.2, 0.3, 0.5]], [2]) == pytest.approx(0.04 + 0.09 + 0.25)
    probs = choice_probabilities([np.log(1.0), np.log(3.0)])
    np.testing.assert_allclose(probs, [0.25, 0.75])
    # Large negative log-likelihoods (long answers) do not underflow.
    np.testing.assert_allclose(choice_probabilities([-1000.0, -1000.0 + np.log(3.0)]), [0.25, 0.75])


def test_standin_items_have_the_tiny_shape():
    truthful = load_items("standin_truthfulqa", None)
    assert len(truthful) == 299
    item = truthful[0]
    assert item.choices[0].context.endswith("\nQ: What happens to you if you eat watermelon seeds?\nA:")
    assert item.choices[item.gold].continuation == " The watermelon seeds pass through your digestive system."
    assert sum(item.labels) == 1.0 and item.labels[item.gold] == 1.0
    arithmetic = load_items("standin_arithmetic_2_digit_multiplication", None, limit=3)
    assert [a.gold for a in arithmetic] == ["1000", "1219", arithmetic[2].gold]
    assert arithmetic[0].prompt.startswith("What is 50 times 20?") and "####" in arithmetic[0].prompt
    for task in TASKS.values():
        assert task.stand_in == (task.benchmark is None)


def test_items_survive_serialization():
    for name in ("standin_truthfulqa", "standin_arithmetic_2_digit_addition"):
        item = load_items(name, None, limit=1)[0]
        assert item_from_dict(json.loads(json.dumps(item.to_dict()))) == item


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_tiny_tasks_from_a_local_export(tmp_path):
    """The real loaders on local JSONL exports with the tinyBenchmarks datasets' fields."""
    write_rows(tmp_path / "tinyWinogrande.jsonl", [
        {"sentence": "The cup fell off the table because _ was unsteady.", "option1": "the cup",
         "option2": "the table", "answer": "2",
         "input_formatted": "Shot one.\n\nThe cup fell off the table because the table"}] * 100)
    write_rows(tmp_path / "tinyMMLU.jsonl", [
        {"input_formatted": "Q?\nA. a\nB. b\nC. c\nD. d\nAnswer:", "answer": 2, "choices": list("abcd")}] * 100)
    write_rows(tmp_path / "tinyGSM8k.jsonl", [
        {"input_formatted": "Question: 2+2?\nAnswer:", "answer": "2+2=4\n#### 4", "question": "2+2?"}] * 100)
    write_rows(tmp_path / "tinyHellaswag.jsonl", [
        {"input_formatted": "He runs.", "label": "1", "endings": ["a [title] b", "falls  over [x]", "c", "d"]}] * 100)
    wino = load_items("tiny_winogrande", tmp_path)[0]
    assert [c.context for c in wino.choices] == ["Shot one.\n\nThe cup fell off the table because the cup",
                                                 "Shot one.\n\nThe cup fell off the table because the table"]
    assert {c.continuation for c in wino.choices} == {" was unsteady."} and wino.gold == 1
    mmlu = load_items("tiny_mmlu", tmp_path)[0]
    assert [c.continuation for c in mmlu.choices] == [" A", " B", " C", " D"] and mmlu.gold == 2
    assert load_items("tiny_gsm8k", tmp_path)[0].gold == "4"
    assert [c.text for c in load_items("tiny_hellaswag", tmp_path)[0].choices][:2] == ["a. b", "falls over "]
    assert hellaswag_ending(" x [header] y ") == "x y"


def test_missing_tiny_data_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(TaskDataUnavailable, match=r"(?s)tinyTruthfulQA\.jsonl not found.*load_dataset"):
        load_items("tiny_truthfulqa", tmp_path)
    write_rows(tmp_path / "tinyGSM8k.jsonl", [{"input_formatted": "Q", "answer": "#### 1"}] * 3)
    with pytest.raises(ValueError, match="100 tinyBenchmarks rows"):
        load_items("tiny_gsm8k", tmp_path)
    with pytest.raises(KeyError, match="unknown retention task"):
        load_items("tiny_arc", tmp_path)
