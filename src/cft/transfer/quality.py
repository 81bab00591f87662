"""NoveltyBench's quality ratings: a raw reward per generation, mapped to a 1-10 rating.

Raters (`QUALITY_RATERS`, chosen by `evaluate.noveltybench.reward.kind`):

* ``skywork``: NoveltyBench's reward model ``Skywork/Skywork-Reward-Gemma-2-27B-v0.2`` with its nine
  published reward thresholds. Loaded from a hub id or a local folder; offline without a copy it
  fails with `ModelUnavailable`.
* ``stand_in``: the evaluated model's own base network (no adapter, so every variant of a model is
  judged by the same rater) rates a generation by its mean token log-likelihood given the prompt.
  A crude fluency proxy, not a judgement of helpfulness: it cannot see whether an answer is correct,
  and it favours safe, repetitive text. The thresholds spread the range of SmolLM2-135M-Instruct's
  own temperature-1 answers to NoveltyBench prompts (about -5.5 to -1.9 nats per token, median -3.1)
  evenly over the ten ratings, so a typical answer rates about 5.

Rating = 1 + the number of thresholds strictly below the raw reward (NoveltyBench's bisect_left).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from cft.models import ChatOptions, encode_prompt, format_prompt
from cft.transfer.similarity import default_device, load_pretrained

SKYWORK_MODEL = "Skywork/Skywork-Reward-Gemma-2-27B-v0.2"
SKYWORK_THRESHOLDS = (-7.71875, -6.28125, -6.0, -5.71875, -5.5, -5.0, -4.375, -3.4375, -2.046875)
# Mean log-likelihood (nats per token) thresholds of the stand-in: steps of 0.4 around the median
# (-3.1) of SmolLM2-135M-Instruct's own temperature-1 answers to curated prompts (10th-90th
# percentiles -3.9 and -2.4), see docs/noveltybench.md.
STAND_IN_THRESHOLDS = (-4.4, -4.0, -3.6, -3.2, -2.8, -2.4, -2.0, -1.6, -1.2)


def checked_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    """Nine strictly ascending cut points (ratings 2-10), or ValueError."""
    values = tuple(float(t) for t in thresholds)
    if len(values) != 9 or any(a >= b for a, b in zip(values, values[1:])):
        raise ValueError(f"rating thresholds must be 9 strictly ascending numbers, got {list(values)}")
    return values


def rating_from_reward(reward: float, thresholds: Sequence[float]) -> int:
    """1 + #{thresholds < reward}: a reward equal to a threshold stays in the lower rating."""
    return bisect.bisect_left(list(thresholds), reward) + 1


@dataclass(frozen=True)
class Rated:
    """Raw rewards and ratings of one prompt's generations; ``invalid`` names unratable ones."""

    raw_rewards: list[float | None]
    ratings: list[int]
    invalid: dict[int, str] = field(default_factory=dict)


class QualityRater(Protocol):
    name: str
    stand_in: bool
    thresholds: Sequence[float]

    def rate(self, prompt: str, generations: Sequence[str]) -> Rated: ...


class SkyworkReward:
    """The Skywork-Reward-Gemma-2-27B sequence classifier on the (user prompt, assistant answer) chat.

    The chat template is tokenized inside ``apply_chat_template`` (one BOS), as NoveltyBench does.
    """

    name = "Skywork-Reward-Gemma-2-27B-v0.2"
    stand_in = False

    def __init__(self, path: str | None = None, *, thresholds: Sequence[float] = SKYWORK_THRESHOLDS,
                 batch_size: int = 4, device: str | None = None) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        source = path or SKYWORK_MODEL
        self.thresholds = checked_thresholds(thresholds)
        self.batch_size = batch_size
        on_gpu = default_device(device).type == "cuda"
        self.tokenizer = load_pretrained(AutoTokenizer.from_pretrained, source, "reward model")
        self.model = load_pretrained(
            lambda s: AutoModelForSequenceClassification.from_pretrained(
                s, num_labels=1, dtype=torch.bfloat16 if on_gpu else torch.float32,
                device_map="auto" if on_gpu else "cpu"),
            source, "reward model").eval()

    @torch.inference_mode()
    def rate(self, prompt: str, generations: Sequence[str]) -> Rated:
        rewards: list[float | None] = []
        for start in range(0, len(generations), self.batch_size):
            chats = [[{"role": "user", "content": prompt}, {"role": "assistant", "content": g}]
                     for g in generations[start : start + self.batch_size]]
            batch = self.tokenizer.apply_chat_template(chats, tokenize=True, padding=True, truncation=True,
                                                       return_tensors="pt", return_dict=True)
            batch = batch.to(self.model.device)
            rewards.extend(self.model(**batch).logits[:, 0].float().cpu().tolist())
        return Rated(rewards, [rating_from_reward(r, self.thresholds) for r in rewards])


class LogLikelihoodQuality:
    """Stand-in rater: mean log-likelihood per token of the answer under a causal LM, given the prompt.

    An empty answer has no likelihood to average; it gets the lowest rating and an invalid reason
    instead of being dropped.
    """

    name = "mean token log-likelihood under the base model (stand-in)"
    stand_in = True

    def __init__(self, model: Any, tokenizer: Any, chat: ChatOptions | None = None, *,
                 thresholds: Sequence[float] = STAND_IN_THRESHOLDS, batch_size: int = 10) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.chat = chat or ChatOptions()
        self.thresholds = checked_thresholds(thresholds)
        self.batch_size = batch_size

    @torch.inference_mode()
    def mean_log_likelihoods(self, prompt: str, generations: Sequence[str]) -> list[float | None]:
        prompt_ids = encode_prompt(self.tokenizer, format_prompt(self.tokenizer, prompt, self.chat))
        answers = [self.tokenizer(g, add_special_tokens=False)["input_ids"] for g in generations]
        out: list[float | None] = [None] * len(generations)
        scored = [i for i, ids in enumerate(answers) if ids]
        device = self.model.device
        for start in range(0, len(scored), self.batch_size):
            rows = scored[start : start + self.batch_size]
            sequences = [prompt_ids + answers[i] for i in rows]
            width = max(map(len, sequences))
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, seq in enumerate(sequences):
                ids[r, : len(seq)] = torch.tensor(seq)
                mask[r, : len(seq)] = 1
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
            token_lp = log_probs.gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1).cpu()
            for r, i in enumerate(rows):
                # Position t predicts token t+1: the answer's tokens are predicted from len(prompt)-1 on.
                first, last = len(prompt_ids) - 1, len(sequences[r]) - 1
                out[i] = float(token_lp[r, first:last].mean())
        return out

    def rate(self, prompt: str, generations: Sequence[str]) -> Rated:
        rewards = self.mean_log_likelihoods(prompt, generations)
        invalid = {i: "empty generation" for i, r in enumerate(rewards) if r is None}
        ratings = [1 if r is None else rating_from_reward(r, self.thresholds) for r in rewards]
        return Rated(rewards, ratings, invalid)


def _skywork(settings: Mapping[str, Any], model_record: Mapping[str, Any], device: str | None):
    return SkyworkReward(settings.get("path"), thresholds=settings.get("thresholds") or SKYWORK_THRESHOLDS,
                         batch_size=settings.get("batch_size") or 4, device=device)


def _stand_in(settings: Mapping[str, Any], model_record: Mapping[str, Any], device: str | None):
    from cft.models import load_model, load_tokenizer

    model = load_model(model_record["path"], dtype=model_record["dtype"], device=default_device(device))
    return LogLikelihoodQuality(model, load_tokenizer(model_record["path"]),
                                ChatOptions(**model_record.get("chat", {})),
                                thresholds=settings.get("thresholds") or STAND_IN_THRESHOLDS,
                                batch_size=settings.get("batch_size") or 10)


# Adding a rater: one class with `rate`, one factory (settings, model record, device) -> rater and one
# entry here (plus its kind in the config schema).
QUALITY_RATERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any], str | None], QualityRater]] = {
    "stand_in": _stand_in,
    "skywork": _skywork,
}


def make_rater(settings: Mapping[str, Any], model_record: Mapping[str, Any],
               device: str | None = None) -> QualityRater:
    kind = settings["kind"]
    if kind not in QUALITY_RATERS:
        raise ValueError(f"unknown reward kind {kind!r}; choose one of {', '.join(QUALITY_RATERS)}")
    return QUALITY_RATERS[kind](settings, model_record, device)
