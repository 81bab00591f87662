"""Log-probabilities from blocks of the vocabulary (issue #29): equal to a full log-softmax on a
300k-entry head, with and without soft-capping and temperature, whatever the block size."""

from __future__ import annotations

import pytest
import torch

from cft.logits import is_plain_head, selected_log_probs


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
