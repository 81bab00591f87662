"""The two training losses and the logits they read.

Both losses see logits only at the L + 1 answer positions of each example. Those are gathered from
the decoder's hidden states before the LM head, so the full-vocabulary projection is never computed
over the prompt: with a 49k-262k vocabulary that projection would dominate memory and time.

Losses are computed in float32 whatever the model's dtype; the paper's bf16 loss differed from fp32
in the third significant digit (reference: structured-sampling.md sections 5.3 and 12, item 15).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def answer_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  positions: torch.Tensor) -> torch.Tensor:
    """float32 logits [B, S, V] at `positions` [B, S], equal to the model's full logits there.

    Works for a plain causal LM and for a PEFT-wrapped one (both resolve get_decoder and
    get_output_embeddings to the underlying modules, LoRA layers included).
    """
    decoder = model.get_decoder()
    hidden = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    picked = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.size(-1)))
    logits = model.get_output_embeddings()(picked)
    # Gemma-2-style models squash logits; the model's own forward would apply this too.
    softcap = getattr(model.config, "final_logit_softcapping", None)
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return logits.float()


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
