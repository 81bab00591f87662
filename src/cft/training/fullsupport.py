"""Full-support matching (method `fullsupport`): the soft-target loss over the whole trie in every step.

The paper's soft loss draws one atom i ~ pi per prompt and epoch and averages the forward KL over
the L_i + 1 nodes of its path. Its expectation over the draw is

    E_i [ 1/(L_i + 1) sum_{s on path(i)} KL(q_s || p_s) ]  =  sum_s w(s) KL(q_s || p_s),
    w(s) = sum_{i : s on path(i)} pi_i / (L_i + 1),

a sum over the trie's nodes in which each node is weighted by its prefix mass M(s) = sum pi_i with
every atom's share divided by its path length; the weights sum to 1. This trainer computes that sum
directly, so each step sees every node instead of one path (no sampling noise). For prefix-free
targets sum_s M(s) KL_s is the sequence-level KL(pi || p_model), whose minimizer over the support is
also that of Zhang et al.'s full-set cross-entropy; w only reweights the same per-node terms.

One pass per prompt: the prompt and the trie's nodes are packed into one sequence. Each node is fed
as the token that leads into it, at position id prompt length + depth - 1, and a 4D attention mask
lets it see the whole prompt, its ancestors and itself, so its hidden state equals the one of the
plain sequence prompt + prefix (the packing of `cft.evaluation.exact.PromptScorer`, here with
gradients). The root's logits are read at the prompt's last token.

Cost cap (`max_nodes_per_step`). A 1001-atom trie of 5-decimal strings has 3000-4500 nodes, mostly
in the last three digit levels, and every node costs a token of the transformer and a row of the
vocabulary-sized output head. The cap keeps the nodes of largest weight w(s); since a parent's weight
is at least its child's (and ties are broken by breadth-first id) the kept set is closed under
ancestors, so its packing is valid. The loss then is sum over kept nodes of w(s) KL_s, not
renormalized: the exact contribution of the shallow, high-mass digits, with the deep low-mass nodes'
terms left out. That is a biased estimate that ignores the last digits (which the paper's subsampled
grid makes near-deterministic anyway); null keeps every node and is the exact expectation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cft.targets import SOFT_TARGET
from cft.styles import OKABE_ITO, Style
from cft.training.losses import full_support_kl, head_log_probs
from cft.training.methods import register_method
from cft.training.trainer import CalibrationTrainer, paper_trie
from cft.trie import TokenTrie


def node_weights(trie: TokenTrie) -> np.ndarray:
    """w(s) of every node: the atoms' masses pi_i / (L_i + 1) summed over the nodes of their paths."""
    atoms = np.flatnonzero(trie.atom_terminal >= 0)
    pi = trie.probs[atoms] / trie.probs[atoms].sum()
    _, path = trie.paths_to(trie.atom_terminal[atoms])
    share = np.repeat((pi / (trie.atom_length[atoms] + 1))[:, None], path.shape[1], axis=1)
    on_path = path >= 0
    return np.bincount(path[on_path], weights=share[on_path], minlength=trie.n_nodes)


def select_nodes(weights: np.ndarray, max_nodes: int | None) -> np.ndarray:
    """The ids of the max_nodes nodes of largest weight (ties: smaller id first), in id order."""
    if max_nodes is None or max_nodes >= len(weights):
        return np.arange(len(weights))
    order = np.lexsort((np.arange(len(weights)), -weights))
    return np.sort(order[:max_nodes])


@dataclass(frozen=True)
class TrieExample:
    """One prompt with the packed trie nodes it is trained on.

    Node j (j = 0 is the root) has its children's ``target_ids[j]``/``target_probs[j]`` and weight
    ``weights[j]``; every non-root node is fed as ``tokens[j - 1]`` with parent ``parents[j - 1]``
    (an index into the nodes, so 0 = root) and depth ``depths[j - 1]``. Parents precede children.
    """

    prompt_ids: Sequence[int]
    tokens: np.ndarray
    parents: np.ndarray
    depths: np.ndarray
    target_ids: list[np.ndarray]
    target_probs: list[np.ndarray]
    weights: np.ndarray


def trie_example(prompt_ids: Sequence[int], trie: TokenTrie, max_nodes: int | None) -> TrieExample:
    weights = node_weights(trie)
    nodes = select_nodes(weights, max_nodes)
    index = np.full(trie.n_nodes, -1, dtype=np.int64)
    index[nodes] = np.arange(len(nodes))
    inner = nodes[1:]
    parents = index[trie.node_parent[inner]]
    if np.any(parents < 0):
        raise AssertionError("the kept nodes are not closed under ancestors")
    children = [trie.children(int(n)) for n in nodes]
    return TrieExample(
        prompt_ids=prompt_ids,
        tokens=trie.node_token[inner].astype(np.int64),
        parents=parents,
        depths=trie.node_depth[inner].astype(np.int64),
        target_ids=[ids for ids, _, _ in children],
        target_probs=[probs for _, probs, _ in children],
        weights=weights[nodes],
    )


def collate_tries(examples: Sequence[TrieExample], *, pad_id: int) -> dict[str, torch.Tensor]:
    """Packed rows: prompt then node tokens, right-padded, with their position ids and tree mask.

    Returns input_ids, attention_mask (1 on fed tokens), position_ids [B, T]; sees [B, T, T] (bool:
    query row may attend to key column); node_positions, node_weight [B, N] (the position whose
    logits predict node j's children; weight 0 on padding); target_ids, target_probs [B, N, C].
    """
    widths = [len(e.prompt_ids) + len(e.tokens) for e in examples]
    batch_size, width = len(examples), max(widths)
    n_nodes = max(len(e.weights) for e in examples)
    n_children = max(len(ids) for e in examples for ids in e.target_ids)

    input_ids = torch.full((batch_size, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((batch_size, width), dtype=torch.long)
    position_ids = torch.zeros((batch_size, width), dtype=torch.long)
    # Padding sees only itself, so no softmax row is empty; nothing reads its outputs.
    sees = torch.eye(width, dtype=torch.bool).repeat(batch_size, 1, 1)
    node_positions = torch.zeros((batch_size, n_nodes), dtype=torch.long)
    node_weight = torch.zeros((batch_size, n_nodes), dtype=torch.float64)
    target_ids = torch.full((batch_size, n_nodes, n_children), -1, dtype=torch.long)
    target_probs = torch.zeros((batch_size, n_nodes, n_children), dtype=torch.float64)
    for row, example in enumerate(examples):
        prompt = len(example.prompt_ids)
        fed = prompt + len(example.tokens)
        input_ids[row, :prompt] = torch.tensor(list(example.prompt_ids))
        input_ids[row, prompt:fed] = torch.from_numpy(example.tokens)
        attention_mask[row, :fed] = 1
        position_ids[row, :prompt] = torch.arange(prompt)
        position_ids[row, prompt:fed] = torch.from_numpy(prompt + example.depths - 1)
        # The prompt is causal; every node sees the whole prompt, its ancestors and itself.
        sees[row, :prompt, :prompt] = torch.ones(prompt, prompt, dtype=torch.bool).tril()
        sees[row, prompt:fed, :prompt] = True
        # Node j's column is prompt + j - 1 (node 0, the root, is the prompt's last token).
        column = np.concatenate(([prompt - 1], prompt + np.arange(len(example.tokens))))
        # Parents precede children, so a node sees what its parent sees (the root: the whole
        # prompt) plus itself.
        for j, parent in enumerate(example.parents.tolist(), start=1):
            sees[row, column[j]] = sees[row, column[parent]]
            sees[row, column[j], column[j]] = True
        node_positions[row, :len(column)] = torch.from_numpy(column)
        node_weight[row, :len(column)] = torch.from_numpy(example.weights)
        for j, (ids, probs) in enumerate(zip(example.target_ids, example.target_probs)):
            target_ids[row, j, :len(ids)] = torch.from_numpy(np.asarray(ids, dtype=np.int64))
            target_probs[row, j, :len(ids)] = torch.from_numpy(np.asarray(probs, dtype=np.float64))
    return {
        "input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids,
        "sees": sees, "node_positions": node_positions, "node_weight": node_weight,
        "target_ids": target_ids, "target_probs": target_probs,
    }


def tree_hidden(model, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The decoder's last hidden states [B, N, d] at the packed nodes, equal to those of prompt + prefix.

    The model's attention must take a 4D mask (sdpa or eager). Only the node rows go on to the
    vocabulary-sized head (`cft.training.losses.head_log_probs`).
    """
    attention = model.config._attn_implementation
    if attention not in ("sdpa", "eager"):
        raise ValueError(f"tree packing needs a 4D attention mask; {attention!r} takes none (use sdpa)")
    decoder = model.get_decoder()
    dtype = decoder.get_input_embeddings().weight.dtype
    mask = torch.where(batch["sees"], 0.0, torch.finfo(dtype).min).to(dtype).unsqueeze(1)
    hidden = decoder(input_ids=batch["input_ids"], position_ids=batch["position_ids"], attention_mask=mask,
                     use_cache=False).last_hidden_state
    positions = batch["node_positions"]
    return hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.size(-1)))


class FullSupportTrainer(CalibrationTrainer):
    """One example per prompt and epoch: its whole trie (up to `max_nodes_per_step` nodes) at once.

    The example seeds of the shared loop go unused: nothing is drawn.
    """

    method = "fullsupport"

    def epoch_items(self) -> list[int]:
        return list(range(len(self.prompts)))

    def build_example(self, prompt_index: int, seed: int) -> TrieExample:
        trie = self.targets(self.prompts[prompt_index], self.tokenizer, self.eos_id, self.config)
        return trie_example(self.prompt_ids[prompt_index], trie, self.config.max_nodes_per_step)

    def collate(self, examples: Sequence[Any]) -> dict[str, torch.Tensor]:
        return collate_tries(examples, pad_id=self.pad_id)

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        children = head_log_probs(self.model, tree_hidden(self.model, batch), batch["target_ids"],
                                  self.config.temperature)
        return full_support_kl(children, batch["target_ids"], batch["target_probs"], batch["node_weight"],
                               self.config.epsilon)


register_method("fullsupport", FullSupportTrainer, paper_trie,
                style=Style(OKABE_ITO["reddish_purple"], "D", "-.", "xx"), epochs=3, target=SOFT_TARGET)
