"""Drawing independent answers to one prompt, with one seed per answer.

Two backends share one contract: ``sample(formatted_prompt, params, prompt_index=...)`` returns
``params.num_samples`` decoded texts, text ``i`` drawn with the seed
``sample_seed(params.seed, prompt_index, i)``.

Why not ``model.generate``: the paper's HF backend lost both its sampling settings and its seeds in
it (reference: structured-sampling.md section 9). ``generate`` replaces any field equal to the
global default (temperature 1.0, top_p 1.0) by the checkpoint's own ``generation_config`` (Qwen3:
0.6 and 0.95), and it has no per-row generator, so a sample depended on the batch it fell in. The HF
backend here is therefore a plain decode loop: every sampling field comes from `SamplingParams`, and
row ``i`` draws its uniforms from its own ``torch.Generator`` seeded with its own seed. The vLLM
backend builds one explicit ``vllm.SamplingParams`` per request, with the seed in it, and applies a
LoRA adapter through a ``LoRARequest`` (the paper's vLLM path silently dropped the adapter).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cft.models import encode_prompt

# The paper's request seed is seed * 1_000_003 + i; sample indices must stay below the multiplier so
# that two samples of one prompt never share that number.
SEED_MULTIPLIER = 1_000_003


@dataclass(frozen=True, kw_only=True)
class SamplingParams:
    """Every setting of one sampling run, with nothing left to a model's defaults.

    ``top_k = 0`` and ``top_p = 1.0`` disable those filters. ``seed`` is the base seed that
    `sample_seed` combines with the prompt and sample indices.
    """

    num_samples: int
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int

    def __post_init__(self) -> None:
        if not 1 <= self.num_samples <= SEED_MULTIPLIER:
            raise ValueError(f"num_samples must lie in [1, {SEED_MULTIPLIER}], got {self.num_samples}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be 0 (disabled) or positive, got {self.top_k}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")


@dataclass(frozen=True, kw_only=True)
class SamplingSection:
    """The sampling keys that every sampled evaluation's config section shares (fidelity, open-ended,
    MCQ), with the paper's fidelity values as defaults; `sampling` gives the run's SamplingParams."""

    num_samples: int = 1000
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    batch_size: int = 16
    backend: str = "hf"
    seed: int = 11

    @property
    def sampling(self) -> SamplingParams:
        return SamplingParams(num_samples=self.num_samples, max_new_tokens=self.max_new_tokens,
                              temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              seed=self.seed)


def sample_seed(base_seed: int, prompt_index: int, sample_index: int) -> int:
    """The seed of sample ``sample_index`` of prompt ``prompt_index``: a non-negative 63-bit int.

    The paper's per-request seed ``base_seed * 1_000_003 + sample_index`` was the same for every
    prompt, so all prompts of a run shared their random streams. Here it is hashed together with the
    prompt index by numpy's SeedSequence, which gives well-mixed, distinct seeds that fit both
    ``torch.Generator.manual_seed`` and vLLM.
    """
    if min(base_seed, prompt_index, sample_index) < 0:
        raise ValueError("seeds and indices must be non-negative")
    if sample_index >= SEED_MULTIPLIER:
        raise ValueError(f"sample_index must be below {SEED_MULTIPLIER}, got {sample_index}")
    paper_seed = base_seed * SEED_MULTIPLIER + sample_index
    state = np.random.SeedSequence([paper_seed, prompt_index]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def sample_seeds(params: SamplingParams, prompt_index: int) -> list[int]:
    """The seeds of all samples of one prompt, in sample order."""
    return [sample_seed(params.seed, prompt_index, i) for i in range(params.num_samples)]


def filtered_probabilities(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Next-token probabilities (float64, rows sum to 1) after temperature, top-k and top-p.

    The order is the one transformers and vLLM use: temperature, then top-k, then top-p. Top-k keeps
    ties with the k-th logit; top-p keeps the smallest prefix of the sorted distribution whose mass
    reaches ``top_p``. Float64 keeps the inverse-CDF draw in `HFSampler` free of rounding surprises.
    """
    probs = torch.softmax(logits.double() / params.temperature, dim=-1)
    if 0 < params.top_k < probs.shape[-1]:
        kth = torch.topk(probs, params.top_k, dim=-1).values[..., -1:]
        probs = probs.masked_fill(probs < kth, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        drop_sorted = mass_before >= params.top_p
        probs = probs.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def draw_tokens(probs: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """One token per row by inverse CDF, row ``r`` using one uniform from ``generators[r]``.

    The uniforms come from CPU generators whatever the model's device, so a seed yields the same
    stream on CPU and GPU, and a row's draw never depends on the other rows.
    """
    uniforms = torch.stack(
        [torch.rand((), generator=g, dtype=torch.float64) for g in generators]
    ).to(probs.device)
    cdf = torch.cumsum(probs, dim=-1)
    total = cdf[:, -1]
    # The first cumulative value above the target belongs to a token of non-zero probability, as
    # long as the target stays below the total, which rounding of u * total could break for u near 1.
    target = torch.minimum(uniforms * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, target.unsqueeze(-1), right=True).squeeze(-1)


class HFSampler:
    """Sampling with a transformers causal LM (plain or PEFT-wrapped) through an explicit decode loop.

    The prompt goes through the model once per `sample` call; its KV cache is copied and repeated
    over each batch of identical prompts, so rows never need padding and never interact. Only the
    last position's logits are computed at every step.

    A seed's text therefore does not depend on the batch size or the batch order, except through
    the rounding of kernels of different batch shapes: on SmolLM2-135M in fp32 on CPU, 100 of 100
    texts were identical at batch sizes 16 and 64 with one thread and 99 of 100 with two, the
    exception a uniform draw 4e-8 from a token boundary. The tiny test model agrees exactly.

    ``stop_when`` (for example `cft.evaluation.parsing.cannot_become_number`) is asked after every
    token whether a row's text so far can still matter; a row it rejects stops there, as if it had
    drawn eos, and a batch stops once all its rows have. The predicate must only reject texts whose
    every continuation gets the same verdict, so that stopping changes no metric. Texts are decoded
    without tokenization clean-up, so that a prefix's text is a prefix of the whole text.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int = 16,
        eos_token_ids: Sequence[int] | None = None,
        stop_when: Callable[[str], bool] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.stop_when = stop_when
        self.eos_token_ids = (
            sorted(set(eos_token_ids)) if eos_token_ids is not None else default_eos_ids(model, tokenizer)
        )
        if not self.eos_token_ids:
            raise ValueError("no end-of-sequence token id: pass eos_token_ids")
        # Sampling must see the deterministic network: dropout (LoRA's included) off.
        self.model.eval()

    def sample(self, formatted_prompt: str, params: SamplingParams, *, prompt_index: int) -> list[str]:
        """``params.num_samples`` answers to one chat-formatted prompt, in sample order."""
        return self.sample_with_seeds(formatted_prompt, sample_seeds(params, prompt_index), params)

    @torch.inference_mode()
    def sample_with_seeds(
        self, formatted_prompt: str, seeds: Sequence[int], params: SamplingParams
    ) -> list[str]:
        """One answer per seed, in the order of ``seeds``; ``params.num_samples`` is not used."""
        device = self.model.device
        prompt_ids = torch.tensor([encode_prompt(self.tokenizer, formatted_prompt)], device=device)
        prompt_out = self.model(input_ids=prompt_ids, use_cache=True, logits_to_keep=1)
        first_logits = prompt_out.logits[:, -1, :].float()
        texts: list[str] = []
        for start in range(0, len(seeds), self.batch_size):
            batch_seeds = seeds[start : start + self.batch_size]
            token_rows = self._decode_batch(prompt_out.past_key_values, first_logits, batch_seeds, params)
            texts.extend(self._text(row) for row in token_rows)
        return texts

    def _text(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _decode_batch(
        self,
        prompt_cache: Any,
        first_logits: torch.Tensor,
        seeds: Sequence[int],
        params: SamplingParams,
    ) -> list[list[int]]:
        """The generated token ids of one batch, each row cut before its first eos or where
        ``stop_when`` rejected its text."""
        batch = len(seeds)
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        cache = copy.deepcopy(prompt_cache)
        cache.batch_repeat_interleave(batch)
        eos = set(self.eos_token_ids)
        logits = first_logits.expand(batch, -1)
        rows: list[list[int]] = [[] for _ in range(batch)]
        finished = [False] * batch
        for step in range(params.max_new_tokens):
            tokens = draw_tokens(filtered_probabilities(logits, params), generators)
            for r, token in enumerate(tokens.tolist()):
                if finished[r]:
                    continue
                if token in eos:
                    finished[r] = True
                else:
                    rows[r].append(token)
                    finished[r] = self.stop_when is not None and self.stop_when(self._text(rows[r]))
            if all(finished) or step + 1 == params.max_new_tokens:
                break
            # Finished rows keep decoding whatever they drew; without padding or cross-row attention
            # that cannot touch the other rows, and it keeps the batch rectangular.
            out = self.model(
                input_ids=tokens.unsqueeze(-1), past_key_values=cache, use_cache=True, logits_to_keep=1
            )
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()
        return rows


def default_eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """The union of the tokenizer's eos and the model's generation_config eos (an int or a list).

    Chat models often end a turn with a token (Qwen3's ``<|im_end|>``) that only one of the two
    names; stopping is not a sampling setting, so the checkpoint's list is safe to use here.
    """
    ids: set[int] = set()
    for source in (getattr(tokenizer, "eos_token_id", None),
                   getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif source is not None:
            ids.update(int(i) for i in source)
    return sorted(ids)


# vLLM accepts these LoRA ranks for ``max_lora_rank``; an adapter's rank is rounded up to one.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def vllm_sampling_kwargs(params: SamplingParams, seed: int) -> dict[str, Any]:
    """The arguments of one ``vllm.SamplingParams``: one completion with its own seed.

    Every field that shapes the distribution is set, so neither vLLM's defaults nor a checkpoint's
    generation_config can creep in. vLLM disables top-k with -1 (0 is refused by older releases).
    """
    return {
        "n": 1,
        "seed": seed,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k if params.top_k > 0 else -1,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "max_tokens": params.max_new_tokens,
        "skip_special_tokens": True,
    }


def build_vllm_requests(
    prompt_token_ids: Sequence[int], params: SamplingParams, *, prompt_index: int
) -> list[tuple[dict[str, list[int]], dict[str, Any]]]:
    """(token prompt, sampling kwargs) per sample, in sample order.

    The prompt goes in as token ids from `encode_prompt`, so vLLM cannot tokenize it differently
    from the HF path (for example by adding a second BOS).
    """
    prompt = {"prompt_token_ids": [int(t) for t in prompt_token_ids]}
    return [(prompt, vllm_sampling_kwargs(params, seed)) for seed in sample_seeds(params, prompt_index)]


def vllm_engine_kwargs(model_dir: str | Path, adapter_dir: str | Path | None = None) -> dict[str, Any]:
    """Arguments of ``vllm.LLM`` for a base model and an optional LoRA adapter.

    ``generation_config="vllm"`` stops vLLM from loading the checkpoint's sampling defaults.
    With an adapter, LoRA is enabled with the smallest allowed ``max_lora_rank`` that holds the
    adapter's rank ``r`` from its ``adapter_config.json``.
    """
    kwargs: dict[str, Any] = {"model": str(model_dir), "generation_config": "vllm"}
    if adapter_dir is not None:
        rank = int(json.loads((Path(adapter_dir) / "adapter_config.json").read_text())["r"])
        allowed = [r for r in VLLM_LORA_RANKS if r >= rank]
        if not allowed:
            raise ValueError(f"LoRA rank {rank} exceeds vLLM's largest ({VLLM_LORA_RANKS[-1]})")
        kwargs.update(enable_lora=True, max_lora_rank=allowed[0])
    return kwargs


class VLLMSampler:
    """Sampling with vLLM (GPU, optional install), optionally through a LoRA adapter."""

    def __init__(
        self,
        model_dir: str | Path,
        tokenizer: Any,
        *,
        adapter_dir: str | Path | None = None,
        **engine_kwargs: Any,
    ) -> None:
        import vllm
        from vllm.lora.request import LoRARequest

        self._vllm = vllm
        self.tokenizer = tokenizer
        self.llm = vllm.LLM(**vllm_engine_kwargs(model_dir, adapter_dir), **engine_kwargs)
        self.lora_request = (
            LoRARequest("adapter", 1, str(adapter_dir)) if adapter_dir is not None else None
        )

    def sample(self, formatted_prompt: str, params: SamplingParams, *, prompt_index: int) -> list[str]:
        """``params.num_samples`` answers to one chat-formatted prompt, in sample order."""
        requests = build_vllm_requests(
            encode_prompt(self.tokenizer, formatted_prompt), params, prompt_index=prompt_index
        )
        outputs = self.llm.generate(
            [prompt for prompt, _ in requests],
            [self._vllm.SamplingParams(**kwargs) for _, kwargs in requests],
            lora_request=self.lora_request,
            use_tqdm=False,
        )
        return [output.outputs[0].text for output in outputs]
