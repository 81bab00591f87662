"""Log-probabilities from blocks of the vocabulary (issue #29): equal to a full log-softmax on a
300k-entry head, with and without soft-capping, temperature and a per-position logit scale, whatever
the block size; the training losses built on them equal the unchunked losses in value and in every
gradient on a tiny model with a 300k vocabulary."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cft.logits import GlobalTemperature, blocked_head, blocked_log_probs, is_plain_head, selected_log_probs
from cft.logits import TransformedHead


@pytest.mark.parametrize("softcap, temperature, vocab_chunk", [(None, 1.0, 4096), (30.0, 0.7, 50_000),
                                                               (None, 2.0, 300_007), (5.0, 1.0, 1000)])
def test_blocked_log_probs_equal_a_full_log_softmax(softcap, temperature, vocab_chunk):
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(37, 16, generator=generator)
    weight = torch.randn(300_007, 16, generator=generator)
    rows = torch.randint(0, 37, (500,), generator=generator)
    # The first and last entries, and every block edge, are read too.
    tokens = torch.cat([torch.tensor([0, 300_006, 4095, 4096, 49_999, 50_000]),
                        torch.randint(0, 300_007, (494,), generator=generator)])
    logits = hidden @ weight.T
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    expected = torch.log_softmax(logits / temperature, dim=-1)[rows, tokens]
    got = selected_log_probs(hidden, weight, rows, tokens, softcap=softcap, temperature=temperature,
                             vocab_chunk=vocab_chunk)
    assert got.dtype == torch.float32 and got.shape == (500,)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_only_bias_free_linear_heads_are_read_by_their_weight():
    assert is_plain_head(torch.nn.Linear(4, 9, bias=False))
    assert not is_plain_head(torch.nn.Linear(4, 9))
    assert not is_plain_head(torch.nn.Sequential(torch.nn.Linear(4, 9, bias=False)))


def full_log_probs(hidden, weight, token_ids, scale, softcap, temperature):
    """The unchunked reference: every logit, a full log-softmax, then the gather."""
    logits = (hidden @ weight.T).float()
    if scale is not None:
        logits = logits * scale[..., None]
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return torch.log_softmax(logits / temperature, dim=-1).gather(-1, token_ids)


@pytest.mark.parametrize("with_scale, softcap, temperature, vocab_chunk", [
    (False, None, 1.0, 4096), (True, 30.0, 0.7, 50_000), (True, None, 2.0, 300_007), (False, 5.0, 1.0, 1000)])
def test_blocked_log_probs_and_their_gradients_equal_the_full_ones(with_scale, softcap, temperature, vocab_chunk):
    generator = torch.Generator().manual_seed(1)
    hidden = torch.randn(3, 5, 16, generator=generator)
    weight = torch.randn(300_007, 16, generator=generator) * 0.3
    scale = torch.rand(3, 5, generator=generator) + 0.5 if with_scale else None
    token_ids = torch.randint(0, 300_007, (3, 5, 4), generator=generator)
    token_ids[0, 0] = torch.tensor([0, 300_006, vocab_chunk - 1, min(vocab_chunk, 300_006)])
    weights_of_entries = torch.randn(3, 5, 4, generator=generator)

    def value_and_grads(function):
        leaves = [t.clone().requires_grad_() for t in (hidden, weight) + ((scale,) if with_scale else ())]
        out = function(leaves[0], leaves[1], token_ids, leaves[2] if with_scale else None, softcap, temperature)
        (out * weights_of_entries).sum().backward()
        return out.detach(), [leaf.grad for leaf in leaves]

    def blocked(h, w, ids, s, cap, t):
        return blocked_log_probs(h, w, ids, scale=s, softcap=cap, temperature=t, vocab_chunk=vocab_chunk)

    expected, expected_grads = value_and_grads(full_log_probs)
    got, got_grads = value_and_grads(blocked)
    assert got.dtype == torch.float32 and got.shape == (3, 5, 4)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for got_grad, expected_grad in zip(got_grads, expected_grads, strict=True):
        # A gradient entry sums 300k terms that largely cancel: round-off is relative to the largest.
        torch.testing.assert_close(got_grad, expected_grad, rtol=1e-4, atol=1e-5 * float(expected_grad.abs().max()))


def test_temperature_transforms_are_read_in_blocks_and_other_heads_are_not():
    head = torch.nn.Linear(4, 9, bias=False)
    assert blocked_head(head) == (head.weight, None)
    weight, logit_scale = blocked_head(TransformedHead(head, GlobalTemperature(2.0)))
    assert weight is head.weight and torch.equal(logit_scale(torch.zeros(3, 4)), torch.full((3,), 0.5))
    assert blocked_head(torch.nn.Linear(4, 9)) is None


def large_vocabulary_model(softcap):
    """The tiny Llama with a 300,007-entry vocabulary (the same parameters otherwise), with LoRA; with
    ``softcap`` its logits are soft-capped as Gemma's are."""
    from peft import LoraConfig, get_peft_model

    from tiny_models import tiny_llama

    model = tiny_llama(300_007)
    model.config.final_logit_softcapping = softcap
    return get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                                            init_lora_weights=False))


def softcap_forward(model):
    """The Llama forward has no soft-capping: the unchunked reference applies it to the full logits."""
    cap = model.config.final_logit_softcapping

    def logits(input_ids, attention_mask):
        raw = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        return raw if cap is None else torch.tanh(raw / cap) * cap
    return logits


@pytest.mark.parametrize("method, softcap, temperature", [("soft", None, 1.0), ("soft", 20.0, 0.8), ("hard", None, 1.0),
                                                         ("ats", None, 1.0)])
def test_training_losses_in_blocks_equal_the_unchunked_losses_and_gradients(method, softcap, temperature):
    """The soft and hard losses (and ATS's KL through its per-position temperature) from
    `head_log_probs` against the same losses on the model's full [B, T, V] logits: value and every
    trainable gradient, LoRA's and the ATS head's, to fp32 round-off."""
    from cft.baselines.ats import ATSHead
    from cft.logits import with_logit_transform
    from cft.training.data import Example, collate
    from cft.training.losses import answer_hidden, hard_target_ce, head_log_probs, log_probs_at, soft_target_kl

    branch = (np.array([40_000, 299_000, 7]), np.array([0.2, 0.5, 0.3]))
    leaf = (np.array([2, 299_999]), np.array([0.9, 0.1]))
    # Rows share a 9-token prefix, so the shared-prefix forward is in the path too.
    examples = [Example([1, 10, 11, 12, 13, 14, 15, 16, 17, 18], [40_000, 299_999], [branch, branch, leaf]),
                Example([1, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20], [299_000], [branch, leaf])]
    batch = collate(examples, pad_id=2, eos_id=2)

    def loss_and_grads(blocks: bool):
        model = large_vocabulary_model(softcap)
        if method == "ats":
            model.requires_grad_(False)
            torch.manual_seed(3)
            head = ATSHead(model.config.hidden_size, 8)
            torch.nn.init.normal_(head.net[-1].weight, std=0.5)
            with_logit_transform(model, head)
        model.train()
        ids, positions = batch["target_ids"] if method != "hard" else batch["labels"].unsqueeze(-1), batch["positions"]
        if blocks:
            hidden = answer_hidden(model, batch["input_ids"], batch["attention_mask"], positions)
            log_probs = head_log_probs(model, hidden, ids, temperature)
        else:
            full = softcap_forward(model)(batch["input_ids"], batch["attention_mask"])
            picked = full.gather(1, positions.unsqueeze(-1).expand(-1, -1, full.size(-1)))
            log_probs = log_probs_at(picked, ids, temperature)
        if method == "hard":
            loss = hard_target_ce(log_probs.squeeze(-1), batch["labels"])
        else:
            loss = soft_target_kl(log_probs, batch["target_ids"], batch["target_probs"], batch["step_mask"])
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        assert grads and all(g.abs().sum() > 0 for g in grads.values())
        return loss.item(), grads

    blocked_loss, blocked_grads = loss_and_grads(blocks=True)
    full_loss, full_grads = loss_and_grads(blocks=False)
    assert blocked_loss == pytest.approx(full_loss, rel=1e-5)
    assert blocked_grads.keys() == full_grads.keys()
    for name, grad in full_grads.items():
        torch.testing.assert_close(blocked_grads[name], grad, rtol=1e-4, atol=1e-5 * float(grad.abs().max()),
                                   msg=name)
