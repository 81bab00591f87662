"""Exact evaluation against brute force: plain uncached forward passes, one string at a time."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from scipy import stats
from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig

from cft.evaluation.exact import (
    PromptScorer,
    digit_interval_distribution,
    exact_trie_kl,
    integer_distribution,
    mc_trie_kl,
    score_trie,
)
from cft.targets import SOFT_TARGET, TargetSettings, build_output_space, sample_indices
from cft.trie import TokenTrie

CHARS = "0123456789.-abcdefghijklmnopqrstuvwxyz "
CHAR_ID = {c: i for i, c in enumerate(CHARS)}
EOS = len(CHARS)
VOCAB = 64
PROMPT = "pick a number"


class CharTokenizer:
    """One token per character, like SmolLM2 and Qwen on numbers."""

    eos_token_id = EOS

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[CHAR_ID[c] for c in text] for text in texts]}


def decode(tokens) -> str:
    return "".join(CHARS[t] for t in tokens)


def tiny_llama(attention: str = "sdpa"):
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=VOCAB, initializer_range=0.3,
    )
    config._attn_implementation = attention
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


@pytest.fixture(scope="module")
def peft_model(model):
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False)
    torch.manual_seed(1)
    return get_peft_model(copy.deepcopy(model), config).eval()


@pytest.fixture(scope="module")
def prompt_ids():
    return CharTokenizer()([PROMPT])["input_ids"][0]


def full_log_probs(model, ids) -> np.ndarray:
    """log-softmax at every position of one uncached forward pass over ``ids``."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    return torch.log_softmax(logits.double(), dim=-1).numpy()


def brute_sequence_log_prob(model, prompt_ids, tokens) -> float:
    log_p = full_log_probs(model, list(prompt_ids) + list(tokens))
    start = len(prompt_ids) - 1
    return float(sum(log_p[start + k, t] for k, t in enumerate(tokens)))


def brute_trie_kl(model, prompt_ids, trie, eps=1e-8):
    """(value, sequence KL, per-path values): the paper's loss evaluated path by path."""
    path_kl = np.full(trie.n_atoms, np.nan)
    sums = np.zeros(trie.n_atoms)
    for atom in np.flatnonzero(trie.probs > 0):
        log_p = full_log_probs(model, list(prompt_ids) + list(trie.sequence(atom)))
        steps = []
        for k, (tokens, q) in enumerate(trie.path_targets(atom)):
            q = np.maximum(q, eps)
            q = q / q.sum()
            steps.append(float(np.sum(q * (np.log(q) - log_p[len(prompt_ids) - 1 + k, tokens]))))
        path_kl[atom] = np.mean(steps)
        sums[atom] = np.sum(steps)
    on = trie.probs > 0
    return float(trie.probs[on] @ path_kl[on]), float(trie.probs @ sums), path_kl


def small_prefixes():
    texts = ["3.14", "3.15", "3.2", "-0.5", "-0.51", "12", "1", "7.777"]
    tokens = CharTokenizer()(texts)["input_ids"]
    return sorted({tuple(t[:k]) for t in tokens for k in range(len(t) + 1)})


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("row_tokens, batch_rows", [(5, 2), (128, 8)])
def test_scorer_matches_uncached_forward(attention, row_tokens, batch_rows, prompt_ids):
    model = tiny_llama(attention)
    scorer = PromptScorer(model, prompt_ids, row_tokens=row_tokens, batch_rows=batch_rows, head_rows=7)
    prefixes = small_prefixes()
    everything = [list(range(VOCAB))] * len(prefixes)
    got = scorer.log_probs(prefixes, everything)
    for prefix, log_p in zip(prefixes, got):
        expected = full_log_probs(model, list(prompt_ids) + list(prefix))[-1]
        np.testing.assert_allclose(log_p, expected, atol=1e-5)
    # A second query is served from the memoized hidden states, and the order of prefixes is free.
    again = scorer.log_probs(prefixes[::-1], everything)
    np.testing.assert_allclose(np.array(again[::-1]), np.array(got), atol=1e-6)


def test_scorer_with_peft_adapter(peft_model, model, prompt_ids):
    scorer = PromptScorer(peft_model, prompt_ids, row_tokens=6, batch_rows=3)
    prefixes = small_prefixes()
    got = scorer.log_probs(prefixes, [list(range(VOCAB))] * len(prefixes), temperature=0.7)
    for prefix, log_p in zip(prefixes, got):
        with torch.no_grad():
            logits = peft_model(input_ids=torch.tensor([list(prompt_ids) + list(prefix)])).logits[0, -1]
        np.testing.assert_allclose(log_p, torch.log_softmax(logits.double() / 0.7, -1).numpy(), atol=1e-5)
    # The adapter changes the scores (the comparison above is not between two base models).
    base = PromptScorer(model, prompt_ids).log_probs(prefixes[:1], [list(range(VOCAB))])
    assert np.max(np.abs(base[0] - got[0] * 0.7)) > 1e-3


def test_scorer_on_sliding_window_and_softcapped_model(prompt_ids):
    """Gemma 3: sliding-window layers next to full ones, and logits squashed by a soft cap."""
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, vocab_size=VOCAB, initializer_range=0.3,
        sliding_window=len(prompt_ids) + 6, layer_types=["sliding_attention", "full_attention"],
        final_logit_softcapping=5.0,
    )
    config._attn_implementation = "sdpa"
    model = AutoModelForCausalLM.from_config(config).eval()
    scorer = PromptScorer(model, prompt_ids)
    prefixes = [p for p in small_prefixes() if len(p) <= 5]
    got = scorer.log_probs(prefixes, [list(range(VOCAB))] * len(prefixes))
    for prefix, log_p in zip(prefixes, got):
        expected = full_log_probs(model, list(prompt_ids) + list(prefix))[-1]
        np.testing.assert_allclose(log_p, expected, atol=1e-5)
    # Position len(prompt) + 6 would fall outside the window: refused rather than silently wrong.
    with pytest.raises(ValueError, match="sliding window"):
        scorer.log_probs([(1, 2, 3, 4, 5, 6, 7)], [[0]])


def test_scorer_refuses_training_mode(prompt_ids):
    with pytest.raises(ValueError, match="eval"):
        PromptScorer(tiny_llama().train(), prompt_ids)


def output_spaces():
    integer = build_output_space(stats.poisson(2.5), (0, None), True, SOFT_TARGET)
    continuous = build_output_space(stats.norm(0.4, 1.3), (None, None), False, TargetSettings(decimals=2, max_bins=40))
    return [integer, continuous]


@pytest.mark.parametrize("space", output_spaces(), ids=["poisson", "gaussian"])
def test_exact_trie_kl_equals_brute_force(space, model, prompt_ids):
    trie = TokenTrie.from_output_space(space, CharTokenizer())
    scores = score_trie(PromptScorer(model, prompt_ids, row_tokens=16, batch_rows=3), trie)
    result = exact_trie_kl(scores)
    value, sequence_kl, path_kl = brute_trie_kl(model, prompt_ids, trie)
    assert result.value == pytest.approx(value, rel=1e-6)
    assert result.sequence_kl == pytest.approx(sequence_kl, rel=1e-6)
    np.testing.assert_allclose(result.path_kl, path_kl, rtol=1e-6)
    # The paper's estimate: the mean per-path loss of the atoms its four seeds draw.
    drawn = sample_indices(trie.probs, (11, 12, 13, 14))
    assert mc_trie_kl(scores) == pytest.approx(float(np.mean(path_kl[drawn])), rel=1e-6)


def test_mc_trie_kl_is_unbiased(model, prompt_ids):
    space = output_spaces()[1]
    trie = TokenTrie.from_output_space(space, CharTokenizer())
    scores = score_trie(PromptScorer(model, prompt_ids), trie)
    exact = exact_trie_kl(scores)
    n = 20000
    std = math.sqrt(trie.probs @ (exact.path_kl - exact.value) ** 2)
    assert std > 0
    mean = mc_trie_kl(scores, seeds=range(n))
    assert abs(mean - exact.value) < 4 * std / math.sqrt(n)


def test_zero_mass_atoms_have_no_path_kl(model, prompt_ids):
    tokenizer = CharTokenizer()
    trie = TokenTrie.from_sequences(tokenizer(["1", "2", "3"])["input_ids"], [0.5, 0.0, 0.5], EOS)
    result = exact_trie_kl(score_trie(PromptScorer(model, prompt_ids), trie))
    assert np.isnan(result.path_kl[1])
    assert result.value == pytest.approx(0.5 * result.path_kl[0] + 0.5 * result.path_kl[2])


def test_integer_distribution_equals_brute_force(model, prompt_ids):
    dist = stats.poisson(2.5)
    space = build_output_space(dist, (0, None), True, SOFT_TARGET)
    tokenizer = CharTokenizer()
    result = integer_distribution(PromptScorer(model, prompt_ids, row_tokens=4), tokenizer, space, dist)
    expected = [
        math.exp(brute_sequence_log_prob(model, prompt_ids, tokens + [EOS]))
        for tokens in tokenizer(space.values)["input_ids"]
    ]
    np.testing.assert_allclose(result.model_mass, expected, rtol=1e-5)
    assert result.valid_mass == pytest.approx(sum(expected), rel=1e-5)
    np.testing.assert_allclose(result.target_mass, dist.pmf(np.arange(len(space.values))))
    assert result.target_outside == pytest.approx(dist.sf(len(space.values) - 1))
    assert result.digit_kl > 0
    assert result.w1 > 0


def test_digit_interval_distribution_equals_brute_force(model, prompt_ids):
    dist = stats.norm(0.4, 0.9)
    result = digit_interval_distribution(PromptScorer(model, prompt_ids, row_tokens=9), CharTokenizer(), dist,
                                         (None, None), resolution=1)
    assert "-0.0" in result.labels and "0.0" in result.labels
    assert np.all(np.diff(result.points) > 0)
    for label, mass in list(zip(result.labels, result.model_mass))[::5]:
        tokens = CharTokenizer()([label])["input_ids"][0]
        assert mass == pytest.approx(math.exp(brute_sequence_log_prob(model, prompt_ids, tokens)), rel=1e-5)
    low, high = dist.ppf([0.001, 0.999])
    assert result.points[0] - 0.05 < low < result.points[0] + 0.05
    assert result.points[-1] - 0.05 < high < result.points[-1] + 0.05


def test_unit_intervals_end_the_integer_part_at_a_dot_or_eos(model, prompt_ids):
    """r = 0: the mass of "k" is that of the answers "k." + anything and "k" alone, never "k" + digit."""
    dist = stats.cauchy(0.5, 2.0)
    result = digit_interval_distribution(PromptScorer(model, prompt_ids, row_tokens=9), CharTokenizer(), dist,
                                         (None, None), resolution=0)
    assert {"-0", "0", "-1", "1"} <= set(result.labels) and np.all(np.diff(result.points) == 1)
    low, high = dist.ppf([0.001, 0.999])
    assert result.points[0] - 0.5 <= low < result.points[0] + 0.5 and result.points[-1] - 0.5 <= high
    for label, mass in list(zip(result.labels, result.model_mass))[::97]:
        tokens = CharTokenizer()([label])["input_ids"][0]
        expected = sum(math.exp(brute_sequence_log_prob(model, prompt_ids, tokens + [end]))
                       for end in (CHAR_ID["."], EOS))
        assert mass == pytest.approx(expected, rel=1e-5)
    index = result.labels.index("3")
    assert result.target_mass[index] == pytest.approx(dist.cdf(4) - dist.cdf(3))


class LawSampler:
    """A "model" that writes a perfect sample of ``dist`` as a plain decimal string, then eos.

    Its next-character probability at a prefix s is P(answer starts with s + c) / P(answer starts
    with s), every mass computed from the law's CDF, so its answers are distributed as the law.
    """

    def __init__(self, dist, discrete: bool):
        self.dist = dist
        self.discrete = discrete

    def interval(self, a: float, b: float, negative: bool) -> float:
        """P(|X| in [a, b)) on one side of 0 (integers: a and b integers)."""
        if self.discrete:
            a, b = a - 1, b - 1  # [a, b) = (a - 1, b - 1] for integers
        if negative:
            return float(self.dist.cdf(-a) - self.dist.cdf(-b))
        return float(self.dist.cdf(b) - self.dist.cdf(a))

    def prefix_mass(self, text: str) -> float:
        negative = text.startswith("-")
        body = text[1:] if negative else text
        if body.endswith("<eos>"):
            if not self.discrete:
                return 0.0  # a continuous answer always has a "."
            return float(self.dist.pmf(-int(body[:-5]) if negative else int(body[:-5])))
        if body == "":
            return 1.0 if not negative else float(self.dist.cdf(-1e-300))
        if "." in body:
            whole, decimals = body.split(".")
            width = 10.0 ** -len(decimals)
            start = int(whole) + (int(decimals) * width if decimals else 0.0)
            return self.interval(start, start + width, negative)
        if body == "0":
            return self.interval(0, 1, negative)
        # "3" starts 3.x, 3x.x, 3xx.x, ...
        return sum(self.interval(int(body) * 10.0**m, (int(body) + 1) * 10.0**m, negative) for m in range(25))

    def log_probs(self, prefixes, tokens, *, temperature=1.0):
        out = []
        for prefix, next_tokens in zip(prefixes, tokens):
            text = decode(prefix)
            base = self.prefix_mass(text)
            out.append(np.log([
                self.prefix_mass(text + ("<eos>" if t == EOS else CHARS[t])) / base for t in next_tokens
            ]))
        return out


@pytest.mark.parametrize("resolution", [0, 1, 2])
def test_digit_kl_of_a_perfect_sampler_is_zero(resolution):
    dist = stats.norm(0.3, 1.2)
    with np.errstate(divide="ignore"):
        result = digit_interval_distribution(
            LawSampler(dist, discrete=False), CharTokenizer(), dist, (None, None), resolution=resolution
        )
    assert ("-0." + "0" * resolution if resolution else "-0") in result.labels
    assert abs(result.digit_kl) < 1e-9
    assert result.missing_mass == pytest.approx(result.target_outside, abs=1e-12)
    assert result.w1 < 1e-9
    np.testing.assert_allclose(result.model_mass, result.target_mass, rtol=1e-9, atol=1e-15)


def test_digit_kl_of_a_perfect_integer_sampler_is_zero():
    dist = stats.poisson(4.0)
    space = build_output_space(dist, (0, None), True, SOFT_TARGET)
    result = integer_distribution(LawSampler(dist, discrete=True), CharTokenizer(), space, dist)
    assert abs(result.digit_kl) < 1e-9
    assert result.missing_mass == pytest.approx(result.target_outside, abs=1e-12)
    assert result.w1 < 1e-9


def test_digit_intervals_need_one_token_per_character(model, prompt_ids):
    class PairTokenizer(CharTokenizer):
        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[CHAR_ID[c] for c in text[::2]] for text in texts]}

    with pytest.raises(ValueError, match="one token per character"):
        scorer = PromptScorer(model, prompt_ids)
        digit_interval_distribution(scorer, PairTokenizer(), stats.norm(), (None, None))
