"""Variant registry and logit-transform variants: names resolve to kinds, wrappers at temperature 1
reproduce the base model exactly through every evaluator path, a fitted global temperature minimizes
its objective, and the fidelity driver evaluates the baselines (SSoT without exact metrics)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from cft.baselines.ats import ATSHead, save_ats_head
from cft.baselines.temperature import fit_temperature, mean_trie_kl
from cft.evaluation.exact import PromptScorer, exact_trie_kl, score_trie
from cft.evaluation.fidelity import FidelitySettings, evaluate_fidelity
from cft.evaluation.sampling import HFSampler, SamplingParams
from cft.io import read_jsonl, write_json, write_jsonl
from cft.models import load_model
from cft.prompting.ssot import EXACT_SKIPPED, SSOT_ERRORS
from cft.prompts import PromptSpec
from cft.trie import TokenTrie
from cft.logits import GlobalTemperature, with_logit_transform
from cft.variants import (
    UnknownVariant,
    load_variant,
    resolve_kind,
    variant_files,
    variant_kind,
)
from tiny_models import char_tokenizer, save_tiny_record

PROMPTS = [PromptSpec.from_params("binomial", {"n": 4.0, "p": 0.5}),
           PromptSpec.from_params("gaussian", {"mu": 0.0, "sigma": 1.0})]
SETTINGS = dict(num_samples=6, batch_size=6, max_new_tokens=4, digit_resolution=1,
                target={"decimals": 1, "max_bins": 64}, max_digit_intervals=200)


def test_names_resolve_to_kinds():
    assert variant_kind("base").name == "base"
    assert variant_kind("soft", ["soft", "hard"]).name == "adapter"
    assert variant_kind("soft_d2_b4096", ["soft_d2_b4096"]).name == "adapter"
    assert variant_kind("temperature").name == "temperature"
    assert variant_kind("ats_smooth").name == variant_kind("ats_kl").name == "ats"
    assert variant_kind("ssot").prompting == "ssot" and not variant_kind("ssot").teacher_forceable
    with pytest.raises(UnknownVariant, match="soft"):
        variant_kind("soft")
    with pytest.raises(UnknownVariant):
        variant_kind("adapter")


def test_variant_files_are_the_workflow_paths():
    assert variant_files("m", "base") == {} and variant_files("m", "ssot") == {}
    assert variant_files("m", "soft", ["soft"]) == {"adapter": "results/adapters/m/soft/adapter"}
    assert variant_files("m", "temperature") == {"temperature": "results/variants/m/temperature.json"}
    assert variant_files("m", "ats_kl") == {"ats_head": "results/variants/m/ats_kl/head.pt"}


def test_a_kind_without_its_file_is_refused():
    with pytest.raises(ValueError, match="temperature"):
        resolve_kind("temperature", {})
    assert resolve_kind("anything", {"adapter": "x"}).name == "adapter"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    save_tiny_record(root)
    write_jsonl(root / "unseen.jsonl", [{"spec": s.to_dict()} for s in PROMPTS])
    write_json(root / "t1.json", {"temperature": 1.0})
    write_json(root / "t2.json", {"temperature": 2.0})
    save_ats_head(ATSHead(32, 8), root / "ats_init.pt", {})
    return root


def record(root):
    return {"name": "tiny", "path": str(root / "tiny"), "dtype": "float32"}


@pytest.mark.parametrize("files", [{"temperature": "t1.json"}, {"ats_head": "ats_init.pt"}])
def test_wrappers_at_temperature_one_match_the_base_everywhere(tiny, files):
    torch.set_num_threads(1)
    base = load_variant(record(tiny), None, "cpu")
    wrapped = load_variant(record(tiny), None, "cpu", files={k: tiny / v for k, v in files.items()})
    ids = torch.tensor([[1, 5, 9, 12, 7]])
    with torch.no_grad():
        assert torch.equal(wrapped(input_ids=ids).logits, base(input_ids=ids).logits)
    tokens = [[3, 4, 5], [6, 2]]
    prefixes = [(), (10,)]
    assert all(np.array_equal(a, b) for a, b in zip(PromptScorer(wrapped, [1, 5, 9]).log_probs(prefixes, tokens),
                                                    PromptScorer(base, [1, 5, 9]).log_probs(prefixes, tokens)))
    tokenizer = char_tokenizer()
    params = SamplingParams(num_samples=8, max_new_tokens=6, seed=3)
    assert (HFSampler(wrapped, tokenizer, batch_size=4).sample("a=1", params, prompt_index=7)
            == HFSampler(base, tokenizer, batch_size=4).sample("a=1", params, prompt_index=7))


def test_global_temperature_divides_the_logits_for_every_evaluator(tiny):
    base = load_variant(record(tiny), None, "cpu")
    hot = load_variant(record(tiny), None, "cpu", files={"temperature": tiny / "t2.json"})
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        torch.testing.assert_close(hot(input_ids=ids).logits, base(input_ids=ids).logits / 2)
    tokens, prefixes = [[3, 4, 5], [6, 2]], [(), (10, 11)]
    wrapped_scores = PromptScorer(hot, [1, 5, 9]).log_probs(prefixes, tokens)
    tempered_scores = PromptScorer(base, [1, 5, 9]).log_probs(prefixes, tokens, temperature=2.0)
    for a, b in zip(wrapped_scores, tempered_scores):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_transforms_do_not_stack(tiny):
    model = load_variant(record(tiny), None, "cpu", files={"temperature": tiny / "t2.json"})
    with pytest.raises(ValueError, match="already"):
        with_logit_transform(model, GlobalTemperature(3.0))


class TableScorer:
    """A NextTokenScorer over fixed logits per prefix (a toy model with no transformer)."""

    def __init__(self, logits):
        self.logits = logits

    def log_probs(self, prefixes, tokens, *, temperature=1.0):
        out = []
        for prefix, ids in zip(prefixes, tokens):
            z = self.logits[tuple(prefix)] / temperature
            out.append((z - np.logaddexp.reduce(z))[ids])
        return out


def test_fitted_temperature_minimizes_the_trie_kl_on_a_toy_case():
    # Vocabulary 0..5, eos 5; target: atoms (0,), (1,), (2,) with masses 0.5/0.3/0.2. The toy model's
    # root logits are a too-sharp version of a spread-out law, so the best temperature is above 1.
    trie = TokenTrie.from_sequences([(0,), (1,), (2,)], np.array([0.5, 0.3, 0.2]), eos_id=5)
    rng = np.random.default_rng(0)
    logits = {(): 3.0 * np.log(np.array([0.45, 0.3, 0.15, 0.04, 0.03, 0.03]))}
    logits.update({(t,): rng.normal(size=6) + np.eye(6)[5] * 8 for t in range(3)})
    objective = mean_trie_kl([(TableScorer(logits), trie)])
    fit = fit_temperature(objective, bounds=(0.05, 20.0), xatol=1e-4)
    grid = np.exp(np.linspace(math.log(0.05), math.log(20.0), 2001))
    values = np.array([objective(t) for t in grid])
    assert fit.temperature > 1.5
    assert fit.objective <= values.min() + 1e-6
    assert fit.objective < fit.objective_at_1
    assert fit.objective == pytest.approx(exact_trie_kl(score_trie(TableScorer(logits), trie,
                                                                   temperature=fit.temperature)).value)


def test_fit_never_returns_worse_than_temperature_one():
    fit = fit_temperature(lambda t: (math.log(t)) ** 2, bounds=(0.1, 10.0))
    assert fit.temperature == pytest.approx(1.0, abs=1e-3) and fit.objective <= fit.objective_at_1
    with pytest.raises(ValueError, match="bounds"):
        fit_temperature(lambda t: t, bounds=(2.0, 10.0))


def run(tiny, out, variant, variant_files=None, **overrides):
    out.mkdir(parents=True, exist_ok=True)
    return evaluate_fidelity(
        model_record_path=tiny / "model.json", adapter_dir=None, variant=variant,
        test_sets={"unseen": tiny / "unseen.jsonl"}, settings=FidelitySettings(**{**SETTINGS, **overrides}),
        prompts_csv=out / "prompts.csv", samples_jsonl=out / "samples.jsonl",
        distributions_json=out / "distributions.json", threads=1, variant_files=variant_files)


def test_fidelity_of_the_temperature_variant_changes_the_exact_metrics(tiny, tmp_path):
    base = run(tiny, tmp_path / "base", "base")
    hot = run(tiny, tmp_path / "hot", "temperature", {"model": tiny / "model.json", "temperature": tiny / "t2.json"})
    assert (hot["variant"] == "temperature").all()
    assert not np.allclose(hot["exact_trie_kl"], base["exact_trie_kl"])


def test_logit_transforms_sample_with_the_hf_backend_even_when_vllm_is_configured(tiny, tmp_path):
    # vLLM would sample the untransformed weights (and is not installed here): the driver must not use it.
    files = {"temperature": tiny / "t2.json"}
    hot = run(tiny, tmp_path / "hot", "temperature", files, backend="vllm")
    assert hot["valid_rate"].notna().all()


def test_fidelity_of_ssot_has_sampled_metrics_and_says_why_exact_ones_are_missing(tiny, tmp_path):
    frame = run(tiny, tmp_path / "ssot", "ssot", max_new_tokens=12)
    assert (frame["exact_skipped"] == EXACT_SKIPPED).all()
    assert frame["exact_trie_kl"].isna().all() and frame["digit_kl"].isna().all()
    assert (frame["ssot_mean_generated_tokens"] > 0).all() and "ssot_mean_extra_tokens" in frame
    samples = read_jsonl(tmp_path / "ssot" / "samples.jsonl")
    assert len(samples) == len(PROMPTS) * SETTINGS["num_samples"]
    # A random tiny model never writes the tags: every sample is kept, invalid with an SSoT reason.
    assert all(not s["is_valid"] and s["error"] in SSOT_ERRORS for s in samples)
    assert all(s["generated_tokens"] >= s["extra_tokens"] for s in samples)
    assert pd.read_csv(tmp_path / "ssot" / "prompts.csv")["valid_rate"].eq(0).all()


@pytest.mark.slow
def test_smollm2_scores_a_prompt_through_the_temperature_wrapper(smollm2_dir, tmp_path):
    from cft.models import encode_prompt, format_prompt, load_tokenizer

    tokenizer = load_tokenizer(smollm2_dir)
    ids = encode_prompt(tokenizer, format_prompt(tokenizer, PROMPTS[0].prompt))
    digits = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(5)]
    write_json(tmp_path / "t.json", {"temperature": 1.7})
    base = load_model(smollm2_dir, "float32", "cpu")
    scaled = load_variant({"path": str(smollm2_dir), "dtype": "float32"}, None, "cpu",
                          files={"temperature": tmp_path / "t.json"})
    prefixes, tokens = [(), (digits[2],)], [digits, [tokenizer.eos_token_id]]
    via_wrapper = PromptScorer(scaled, ids).log_probs(prefixes, tokens)
    via_argument = PromptScorer(base, ids).log_probs(prefixes, tokens, temperature=1.7)
    plain = PromptScorer(base, ids).log_probs(prefixes, tokens)
    for a, b, c in zip(via_wrapper, via_argument, plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not np.allclose(a, c)


def test_baselines_figure_is_written(tmp_path):
    from cft.figures.baselines import plot_baseline_fits

    write_json(tmp_path / "t.json", {"temperature": 1.3, "mean_exact_trie_kl": 2.0, "evaluations": [
        {"temperature": 1.0, "mean_exact_trie_kl": 2.2}, {"temperature": 1.3, "mean_exact_trie_kl": 2.0},
        {"temperature": 3.0, "mean_exact_trie_kl": 2.9}]})
    pd.DataFrame({"step": [1, 2, 3], "loss": [3.0, 2.5, 2.2]}).to_csv(tmp_path / "log.csv", index=False)
    plot_baseline_fits({"m": tmp_path / "t.json"}, {("m", "ats_kl"): tmp_path / "log.csv"},
                       tmp_path / "f.pdf", tmp_path / "f.png")
    assert (tmp_path / "f.pdf").stat().st_size > 0 and (tmp_path / "f.png").stat().st_size > 0
