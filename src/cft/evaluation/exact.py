"""Exact, sampling-free evaluation of a causal LM on one prompt.

Everything here is teacher-forced: the model's next-token distribution is read at every prefix a
metric needs, and the metric is computed from those numbers instead of from sampled answers.

* `PromptScorer` runs the prompt once, keeps its key/value cache, and scores many continuations of
  it at once (tree packing, see the class). Every prefix is encoded once however many strings share
  it, and hidden states are memoized, so the metrics below can share one scorer.
* `exact_trie_kl` is the expectation over the target of the paper's per-path soft-target loss, and
  `mc_trie_kl` the paper's 4-path Monte-Carlo estimate of it, from the same scores.
* `integer_distribution` and `digit_interval_distribution` give the model's exact probability of every
  outcome of a finite grid (integer values, or digit intervals of a continuous law), with the exact
  counterparts of the sample metrics: valid mass, KL to the law, W1.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from transformers import DynamicCache

from cft.evaluation.metrics import w1_between_pmfs
from cft.logits import is_plain_head, selected_log_probs
from cft.targets import SOFT_TARGET, OutputSpace, continuous_window, sample_indices
from cft.trie import TokenTrie

# The training loss clamps soft targets at this floor before renormalizing (reference:
# structured-sampling.md section 5.3); the trie KL uses the same clamp so that it is that loss.
TARGET_EPS = 1e-8
PAPER_MC_SEEDS = (11, 12, 13, 14)


class NextTokenScorer(Protocol):
    """What the metrics need from a model: log p(token | prompt + prefix) for some tokens.

    ``tokens[i]`` lists token ids to read at ``prefixes[i]``; the result holds their log-probabilities
    under ``log_softmax(logits / temperature)`` over the full vocabulary, as float64.
    """

    def log_probs(
        self,
        prefixes: Sequence[tuple[int, ...]],
        tokens: Sequence[Sequence[int]],
        *,
        temperature: float = 1.0,
    ) -> list[np.ndarray]: ...


@dataclass
class _HeadGroup:
    """The heads of `PromptScorer.with_heads`: the base head, every head in order, and each
    `log_probs` call made so far with its answer under every head (in the order of ``heads``)."""

    base: Any
    heads: list[Any]
    answered: dict[Any, list[list[np.ndarray]]] = field(default_factory=dict)


class PromptScorer:
    """Next-token log-probabilities after one prompt, for many continuations at once.

    The prompt is run once and its key/value cache reused by every continuation. Continuations are
    scored by *tree packing*: the distinct prefixes are sorted (lexicographic order of token tuples is
    a depth-first walk of their trie) and cut into rows of at most ``row_tokens`` tokens. A row holds
    a run of consecutive prefixes, each fed as its last token, plus the few ancestors they need that
    lie outside the run (at most the depth of the trie). A 4D attention mask lets each token see the
    whole prompt and only its own ancestors in the row, and its position id is its depth, so its
    hidden state is the one it would have in the plain sequence prompt + prefix. A trie of N nodes
    therefore costs about N token positions of compute, against sum of path lengths (about twice as
    many for the paper's tries) for one right-padded row per string. Rows are kept short because
    the attention inside a row costs row_tokens**2 per row, almost all of it masked.

    The output head (a vocabulary-sized matmul and a log-sum-exp per prefix) runs only on requested
    prefixes, ``head_rows`` at a time to bound memory. Hidden states are memoized by prefix, so
    metrics that share prefixes on one scorer pay the transformer body once.

    The model must be in eval mode (dropout, LoRA dropout included, would make the scores random).
    A PEFT-wrapped model works as is: its adapter layers live inside the decoder that is called.
    Attention must be ``sdpa`` or ``eager``, the two implementations that take a 4D mask.
    """

    def __init__(
        self,
        model: Any,
        prompt_ids: Sequence[int],
        *,
        row_tokens: int = 128,
        batch_rows: int = 8,
        head_rows: int = 256,
    ):
        if model.training:
            raise ValueError("call model.eval() first: dropout would make the scores random")
        attention = model.config._attn_implementation
        if attention not in ("sdpa", "eager"):
            raise ValueError(f"tree packing needs a 4D attention mask; {attention!r} takes none (use sdpa)")
        if len(prompt_ids) == 0:
            raise ValueError("the prompt is empty: the first answer token needs a position to be read at")
        self._config = model.config
        self._decoder = model.get_decoder()
        self._head = model.get_output_embeddings()
        self._softcap = getattr(model.config.get_text_config(decoder=True), "final_logit_softcapping", None)
        self._dtype = self._decoder.get_input_embeddings().weight.dtype
        self._device = self._decoder.get_input_embeddings().weight.device
        self.prompt_length = len(prompt_ids)
        self.row_tokens = row_tokens
        self.batch_rows = batch_rows
        self.head_rows = head_rows
        self._group: _HeadGroup | None = None
        self._group_index = 0

        prompt = torch.tensor([list(prompt_ids)], dtype=torch.long, device=self._device)
        with torch.inference_mode():
            out = self._decoder(
                input_ids=prompt, past_key_values=DynamicCache(config=self._config), use_cache=True
            )
        self._prompt_cache = out.past_key_values
        self._hidden: dict[tuple[int, ...], torch.Tensor] = {(): out.last_hidden_state[0, -1]}
        # A sliding-window layer (Gemma 3) hides keys more than its window behind the query. While
        # prompt + prefix fits in the window it sees everything, exactly like a full layer, so one
        # mask serves both kinds; `_run_rows` checks that it fits.
        self._window = min(
            (layer.sliding_window for layer in self._prompt_cache.layers if layer.is_sliding), default=None
        )

    def hidden_states(self, prefixes: Sequence[tuple[int, ...]]) -> torch.Tensor:
        """Final-layer (post-norm) hidden state after prompt + prefix, one row per prefix."""
        missing = sorted({tuple(p) for p in prefixes} - self._hidden.keys())
        if missing:
            rows = self._pack(missing)
            for start in range(0, len(rows), self.batch_rows):
                self._run_rows(rows[start : start + self.batch_rows])
        return torch.stack([self._hidden[tuple(p)] for p in prefixes])

    def with_head(self, head: Any) -> PromptScorer:
        """This scorer with another output head on the same decoder and prompt.

        The two share the prompt's cache and the memoized hidden states, so a prefix that either
        has scored costs the other only its head.
        """
        scorer = copy.copy(self)
        scorer._head = head
        scorer._group = None
        return scorer

    def with_heads(self, heads: Sequence[Any]) -> list[PromptScorer]:
        """One scorer per head on this decoder and prompt, for a base head and logit transforms of it
        (`cft.variants.TransformedHead` around that same head): base, a fitted temperature and the
        ATS heads (`cft.evaluation.fidelity.evaluate_fidelity_transforms`).

        Besides the hidden states (`with_head`), they share the base head's vocabulary-sized matmul:
        the first of them to make a `log_probs` call answers it for every head from one matmul per
        chunk, and the answers are kept for the others, which make the same calls (the prefixes an
        exact metric reads do not depend on the model). Every answer equals, to the bit, that of the
        head on its own. The answers (the requested tokens' log-probabilities) live as long as the
        scorers: one prompt.
        """
        bases = {id(getattr(head, "head", head)): getattr(head, "head", head) for head in heads}
        if len(bases) != 1 or not all(head in bases.values() or hasattr(head, "transform") for head in heads):
            raise ValueError("with_heads takes one base head and logit transforms of that same head")
        group = _HeadGroup(base=next(iter(bases.values())), heads=list(heads))
        scorers = []
        for index, head in enumerate(heads):
            scorer = self.with_head(head)
            scorer._group, scorer._group_index = group, index
            scorers.append(scorer)
        return scorers

    def log_probs(
        self,
        prefixes: Sequence[tuple[int, ...]],
        tokens: Sequence[Sequence[int]],
        *,
        temperature: float = 1.0,
    ) -> list[np.ndarray]:
        """``NextTokenScorer.log_probs``: the requested tokens' log-probabilities at each prefix."""
        if len(prefixes) != len(tokens):
            raise ValueError(f"{len(prefixes)} prefixes but {len(tokens)} token lists")
        if self._group is None:
            return self._heads_log_probs([self._head], None, prefixes, tokens, temperature)[0]
        call = (tuple(map(tuple, prefixes)), tuple(map(tuple, tokens)), temperature)
        if call not in self._group.answered:
            self._group.answered[call] = self._heads_log_probs(self._group.heads, self._group.base, prefixes,
                                                               tokens, temperature)
        return self._group.answered[call][self._group_index]

    def _heads_log_probs(self, heads: Sequence[Any], base: Any | None, prefixes: Sequence[tuple[int, ...]],
                         tokens: Sequence[Sequence[int]], temperature: float) -> list[list[np.ndarray]]:
        """`log_probs` under each head; with ``base``, every head is ``base`` or a transform of it
        and ``base`` runs once per chunk."""
        hidden = self.hidden_states(prefixes)
        counts = [len(t) for t in tokens]
        offsets = np.concatenate(([0], np.cumsum(counts))).tolist()
        flat_tokens = torch.tensor([t for ts in tokens for t in ts], dtype=torch.long, device=self._device)
        flat_rows = torch.repeat_interleave(
            torch.arange(len(prefixes), device=self._device), torch.tensor(counts, device=self._device)
        )
        results = [np.empty(offsets[-1], dtype=np.float64) for _ in heads]
        with torch.inference_mode():
            for start in range(0, len(prefixes), self.head_rows):
                stop = min(start + self.head_rows, len(prefixes))
                chunk = hidden[start:stop]
                # The flat token list is grouped by prefix, so this chunk's entries are one slice.
                lo, hi = offsets[start], offsets[stop]
                rows, chunk_tokens = flat_rows[lo:hi] - start, flat_tokens[lo:hi]
                base_logits = None
                for result, head in zip(results, heads):
                    if is_plain_head(head):
                        picked = selected_log_probs(chunk, head.weight, rows, chunk_tokens, softcap=self._softcap,
                                                    temperature=temperature)
                    else:
                        if base is None:
                            raw = head(chunk)
                        else:
                            # What TransformedHead.forward computes, transform(hidden, head(hidden)), with
                            # head(hidden) computed once for all heads.
                            base_logits = base(chunk) if base_logits is None else base_logits
                            raw = head.transform(chunk, base_logits)
                        logits = self._softcap_logits(raw).float().div(temperature)
                        picked = logits[rows, chunk_tokens] - torch.logsumexp(logits, dim=-1)[rows]
                    result[lo:hi] = picked.double().cpu().numpy()
        return [np.split(result, offsets[1:-1]) for result in results]

    def _softcap_logits(self, logits: torch.Tensor) -> torch.Tensor:
        # Gemma-2-style models squash logits inside their forward; the head alone would skip that.
        if self._softcap is not None:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return logits

    def _pack(self, prefixes: list[tuple[int, ...]]) -> list[dict[tuple[int, ...], bool]]:
        """Cut sorted prefixes into rows: {prefix: whether this row computes it}, parents first.

        A prefix joins the current row with those of its ancestors the row lacks (they are context:
        fed again, not recomputed as outputs). The empty prefix is the prompt itself, never fed.
        """
        rows: list[dict[tuple[int, ...], bool]] = []
        row: dict[tuple[int, ...], bool] = {}
        for prefix in prefixes:
            ancestors = [prefix[:d] for d in range(1, len(prefix)) if prefix[:d] not in row]
            if row and len(row) + len(ancestors) + 1 > self.row_tokens:
                rows.append(row)
                row = {}
                ancestors = [prefix[:d] for d in range(1, len(prefix))]
            for ancestor in ancestors:
                row[ancestor] = False
            row[prefix] = True
        rows.append(row)
        return rows

    def _run_rows(self, rows: list[dict[tuple[int, ...], bool]]) -> None:
        width = max(map(len, rows))
        n_rows = len(rows)
        input_ids = np.zeros((n_rows, width), dtype=np.int64)
        # Padding sits at the position right after the prompt and sees the prompt only, so that no
        # softmax row is empty; nothing reads its outputs.
        positions = np.full((n_rows, width), self.prompt_length, dtype=np.int64)
        sees = np.zeros((n_rows, width, width), dtype=bool)
        outputs: list[tuple[int, int, tuple[int, ...]]] = []
        for r, row in enumerate(rows):
            index = {prefix: i for i, prefix in enumerate(row)}
            parent = np.array([index.get(prefix[:-1], -1) for prefix in row], dtype=np.int64)
            input_ids[r, : len(row)] = [prefix[-1] for prefix in row]
            positions[r, : len(row)] = [self.prompt_length + len(prefix) - 1 for prefix in row]
            # Each token sees itself and, one level per pass, its ancestors up to depth 1.
            sees[r] = np.eye(width, dtype=bool)
            node = np.arange(len(row))
            current = parent.copy()
            while np.any(current >= 0):
                has = current >= 0
                sees[r, node[has], current[has]] = True
                current[has] = parent[current[has]]
            outputs.extend((r, i, prefix) for i, (prefix, owned) in enumerate(row.items()) if owned)

        if self._window is not None and positions.max() >= self._window:
            raise ValueError(
                f"prompt + prefix reaches position {positions.max()}, beyond the sliding window "
                f"{self._window} of this model"
            )
        mask = torch.zeros((n_rows, 1, width, self.prompt_length + width), dtype=self._dtype)
        mask[:, 0, :, self.prompt_length :] = torch.where(
            torch.from_numpy(sees), 0.0, torch.finfo(self._dtype).min
        ).to(self._dtype)
        # A fresh cache per batch (the forward appends to it), holding the prompt for every row.
        cache = DynamicCache(
            [(keys.expand(n_rows, -1, -1, -1), values.expand(n_rows, -1, -1, -1))
             for keys, values, *_ in self._prompt_cache],
            config=self._config,
        )
        with torch.inference_mode():
            out = self._decoder(
                input_ids=torch.from_numpy(input_ids).to(self._device),
                position_ids=torch.from_numpy(positions).to(self._device),
                attention_mask=mask.to(self._device),
                past_key_values=cache,
                use_cache=True,
            )
        hidden = out.last_hidden_state
        for r, i, prefix in outputs:
            self._hidden[prefix] = hidden[r, i]


# --------------------------------------------------------------------------------------------------
# Trie KL


@dataclass(frozen=True)
class TrieScores:
    """The model's log-probability of every edge of a trie.

    ``edge_log_prob[e]`` is ``log softmax(z / temperature)[trie.edge_token[e]]`` at the parent node of
    edge ``e`` (CSR order of `TokenTrie`), the full vocabulary in the normalizer.
    """

    trie: TokenTrie
    edge_log_prob: np.ndarray
    temperature: float


def score_trie(scorer: NextTokenScorer, trie: TokenTrie, *, temperature: float = 1.0) -> TrieScores:
    """Score every internal node of ``trie`` once (its children's tokens, eos included)."""
    tokens, _ = trie.paths_to(np.arange(trie.n_nodes))
    depth = trie.node_depth.tolist()
    prefixes = [tuple(row[:d]) for row, d in zip(tokens.tolist(), depth)]
    children = [trie.edge_token[a:b].tolist() for a, b in zip(trie.child_ptr[:-1], trie.child_ptr[1:])]
    log_probs = scorer.log_probs(prefixes, children, temperature=temperature)
    return TrieScores(trie, np.concatenate([np.asarray(x) for x in log_probs]), temperature)


@dataclass(frozen=True)
class TrieKL:
    """Exact trie KL of one prompt.

    ``value`` = sum_i pi_i (1 / (L_i + 1)) sum_k KL_k(path i): the expectation over the target of the
    paper's per-path loss (its evaluation estimates this with 4 sampled paths).
    ``sequence_kl`` = sum_i pi_i sum_k KL_k = sum_s M(s) KL_s, the sequence-level KL(pi || p_model)
    with eos (up to the eps clamp), without the paper's length normalization.
    ``node_kl[s]`` = KL(q_s || p_s) at internal node s, ``path_kl[i]`` the per-path value of atom i
    (NaN for an atom of zero mass, which has no path).
    """

    value: float
    sequence_kl: float
    node_kl: np.ndarray
    path_kl: np.ndarray


def exact_trie_kl(scores: TrieScores, *, eps: float = TARGET_EPS) -> TrieKL:
    """Every node's KL computed once, then weighted by the paths through it."""
    trie = scores.trie
    # Targets exactly as in the training loss: clamp at eps, renormalize per node.
    q = np.maximum(trie.edge_prob, eps)
    starts = trie.child_ptr[:-1]
    q = q / np.repeat(np.add.reduceat(q, starts), np.diff(trie.child_ptr))
    node_kl = np.add.reduceat(q * (np.log(q) - scores.edge_log_prob), starts)

    path_kl = np.full(trie.n_atoms, np.nan)
    on_trie = np.flatnonzero(trie.atom_terminal >= 0)
    _, path = trie.paths_to(trie.atom_terminal[on_trie])
    step_kl = np.where(path >= 0, node_kl[np.maximum(path, 0)], 0.0)
    path_kl[on_trie] = step_kl.sum(axis=1) / (trie.atom_length[on_trie] + 1)

    mass = trie.probs[on_trie] / trie.probs[on_trie].sum()
    return TrieKL(
        value=float(mass @ path_kl[on_trie]),
        sequence_kl=float(trie.node_mass @ node_kl / trie.node_mass[0]),
        node_kl=node_kl,
        path_kl=path_kl,
    )


def mc_trie_kl(
    scores: TrieScores, *, seeds: Sequence[int] = PAPER_MC_SEEDS, eps: float = TARGET_EPS
) -> float:
    """The paper's logit-eval estimate: the mean per-path loss of the atoms drawn with ``seeds``.

    Atom ``j`` is ``cft.targets.sample_index(trie.probs, seeds[j])``, the draw of the paper's
    ``sample_training_example``; the per-path values are read off the exact computation.
    """
    path_kl = exact_trie_kl(scores, eps=eps).path_kl
    return float(np.mean(path_kl[sample_indices(scores.trie.probs, seeds)]))


# --------------------------------------------------------------------------------------------------
# Exact distributions over finite grids


@dataclass(frozen=True)
class GridDistribution:
    """The model's and the law's mass on the outcomes of one finite grid, plus "outside".

    ``labels[j]`` is the string of outcome j ("7", or "3.51" for the digit interval [3.51, 3.52)),
    ``points[j]`` its location for W1 (the integer, or the interval's midpoint), increasing.
    ``model_mass`` is the model's exact probability of each outcome, ``target_mass`` the law's.
    Everything the model writes that is no outcome of the grid, and everything the law puts beyond
    it, forms one extra outcome "outside": ``missing_mass`` = 1 - sum(model_mass) (the model side: the
    exact counterpart of 1 - valid rate), ``target_outside`` (the law's side, about 0.002 for the
    quantile range 0.001..0.999).
    ``model_probs`` and ``target_probs`` are the two masses renormalized over the grid; ``w1`` is the
    Wasserstein-1 distance between them (inf when the model puts no mass on the grid).
    ``digit_kl`` = KL(law || model) over the grid outcomes and "outside": sum_j p_j log(p_j / q_j) +
    p_out log(p_out / q_out). It is a true KL between two distributions on one partition, so it is
    >= 0, and exactly 0 for a model that samples the law itself (whose outputs fall outside the grid
    exactly as often as the law's tails). Renormalizing the law over the grid instead would give that
    sampler a floor of -log(1 - target_outside), not 0.
    """

    labels: list[str]
    points: np.ndarray
    model_mass: np.ndarray
    target_mass: np.ndarray
    target_outside: float
    valid_mass: float
    missing_mass: float
    model_probs: np.ndarray
    target_probs: np.ndarray
    w1: float
    digit_kl: float


def integer_distribution(
    scorer: NextTokenScorer,
    tokenizer: Any,
    space: OutputSpace,
    dist: Any,
    *,
    eos_id: int | None = None,
    temperature: float = 1.0,
) -> GridDistribution:
    """The model's probability of writing each support value of an integer family, then stopping.

    P(v) = product of the next-token probabilities along v's tokens, times p(eos | v): the mass of the
    answer "v" exactly. The grid is the output space's value list (consecutive integers); the law's
    mass is its pmf there, and its tails beyond the list are "outside" (the output space folds the
    upper tail into the last value; the law itself does not).
    """
    if not space.integer_only:
        raise ValueError("integer_distribution needs an integer output space")
    eos_id = tokenizer.eos_token_id if eos_id is None else eos_id
    encoded = tokenizer(list(space.values), add_special_tokens=False)["input_ids"]
    log_mass = _sequence_log_probs(scorer, [list(t) + [eos_id] for t in encoded], temperature)
    values = np.array([int(v) for v in space.values], dtype=np.int64)
    if np.any(np.diff(values) != 1):
        raise ValueError("integer output space values must be consecutive integers")
    target_mass = np.asarray(dist.pmf(values), dtype=np.float64)
    target_outside = float(dist.cdf(values[0] - 1)) + float(dist.sf(values[-1]))
    return _grid_distribution(list(space.values), values.astype(np.float64), np.exp(log_mass),
                              target_mass, target_outside)


def digit_interval_distribution(
    scorer: NextTokenScorer,
    tokenizer: Any,
    dist: Any,
    support: tuple[float | None, float | None],
    *,
    resolution: int = 2,
    quantile_low: float = SOFT_TARGET.quantile_low,
    quantile_high: float = SOFT_TARGET.quantile_high,
    temperature: float = 1.0,
) -> GridDistribution:
    """The model's mass on every digit interval of width 10**-resolution in the target's range.

    Why intervals and not the output space's atoms: a continuous target is discretized to 1001 atoms
    subsampled from the 10**-5 grid, so a model that samples the law perfectly writes exactly one of
    those strings with a tiny probability (0.05-0.3% for the tuned models of the prototype); scoring
    the atoms would measure how well a model hits an arbitrary comb, not its calibration. The interval
    [x, x + 10**-r) is instead exactly the set of answers whose first r decimals read "x", so the
    model's mass on it is the probability that its answer *starts with* that string, a product of
    next-token probabilities along the string without eos; the law's mass on it comes from its CDF.

    The grid: every well-formed string with an optional "-", integer digits without leading zeros
    ("0" alone allowed), ".", and exactly r decimals, whose interval overlaps the range
    [ppf(quantile_low), ppf(quantile_high)] clipped to the support (the output space's window, with
    its [-10, 10] fallback). "x.dd" is [x.dd, x.dd + h) and "-x.dd" is (-(x.dd + h), -x.dd], so
    "0.00" and "-0.00" are the two halves of (-h, h). All strings are scored over their prefix trie
    through the scorer, so a shared prefix ("3", "3.", "3.5") is scored once. With r = 0 (unit
    intervals, for laws as wide as Cauchy's) the string has no "." and must end there: "12" is
    [12, 13) for the answers "12." followed by anything and "12" then eos.

    Tails: the law's mass below the first and above the last interval is not renormalized into the
    grid; it is the law's side of the "outside" outcome (see `GridDistribution`). Answers that start
    with an interval's string count for it whatever follows (more digits, and in principle also an
    exponent or junk, which the strict parser would treat differently; trained models put negligible
    mass there); answers that do not (fewer decimals, "+", leading zeros, text) are missing mass.

    This needs one token per character for these strings, as in SmolLM2, Qwen and Gemma: with
    multi-digit tokens, an answer could start with "3.51" through a token "512" that passes through
    no prefix of the tokenization of "3.51".
    """
    if resolution < 0:
        raise ValueError(f"resolution must be at least 0 decimals, got {resolution}")
    low, high = continuous_window(dist, support, quantile_low, quantile_high)
    scale = 10**resolution
    step = 1.0 / scale
    # Interval k >= 0 on the non-negative side is [k, k + 1) * step; on the negative side it is
    # (-(k + 1), -k] * step. Keep those whose overlap with [low, high] has positive length.
    negative = np.arange(max(0, math.floor(-high * scale)), max(0, math.ceil(-low * scale)), dtype=np.int64)
    positive = np.arange(max(0, math.floor(low * scale)), max(0, math.ceil(high * scale)), dtype=np.int64)
    k_signed = np.concatenate((-negative[::-1] - 1, positive))  # cell [k, k + 1) * step, increasing
    if resolution == 0:
        labels = [f"-{k}" for k in negative[::-1].tolist()] + [str(k) for k in positive.tolist()]
    else:
        labels = [f"-{k // scale}.{k % scale:0{resolution}d}" for k in negative[::-1].tolist()]
        labels += [f"{k // scale}.{k % scale:0{resolution}d}" for k in positive.tolist()]

    edges = np.concatenate((k_signed, [k_signed[-1] + 1])) * step
    cdf = np.asarray(dist.cdf(edges), dtype=np.float64)
    target_mass = np.diff(cdf)
    target_outside = float(cdf[0]) + float(dist.sf(edges[-1]))

    encoded = tokenizer(labels, add_special_tokens=False)["input_ids"]
    split = [label for label, tokens in zip(labels, encoded) if len(tokens) != len(label)]
    if split:
        raise ValueError(
            f"the tokenizer does not give one token per character (for example {split[0]!r}), "
            "so a string's prefix probability is not a product along its tokens"
        )
    if resolution == 0:
        # The integer part ends at "." or at eos; another digit would make it a different interval.
        (dot,) = tokenizer(["."], add_special_tokens=False)["input_ids"][0]
        ends = [dot, tokenizer.eos_token_id]
        log_mass = _sequence_log_probs(scorer, [list(t) + [end] for t in encoded for end in ends], temperature)
        model_mass = np.exp(log_mass).reshape(len(labels), len(ends)).sum(1)
    else:
        model_mass = np.exp(_sequence_log_probs(scorer, encoded, temperature))
    return _grid_distribution(labels, (k_signed + 0.5) * step, model_mass, target_mass,
                              target_outside)


def _sequence_log_probs(
    scorer: NextTokenScorer, sequences: Sequence[Sequence[int]], temperature: float
) -> np.ndarray:
    """log P(sequence) = sum of log p(t_k | t_<k), each distinct prefix scored once."""
    children: dict[tuple[int, ...], dict[int, None]] = {}
    for sequence in sequences:
        for k, token in enumerate(sequence):
            children.setdefault(tuple(sequence[:k]), {})[int(token)] = None
    prefixes = list(children)
    log_probs = scorer.log_probs(prefixes, [list(c) for c in children.values()], temperature=temperature)
    lookup = {
        (prefix, token): float(lp)
        for prefix, tokens, lps in zip(prefixes, children.values(), log_probs)
        for token, lp in zip(tokens, lps.tolist())
    }
    return np.array(
        [sum(lookup[tuple(s[:k]), int(t)] for k, t in enumerate(s)) for s in sequences], dtype=np.float64
    )


def _grid_distribution(labels, points, model_mass, target_mass, target_outside) -> GridDistribution:
    valid_mass = float(model_mass.sum())
    missing_mass = max(0.0, 1.0 - valid_mass)
    target_probs = target_mass / target_mass.sum()
    if valid_mass > 0:
        model_probs = model_mass / valid_mass
        w1 = w1_between_pmfs(points, model_probs, target_probs)
    else:
        model_probs = np.full(len(labels), np.nan)
        w1 = math.inf
    p = np.append(target_mass, target_outside)
    q = np.append(model_mass, missing_mass)
    support = p > 0
    with np.errstate(divide="ignore"):
        digit_kl = float(np.sum(p[support] * (np.log(p[support]) - np.log(q[support]))))
    return GridDistribution(
        labels=labels,
        points=points,
        model_mass=model_mass,
        target_mass=target_mass,
        target_outside=target_outside,
        valid_mass=valid_mass,
        missing_mass=missing_mass,
        model_probs=model_probs,
        target_probs=target_probs,
        w1=w1,
        digit_kl=digit_kl,
    )
