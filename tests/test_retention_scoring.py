"""Continuation log-likelihoods, greedy generation and sliding-window perplexity against direct
computations, on a tiny random Llama (fast) and once on the real SmolLM2 (slow)."""

from __future__ import annotations

import gzip
import json
import math

import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from cft.models import encode_prompt, format_prompt
from cft.retention.perplexity import (
    PerplexityDataUnavailable,
    document_nll,
    read_documents,
    score_slice,
    sliding_windows,
    split_acts,
    write_standin_corpus,
)
from cft.retention.scoring import GreedyGenerator, LoglikelihoodScorer

SPECIALS = ["<pad>", "<unk>", "<bos>", "<|im_end|>", "<|im_start|>"]
CHARS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:?!'#\n<>_-")
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# The tiny models gain nothing from threads; see conftest.one_torch_thread.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(SPECIALS + CHARS)}
    char_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    char_level.add_special_tokens(SPECIALS)
    char_level.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    char_level.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=char_level, pad_token="<pad>", unk_token="<unk>",
                                  bos_token="<bos>", eos_token="<|im_end|>")
    tok.chat_template = CHATML
    return tok


@pytest.fixture(scope="module")
def model(tokenizer) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).eval()


def manual_loglikelihood(model, context_ids: list[int], continuation_ids: list[int]) -> float:
    ids = torch.tensor([context_ids + continuation_ids])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    n = len(context_ids)
    return sum(float(log_probs[n - 1 + j, t]) for j, t in enumerate(continuation_ids))


@pytest.mark.parametrize("use_chat_template", [True, False])
def test_continuation_scores_match_a_manual_forward_pass(model, tokenizer, use_chat_template):
    scorer = LoglikelihoodScorer(model, tokenizer, use_chat_template=use_chat_template)
    contexts = ["Q: Is the sky blue?\nA:", "Q: Is the sea blue?\nA:"]   # shared prefix: the cache is reused
    continuations = [" yes", " no, it is green", " x"]
    for context in contexts:
        formatted = format_prompt(tokenizer, context) if use_chat_template else context
        context_ids = encode_prompt(tokenizer, formatted)
        expected = [manual_loglikelihood(model, context_ids, tokenizer(c, add_special_tokens=False)["input_ids"])
                    for c in continuations]
        assert scorer.score(context, continuations) == pytest.approx(expected, abs=1e-4)


def test_empty_continuation_is_an_error(model, tokenizer):
    with pytest.raises(ValueError, match="no tokens"):
        LoglikelihoodScorer(model, tokenizer).score("Q", [""])


def test_batched_greedy_generation_matches_one_at_a_time(model, tokenizer):
    prompts = ["What is 2 plus 3?", "Hi", "A much longer question about numbers: 12, 13, 14?"]
    batched = GreedyGenerator(model, tokenizer, max_new_tokens=8, batch_size=3).generate(prompts)
    single = GreedyGenerator(model, tokenizer, max_new_tokens=8, batch_size=1).generate(prompts)
    assert batched == single
    # Greedy: the first generated token is the argmax after the prompt.
    ids = torch.tensor([encode_prompt(tokenizer, format_prompt(tokenizer, prompts[1]))])
    with torch.no_grad():
        first = int(model(input_ids=ids).logits[0, -1].argmax())
    if first != tokenizer.eos_token_id:
        assert single[1].startswith(tokenizer.decode([first]).strip()[:1])


def test_sliding_windows_follow_the_paper():
    windows = list(sliding_windows(5000, 2048, 1024))
    assert [(w.begin, w.end, w.score_from) for w in windows] == [
        (0, 2048, 1), (1024, 3072, 2048), (2048, 4096, 3072), (3072, 5000, 4096)]
    assert sum(w.end - w.score_from for w in windows) == 4999
    assert sum(w.end - w.score_from for w in sliding_windows(5000, 2048, 2048)) == 4997
    assert list(sliding_windows(1, 2048, 1024)) == []


def brute_force_nll(model, ids: list[int], context: int, stride: int) -> list[float]:
    """-log p(x_t | window prefix) for every scored t, one forward pass per token."""
    nll = []
    for w in sliding_windows(len(ids), context, stride):
        for t in range(w.score_from, w.end):
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids[w.begin : t]])).logits[0, -1].float()
            nll.append(-float(torch.log_softmax(logits, -1)[ids[t]]))
    return nll


def test_sliding_window_nll_equals_a_direct_computation(model, tokenizer):
    ids = tokenizer("The quick brown fox jumps over the lazy dog. " * 2, add_special_tokens=False)["input_ids"]
    per_token = brute_force_nll(model, ids, context=32, stride=12)
    (total,), scored, covered = document_nll(model, ids, context=32, stride=12)
    assert scored == len(ids) - 1 == len(per_token) and covered == len(ids)
    assert total == pytest.approx(sum(per_token), rel=1e-5)
    # A window as long as the document is one plain forward pass.
    with torch.no_grad():
        full = torch.nn.functional.cross_entropy(model(input_ids=torch.tensor([ids])).logits[0, :-1], torch.tensor(ids[1:]),
                                                 reduction="sum")
    assert document_nll(model, ids, context=512, stride=256)[0] == [pytest.approx(float(full), rel=1e-5)]
    # A token cap stops mid-window and scores exactly the first tokens.
    (capped,), n, covered = document_nll(model, ids, context=32, stride=12, max_scored=40)
    assert n == 40 and covered == 41
    assert capped == pytest.approx(sum(per_token[:40]), rel=1e-5)


def test_slice_totals_pool_tokens_and_bytes(model, tokenizer):
    documents = ["abc def ghi", "x", "Hello there, friend."]
    (totals,) = score_slice(model, tokenizer, documents, context=8, stride=4)
    assert totals.num_documents == 3
    assert totals.num_tokens == sum(len(d) - 1 for d in documents)            # char tokenizer, first unscored
    assert totals.num_bytes == sum(len(d.encode()) for d in documents)
    metrics = totals.metrics()
    assert metrics["perplexity"] == pytest.approx(math.exp(totals.total_nll / totals.num_tokens))
    assert metrics["bits_per_byte"] == pytest.approx(totals.total_nll / math.log(2) / totals.num_bytes)
    (capped,) = score_slice(model, tokenizer, documents, context=8, stride=4, max_tokens=5)
    assert capped.num_tokens == 5 and capped.num_documents == 1 and capped.num_bytes == 6


def test_standin_corpus_has_paloma_layout(tmp_path):
    counts = write_standin_corpus(tmp_path)
    assert counts == {"shakespeare_modern": 10, "shakespeare_folio": 10}        # five acts per play
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl.gz"))
    assert files == ["shakespeare_folio/test/macbeth_gut_f.jsonl.gz", "shakespeare_folio/test/tempest_gut_f.jsonl.gz",
                     "shakespeare_modern/test/macbeth_gut.jsonl.gz", "shakespeare_modern/test/tempest_gut.jsonl.gz"]
    first = (tmp_path / files[0]).read_bytes()
    write_standin_corpus(tmp_path)
    assert (tmp_path / files[0]).read_bytes() == first                            # deterministic gzip
    documents, skipped = read_documents(tmp_path, "shakespeare_folio", "test")
    assert len(documents) == 10 and skipped == 0 and documents[1].startswith("Actus Secundus")


def test_read_documents_skips_rows_without_text_and_reports_missing_slices(tmp_path):
    folder = tmp_path / "c4_en" / "test"
    folder.mkdir(parents=True)
    with gzip.open(folder / "part0.jsonl.gz", "wt") as handle:
        for row in [{"text": " a b "}, {"text": "   "}, {"id": 3}, [1, 2], {"text": "c"}]:
            handle.write(json.dumps(row) + "\n")
    documents, skipped = read_documents(tmp_path, "c4_en", "test")
    assert documents == [" a b ", "c"] and skipped == 2
    with pytest.raises(PerplexityDataUnavailable, match="allenai/paloma"):
        read_documents(tmp_path, "wikitext_103", "test")


def test_split_acts_keeps_front_matter_with_act_one():
    acts = split_acts("TITLE\n\nACT 1\nfoo\nACT 2\nbar\n")
    assert acts == ["TITLE\n\nACT 1\nfoo\n", "ACT 2\nbar\n"]


@pytest.mark.slow
def test_real_smollm2_scores_match_direct_forward_passes(smollm2_dir):
    from cft.models import load_model, load_tokenizer

    tokenizer, model = load_tokenizer(smollm2_dir), load_model(smollm2_dir)
    text = "Shall I compare thee to a summer's day? Thou art more lovely and more temperate."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        direct = torch.nn.functional.cross_entropy(model(input_ids=torch.tensor([ids])).logits[0, :-1].float(),
                                                   torch.tensor(ids[1:]), reduction="sum")
    (total,), scored, _ = document_nll(model, ids, context=2048, stride=1024)
    assert scored == len(ids) - 1 and total == pytest.approx(float(direct), rel=1e-4)
    # Short windows give every token less context, so the text is less predictable.
    assert document_nll(model, ids, context=4, stride=2)[0][0] > total
    scorer = LoglikelihoodScorer(model, tokenizer)
    context = "What is the capital of France?"
    context_ids = encode_prompt(tokenizer, format_prompt(tokenizer, context))
    answers = [" Paris", " The capital of France is Paris.", " Berlin"]
    expected = [manual_loglikelihood(model, context_ids, tokenizer(a, add_special_tokens=False)["input_ids"])
                for a in answers]
    scores = scorer.score(context, answers)
    assert scores == pytest.approx(expected, abs=1e-3)
    assert scores[0] > scores[2]
