"""Sampling that stops a row once its text can no longer parse as a number (issue #17).

The claim is that stopping changes no verdict and no metric. It is checked against full-length
generation on the same seeds: row by row through the sampler, and through the whole fidelity driver,
for the base model and for a trained adapter (tiny model; SmolLM2 in the slow test).
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cft.evaluation.fidelity import FidelitySettings, evaluate_fidelity
from cft.evaluation.parsing import MALFORMED, cannot_become_number, parse_sample
from cft.evaluation.sampling import HFSampler, SamplingParams, sample_seeds
from cft.io import read_jsonl, write_json, write_jsonl
from cft.models import format_prompt, load_model, load_tokenizer
from cft.numbers import NUMBER
from cft.prompts import PromptSpec
from cft.training import TrainConfig, train
from tiny_models import save_tiny_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NUMBERS = st.from_regex(NUMBER, fullmatch=True)
# Text a model may write around a number: digits, signs, dots, exponents, spaces, letters, tags.
NOISE = st.lists(st.sampled_from([*"0123456789+-.eE xa<>\n\t\u00a0\ufffd", "<think>", "</think>", "<th"]),
                 max_size=12).map("".join)
SUPPORT = (None, None)


@given(NUMBERS, st.text(alphabet=" \t\n\u00a0\u3000", max_size=3))
def test_no_prefix_of_a_valid_answer_is_rejected(number, trailing_space):
    answer = number + trailing_space
    assert parse_sample(answer, SUPPORT, False).error != MALFORMED  # valid, or too large ("1e400")
    for end in range(len(answer) + 1):
        assert not cannot_become_number(answer[:end]), answer[:end]


@settings(max_examples=500)
@given(NOISE, NOISE)
def test_a_rejected_text_stays_malformed_whatever_follows(prefix, suffix):
    if cannot_become_number(prefix):
        parsed = parse_sample(prefix + suffix, SUPPORT, False)
        assert parsed.error == MALFORMED
        assert parse_sample(prefix, SUPPORT, False).error == MALFORMED


@pytest.mark.parametrize("text", ["Sure", " 5 3", "5x", "e5", "+ 1", "1e 5", "x<think>5</think>"])
def test_rejected_texts(text):
    assert cannot_become_number(text)


@pytest.mark.parametrize("text", ["", "  ", "-", ".", "5.", "1e", "1e-", "12 ", "5<thi", "<think>a",
                                  "<think>", "7\ufffd"])
def test_texts_that_can_still_become_a_number(text):
    assert not cannot_become_number(text)


PROMPTS = [PromptSpec.from_params("binomial", {"n": 4.0, "p": 0.5}),
           PromptSpec.from_params("gaussian", {"mu": 0.0, "sigma": 1.0}),
           PromptSpec.from_params("uniform", {"a": 0.0, "b": 2.0})]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny model, and a soft adapter trained on the prompts long enough to write digits."""
    root = tmp_path_factory.mktemp("early-stop")
    model_dir = save_tiny_checkpoint(root / "tiny")
    write_json(root / "model.json", {"name": "tiny", "path": str(model_dir), "dtype": "float32", "chat": {}})
    write_jsonl(root / "unseen.jsonl", [{"spec": spec.to_dict()} for spec in PROMPTS])
    config = TrainConfig(method="soft", epochs=30, batch_size=3, lr=3e-2, checkpoint_every=1000,
                         target={"decimals": 1, "max_bins": 64}, warmup_ratio=0.0)
    adapter = train("soft", PROMPTS, model_dir, root / "soft", config, progress=False)
    return root, model_dir, adapter


def verdicts(texts, spec):
    support = spec.family.support(spec.param_dict)
    return [(p.is_valid, p.error, p.value) for p in
            (parse_sample(t, support, spec.family.integer_only) for t in texts)]


@pytest.mark.parametrize("with_adapter", [False, True], ids=["base", "soft"])
def test_stopped_rows_keep_every_verdict(tiny, with_adapter):
    root, model_dir, adapter = tiny
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, "float32", "cpu")
    if with_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    params = SamplingParams(num_samples=48, max_new_tokens=12, seed=3)
    full = HFSampler(model, tokenizer, batch_size=16)
    stopping = HFSampler(model, tokenizer, batch_size=16, stop_when=cannot_become_number)
    cut = 0
    for index, spec in enumerate(PROMPTS):
        prompt = format_prompt(tokenizer, spec.prompt)
        seeds = sample_seeds(params, index)
        long_texts = full.sample_with_seeds(prompt, seeds, params)
        short_texts = stopping.sample_with_seeds(prompt, seeds, params)
        assert verdicts(short_texts, spec) == verdicts(long_texts, spec)
        for short, long in zip(short_texts, long_texts):
            assert long.startswith(short)
            cut += len(short) < len(long)
    assert cut > 0  # the comparison would be empty if no row had been stopped
    if with_adapter:  # the trained adapter writes numbers, which must run to their end
        valid = sum(v[0] for spec in PROMPTS for v in verdicts(
            stopping.sample_with_seeds(format_prompt(tokenizer, spec.prompt), sample_seeds(params, 0), params),
            spec))
        assert valid > 0


def fidelity_run(root, out, adapter, stop):
    settings = FidelitySettings(num_samples=24, batch_size=8, max_new_tokens=12, digit_resolution=1,
                                target={"decimals": 1, "max_bins": 64}, max_digit_intervals=200,
                                stop_at_malformed=stop)
    out.mkdir(parents=True, exist_ok=True)
    return evaluate_fidelity(
        model_record_path=root / "model.json", adapter_dir=adapter, variant="soft" if adapter else "base",
        test_sets={"unseen": root / "unseen.jsonl"}, settings=settings, prompts_csv=out / "prompts.csv",
        samples_jsonl=out / "samples.jsonl", distributions_json=out / "distributions.json", threads=1)


TIMINGS = ["exact_seconds", "sampled_seconds"]


@pytest.mark.parametrize("with_adapter", [False, True], ids=["base", "soft"])
def test_fidelity_metrics_equal_full_length_generation(tiny, tmp_path, with_adapter):
    root, _, adapter = tiny
    adapter = adapter if with_adapter else None
    full = fidelity_run(root, tmp_path / "full", adapter, stop=False).drop(columns=TIMINGS)
    stopped = fidelity_run(root, tmp_path / "stopped", adapter, stop=True).drop(columns=TIMINGS)
    pd.testing.assert_frame_equal(stopped, full)
    keys = ["distribution_id", "sample_index", "seed", "parsed_value", "is_valid", "error"]
    full_rows = [{k: r[k] for k in keys} for r in read_jsonl(tmp_path / "full" / "samples.jsonl")]
    stopped_rows = [{k: r[k] for k in keys} for r in read_jsonl(tmp_path / "stopped" / "samples.jsonl")]
    assert stopped_rows == full_rows


@pytest.mark.slow
def test_smollm2_base_verdicts_equal_full_length_generation(smollm2_dir):
    """Base SmolLM2 mostly answers in words: nearly every row stops after a token or two."""
    tokenizer = load_tokenizer(smollm2_dir)
    model = load_model(smollm2_dir, "float32", "cpu")
    params = SamplingParams(num_samples=16, max_new_tokens=32, seed=5)
    full = HFSampler(model, tokenizer, batch_size=16)
    stopping = HFSampler(model, tokenizer, batch_size=16, stop_when=cannot_become_number)
    for index, spec in enumerate(PROMPTS[:2]):
        prompt = format_prompt(tokenizer, spec.prompt)
        seeds = sample_seeds(params, index)
        long_texts = full.sample_with_seeds(prompt, seeds, params)
        short_texts = stopping.sample_with_seeds(prompt, seeds, params)
        assert verdicts(short_texts, spec) == verdicts(long_texts, spec)
        assert all(long.startswith(short) for short, long in zip(short_texts, long_texts))
