"""The new training objectives: full-support matching and exact-digit soft targets (cft.training).

Full support: the whole-trie loss is the expectation of the paper's one-path loss, the kept nodes of
a capped step are closed under ancestors, and the tree-packed forward reads the same logits as
prompt + prefix fed plainly. Exact digits: every node's children carry the CDF mass of their digit
intervals (checked against the atoms enumerated and printed independently) and sum to the parent.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import valid_params
from tiny_models import char_tokenizer, eval_loss, tiny_llama

from cft.config import load_config, train_settings
from cft.evaluation.exact import TrieScores, exact_trie_kl
from cft.models import load_model, load_tokenizer
from cft.prompts import PromptSpec
from cft.targets import SOFT_TARGET, TargetSettings
from cft.training import (
    METHODS,
    DigitLaw,
    FullSupportTrainer,
    SoftTargetTrainer,
    TrainConfig,
    answer_logits,
    exact_digit_path,
    full_support_kl,
    soft_target_kl,
)
from cft.training.data import Example, collate
from cft.training.exact_digit import EOS
from cft.training.fullsupport import collate_tries, node_weights, select_nodes, tree_hidden, trie_example
from cft.training.losses import log_probs_at
from cft.trie import TokenTrie

EOS_ID = 0
VOCAB = 9


# The tiny models gain nothing from threads; see conftest.one_torch_thread.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_trie(seed: int) -> TokenTrie:
    """Atoms of 1-4 tokens over ids 1..8 (one atom may be a prefix of another), random masses."""
    rng = np.random.default_rng(seed)
    sequences = sorted({tuple(rng.integers(1, VOCAB, size=rng.integers(1, 5)).tolist()) for _ in range(12)})
    return TokenTrie.from_sequences(sequences, rng.dirichlet(np.ones(len(sequences))), EOS_ID)


# ---- full-support matching --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_full_trie_loss_is_the_expected_one_path_loss(seed):
    trie = small_trie(seed)
    node_logits = torch.randn(trie.n_nodes, VOCAB, generator=torch.Generator().manual_seed(seed)) * 2

    # Brute force: the paper's one-path loss of every atom, weighted by the atom's mass.
    expected = 0.0
    for atom in np.flatnonzero(trie.atom_terminal >= 0):
        path = trie.path_nodes(int(atom))
        example = Example([1], trie.sequence(int(atom)), trie.path_targets(int(atom)))
        batch = collate([example], pad_id=EOS_ID, eos_id=EOS_ID)
        children = log_probs_at(node_logits[path].unsqueeze(0), batch["target_ids"])
        one_path = soft_target_kl(children, batch["target_ids"], batch["target_probs"], batch["step_mask"])
        expected += trie.probs[atom] * one_path.item()

    batch = collate_tries([trie_example([1], trie, None)], pad_id=EOS_ID)
    children = log_probs_at(node_logits.unsqueeze(0), batch["target_ids"])
    full = full_support_kl(children, batch["target_ids"], batch["target_probs"], batch["node_weight"])
    assert full.item() == pytest.approx(expected, rel=1e-6)
    assert batch["node_weight"].sum().item() == pytest.approx(1.0)

    # The evaluation's exact trie KL is the same expectation.
    log_p = torch.log_softmax(node_logits.double(), -1).numpy()
    parents = np.repeat(np.arange(trie.n_nodes), np.diff(trie.child_ptr))
    scores = TrieScores(trie, log_p[parents, trie.edge_token], 1.0)
    assert exact_trie_kl(scores).value == pytest.approx(expected, rel=1e-6)


@given(seed=st.integers(0, 10_000), cap=st.integers(1, 40))
@settings(max_examples=50, deadline=None)
def test_capped_nodes_are_the_heaviest_and_closed_under_ancestors(seed, cap):
    trie = small_trie(seed)
    weights = node_weights(trie)
    kept = select_nodes(weights, cap)
    assert len(kept) == min(cap, trie.n_nodes) and kept[0] == 0
    assert set(trie.node_parent[kept[1:]].tolist()) <= set(kept.tolist())
    dropped = np.setdiff1d(np.arange(trie.n_nodes), kept)
    if len(dropped):
        assert weights[dropped].max() <= weights[kept].min()
    # A parent's weight covers its children's.
    assert np.all(weights[trie.node_parent[1:]] >= weights[1:] - 1e-15)


def test_tree_packed_logits_equal_plain_logits():
    tokenizer = char_tokenizer()
    model = tiny_llama(len(tokenizer))
    model.config._attn_implementation = "sdpa"
    model.eval()
    eos = tokenizer.eos_token_id
    specs = [PromptSpec.from_params("uniform", {"a": 0.0, "b": 2.0}), PromptSpec.from_params("skellam", {"mu1": 1.0, "mu2": 2.0})]
    examples = []
    for spec, prompt in zip(specs, ([5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15])):
        space = TargetSettings(decimals=2, max_bins=12).space(spec)
        examples.append((prompt, TokenTrie.from_output_space(space, tokenizer), space))
    packed = [trie_example(prompt, trie, 20) for prompt, trie, _ in examples]
    with torch.no_grad():
        logits = model.get_output_embeddings()(tree_hidden(model, collate_tries(packed, pad_id=eos)))
    for row, ((prompt, trie, _), example) in enumerate(zip(examples, packed)):
        nodes = select_nodes(node_weights(trie), 20)
        for j, node in enumerate(nodes.tolist()):
            ids = torch.tensor([prompt + list(trie.node_prefix(node))])
            with torch.no_grad():
                plain = answer_logits(model, ids, torch.ones_like(ids), torch.tensor([[ids.size(1) - 1]]))
            torch.testing.assert_close(logits[row, j], plain[0, 0], atol=1e-4, rtol=1e-4)


def test_full_support_trainer_lowers_its_loss(tmp_path):
    tokenizer = char_tokenizer()
    prompts = [PromptSpec.from_params("gaussian", {"mu": 0.0, "sigma": 1.0}),
               PromptSpec.from_params("binomial", {"n": 5.0, "p": 0.5})]
    config = TrainConfig(method="fullsupport", epochs=6, batch_size=2, lr=3e-2, warmup_ratio=0.0,
                         target=TargetSettings(decimals=2, max_bins=40), max_nodes_per_step=24)
    trainer = FullSupportTrainer(tiny_llama(len(tokenizer)), tokenizer, prompts, config, tmp_path, progress=False)
    batch = trainer.collate([trainer.build_example(i, seed=0) for i in range(2)])

    def loss():
        trainer.model.eval()
        with torch.no_grad():
            value = trainer.compute_loss(batch).item()
        trainer.model.train()
        return value

    before = loss()
    trainer.train()
    assert trainer.step == 6 and (tmp_path / "DONE").exists()
    assert loss() < 0.7 * before


# ---- exact-digit targets ---------------------------------------------------------------------------

FAMILIES = ["gaussian", "uniform", "laplace", "exponential", "gamma", "student_t", "binomial", "poisson",
            "geometric", "skellam"]


def enumerated_atoms(law: DigitLaw, dist) -> tuple[list[str], np.ndarray]:
    """Every atom printed by float formatting and its mass from its own cell, independently of
    `DigitLaw`'s class arithmetic."""
    ks = np.arange(law.first, law.last + 1)
    if law.integer:
        return [str(int(k)) for k in ks], np.diff(dist.cdf(np.concatenate(([law.first - 1], ks))))
    step = 10.0**-law.decimals
    low, high = law.window
    cuts = np.concatenate(([low], (ks[:-1] + 0.5) * step, [high]))
    return [f"{k * step:.{law.decimals}f}" for k in ks], np.diff(dist.cdf(cuts))


@given(data=st.data(), family=st.sampled_from(FAMILIES), decimals=st.integers(1, 2), seed=st.integers(0, 2**31))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_exact_digit_children_are_cdf_differences_that_sum_to_the_parent(data, family, decimals, seed):
    spec = PromptSpec.from_params(family, data.draw(valid_params(family)))
    law = DigitLaw.for_spec(spec, TargetSettings(decimals=decimals))
    assume(law.last - law.first < 5000)
    strings, masses = enumerated_atoms(law, spec.family.distribution(spec.param_dict))
    total = masses.sum()
    assert total == pytest.approx(law.run_masses(np.array([law.first]), np.array([law.last]))[0], rel=1e-9)

    def prefix_mass(prefix):
        return sum(m for s, m in zip(strings, masses) if s.startswith(prefix)) / total

    answer, steps = law.sample(seed)
    assert answer in strings
    for depth, (symbols, probs) in enumerate(steps):
        prefix = answer[:depth]
        assert probs.sum() == pytest.approx(1.0)
        parent = prefix_mass(prefix)
        for symbol, prob in zip(symbols, probs):
            child = masses[strings.index(prefix)] / total if symbol == EOS else prefix_mass(prefix + symbol)
            assert prob * parent == pytest.approx(child, rel=1e-6, abs=1e-12)
        # Nothing of positive mass is left out.
        continuing = {s[depth] for s, m in zip(strings, masses) if s.startswith(prefix) and len(s) > depth and m > 0}
        assert continuing <= set(symbols)


def test_a_digit_interval_is_one_cdf_difference():
    spec = PromptSpec.from_params("gaussian", {"mu": 0.0, "sigma": 1.0})
    law = DigitLaw.for_spec(spec, SOFT_TARGET)
    dist = spec.family.distribution(spec.param_dict)
    normalizer = dist.cdf(law.window[1]) - dist.cdf(law.window[0])
    h = 0.5e-5
    for prefix, (low, high) in {"1.2": (1.2 - h, 1.3 - h), "-0.4": (-0.5 + h, -0.4 + h), "0.03": (0.03 - h, 0.04 - h)}.items():
        runs, _ = law.runs(prefix)
        mass = law.run_masses(np.array([r[0] for r in runs]), np.array([r[1] for r in runs])).sum()
        assert mass / normalizer == pytest.approx((dist.cdf(high) - dist.cdf(low)) / normalizer, rel=1e-9)


def test_exact_digit_path_uses_single_character_tokens_and_refuses_merged_digits():
    tokenizer = char_tokenizer()
    spec = PromptSpec.from_params("skellam", {"mu1": 1.0, "mu2": 4.0})
    config = TrainConfig(method="exactdigit")
    value_ids, steps = exact_digit_path(spec, tokenizer, tokenizer.eos_token_id, config, seed=3)
    assert len(steps) == len(value_ids) + 1
    assert tokenizer.eos_token_id in steps[-1][0]
    assert int(tokenizer.decode(list(value_ids))) in range(-30, 30)

    class MergingTokenizer:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text] if len(text) == 1 else [7]}

    with pytest.raises(ValueError, match="one token per character"):
        exact_digit_path(spec, MergingTokenizer(), 0, config, seed=3)


# ---- registry and config ----------------------------------------------------------------------------


def test_new_methods_are_registered_and_configured(repo_root):
    assert METHODS["fullsupport"].trainer is FullSupportTrainer
    assert METHODS["exactdigit"].trainer is SoftTargetTrainer and METHODS["exactdigit"].targets is exact_digit_path
    config = load_config(repo_root / "config" / "config.yaml", repo_root / "config" / "full.yaml")
    model = config["models"][0]["name"]
    # The existing methods' settings (and run fingerprints) do not see the new keys.
    assert "max_nodes_per_step" not in train_settings(config, model, "soft")
    assert "max_nodes_per_step" not in TrainConfig.from_dict(train_settings(config, model, "soft")).to_dict()
    for method in ("fullsupport", "exactdigit"):
        assert method in config["train"]["methods"]
        assert TrainConfig.from_dict(train_settings(config, model, method)).method == method
    with pytest.raises(ValueError, match="does not train method"):
        SoftTargetTrainer(tiny_llama(len(char_tokenizer())), char_tokenizer(), [], TrainConfig(method="fullsupport"), ".")


# ---- the real model ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fullsupport", "exactdigit"])
def test_real_smollm2_lowers_the_new_losses(method, smollm2_dir, tmp_path):
    tokenizer = load_tokenizer(smollm2_dir)
    prompts = [PromptSpec.from_params("gaussian", {"mu": 0.0, "sigma": 1.0}),
               PromptSpec.from_params("binomial", {"n": 5.0, "p": 0.5}),
               PromptSpec.from_params("uniform", {"a": 0.0, "b": 2.0})]
    extra = {"max_nodes_per_step": 32} if method == "fullsupport" else {}
    config = TrainConfig(method=method, batch_size=3, epochs=4, lr=1e-3, warmup_ratio=0.0, **extra)
    trainer = METHODS[method].trainer(load_model(smollm2_dir), tokenizer, prompts, config, tmp_path, progress=False)
    batch = trainer.collate([trainer.build_example(i, seed=77 + i) for i in range(len(prompts))])

    before = eval_loss(trainer, batch)
    trainer.train()
    assert trainer.step == 4
    assert math.isfinite(before) and eval_loss(trainer, batch) < 0.8 * before
