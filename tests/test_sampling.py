"""Sampling: per-sample seeds that survive batching, explicit settings, and vLLM request building."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from cft.evaluation.sampling import (
    HFSampler,
    SamplingParams,
    VLLMSampler,
    build_vllm_requests,
    draw_tokens,
    filtered_probabilities,
    sample_seed,
    sample_seeds,
    vllm_engine_kwargs,
)
from cft.models import encode_prompt

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]
CHARS = list("0123456789.-+eE ,") + list("abcdefghijklmnopqrstuvwxyzGON()=")
PROMPT = "Generate ONE number (a=1.0, b=2.0)"


# The tiny models gain nothing from threads; see conftest.one_torch_thread.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(SPECIALS + CHARS)}
    assert len(vocab) <= 64
    char_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    char_level.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    char_level.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=char_level, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
        eos_token="<eos>",
    )


@pytest.fixture(scope="module")
def model(tokenizer) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=64, max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        # A loud eos row makes some rows stop early, so per-row stopping is exercised.
        model.lm_head.weight[tokenizer.eos_token_id] *= 20
    # The paper's bug: generate() would silently sample with these checkpoint defaults.
    model.generation_config.do_sample = True
    model.generation_config.temperature = 0.6
    model.generation_config.top_p = 0.95
    model.generation_config.top_k = 20
    return model.eval()


def reference_sample(model, tokenizer, prompt: str, seed: int, params: SamplingParams) -> str:
    """The definition the sampler must match: a full forward pass per token, no cache, one row."""
    generator = torch.Generator().manual_seed(seed)
    ids = encode_prompt(tokenizer, prompt)
    new: list[int] = []
    with torch.no_grad():
        for _ in range(params.max_new_tokens):
            logits = model(input_ids=torch.tensor([ids + new])).logits[:, -1, :].float()
            probs = filtered_probabilities(logits, params)[0]
            u = torch.rand((), generator=generator, dtype=torch.float64)
            cdf = torch.cumsum(probs, dim=0)
            token = int(torch.searchsorted(cdf, u * cdf[-1], right=True))
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True)


PARAMS = SamplingParams(num_samples=16, max_new_tokens=12, seed=11)


def test_same_seed_same_text_at_any_batch_size_and_order(model, tokenizer) -> None:
    seeds = sample_seeds(PARAMS, prompt_index=3)
    by_one = HFSampler(model, tokenizer, batch_size=1).sample_with_seeds(PROMPT, seeds, PARAMS)
    by_sixteen = HFSampler(model, tokenizer, batch_size=16).sample_with_seeds(PROMPT, seeds, PARAMS)
    by_five = HFSampler(model, tokenizer, batch_size=5).sample_with_seeds(PROMPT, seeds, PARAMS)
    reversed_order = HFSampler(model, tokenizer, batch_size=16).sample_with_seeds(PROMPT, seeds[::-1], PARAMS)
    assert by_one == by_sixteen == by_five == reversed_order[::-1]
    assert len(set(by_sixteen)) > 8  # different seeds, different answers


def test_matches_the_uncached_reference_despite_checkpoint_defaults(model, tokenizer) -> None:
    # Rows of different lengths in one batch: each must stop at its own eos, as the reference does.
    seeds = sample_seeds(PARAMS, prompt_index=0)[:8]
    sampled = HFSampler(model, tokenizer, batch_size=8).sample_with_seeds(PROMPT, seeds, PARAMS)
    assert sampled == [reference_sample(model, tokenizer, PROMPT, seed, PARAMS) for seed in seeds]
    assert len({len(text) for text in sampled}) > 3


def test_explicit_settings_are_the_ones_used(model, tokenizer) -> None:
    seeds = sample_seeds(PARAMS, prompt_index=0)[:6]
    sharp = SamplingParams(num_samples=6, max_new_tokens=12, temperature=0.6, top_p=0.95, top_k=20,
                           seed=11)
    sampler = HFSampler(model, tokenizer, batch_size=6)
    assert sampler.sample_with_seeds(PROMPT, seeds, sharp) == [
        reference_sample(model, tokenizer, PROMPT, seed, sharp) for seed in seeds
    ]
    assert sampler.sample_with_seeds(PROMPT, seeds, sharp) != sampler.sample_with_seeds(PROMPT, seeds, PARAMS)


def test_sample_uses_the_prompt_index(model, tokenizer) -> None:
    sampler = HFSampler(model, tokenizer, batch_size=8)
    first = sampler.sample(PROMPT, PARAMS, prompt_index=0)
    again = sampler.sample(PROMPT, PARAMS, prompt_index=0)
    other = sampler.sample(PROMPT, PARAMS, prompt_index=1)
    assert len(first) == PARAMS.num_samples and first == again and first != other
    assert all("<eos>" not in text and "<pad>" not in text for text in first)


def test_filtered_probabilities_by_hand() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))

    def probs(**settings):
        return filtered_probabilities(logits, SamplingParams(num_samples=1, seed=0, **settings))[0].tolist()

    assert probs() == pytest.approx([0.5, 0.3, 0.15, 0.05])
    assert probs(top_k=2) == pytest.approx([0.5 / 0.8, 0.3 / 0.8, 0, 0])
    assert probs(top_p=0.8) == pytest.approx([0.5 / 0.8, 0.3 / 0.8, 0, 0])  # 0.5 + 0.3 reaches 0.8
    assert probs(top_p=0.81) == pytest.approx([0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0])
    assert probs(top_p=0.1) == pytest.approx([1, 0, 0, 0])
    sharp = torch.tensor([0.5, 0.3, 0.15, 0.05]) ** 2
    assert probs(temperature=0.5) == pytest.approx((sharp / sharp.sum()).tolist())


def test_draw_tokens_never_picks_a_removed_token() -> None:
    probs = torch.tensor([[0.0, 0.25, 0.0, 0.75, 0.0]], dtype=torch.float64).expand(4000, -1)
    tokens = draw_tokens(probs, [torch.Generator().manual_seed(s) for s in range(4000)])
    counts = torch.bincount(tokens, minlength=5).tolist()
    assert counts[0] == counts[2] == counts[4] == 0
    assert counts[1] / 4000 == pytest.approx(0.25, abs=0.03)


def test_sample_seeds_are_distinct_and_stable() -> None:
    seeds = {sample_seed(11, p, i) for p in range(50) for i in range(1000)}
    assert len(seeds) == 50_000
    assert all(0 <= s < 2**63 for s in seeds)
    assert sample_seed(11, 2, 7) == sample_seed(11, 2, 7) != sample_seed(12, 2, 7)
    with pytest.raises(ValueError):
        sample_seed(11, 0, 1_000_003)
    with pytest.raises(ValueError):
        sample_seed(-1, 0, 0)


def test_sampling_params_are_explicit_and_checked() -> None:
    with pytest.raises(TypeError):
        SamplingParams(num_samples=10)  # no seed
    for bad in ({"temperature": 0.0}, {"top_p": 0.0}, {"top_p": 1.5}, {"top_k": -1}, {"max_new_tokens": 0},
                {"num_samples": 0}):
        with pytest.raises(ValueError):
            SamplingParams(**{"num_samples": 10, "seed": 1, **bad})


# --- vLLM ---------------------------------------------------------------------------------------

def test_vllm_requests_carry_every_setting_and_one_seed_each() -> None:
    params = SamplingParams(num_samples=5, max_new_tokens=32, temperature=1.0, top_p=1.0, top_k=0, seed=11)
    requests = build_vllm_requests([1, 2, 3], params, prompt_index=4)
    assert [prompt for prompt, _ in requests] == [{"prompt_token_ids": [1, 2, 3]}] * 5
    assert [kwargs["seed"] for _, kwargs in requests] == sample_seeds(params, 4)
    assert requests[0][1] == {
        "n": 1, "seed": sample_seed(11, 4, 0), "temperature": 1.0, "top_p": 1.0, "top_k": -1, "min_p": 0.0,
        "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "max_tokens": 32,
        "skip_special_tokens": True,
    }
    limited = SamplingParams(num_samples=1, top_k=20, top_p=0.9, temperature=0.7, seed=1)
    assert build_vllm_requests([1], limited, prompt_index=0)[0][1]["top_k"] == 20


def write_adapter(tmp_path, rank: int):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": 2 * rank}))
    return tmp_path


def test_vllm_engine_kwargs(tmp_path) -> None:
    assert vllm_engine_kwargs("/models/base") == {"model": "/models/base", "generation_config": "vllm"}
    with_adapter = vllm_engine_kwargs("/models/base", write_adapter(tmp_path, 16))
    assert with_adapter["enable_lora"] is True and with_adapter["max_lora_rank"] == 16
    assert vllm_engine_kwargs("/m", write_adapter(tmp_path, 4))["max_lora_rank"] == 8
    with pytest.raises(ValueError):
        vllm_engine_kwargs("/m", write_adapter(tmp_path, 1024))


def test_vllm_sampler_sends_the_requests_and_the_adapter(tmp_path, monkeypatch, tokenizer) -> None:
    calls = {}

    class FakeLLM:
        def __init__(self, **kwargs):
            calls["engine"] = kwargs

        def generate(self, prompts, sampling_params, lora_request=None, use_tqdm=True):
            calls.update(prompts=prompts, sampling_params=sampling_params, lora_request=lora_request)
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"{i}.5")])
                    for i in range(len(prompts))]

    fake_vllm = types.ModuleType("vllm")
    fake_vllm.LLM = FakeLLM
    fake_vllm.SamplingParams = lambda **kwargs: kwargs
    fake_request = types.ModuleType("vllm.lora.request")
    fake_request.LoRARequest = lambda name, int_id, path: (name, int_id, path)
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.ModuleType("vllm.lora"))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", fake_request)

    adapter = write_adapter(tmp_path, 16)
    sampler = VLLMSampler("/models/base", tokenizer, adapter_dir=adapter, gpu_memory_utilization=0.8)
    texts = sampler.sample(PROMPT, PARAMS, prompt_index=2)
    assert texts == [f"{i}.5" for i in range(PARAMS.num_samples)]
    assert calls["engine"]["enable_lora"] is True and calls["engine"]["gpu_memory_utilization"] == 0.8
    assert calls["lora_request"] == ("adapter", 1, str(adapter))
    expected = build_vllm_requests(encode_prompt(tokenizer, PROMPT), PARAMS, prompt_index=2)
    assert calls["prompts"] == [prompt for prompt, _ in expected]
    assert calls["sampling_params"] == [kwargs for _, kwargs in expected]
