"""Model access for the retention tasks: continuation log-likelihoods and greedy generation.

Both work with a plain or PEFT-wrapped causal LM and wrap the task text the way the paper did: as the
user turn of the model's chat template, the answer scored or generated after the assistant header.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from cft.evaluation.sampling import default_eos_ids
from cft.logits import logits_by_head
from cft.models import ChatOptions, encode_prompt, format_prompt
from cft.retention.answers import truncate_at_stop


class LoglikelihoodScorer:
    """Summed log-probabilities of continuations after a context.

    The context goes through the model once; its KV cache is repeated over the choices, which are
    scored together in one right-padded batch (padding after a row's tokens cannot change them under
    causal attention). The continuation is tokenized on its own, so its tokens are the same whatever
    the context: the context ends with the chat template's assistant header.

    Consecutive contexts often share a long prefix (a task's few-shot preamble): the cache of the
    previous context is cropped to the common prefix and only the new tokens are run.

    With a `cft.logits.HeadFanout` as the model's output head (base and its logit transforms on one
    decoder), `score_heads` scores the continuations under every head from the same forwards.
    """

    def __init__(self, model: Any, tokenizer: Any, chat: ChatOptions | None = None, use_chat_template: bool = True):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.chat = chat
        self.use_chat_template = use_chat_template
        self._previous_ids: list[int] = []
        self._previous_cache: Any = None

    def format(self, text: str) -> str:
        return format_prompt(self.tokenizer, text, self.chat) if self.use_chat_template else text

    def continuation_ids(self, continuation: str) -> list[int]:
        ids = list(self.tokenizer(continuation, add_special_tokens=False)["input_ids"])
        if not ids:
            raise ValueError(f"continuation {continuation!r} encodes to no tokens")
        return ids

    def score(self, context: str, continuations: Sequence[str]) -> list[float]:
        """Summed log-probability of each continuation after the (formatted) context, in order."""
        (totals,) = self.score_heads(context, continuations)
        return totals

    @torch.inference_mode()
    def score_heads(self, context: str, continuations: Sequence[str]) -> list[list[float]]:
        """`score` under each output head of the model (one, or a `HeadFanout`'s), head by head."""
        device = self.model.device
        context_ids = encode_prompt(self.tokenizer, self.format(context))
        context_cache, last_logits = self._run_context(context_ids)
        first_log_probs = torch.log_softmax(last_logits.float(), dim=-1)
        rows = [self.continuation_ids(c) for c in continuations]
        width = max(len(r) for r in rows)
        totals = [[float(head_log_probs[r[0]]) for r in rows] for head_log_probs in first_log_probs]
        if width == 1:
            return totals
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else rows[0][0]
        padded = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
        cache = copy.deepcopy(context_cache)
        cache.batch_repeat_interleave(len(rows))
        out = self.model(input_ids=padded[:, :-1], past_key_values=cache, use_cache=True)
        for head_totals, logits in zip(totals, logits_by_head(out.logits), strict=True):
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            # Position j - 1 of the continuation batch predicts continuation token j.
            token_log_probs = log_probs.gather(-1, padded[:, 1:].unsqueeze(-1)).squeeze(-1)
            for i, r in enumerate(rows):
                head_totals[i] += float(token_log_probs[i, : len(r) - 1].sum())
        return totals

    def _run_context(self, context_ids: list[int]) -> tuple[Any, torch.Tensor]:
        """The KV cache of the context and its last position's logits (one row per output head),
        reusing the previous prefix."""
        common = 0
        for a, b in zip(context_ids[:-1], self._previous_ids):   # keep one token to produce logits
            if a != b:
                break
            common += 1
        cache = None
        if common and reusable(self._previous_cache):
            cache = copy.deepcopy(self._previous_cache)
            if len(self._previous_ids) > common:
                cache.crop(common - len(self._previous_ids))     # a negative count removes tokens
        else:
            common = 0
        new_ids = torch.tensor([context_ids[common:]], device=self.model.device)
        out = self.model(input_ids=new_ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        self._previous_ids, self._previous_cache = list(context_ids), out.past_key_values
        return out.past_key_values, logits_by_head(out.logits)[:, 0, -1]


def reusable(cache: Any) -> bool:
    """Whether a cache holds every past position (plain full-attention layers), so it can be cropped
    back to a prefix. Sliding-window and linear-attention layers drop or fold old states."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


class GreedyGenerator:
    """Greedy decoding of a batch of prompts with transformers' `generate`, left-padded.

    Every decoding setting is passed explicitly (no sampling, no temperature/top-k/top-p left from the
    checkpoint's generation config). Greedy decoding draws no random numbers, so it needs no seeds.
    """

    def __init__(self, model: Any, tokenizer: Any, chat: ChatOptions | None = None, *,
                 max_new_tokens: int, batch_size: int, use_chat_template: bool = True):
        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be at least 1")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.chat = chat
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.use_chat_template = use_chat_template
        self.eos_token_ids = default_eos_ids(model, tokenizer)

    @torch.inference_mode()
    def generate(self, prompts: Sequence[str]) -> list[str]:
        """The raw decoded continuation of each prompt, cut at the first stop string."""
        from transformers import GenerationConfig

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_token_ids[0]
        config = GenerationConfig(
            do_sample=False, max_new_tokens=self.max_new_tokens, num_beams=1, temperature=None,
            top_p=None, top_k=None, pad_token_id=pad, eos_token_id=self.eos_token_ids, use_cache=True,
        )
        texts: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = [
                encode_prompt(self.tokenizer, format_prompt(self.tokenizer, p, self.chat) if self.use_chat_template else p)
                for p in prompts[start : start + self.batch_size]
            ]
            width = max(len(ids) for ids in batch)
            input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=self.model.device)
            attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch],
                                     device=self.model.device)
            out = self.model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config)
            for row in out[:, width:]:
                texts.append(truncate_at_stop(self.tokenizer.decode(row, skip_special_tokens=True)))
        return texts
