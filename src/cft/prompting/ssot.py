"""String Seed of Thought (SSoT; Misaki & Akiba 2025): randomness from a generated string, no training.

A system prompt asks the model to (1) write a long random string in ``<random_string>`` tags,
(2) reason in ``<thinking>`` tags, deriving every random choice from the whole string, and (3) give
only the answer in ``<answer>`` tags. Thinking is switched on for models whose chat template has
the switch (Qwen3). The answer is read strictly: the last complete ``<answer>...</answer>`` outside
any thinking trace, then parsed like any other answer (`cft.evaluation.parsing`); an output without
one is an invalid sample with a reason, never dropped. The token budget must be generous (hundreds of
tokens): the paper's artifact kept 32 and so truncated nearly every SSoT answer.

SSoT changes what is sampled, not the next-token distribution after the prompt, so the exact
(teacher-forced) metrics do not apply to it; the fidelity rows say so in ``exact_skipped``. For the
same reason the open-ended first-token support size does not apply (its first token opens the seed
string); its answers are the tag's contents, compared like any variant's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from cft.evaluation.parsing import ParsedSample, parse_sample
from cft.models import ChatOptions, format_prompt

SYSTEM_PROMPT = (
    "You are a fair random sampler. Answer every request in three steps.\n"
    "1. Inside <random_string></random_string>, write a long, unique and complex random string of "
    "letters, digits and symbols.\n"
    "2. Inside <thinking></thinking>, turn that string into the random choice the request needs, using "
    "all of its characters (for example: add up the character codes, take remainders, map them to the "
    "requested distribution) and show the computation.\n"
    "3. Inside <answer></answer>, write only the final answer, exactly in the requested format."
)

# Reasons an SSoT output has no answer to parse (beside the parser's own error codes).
NO_ANSWER_TAG = "no_answer_tag"
TRUNCATED = "truncated"
SSOT_ERRORS = (NO_ANSWER_TAG, TRUNCATED)
EXACT_SKIPPED = "ssot: the answer follows a sampled seed string and reasoning; teacher-forced metrics do not apply"

_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)


@dataclass(frozen=True)
class SSoTAnswer:
    """The answer text inside the tags (None when there is none) and why it is missing."""

    text: str | None
    error: str | None


def extract_answer(raw_text: str, *, hit_token_limit: bool = False) -> SSoTAnswer:
    """The last complete <answer> outside thinking traces; never raises.

    Without one the output is ``truncated`` when generation stopped at the token limit or inside an
    open <think> or <answer> tag, and ``no_answer_tag`` otherwise.
    """
    visible = _THINK_BLOCK.sub("", raw_text)
    unclosed_think = _THINK_OPEN.search(visible) is not None
    if unclosed_think:
        visible = visible[: _THINK_OPEN.search(visible).start()]
    answers = _ANSWER.findall(visible)
    if answers:
        return SSoTAnswer(answers[-1].strip(), None)
    if hit_token_limit or unclosed_think or _ANSWER_OPEN.search(visible):
        return SSoTAnswer(None, TRUNCATED)
    return SSoTAnswer(None, NO_ANSWER_TAG)


def read_outputs(tokenizer, texts: list[str], max_new_tokens: int) -> list[tuple[SSoTAnswer, dict[str, Any]]]:
    """Each output's answer and its token counts: generated tokens, tokens beyond the answer, and
    whether generation reached the limit (an output at the limit without an answer is truncated).

    Counts re-encode the decoded text (the samplers return text).
    """
    read = []
    for text in texts:
        generated = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        hit_limit = generated >= max_new_tokens
        answer = extract_answer(text, hit_token_limit=hit_limit)
        answer_tokens = len(tokenizer(answer.text, add_special_tokens=False)["input_ids"]) if answer.text else 0
        read.append((answer, {"generated_tokens": generated, "extra_tokens": generated - answer_tokens,
                              "hit_token_limit": hit_limit}))
    return read


def token_summary(counts: list[dict[str, Any]]) -> dict[str, float]:
    """Means over samples of `read_outputs`'s counts: what SSoT costs beyond the bare answer."""
    return {
        "ssot_mean_generated_tokens": sum(c["generated_tokens"] for c in counts) / len(counts),
        "ssot_mean_extra_tokens": sum(c["extra_tokens"] for c in counts) / len(counts),
        "ssot_token_limit_rate": sum(c["hit_token_limit"] for c in counts) / len(counts),
    }


def parse_ssot_sample(raw_text: str, support: tuple[float | None, float | None], integer_only: bool, *,
                      hit_token_limit: bool = False) -> ParsedSample:
    """The verdict on one SSoT output: the tag's content parsed strictly, or the reason it has none."""
    answer = extract_answer(raw_text, hit_token_limit=hit_token_limit)
    if answer.text is None:
        return ParsedSample(text="", value=None, error=answer.error)
    return parse_sample(answer.text, support, integer_only)


def ssot_chat(chat: ChatOptions) -> ChatOptions:
    """Thinking on where the template has the switch (the protocol's setting for Qwen3)."""
    return replace(chat, enable_thinking=True) if chat.enable_thinking is not None else chat


def format_ssot_prompt(tokenizer, text: str, chat: ChatOptions, system_prompt: str | None = None) -> str:
    """The SSoT prompt: the protocol's system prompt (None = `SYSTEM_PROMPT`), thinking on."""
    return format_prompt(tokenizer, text, ssot_chat(chat), system=system_prompt or SYSTEM_PROMPT)
