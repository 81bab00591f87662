"""The two training losses and the logits they read.

Both losses see logits only at the L + 1 answer positions of each example. Those are gathered from
the decoder's hidden states before the LM head, so the full-vocabulary projection is never computed
over the prompt: with a 49k-262k vocabulary that projection would dominate memory and time.

Every training prompt starts with the same tokens (the chat template's system turn and the words up
to the family name: about a third of a batch's real tokens on SmolLM2). `answer_logits` runs that
shared prefix through the decoder once per batch, as a batch-1 forward whose keys and values every
row then attends to; gradients flow back through them into the prefix's LoRA weights, so the loss
and its gradients are those of the unshared forward.

Losses are computed in float32 whatever the model's dtype; the paper's bf16 loss differed from fp32
in the third significant digit (reference: structured-sampling.md sections 5.3 and 12, item 15).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import DynamicCache


def answer_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  positions: torch.Tensor) -> torch.Tensor:
    """float32 logits [B, S, V] at `positions` [B, S], equal to the model's full logits there.

    Works for a plain causal LM and for a PEFT-wrapped one (both resolve get_decoder and
    get_output_embeddings to the underlying modules, LoRA layers included).
    """
    prefix = shared_prefix_length(input_ids, attention_mask, positions)
    hidden = decoder_hidden_after(model, input_ids, attention_mask, prefix)
    picked = hidden.gather(1, (positions - prefix).unsqueeze(-1).expand(-1, -1, hidden.size(-1)))
    logits = model.get_output_embeddings()(picked)
    # Gemma-2-style models squash logits; the model's own forward would apply this too.
    softcap = getattr(model.config, "final_logit_softcapping", None)
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return logits.float()


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
    answer_logits: torch.Tensor,
    target_ids: torch.Tensor,
    target_probs: torch.Tensor,
    step_mask: torch.Tensor,
    temperature: float = 1.0,
    epsilon: float = 1e-8,
) -> torch.Tensor:
    """Forward KL(q || softmax(z / temperature)) per step, averaged over steps, then over examples.

    answer_logits [B, S, V]; target_ids [B, S, C] (children of the trie node, -1 = padding);
    target_probs [B, S, C]; step_mask [B, S] (False on padded steps).

    The model distribution is normalized over the full vocabulary, so mass on tokens that are not
    children is penalized through the normalization. Targets are floored at epsilon and
    renormalized over the real children. Each step of an example weighs the same, and so does each
    example, whatever its length (the paper's weighting).
    """
    per_step = soft_target_step_kl(answer_logits, target_ids, target_probs, temperature, epsilon)
    steps = step_mask.float()
    per_example = (per_step * steps).sum(-1) / steps.sum(-1)
    return per_example.mean()


def soft_target_step_kl(
    answer_logits: torch.Tensor,
    target_ids: torch.Tensor,
    target_probs: torch.Tensor,
    temperature: float = 1.0,
    epsilon: float = 1e-8,
) -> torch.Tensor:
    """KL(q || softmax(z / temperature)) at every step [..., ] of `soft_target_kl`'s layout, unreduced.

    answer_logits [..., V]; target_ids [..., C] (-1 = padding); target_probs [..., C]. A step with
    no children at all (pure padding) gives 0.
    """
    log_p = torch.log_softmax(answer_logits.float() / temperature, dim=-1)
    is_child = target_ids >= 0
    q = torch.where(is_child, target_probs.float().clamp_min(epsilon), 0.0)
    q = q / q.sum(-1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny)
    log_p_children = log_p.gather(-1, target_ids.clamp_min(0))
    # xlogy(q, q) is 0 where q is 0, so padded children contribute nothing (and no NaN gradients).
    return (torch.special.xlogy(q, q) - q * log_p_children).sum(-1)


def full_support_kl(
    node_logits: torch.Tensor,
    target_ids: torch.Tensor,
    target_probs: torch.Tensor,
    node_weight: torch.Tensor,
    temperature: float = 1.0,
    epsilon: float = 1e-8,
) -> torch.Tensor:
    """sum_s w(s) KL(q_s || p_s) over the trie nodes of each example, averaged over examples.

    node_logits [B, N, V] at N trie nodes; target_ids / target_probs [B, N, C] their children;
    node_weight [B, N] (0 on padding). With w(s) = sum over the atoms i whose path passes through s
    of pi_i / (L_i + 1) and every node present, this is exactly the expectation over the target of
    `soft_target_kl`'s one-path loss (cft.training.fullsupport documents the weighting).
    """
    per_node = soft_target_step_kl(node_logits, target_ids, target_probs, temperature, epsilon)
    return (per_node * node_weight.float()).sum(-1).mean()


def hard_target_ce(answer_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the sampled answer's tokens (value tokens then eos), averaged over tokens.

    answer_logits [..., V] and labels [...] are aligned: labels[i] is the token that the logits at
    i should predict, -100 where nothing is supervised (prompt, padding). Unlike the soft loss this
    is a mean over all supervised tokens of the batch, as in the paper.
    """
    return F.cross_entropy(answer_logits.float().flatten(0, -2), labels.flatten(), ignore_index=-100)
