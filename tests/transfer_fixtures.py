"""A tiny random causal LM saved as a checkpoint, with the model record the evaluators read.

The transfer evaluators load a model the way the workflow does (a record JSON pointing at a folder),
so the fast tests run them end to end on this checkpoint in a second or two. Import with
``from transfer_fixtures import tiny_model_record`` (pytest puts tests/ on the path).
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from cft.io import write_json

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]
CHARS = sorted(set(string.ascii_letters + string.digits + " .,:;-/[]()\n"))


def tiny_model_record(folder: Path, *, seed: int = 0) -> Path:
    """Save a 2-layer character-level Llama and its tokenizer under ``folder``; return the record path."""
    vocab = {token: i for i, token in enumerate(SPECIALS + CHARS)}
    char_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    char_level.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    char_level.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=char_level, pad_token="<pad>", unk_token="<unk>",
                                        bos_token="<bos>", eos_token="<eos>")
    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(vocab), max_position_embeddings=2048,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    checkpoint = folder / "tiny"
    LlamaForCausalLM(config).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    record = folder / "tiny.json"
    write_json(record, {"name": "tiny", "source": str(checkpoint), "path": str(checkpoint), "dtype": "float32",
                        "chat": {"enable_thinking": None, "reasoning_effort": None, "generation_prefix": None}})
    return record
