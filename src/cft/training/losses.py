"""The training losses and the log-probabilities they read.

Every loss reads log-probabilities only at the L + 1 answer positions of each example, and only of
the tokens it scores there (the trie node's children, the sampled token). `answer_hidden` gathers
those positions' decoder states before the LM head, so nothing is projected over the prompt, and
`head_log_probs` normalizes over the vocabulary in blocks (`cft.logits.blocked_log_probs`, exact in
value and gradient), so no [positions, vocab] logits are held: at Gemma 3's 262k entries a
[8, 12, V] fp32 tensor and its gradient would be 200 MB a step, at the full-support loss's
thousands of trie nodes gigabytes.

Every training prompt starts with the same tokens (the chat template's system turn and the words up
to the family name: about a third of a batch's real tokens on SmolLM2). `answer_hidden` runs that
shared prefix through the decoder once per batch, as a batch-1 forward whose keys and values every
row then attends to; gradients flow back through them into the prefix's LoRA weights, so the loss
and its gradients are those of the unshared forward.

Losses are computed in float32 whatever the model's dtype; the paper's bf16 loss differed from fp32
in the third significant digit (reference: structured-sampling.md sections 5.3 and 12, item 15).
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from cft.logits import blocked_head, blocked_log_probs


def answer_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  positions: torch.Tensor) -> torch.Tensor:
    """The decoder's last hidden states [B, S, d] at `positions` [B, S], those of the model's forward.

    Works for a plain causal LM and for a PEFT-wrapped one (both resolve get_decoder and
    get_output_embeddings to the underlying modules, LoRA layers included).
    """
    prefix = shared_prefix_length(input_ids, attention_mask, positions)
    hidden = decoder_hidden_after(model, input_ids, attention_mask, prefix)
    return hidden.gather(1, (positions - prefix).unsqueeze(-1).expand(-1, -1, hidden.size(-1)))


def head_log_probs(model, hidden: torch.Tensor, token_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """fp32 ``log_softmax(logits / temperature)`` at ``token_ids`` [..., C] for the model's logits at
    ``hidden`` [..., d] (its output head and soft-capping). -1 entries (padding) read token 0.

    A bias-free head, alone or with a temperature transform, is normalized in vocabulary blocks; any
    other head's full logits are computed.
    """
    token_ids = token_ids.clamp_min(0)
    head = model.get_output_embeddings()
    softcap = getattr(model.config, "final_logit_softcapping", None)
    blocked = blocked_head(head)
    if blocked is None:
        return log_probs_at(softcapped(head(hidden), softcap), token_ids, temperature)
    weight, logit_scale = blocked
    scale = None if logit_scale is None else logit_scale(hidden)
    return blocked_log_probs(hidden, weight, token_ids, scale=scale, softcap=softcap, temperature=temperature)


def answer_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  positions: torch.Tensor) -> torch.Tensor:
    """float32 logits [B, S, V] at `positions` [B, S], equal to the model's full logits there. For a
    loss that needs every entry (the ATS smoothing loss); the others read `head_log_probs`."""
    hidden = answer_hidden(model, input_ids, attention_mask, positions)
    return softcapped(model.get_output_embeddings()(hidden), getattr(model.config, "final_logit_softcapping", None))


def softcapped(logits: torch.Tensor, softcap: float | None) -> torch.Tensor:
    """fp32 logits after Gemma-2-style soft-capping, which the model's own forward applies too."""
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return logits.float()


def log_probs_at(logits: torch.Tensor, token_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """fp32 ``log_softmax(logits / temperature)`` [..., V] read at ``token_ids`` [..., C] (-1 reads 0)."""
    return torch.log_softmax(logits.float() / temperature, dim=-1).gather(-1, token_ids.clamp_min(0))


# Below this many shared tokens the extra forward call costs more than the rows' repeats of the prefix.
MIN_SHARED_PREFIX = 8


def shared_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor) -> int:
    """How many leading tokens every row shares, capped so that every position read lies after them
    (its hidden state then comes out of the rows' own forward). 0 when sharing would not pay."""
    if input_ids.size(0) < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(0) & attention_mask.bool().all(0)
    length = min(int(same.int().cumprod(0).sum()), int(positions.min()))
    return length if length >= MIN_SHARED_PREFIX else 0


def decoder_hidden_after(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix: int) -> torch.Tensor:
    """The decoder's last hidden states [B, T - prefix] at positions prefix..T-1, equal to those of one
    forward over the whole batch; the first `prefix` tokens, the same in every row, go through once."""
    decoder = model.get_decoder()
    if prefix == 0:
        return decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    cache = DynamicCache(config=model.config)
    decoder(input_ids=input_ids[:1, :prefix], past_key_values=cache, use_cache=True)
    cache.batch_repeat_interleave(input_ids.size(0))
    width = input_ids.size(1)
    position_ids = torch.arange(prefix, width, device=input_ids.device).expand(input_ids.size(0), -1)
    return decoder(input_ids=input_ids[:, prefix:], attention_mask=attention_mask, position_ids=position_ids,
                   past_key_values=cache, use_cache=True).last_hidden_state


def soft_target_kl(
    children_log_probs: torch.Tensor,
    target_ids: torch.Tensor,
    target_probs: torch.Tensor,
    step_mask: torch.Tensor,
    epsilon: float = 1e-8,
) -> torch.Tensor:
    """Forward KL(q || p) per step, averaged over steps, then over examples.

    children_log_probs [B, S, C]: the model's log-probabilities of the trie node's children, normalized
    over the full vocabulary (`head_log_probs`), so mass on tokens that are not children is penalized
    through the normalization; target_ids [B, S, C] (-1 = padding); target_probs [B, S, C];
    step_mask [B, S] (False on padded steps). Targets are floored at epsilon and renormalized over the
    real children. Each step of an example weighs the same, and so does each example, whatever its
    length (the paper's weighting).
    """
    per_step = soft_target_step_kl(children_log_probs, target_ids, target_probs, epsilon)
    steps = step_mask.float()
    per_example = (per_step * steps).sum(-1) / steps.sum(-1)
    return per_example.mean()


def soft_target_step_kl(
    children_log_probs: torch.Tensor,
    target_ids: torch.Tensor,
    target_probs: torch.Tensor,
    epsilon: float = 1e-8,
) -> torch.Tensor:
    """KL(q || p) at every step [...] of `soft_target_kl`'s layout, unreduced.

    children_log_probs, target_ids (-1 = padding) and target_probs [..., C]. A step with no children
    at all (pure padding) gives 0.
    """
    is_child = target_ids >= 0
    q = torch.where(is_child, target_probs.float().clamp_min(epsilon), 0.0)
    q = q / q.sum(-1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny)
    # xlogy(q, q) is 0 where q is 0, so padded children contribute nothing (and no NaN gradients).
    return (torch.special.xlogy(q, q) - q * children_log_probs.float()).sum(-1)


def full_support_kl(
    children_log_probs: torch.Tensor,
    target_ids: torch.Tensor,
    target_probs: torch.Tensor,
    node_weight: torch.Tensor,
    epsilon: float = 1e-8,
) -> torch.Tensor:
    """sum_s w(s) KL(q_s || p_s) over the trie nodes of each example, averaged over examples.

    children_log_probs [B, N, C] at N trie nodes; target_ids / target_probs [B, N, C] their children;
    node_weight [B, N] (0 on padding). With w(s) = sum over the atoms i whose path passes through s
    of pi_i / (L_i + 1) and every node present, this is exactly the expectation over the target of
    `soft_target_kl`'s one-path loss (cft.training.fullsupport documents the weighting).
    """
    per_node = soft_target_step_kl(children_log_probs, target_ids, target_probs, epsilon)
    return (per_node * node_weight.float()).sum(-1).mean()


def hard_target_ce(label_log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the sampled answer's tokens (value tokens then eos), averaged over tokens.

    label_log_probs [...] is the log-probability of labels [...] at each answer position
    (`head_log_probs` with ``labels.unsqueeze(-1)``, squeezed), -100 where nothing is supervised
    (prompt, padding). Unlike the soft loss this is a mean over all supervised tokens of the batch,
    as in the paper.
    """
    supervised = labels != -100
    return -label_log_probs.float()[supervised].sum() / supervised.sum()
