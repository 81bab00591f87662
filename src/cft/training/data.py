"""Which example goes into which batch, with which seed, and how a batch is laid out.

Order and seeds follow the paper (reference: structured-sampling.md section 5.5) with one change:
the permutations come from numpy's documented PCG64 generator instead of `torch.randperm`, so the
order does not depend on torch's RNG implementation (section 12, item 6). Everything here is a pure
function of (seed, epoch, batch index), which is what makes resuming mid-epoch exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

# Per-example seeds of epoch e start at seed + e * EPOCH_SEED_STRIDE (the paper's formula).
EPOCH_SEED_STRIDE = 100_000


def balanced_order(family_ids: Sequence[str], seed: int) -> list[int]:
    """A family-balanced permutation of item indices.

    Items are grouped by family (in order of first appearance) and each group is shuffled. Then, in
    rounds until every group is used up, the families that still have items (alphabetical, then
    shuffled when more than one is left) each give their next item. Early batches thus mix all
    families, and the tail of an epoch holds only the largest ones.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    groups: dict[str, list[int]] = {}
    for index, family_id in enumerate(family_ids):
        groups.setdefault(family_id, []).append(index)
    for family_id, members in groups.items():
        groups[family_id] = [members[k] for k in rng.permutation(len(members))]

    families = sorted(groups)
    taken = dict.fromkeys(families, 0)
    order: list[int] = []
    while len(order) < len(family_ids):
        active = [f for f in families if taken[f] < len(groups[f])]
        if len(active) > 1:
            active = [active[k] for k in rng.permutation(len(active))]
        for family_id in active:
            order.append(groups[family_id][taken[family_id]])
            taken[family_id] += 1
    return order


def steps_per_epoch(n_items: int, batch_size: int, world_size: int = 1) -> int:
    return math.ceil(math.ceil(n_items / world_size) / batch_size)


def epoch_batches(
    family_ids: Sequence[str], *, seed: int, epoch: int, batch_size: int, rank: int = 0, world_size: int = 1
) -> list[list[tuple[int, int]]]:
    """The batches of one epoch on one rank: lists of (item index, sampling seed).

    The order of epoch e uses seed + e. With W ranks the list is padded to a multiple of W by
    repeating its first items and rank r takes items r, r + W, ... (the hook for multi-GPU runs;
    a single process uses rank 0 of 1). Example j of batch b gets the seed
    seed + e * 100000 + b * batch_size * W + r * batch_size + j.
    """
    order = balanced_order(family_ids, seed + epoch)
    padding = (-len(order)) % world_size
    shard = (order + order[:padding])[rank::world_size]
    batches = []
    for b, start in enumerate(range(0, len(shard), batch_size)):
        base = seed + epoch * EPOCH_SEED_STRIDE + b * batch_size * world_size + rank * batch_size
        batches.append([(item, base + j) for j, item in enumerate(shard[start:start + batch_size])])
    return batches


@dataclass(frozen=True)
class Example:
    """One supervised answer: the prompt, the answer's value tokens (eos excluded) and, for soft
    targets, the L + 1 (child token ids, child probabilities) steps along its trie path."""

    prompt_ids: Sequence[int]
    value_ids: Sequence[int]
    soft_steps: Sequence[tuple[np.ndarray, np.ndarray]] | None = None


def collate(examples: Sequence[Example], *, pad_id: int, eos_id: int) -> dict[str, torch.Tensor]:
    """Right-padded inputs and the positions and targets of the L + 1 answer steps.

    The input is prompt ids then value ids; eos is not an input, only a target. Step k of an example
    reads the logits at position len(prompt) - 1 + k: the last prompt token predicts the first value
    token, and the last value token predicts eos.

    Returns input_ids and attention_mask [B, T]; positions, step_mask and labels [B, S] with
    S = max(L) + 1 (labels: value tokens then eos, -100 on padding); for soft examples also
    target_ids and target_probs [B, S, C] with C the largest number of children, padded with id -1
    and probability 0.
    """
    inputs = [list(e.prompt_ids) + list(e.value_ids) for e in examples]
    n_steps = [len(e.value_ids) + 1 for e in examples]
    batch_size, width, depth = len(examples), max(map(len, inputs)), max(n_steps)

    input_ids = torch.full((batch_size, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((batch_size, width), dtype=torch.long)
    positions = torch.zeros((batch_size, depth), dtype=torch.long)
    step_mask = torch.zeros((batch_size, depth), dtype=torch.bool)
    labels = torch.full((batch_size, depth), -100, dtype=torch.long)
    for row, (example, ids, steps) in enumerate(zip(examples, inputs, n_steps)):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        attention_mask[row, :len(ids)] = 1
        positions[row, :steps] = torch.arange(steps) + len(example.prompt_ids) - 1
        # Padded steps repeat the last real position, which lies after any prefix the rows share.
        positions[row, steps:] = positions[row, steps - 1]
        step_mask[row, :steps] = True
        labels[row, :steps] = torch.tensor(list(example.value_ids) + [eos_id])
    batch = {
        "input_ids": input_ids, "attention_mask": attention_mask,
        "positions": positions, "step_mask": step_mask, "labels": labels,
    }

    if examples[0].soft_steps is not None:
        n_children = max(len(ids) for e in examples for ids, _ in e.soft_steps)
        target_ids = torch.full((batch_size, depth, n_children), -1, dtype=torch.long)
        target_probs = torch.zeros((batch_size, depth, n_children), dtype=torch.float64)
        for row, example in enumerate(examples):
            if len(example.soft_steps) != len(example.value_ids) + 1:
                raise ValueError("a soft example needs one target step per value token plus one for eos")
            for k, (ids, probs) in enumerate(example.soft_steps):
                target_ids[row, k, :len(ids)] = torch.tensor(ids, dtype=torch.long)
                target_probs[row, k, :len(ids)] = torch.tensor(probs, dtype=torch.float64)
        batch["target_ids"] = target_ids
        batch["target_probs"] = target_probs
    return batch
