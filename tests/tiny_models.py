"""A tiny Llama with a character-level ChatML tokenizer: the real code paths at test speed.

Import with ``from tiny_models import char_tokenizer, tiny_llama`` (pytest puts tests/ on the path).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

from cft.prompts import PromptSpec

# Six training prompts of four families, continuous and discrete: the trainer tests' data.
TRAIN_PROMPTS = [
    PromptSpec.from_params("gaussian", {"mu": 0.0, "sigma": 1.0}),
    PromptSpec.from_params("binomial", {"n": 5.0, "p": 0.5}),
    PromptSpec.from_params("uniform", {"a": 0.0, "b": 2.0}),
    PromptSpec.from_params("geometric", {"p": 0.5}),
    PromptSpec.from_params("gaussian", {"mu": 3.0, "sigma": 0.5}),
    PromptSpec.from_params("binomial", {"n": 10.0, "p": 0.3}),
]

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character, ChatML specials, eos = pad = <|im_end|> (SmolLM2's layout)."""
    specials = ["<unk>", "<|im_start|>", "<|im_end|>"]
    chars = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n.,=-"))
    vocab = {token: i for i, token in enumerate(specials + chars)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.add_special_tokens(specials)
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>",
                                        eos_token="<|im_end|>", pad_token="<|im_end|>", unk_token="<unk>")
    tokenizer.chat_template = CHATML
    return tokenizer


def tiny_llama(vocab_size: int, seed: int = 0):
    # With the default init (std 0.02) the tied embeddings cap every logit near +-0.6, so no adapter
    # could move the output distribution far; std 0.2 leaves room to learn in a few steps.
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=True,
                         initializer_range=0.2)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def save_tiny_checkpoint(path: Path) -> Path:
    """The tiny model and its tokenizer as a checkpoint folder that `cft.models.load_model` reads."""
    tokenizer = char_tokenizer()
    tiny_llama(len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_record(root: Path) -> Path:
    """`save_tiny_checkpoint` under root/tiny and the model record the workflow's jobs read,
    root/model.json; returns the record's path."""
    from cft.io import write_json

    model_dir = save_tiny_checkpoint(root / "tiny")
    record = root / "model.json"
    write_json(record, {"name": "tiny", "path": str(model_dir), "dtype": "float32", "chat": {}})
    return record


def save_tiny_baselines(root: Path) -> None:
    """`save_tiny_record` plus the two fitted logit transforms of base on `TRAIN_PROMPTS`: a global
    temperature and an ATS head trained on the soft-target KL (their files: `tiny_baseline_files`)."""
    import json

    from cft.baselines.ats import train_ats
    from cft.baselines.temperature import fit_global_temperature
    from cft.io import write_jsonl

    save_tiny_record(root)
    write_jsonl(root / "train.jsonl", [{"spec": s.to_dict()} for s in TRAIN_PROMPTS])
    target = dict(decimals=1, max_bins=16)
    fit = fit_global_temperature(model_record_path=root / "model.json", prompts_path=root / "train.jsonl",
                                 settings=dict(num_train_prompts=3, target=target, xatol=0.05),
                                 out_json=root / "temperature.json", device="cpu", threads=1)
    # A fit that returned the base model would compare base with itself.
    assert fit.temperature != 1.0
    train_ats(model_record_path=root / "model.json", loss="kl", prompts_path=root / "train.jsonl",
              settings=dict(head_size=16, lr=0.05, steps=4, batch_size=3, target=target),
              head_out=root / "head.pt", record_out=root / "head.json", log_csv=root / "ats_log.csv",
              device="cpu", threads=1)
    assert json.loads((root / "head.json").read_text())["temperature_mean"] != 1.0


def tiny_baseline_files(root: Path) -> dict[str, dict[str, Path]]:
    """Each variant's input files after `save_tiny_baselines`, as the shared jobs take them (``{}`` for base)."""
    return {"base": {}, "temperature": {"temperature": root / "temperature.json"},
            "ats_kl": {"ats_head": root / "head.pt"}}


def eval_loss(trainer, batch) -> float:
    """The trainer's loss on a fixed batch, without dropout and without touching its gradients."""
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(batch).item()
    trainer.model.train()
    return loss
