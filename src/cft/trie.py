"""Prefix trie over the tokenized atoms of an output space, with the soft targets at every prefix.

Atom ``i`` is the token sequence ``c_i`` of its canonical string (no special tokens) followed by eos.
Every prefix ``s`` of some ``c_i`` (the empty prefix and ``c_i`` itself included) is an internal node
with prefix mass ``M(s)`` = the total mass of the atoms that start with ``s``. Its children are the
tokens ``t`` that follow it, with soft target ``q(t | s) = M(s, t) / M(s)``; eos is a child of every
node that completes an atom. For integers a node can mix eos with continuations ("1" vs "10").
The product of ``q`` along an atom's path is the atom's mass.

The trie is built level by level with ``np.unique`` over (parent node, token) keys, so its cost is a
few dozen numpy calls per output space instead of one Python dict update per token.

Array layout (read-only numpy arrays; ids are stored as int32 to halve the memory of thousands of
kept tries, while ``children``, ``path_targets`` and ``paths_to`` hand out int64):

* nodes, numbered breadth-first, root = 0; the children of one node are consecutive ids, in token-id
  order, and every node of depth ``d`` precedes every node of depth ``d + 1``:
  ``node_parent`` (-1 for the root), ``node_token`` (the token that leads into the node, -1 for the
  root), ``node_depth`` (prefix length), ``node_mass`` (float64, ``M(s)``; the root holds the total
  mass, 1 up to rounding), ``node_first_atom`` (the lowest atom index whose path passes through the
  node: its logits can be read by teacher-forcing that atom).
* edges in CSR form: the edges of node ``n`` are ``child_ptr[n]:child_ptr[n + 1]``, sorted by token
  id; ``edge_token``, ``edge_prob`` (float64, ``q(t | s)``, sums to 1 per node) and ``edge_child``
  (the child node, -1 for eos).
* atoms: ``atom_terminal`` (the node whose prefix is the whole atom, where eos is predicted; -1 for an
  atom of zero mass, which is left out of the trie because it can never be sampled and would have no
  defined target), ``atom_length`` (number of value tokens, eos excluded).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np


ID = np.int32  # storage type of token, node and atom ids


class TokenTrie:
    """The prefix trie and soft targets of one output space (array layout: module docstring)."""

    def __init__(self, atom_tokens: Any, atom_length: Any, probs: Any, eos_id: int):
        """Build from the concatenated value tokens of all atoms and each atom's token count.

        ``from_sequences`` and ``from_output_space`` are the usual entry points.
        """
        probs = np.array(probs, dtype=np.float64)  # a copy: it is frozen below
        atom_length = np.asarray(atom_length, dtype=np.int64)
        atom_tokens = np.asarray(atom_tokens, dtype=np.int64)
        if probs.ndim != 1 or len(probs) != len(atom_length) or len(probs) == 0:
            raise ValueError(f"need one mass per atom, got {len(probs)} masses for {len(atom_length)} atoms")
        if atom_length.sum() != len(atom_tokens):
            raise ValueError(f"atom lengths add up to {atom_length.sum()}, not to {len(atom_tokens)} tokens")
        if not np.all(np.isfinite(probs)) or np.any(probs < 0):
            raise ValueError("atom masses must be finite and non-negative")
        if not np.any(probs > 0):
            raise ValueError("atom masses are all zero")
        if np.any(atom_tokens == eos_id):
            raise ValueError(f"an atom's value tokens contain the eos id {eos_id}")

        self.eos_id = int(eos_id)
        self.probs = probs
        self._build(atom_tokens, atom_length)
        self._atom_offsets = np.concatenate(([0], np.cumsum(atom_length)))
        self._atom_tokens = atom_tokens.astype(ID)
        for array in (
            self.probs, self.atom_length, self.atom_terminal, self.node_parent, self.node_token,
            self.node_depth, self.node_mass, self.node_first_atom, self.child_ptr, self.edge_token,
            self.edge_prob, self.edge_child,
        ):
            array.flags.writeable = False

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[int]], probs: Any, eos_id: int) -> TokenTrie:
        """``sequences[i]`` holds atom i's value tokens, without eos."""
        return cls(*_flatten(sequences), probs, eos_id)

    @classmethod
    def from_output_space(cls, space: Any, tokenizer: Any, eos_id: int | None = None) -> TokenTrie:
        """Tokenize every canonical string without special tokens (one batched call) and build.

        ``eos_id`` defaults to ``tokenizer.eos_token_id``.
        """
        if eos_id is None:
            eos_id = getattr(tokenizer, "eos_token_id", None)
        if eos_id is None:
            raise ValueError(
                f"tokenizer {type(tokenizer).__name__} has no eos_token_id; pass eos_id explicitly"
            )
        encoded = tokenizer(list(space.values), add_special_tokens=False)["input_ids"]
        return cls(*_flatten(encoded), space.probs, eos_id)

    def _build(self, atom_tokens: np.ndarray, atom_length: np.ndarray) -> None:
        n_atoms = len(self.probs)
        max_length = int(atom_length.max())

        # Path matrix: row i holds atom i's value tokens, then eos; cells past the eos are never read.
        # Tokens are replaced by dense codes so that (parent, code) packs into one int64 key.
        vocabulary = np.unique(np.concatenate((atom_tokens, [self.eos_id])))
        eos_code = int(np.searchsorted(vocabulary, self.eos_id))
        paths = np.full((n_atoms, max_length + 1), eos_code, dtype=np.int64)
        rows = np.repeat(np.arange(n_atoms), atom_length)
        columns = np.arange(len(atom_tokens)) - np.repeat(np.cumsum(atom_length) - atom_length, atom_length)
        paths[rows, columns] = np.searchsorted(vocabulary, atom_tokens)

        # Walk all atoms of positive mass down the trie together, one depth per iteration. An atom
        # leaves the walk once its eos edge is recorded.
        atoms = np.flatnonzero(self.probs > 0)
        node_of_atom = np.zeros(len(atoms), dtype=np.int64)
        atom_terminal = np.full(n_atoms, -1, dtype=np.int64)
        node_parts = {"parent": [[-1]], "code": [[-1]], "depth": [[0]], "first_atom": [atoms[:1]]}
        node_mass_parts = [np.cumsum(self.probs[atoms])[-1:]]
        edge_parts = {"parent": [], "code": [], "mass": [], "child": []}
        n_nodes = 1
        for depth in range(max_length + 1):
            codes = paths[atoms, depth]
            keys, first, inverse = np.unique(
                node_of_atom * len(vocabulary) + codes, return_index=True, return_inverse=True
            )
            # Atoms are visited in index order, so masses accumulate in the same order as a
            # sequential per-atom loop would add them.
            edge_mass = np.bincount(inverse, weights=self.probs[atoms], minlength=len(keys))
            edge_parent, edge_code = np.divmod(keys, len(vocabulary))
            opens_node = edge_code != eos_code
            edge_child = np.full(len(keys), -1, dtype=np.int64)
            edge_child[opens_node] = n_nodes + np.arange(int(opens_node.sum()))
            n_nodes += int(opens_node.sum())

            edge_parts["parent"].append(edge_parent)
            edge_parts["code"].append(edge_code)
            edge_parts["mass"].append(edge_mass)
            edge_parts["child"].append(edge_child)
            node_parts["parent"].append(edge_parent[opens_node])
            node_parts["code"].append(edge_code[opens_node])
            node_parts["depth"].append(np.full(int(opens_node.sum()), depth + 1))
            node_parts["first_atom"].append(atoms[first[opens_node]])
            node_mass_parts.append(edge_mass[opens_node])

            ends = codes == eos_code
            atom_terminal[atoms[ends]] = node_of_atom[ends]
            node_of_atom = edge_child[inverse][~ends]
            atoms = atoms[~ends]

        edge_parent = np.concatenate(edge_parts["parent"])
        self.node_mass = np.concatenate(node_mass_parts)
        self.edge_prob = np.concatenate(edge_parts["mass"]) / self.node_mass[edge_parent]
        # Edges were emitted sorted by (parent, token) within a depth and parents grow with depth,
        # so they are sorted by parent overall and a cumulative count gives the CSR pointers.
        child_ptr = np.concatenate(([0], np.cumsum(np.bincount(edge_parent, minlength=n_nodes))))
        node_code = np.concatenate(node_parts["code"])

        self.child_ptr = child_ptr.astype(ID)
        self.edge_token = vocabulary[np.concatenate(edge_parts["code"])].astype(ID)
        self.edge_child = np.concatenate(edge_parts["child"]).astype(ID)
        self.node_parent = np.concatenate(node_parts["parent"]).astype(ID)
        self.node_token = np.where(node_code >= 0, vocabulary[node_code], -1).astype(ID)
        self.node_depth = np.concatenate(node_parts["depth"]).astype(ID)
        self.node_first_atom = np.concatenate(node_parts["first_atom"]).astype(ID)
        self.atom_terminal = atom_terminal.astype(ID)
        self.atom_length = atom_length.astype(ID)

    @property
    def n_nodes(self) -> int:
        return len(self.node_parent)

    @property
    def n_atoms(self) -> int:
        return len(self.probs)

    @property
    def sequences(self) -> list[tuple[int, ...]]:
        """Value token ids of every atom, eos excluded (built on each access; prefer ``sequence``)."""
        tokens = self._atom_tokens.tolist()
        offsets = self._atom_offsets.tolist()
        return [tuple(tokens[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]

    def sequence(self, atom: int) -> tuple[int, ...]:
        start, end = self._atom_offsets[atom], self._atom_offsets[atom + 1]
        return tuple(self._atom_tokens[start:end].tolist())

    def children(self, node: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(token ids int64, q(t | s) float64, child nodes int64 with -1 for eos) of one node."""
        start, end = self.child_ptr[node], self.child_ptr[node + 1]
        return (
            self.edge_token[start:end].astype(np.int64),
            self.edge_prob[start:end].copy(),
            self.edge_child[start:end].astype(np.int64),
        )

    def node_prefix(self, node: int) -> tuple[int, ...]:
        tokens = []
        while node > 0:
            tokens.append(int(self.node_token[node]))
            node = int(self.node_parent[node])
        return tuple(reversed(tokens))

    def path_nodes(self, atom: int) -> list[int]:
        """The L + 1 nodes on the atom's path, root first; the last one predicts eos."""
        node = int(self.atom_terminal[atom])
        if node < 0:
            raise ValueError(f"atom {atom} has zero mass, so it has no path in the trie")
        nodes = [node]
        while node > 0:
            node = int(self.node_parent[node])
            nodes.append(node)
        return nodes[::-1]

    def path_targets(self, atom: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The soft target (token ids, q) at each of the L + 1 steps of the atom's path."""
        return [self.children(node)[:2] for node in self.path_nodes(atom)]

    @property
    def leaf_nodes(self) -> np.ndarray:
        """Nodes whose only child is eos. Teacher-forcing their prefixes visits every node."""
        has_continuation = np.zeros(self.n_nodes, dtype=bool)
        has_continuation[self.node_parent[1:]] = True
        return np.flatnonzero(~has_continuation)

    def paths_to(self, nodes: Any) -> tuple[np.ndarray, np.ndarray]:
        """Vectorized prefixes of many nodes.

        Returns ``tokens`` int64[m, D] with row r's prefix in ``tokens[r, :depth_r]`` and ``path``
        int64[m, D + 1] with the nodes root..node in ``path[r, :depth_r + 1]``, both padded with -1;
        D is the largest depth among ``nodes``.
        """
        current = np.asarray(nodes, dtype=np.int64).copy()
        depth = self.node_depth[current]
        max_depth = int(depth.max(initial=0))
        tokens = np.full((len(current), max_depth), -1, dtype=np.int64)
        path = np.full((len(current), max_depth + 1), -1, dtype=np.int64)
        rows = np.arange(len(current))
        path[rows, depth] = current
        # Climb one level per iteration; rows that already reached the root stay there.
        for _ in range(max_depth):
            below_root = current > 0
            r = rows[below_root]
            position = self.node_depth[current[r]]
            tokens[r, position - 1] = self.node_token[current[r]]
            current[r] = self.node_parent[current[r]]
            path[r, position - 1] = current[r]
        return tokens, path


def _flatten(sequences: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    tokens = np.fromiter(chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
    return tokens, lengths
