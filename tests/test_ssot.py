"""String Seed of Thought: strict answer extraction (tagged, untagged, truncated, fuzzed) and the prompt."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cft.prompting.ssot import (
    NO_ANSWER_TAG,
    SSOT_ERRORS,
    SYSTEM_PROMPT,
    TRUNCATED,
    extract_answer,
    format_ssot_prompt,
    parse_ssot_sample,
)
from cft.evaluation.parsing import ERROR_CODES
from cft.models import ChatOptions
from tiny_models import char_tokenizer

TAGGED = (
    "<random_string>k3J9x!Qa7</random_string>\n<thinking>sum of codes = 613, 613 mod 7 = 4</thinking>\n"
    "<answer> 4 </answer>"
)
REAL_LINE = (-1e300, 1e300)


def test_tagged_answer_is_read_and_parsed():
    assert extract_answer(TAGGED).text == "4"
    parsed = parse_ssot_sample(TAGGED, (0, None), True)
    assert parsed.is_valid and parsed.value == 4.0


def test_last_complete_answer_wins_and_case_is_ignored():
    text = "<answer>1</answer> on reflection <ANSWER>2.5</ANSWER>"
    assert extract_answer(text).text == "2.5"


def test_untagged_number_is_invalid_not_guessed():
    answer = extract_answer("The random number is 4.")
    assert answer.text is None and answer.error == NO_ANSWER_TAG
    parsed = parse_ssot_sample("4", REAL_LINE, False)
    assert not parsed.is_valid and parsed.error == NO_ANSWER_TAG and parsed.value is None


def test_truncated_outputs_are_classified_truncated():
    # Cut inside the answer tag, inside reasoning at the token limit, and inside an unclosed <think>.
    assert extract_answer("<random_string>ab</random_string><answer>3.1").error == TRUNCATED
    assert extract_answer("<random_string>abc</random_string><thinking>12 + ", hit_token_limit=True).error == TRUNCATED
    assert extract_answer("<think>let me compute <answer>5</answer>").error == TRUNCATED


def test_answer_inside_a_thinking_trace_does_not_count():
    text = "<think>maybe <answer>9</answer></think> <answer>2</answer>"
    assert extract_answer(text).text == "2"
    assert extract_answer("<think><answer>9</answer></think> done").error == NO_ANSWER_TAG


def test_tag_with_non_number_goes_through_the_strict_parser():
    parsed = parse_ssot_sample("<answer>about 3</answer>", REAL_LINE, False)
    assert parsed.error == "malformed"
    assert parse_ssot_sample("<answer></answer>", REAL_LINE, False).error == "empty"
    assert parse_ssot_sample("<answer>-2</answer>", (0, None), False).error == "below_support"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>/answerthinkANSWER 0123456789.-e\n_x")) | st.characters(),
               max_size=200),
       st.booleans())
def test_any_text_is_classified_without_raising(text, hit_limit):
    parsed = parse_ssot_sample(text, REAL_LINE, False, hit_token_limit=hit_limit)
    assert parsed.error is None or parsed.error in SSOT_ERRORS + ERROR_CODES
    assert parsed.is_valid == (parsed.value is not None and parsed.error is None)


def test_prompt_carries_the_system_prompt_and_turns_thinking_on():
    tokenizer = char_tokenizer()
    formatted = format_ssot_prompt(tokenizer, "Generate one number.", ChatOptions())
    assert formatted.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>")
    assert formatted.endswith("<|im_start|>user\nGenerate one number.<|im_end|>\n<|im_start|>assistant\n")
    assert "custom" in format_ssot_prompt(tokenizer, "x", ChatOptions(), "custom protocol")


def test_thinking_switch_is_forced_on_only_where_the_template_has_it():
    from cft.prompting.ssot import ssot_chat

    assert ssot_chat(ChatOptions(enable_thinking=False)).enable_thinking is True
    assert ssot_chat(ChatOptions()).enable_thinking is None
