"""LoRA calibration fine-tuning with checkpoint/resume: a base trainer and one subclass per method.

Soft targets (reference: structured-sampling.md section 5): each prompt contributes one answer per
epoch, drawn from its discretized target; at every one of the answer's L + 1 steps the model is
trained toward the full distribution over the trie node's children (forward KL).
Hard targets (section 6): each prompt contributes `samples_per_prompt` answers per epoch drawn from
a finer target; the model is trained with cross-entropy on the sampled tokens plus eos.

Both share the batch layout (prompt then value tokens, right-padded, eos only as a target), the
LoRA setup, AdamW with a cosine schedule, and the run directory:

    <out>/train_config.json        resolved settings, run fingerprint, versions, device, threads
    <out>/checkpoints/step_<n>/    per checkpoint (n: the optimizer step, six digits, e.g. step_000050):
                                   adapter weights, optimizer, scheduler, RNG states, loss log
    <out>/snapshots/step_<n>/      with `snapshots`: the adapter (PEFT save_pretrained) at that many
                                   evenly spaced steps before the last, kept for the fidelity curve
    <out>/train_log.csv            step, epoch, loss, lr, tokens, seconds
    <out>/adapter/                 the final adapter (PEFT save_pretrained)
    <out>/DONE                     written last

With `tensorboard_dir` (the workflow's `train.report_to: [tensorboard]`) the loss, learning rate and
tokens per second of every optimizer step also go to TensorBoard event files there while the job runs.

Resuming is exact: the data order and every example's seed are functions of (seed, epoch, batch
index), and the checkpoint holds everything else that changes during training (LoRA weights,
optimizer and scheduler state, and the RNG that drives LoRA dropout). A run killed at any point and
rerun reaches the same final adapter as an uninterrupted one.

Multi-GPU: started once per GPU by torchrun or accelerate (`cft.launch`, `python -m cft.training`),
the trainer runs data-parallel (`cft.training.distributed`): `epoch_batches` shards every batch by
(rank, world_size) with the paper's seed formula, the loss runs through DistributedDataParallel, whose
backward pass averages the LoRA gradients across processes, and process 0 alone writes checkpoints,
logs and the adapter.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from peft import LoraConfig, get_peft_model
from tqdm.auto import tqdm
from transformers import AutoConfig, get_cosine_schedule_with_warmup, set_seed

from cft.datasets import read_specs
from cft.devices import use_threads
from cft.io import atomic_path, atomic_write_text, environment_record, read_json, write_csv, write_json
from cft.models import ChatOptions, encode_prompt, format_prompt, load_model, load_tokenizer, resolve_dtype
from cft.styles import OKABE_ITO, Style
from cft.targets import HARD_TARGET, SOFT_TARGET, OutputSpace, sample_index
from cft.training.config import RUN_CONTROL_KEYS, TrainConfig
from cft.training.data import Example, collate, epoch_batches, steps_per_epoch
from cft.training.distributed import (barrier, data_parallel, is_main_process, mean_across_processes,
                                      sum_across_processes, world)
from cft.training.losses import answer_hidden, hard_target_ce, head_log_probs, soft_target_kl
from cft.training.methods import get_method, register_method
from cft.trie import TokenTrie

log = logging.getLogger(__name__)

DONE_FILE = "DONE"
CONFIG_FILE = "train_config.json"
LOG_FILE = "train_log.csv"
ADAPTER_DIR = "adapter"
CHECKPOINT_DIR = "checkpoints"
SNAPSHOT_DIR = "snapshots"
SNAPSHOT_INDEX = "steps.json"
KEEP_CHECKPOINTS = 2
LOG_COLUMNS = ["step", "epoch", "loss", "lr", "tokens", "seconds"]
_CHECKPOINT_NAME = re.compile(r"step_(\d{6,})")


def snapshot_steps(total_steps: int, count: int | None) -> list[int]:
    """The steps whose adapter is kept for the fidelity curve: `count` steps that split the run into
    count + 1 nearly equal parts (fewer when the run has fewer steps); the final adapter is the last
    point. A count rather than an interval, so that a method's curve has as many points whatever its
    budget (hard targets take ten times the steps of soft ones in the paper's recipe)."""
    if not count:
        return []
    return sorted({round(total_steps * k / (count + 1)) for k in range(1, count + 1)} - {0, total_steps})


def missing_snapshots(run_dir: Path, count: int | None) -> list[int]:
    """Snapshot steps that a finished run in `run_dir` lacks (one trained before snapshots were asked for)."""
    total = read_json(run_dir / CONFIG_FILE)["total_steps"]
    return [step for step in snapshot_steps(total, count)
            if not (run_dir / SNAPSHOT_DIR / f"step_{step:06d}").is_dir()]


def export_snapshots(run_dir: Path, target: str | os.PathLike, count: int | None) -> None:
    """Copy the run's snapshots to `target` with an index `steps.json`: the steps kept and the run's
    last step (an empty list when the run keeps none)."""
    total = read_json(run_dir / CONFIG_FILE)["total_steps"]
    steps = snapshot_steps(total, count)
    with atomic_path(target, directory=True) as tmp:
        for step in steps:
            shutil.copytree(run_dir / SNAPSHOT_DIR / f"step_{step:06d}", tmp / f"step_{step:06d}")
        write_json(tmp / SNAPSHOT_INDEX, {"steps": steps, "total_steps": total})


def tensorboard_writer():
    """torch's SummaryWriter, or a one-line error saying how to install what it needs."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RuntimeError(
            "train.report_to: [tensorboard] needs the tensorboard package: pip install -c "
            "requirements/constraints.txt -e \".[tensorboard]\" (or set train.report_to: [])"
        ) from None
    return SummaryWriter


class TrainingAlreadyDone(RuntimeError):
    """The output directory holds a finished run of the same settings."""


class StaleRunError(RuntimeError):
    """The output directory holds (part of) a run with different settings, data or model."""


def prompt_token_ids(tokenizer, prompts: Sequence[Any], chat: ChatOptions | None) -> list[list[int]]:
    return [encode_prompt(tokenizer, format_prompt(tokenizer, p.prompt, chat)) for p in prompts]


def run_fingerprint(config: TrainConfig, prompts: Sequence[Any], prompt_ids: Sequence[Sequence[int]],
                    model_config, dtype: torch.dtype) -> str:
    """A hash of everything that determines the trained adapter; a resume must match it.

    The prompt token ids stand for the tokenizer and chat template. The model is identified by its
    architecture rather than its path, so a moved model cache does not invalidate a run.
    """
    text_config = model_config.get_text_config()
    model_keys = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
    # The checkpoint and snapshot intervals do not change the result, so they may differ between attempts.
    settings = {k: v for k, v in config.to_dict().items() if k not in RUN_CONTROL_KEYS}
    payload = {
        "config": settings,
        "prompts": [[p.family_id, p.prompt] for p in prompts],
        "prompt_ids": [list(ids) for ids in prompt_ids],
        "model": {key: getattr(text_config, key, None) for key in model_keys},
        "dtype": str(dtype),
    }
    # Data-parallel runs shard every batch by rank, so their data order depends on the world size;
    # single-process fingerprints stay as they were.
    if world()[1] > 1:
        payload["world_size"] = world()[1]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def check_out_dir(out_dir: Path, fingerprint: str, force: bool) -> None:
    """Refuse to redo a finished run or to resume a different one; with `force`, start over."""
    barrier()  # in a data-parallel run, no process deletes before every process has read
    if force:
        for name in (DONE_FILE, ADAPTER_DIR, CHECKPOINT_DIR, SNAPSHOT_DIR, LOG_FILE, CONFIG_FILE) if is_main_process() else ():
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        barrier()
        return
    if (out_dir / CONFIG_FILE).exists():
        recorded = read_json(out_dir / CONFIG_FILE).get("fingerprint")
        if recorded != fingerprint:
            raise StaleRunError(
                f"{out_dir} holds a run with other settings, prompts or model (fingerprint {recorded} "
                f"!= {fingerprint}); delete it or train with force=True to start over"
            )
    if (out_dir / DONE_FILE).exists():
        raise TrainingAlreadyDone(f"{out_dir} holds a finished run; train with force=True to redo it")


class CalibrationTrainer:
    """The shared training loop. Subclasses say which items an epoch has, how one example is built
    and what the loss is. One trainer class can train several registered methods (`cft.training.methods`)
    that differ in their target builder; `method` is the class's own method, `self.method` the one
    this instance trains."""

    method: ClassVar[str]

    def __init__(self, model, tokenizer, prompts: Sequence[Any], config: TrainConfig,
                 out_dir: str | os.PathLike, *, chat: ChatOptions | None = None, progress: bool = True,
                 tensorboard_dir: str | os.PathLike | None = None):
        registered = get_method(config.method)
        if registered.trainer is not type(self):
            raise ValueError(f"{type(self).__name__} does not train method {config.method!r} "
                             f"(that is {registered.trainer.__name__})")
        self.method = config.method
        self.targets = registered.targets
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token; answers could not be terminated")
        self.config = config
        self.tokenizer = tokenizer
        self.prompts = list(prompts)
        self.out_dir = Path(out_dir)
        self.chat = chat or ChatOptions()
        self.progress = progress
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id

        self.prompt_ids = prompt_token_ids(tokenizer, self.prompts, self.chat)
        self.items = self.epoch_items()
        self.family_ids = [self.prompts[i].family_id for i in self.items]
        self.rank, self.world_size = world()
        self.steps_per_epoch = steps_per_epoch(len(self.items), config.batch_size, self.world_size)
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.warmup_steps = int(config.warmup_ratio * self.total_steps)
        self.base_dtype = model.dtype
        self.fingerprint = run_fingerprint(config, self.prompts, self.prompt_ids, model.config, model.dtype)

        # The seed fixes the LoRA A initialization; the RNG stream after it drives LoRA dropout.
        set_seed(config.seed)
        model.config.use_cache = False
        lora = LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_target_modules), bias="none", task_type="CAUSAL_LM",
        )
        self.model = get_peft_model(model, lora)
        # PEFT holds the target modules as a set and saves them in its iteration order, which changes
        # with Python's per-process string hashing; as a sorted list they are saved as they are, so
        # two runs of one config write the same adapter_config.json.
        self.model.peft_config["default"].target_modules = sorted(self.model.peft_config["default"].target_modules)
        # LoRA weights, and with them the AdamW moments, stay fp32 even over a bf16 base: the
        # paper's bf16 adapter updates lose most of their low bits (section 12, item 15).
        self.trainable = [(name, p) for name, p in self.model.named_parameters() if p.requires_grad]
        for _, p in self.trainable:
            p.data = p.data.float()
        self.model.train()
        self.device = next(self.model.parameters()).device
        self.optimizer = torch.optim.AdamW(
            [p for _, p in self.trainable], lr=config.lr, weight_decay=config.weight_decay
        )
        # The paper's schedule: linear warmup from lr 0 (so the first step does not move the
        # weights when there is any warmup), then a half cosine to 0, stepped once per update.
        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, self.warmup_steps, self.total_steps)
        # `compute_loss`, through DistributedDataParallel when several processes train: every process
        # builds it here at once, as DDP's construction is collective.
        self.step_loss = data_parallel(self.model, self.compute_loss)
        self.step = 0
        self.log_rows: list[dict[str, Any]] = []
        self.snapshot_steps = set(snapshot_steps(self.total_steps, config.snapshots))
        self.tensorboard_dir = tensorboard_dir
        self.tensorboard = None

    # ---- what differs between the methods -------------------------------------------------------

    def epoch_items(self) -> list[int]:
        """The prompt index of every example of one epoch, before ordering."""
        raise NotImplementedError

    def build_example(self, prompt_index: int, seed: int) -> Example:
        raise NotImplementedError

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def collate(self, examples: Sequence[Any]) -> dict[str, torch.Tensor]:
        """The batch tensors of `examples`; `attention_mask` [B, T] marks the tokens fed."""
        return collate(examples, pad_id=self.pad_id, eos_id=self.eos_id)

    # ---- the loop -------------------------------------------------------------------------------

    def train(self, force: bool = False) -> Path:
        """Train to the end (resuming from the newest checkpoint) and return the adapter folder."""
        check_out_dir(self.out_dir, self.fingerprint, force)
        started = time.perf_counter()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        barrier()  # every process has checked the run directory before process 0 writes to it
        if is_main_process():
            write_json(self.out_dir / CONFIG_FILE, self.run_record())
        self.resume()
        if self.step == 0:
            log.info("%s training from scratch: %d steps (%d per epoch, %d epochs), %d trainable LoRA "
                     "parameters, %s on %s, run folder %s", self.method, self.total_steps, self.steps_per_epoch,
                     self.config.epochs, sum(p.numel() for _, p in self.trainable), self.base_dtype, self.device,
                     self.out_dir)
        first_step = self.step
        self.open_tensorboard()

        interactive = sys.stderr.isatty()
        bar = tqdm(total=self.total_steps, initial=self.step, desc=f"{self.method} training", unit="step",
                   file=sys.stderr, disable=not self.progress, mininterval=1 if interactive else 30)
        try:
            first_epoch, first_batch = divmod(self.step, self.steps_per_epoch)
            for epoch in range(first_epoch, self.config.epochs):
                batches = epoch_batches(self.family_ids, seed=self.config.seed, epoch=epoch,
                                        batch_size=self.config.batch_size, rank=self.rank,
                                        world_size=self.world_size)
                for b in range(first_batch if epoch == first_epoch else 0, len(batches)):
                    if self.step >= self.total_steps:
                        break
                    row = self.training_step(batches[b], epoch)
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
                    if (self.step % self.config.checkpoint_every == 0 or b == len(batches) - 1
                            or self.step == self.total_steps or self.step in self.snapshot_steps):
                        self.save_checkpoint()
        finally:
            # Also on a crash: the steps trained so far reach the event file.
            bar.close()
            if self.tensorboard is not None:
                self.tensorboard.close()
        adapter = self.finish()
        if self.step > first_step:
            log.info("%s training: steps %d-%d in %.1f s, final loss %.4f; adapter in %s", self.method,
                     first_step + 1, self.step, time.perf_counter() - started, self.log_rows[-1]["loss"], adapter)
        return adapter

    def training_step(self, batch_items: Sequence[tuple[int, int]], epoch: int) -> dict[str, Any]:
        start = time.perf_counter()
        examples = [self.build_example(self.items[item], seed) for item, seed in batch_items]
        batch = {k: v.to(self.device) for k, v in self.collate(examples).items()}
        lr = self.scheduler.get_last_lr()[0]
        if self.world_size > 1:
            # Each process draws its own LoRA dropout masks, as a function of (seed, rank, step) so
            # that a resumed run repeats them.
            torch.manual_seed(self.config.seed + 1_000_003 * self.rank + self.step)
        loss = self.step_loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.method} loss is {loss.item()} at step {self.step + 1}")
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        row = {
            "step": self.step, "epoch": epoch, "loss": mean_across_processes(loss.item()), "lr": lr,
            # Every process's tokens: the curve's tokens seen and FLOPs count the whole batch.
            "tokens": int(sum_across_processes(float(batch["attention_mask"].sum()))),
            "seconds": time.perf_counter() - start,
        }
        self.log_rows.append(row)
        if self.tensorboard is not None:
            for name in ("loss", "lr"):
                self.tensorboard.add_scalar(f"train/{name}", row[name], self.step)
            self.tensorboard.add_scalar("train/tokens_per_second", row["tokens"] / row["seconds"], self.step)
        return row

    def open_tensorboard(self) -> None:
        """Start the event file of this attempt (process 0 only). `purge_step`: a killed attempt logged
        steps past its last checkpoint, which this attempt repeats; TensorBoard drops those."""
        if self.tensorboard_dir is None or not is_main_process():
            return
        SummaryWriter = tensorboard_writer()
        # flush_secs: the curves appear within seconds while the job runs.
        self.tensorboard = SummaryWriter(log_dir=str(self.tensorboard_dir), purge_step=self.step + 1, flush_secs=10)
        log.info("TensorBoard event files: %s", self.tensorboard_dir)

    # ---- checkpoints and outputs ----------------------------------------------------------------

    def save_checkpoint(self) -> None:
        # Every process holds the same LoRA weights and optimizer state; process 0 writes them.
        if is_main_process():
            self.write_checkpoint()
        barrier()

    def write_checkpoint(self) -> None:
        # The snapshot goes first: a checkpoint at a snapshot step then implies its snapshot, so a
        # run resumed from any checkpoint has every snapshot before it.
        if self.step in self.snapshot_steps:
            with atomic_path(self.out_dir / SNAPSHOT_DIR / f"step_{self.step:06d}", directory=True) as tmp:
                self.model.save_pretrained(tmp)
        root = self.out_dir / CHECKPOINT_DIR
        with atomic_path(root / f"step_{self.step:06d}", directory=True) as tmp:
            torch.save({
                "adapter": {name: p.detach().cpu() for name, p in self.trainable},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            }, tmp / "state.pt")
            numpy_rng = np.random.get_state()
            write_json(tmp / "trainer_state.json", {
                "step": self.step,
                "fingerprint": self.fingerprint,
                "log": self.log_rows,
                # Nothing here draws from the global numpy/python generators, but code inside
                # transformers or peft might; restoring them costs nothing.
                "numpy_rng": [numpy_rng[0], numpy_rng[1].tolist(), *numpy_rng[2:]],
                "python_rng": random.getstate(),
            })
        for old in self.checkpoints()[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old)
        self.write_log()

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first. A checkpoint is renamed into place only once written,
        so every folder with the final name is whole."""
        root = self.out_dir / CHECKPOINT_DIR
        found = [p for p in root.iterdir() if _CHECKPOINT_NAME.fullmatch(p.name)] if root.is_dir() else []
        return sorted(found, key=lambda p: int(_CHECKPOINT_NAME.fullmatch(p.name).group(1)))

    def resume(self) -> None:
        # A process killed while writing leaves its temporary files behind; they are never read.
        names = (ADAPTER_DIR, LOG_FILE, CONFIG_FILE, DONE_FILE)
        partial = [p for name in names for p in self.out_dir.glob(f".{name}.*")]
        partial += [*self.out_dir.glob(f"{CHECKPOINT_DIR}/.step_*"), *self.out_dir.glob(f"{SNAPSHOT_DIR}/.step_*")]
        for path in partial if is_main_process() else []:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        barrier()
        checkpoints = self.checkpoints()
        if not checkpoints:
            return
        newest = checkpoints[-1]
        meta = read_json(newest / "trainer_state.json")
        if meta["fingerprint"] != self.fingerprint:
            raise StaleRunError(f"{newest} belongs to a run with other settings; delete {newest.parent}")
        state = torch.load(newest / "state.pt", map_location="cpu", weights_only=True)
        with torch.no_grad():
            for name, p in self.trainable:
                p.copy_(state["adapter"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        name, keys, *rest = meta["numpy_rng"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        version, internal, gauss = meta["python_rng"]
        random.setstate((version, tuple(internal), gauss))
        self.step = meta["step"]
        self.log_rows = meta["log"]
        log.info("resumed %s training from %s (step %d of %d)", self.method, newest, self.step, self.total_steps)

    def write_log(self) -> None:
        write_csv(self.out_dir / LOG_FILE, pd.DataFrame(self.log_rows, columns=LOG_COLUMNS))

    def finish(self) -> Path:
        adapter = self.out_dir / ADAPTER_DIR
        if is_main_process():
            with atomic_path(adapter, directory=True) as tmp:
                self.model.save_pretrained(tmp)
            self.write_log()
            atomic_write_text(self.out_dir / DONE_FILE, f"{self.method} training finished after {self.step} steps\n")
        barrier()
        return adapter

    def run_record(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "config": self.config.to_dict(),
            "fingerprint": self.fingerprint,
            "prompts": len(self.prompts),
            "examples_per_epoch": len(self.items),
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "trainable_parameters": sum(p.numel() for _, p in self.trainable),
            "model": {"path": str(self.model.base_model.model.name_or_path), "dtype": str(self.base_dtype)},
            "chat": asdict(self.chat),
            "device": str(self.device),
            "torch_threads": torch.get_num_threads(),
            **environment_record(),
        }


class SoftTargetTrainer(CalibrationTrainer):
    """One answer per prompt and epoch, trained toward the trie's soft targets along its path."""

    method = "soft"

    def epoch_items(self) -> list[int]:
        return list(range(len(self.prompts)))

    def build_example(self, prompt_index: int, seed: int) -> Example:
        value_ids, steps = self.targets(self.prompts[prompt_index], self.tokenizer, self.eos_id, self.config, seed)
        return Example(self.prompt_ids[prompt_index], value_ids, steps)

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        hidden = answer_hidden(self.model, batch["input_ids"], batch["attention_mask"], batch["positions"])
        children = head_log_probs(self.model, hidden, batch["target_ids"], self.config.temperature)
        return soft_target_kl(children, batch["target_ids"], batch["target_probs"], batch["step_mask"],
                              self.config.epsilon)


class HardTargetTrainer(CalibrationTrainer):
    """`samples_per_prompt` sampled answers per prompt and epoch, trained with cross-entropy."""

    method = "hard"

    def epoch_items(self) -> list[int]:
        # Repeats of a prompt count as items of its family in the balanced order.
        return [i for i in range(len(self.prompts)) for _ in range(self.config.samples_per_prompt)]

    def build_example(self, prompt_index: int, seed: int) -> Example:
        space = self.targets(self.prompts[prompt_index], self.config)
        value = space.values[sample_index(space.probs, seed)]
        return Example(self.prompt_ids[prompt_index], self.tokenizer.encode(value, add_special_tokens=False))

    def compute_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        hidden = answer_hidden(self.model, batch["input_ids"], batch["attention_mask"], batch["positions"])
        labels = batch["labels"]
        loss = hard_target_ce(head_log_probs(self.model, hidden, labels.unsqueeze(-1)).squeeze(-1), labels)
        if self.world_size == 1:
            return loss
        # A mean over this process's tokens; DDP averages the processes' gradients. Weighted by the
        # process's share of the step's tokens, that average is the mean over every token of the step,
        # as one process computes it at world_size times the batch.
        tokens = float((batch["labels"] != -100).sum())
        return loss * (tokens * self.world_size / sum_across_processes(tokens))


def paper_output_space(spec: Any, config: TrainConfig) -> OutputSpace:
    """The paper's discretized target of one prompt (structured-sampling.md section 4)."""
    return config.target.space(spec)


def paper_trie(spec: Any, tokenizer, eos_id: int, config: TrainConfig) -> TokenTrie:
    """The token trie of the paper's target. Built per example rather than cached: each prompt
    appears once per epoch, and a trie of a 1001-atom target takes milliseconds against seconds for
    the optimizer step."""
    return config.target.trie(spec, tokenizer, eos_id=eos_id)


def paper_path(spec: Any, tokenizer, eos_id: int, config: TrainConfig,
               seed: int) -> tuple[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]]:
    """One answer drawn from the paper's target with the paper's seed, and the soft targets on its path."""
    trie = paper_trie(spec, tokenizer, eos_id, config)
    atom = sample_index(trie.probs, seed)
    return trie.sequence(atom), trie.path_targets(atom)


register_method("soft", SoftTargetTrainer, paper_path,
                style=Style(OKABE_ITO["blue"], "s", (0, (10, 2)), "//"), epochs=3, target=SOFT_TARGET)
register_method("hard", HardTargetTrainer, paper_output_space,
                style=Style(OKABE_ITO["vermillion"], "^", "--", "\\\\"), epochs=2, target=HARD_TARGET)


def train(method: str, prompts: Sequence[Any], model_dir: str | os.PathLike, out_dir: str | os.PathLike,
          config: TrainConfig | Mapping[str, Any], device: str = "cpu", threads: int | None = None, *,
          dtype: str = "auto", chat: ChatOptions | None = None, force: bool = False,
          progress: bool = True, tensorboard_dir: str | os.PathLike | None = None) -> Path:
    """Train one adapter into `out_dir` and return its folder (see the module docstring)."""
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict({"method": method, **config})
    if config.method != method:
        raise ValueError(f"method {method!r} does not match the config's method {config.method!r}")
    if threads:
        use_threads(threads)
    out_dir = Path(out_dir)
    # Check the run directory before loading the weights, which can take minutes for large models.
    tokenizer = load_tokenizer(model_dir)
    torch_dtype = resolve_dtype(dtype, device)
    fingerprint = run_fingerprint(config, prompts, prompt_token_ids(tokenizer, prompts, chat),
                                  AutoConfig.from_pretrained(str(model_dir)), torch_dtype)
    check_out_dir(out_dir, fingerprint, force)
    if tensorboard_dir is not None:
        tensorboard_writer()  # fail before the weights load, not after
    start = time.perf_counter()
    model = load_model(model_dir, dtype, device)
    log.info("loaded %s (%s on %s) in %.1f s", model_dir, torch_dtype, device, time.perf_counter() - start)
    trainer = get_method(method).trainer(model, tokenizer, prompts, config, out_dir, chat=chat, progress=progress,
                                         tensorboard_dir=tensorboard_dir)
    return trainer.train()


def train_from_workflow(*, model_record: str, prompts_path: str, settings: Mapping[str, Any],
                        checkpoint_dir: str, adapter_dir: str, log_csv: str, record_path: str,
                        threads: int, device: str | None = None, snapshots_dir: str | None = None,
                        tensorboard_dir: str | None = None) -> None:
    """The `train_adapter` rule: train in `checkpoint_dir`, then copy the results to the rule's outputs.

    Training lives outside the rule's outputs so that Snakemake's cleanup of a failed job keeps its
    checkpoints. A finished run of the same settings is exported again instead of retrained; a run
    of other settings is replaced, and so is a finished run that lacks snapshots the settings ask for
    (`snapshots`; they are exported to `snapshots_dir`).
    """
    record = read_json(model_record)
    config = TrainConfig.from_dict(settings)
    kwargs = dict(
        method=config.method, prompts=read_specs(prompts_path), model_dir=record["path"],
        out_dir=checkpoint_dir, config=config,
        device=device or ("cuda" if torch.cuda.is_available() else "cpu"), threads=threads,
        dtype=record["dtype"], chat=ChatOptions(**record["chat"]), tensorboard_dir=tensorboard_dir,
    )
    run = Path(checkpoint_dir)
    try:
        train(**kwargs)
    except TrainingAlreadyDone:
        log.info("%s already holds this finished run", checkpoint_dir)
    except StaleRunError as error:
        log.warning("%s; starting over", error)
        train(**kwargs, force=True)
    # The snapshot count is run control, outside the fingerprint: a run found finished, or resumed
    # after the count changed, can lack snapshots that the settings now ask for.
    missing = missing_snapshots(run, config.snapshots)
    if missing:
        log.warning("%s has no snapshots of steps %s; training again from scratch", checkpoint_dir, missing)
        train(**kwargs, force=True)

    if not is_main_process():
        return
    start = time.perf_counter()
    if snapshots_dir is not None:
        export_snapshots(run, snapshots_dir, config.snapshots)
    with atomic_path(adapter_dir, directory=True) as tmp:
        shutil.copytree(run / ADAPTER_DIR, tmp, dirs_exist_ok=True)
    for name, target in ((LOG_FILE, log_csv), (CONFIG_FILE, record_path)):
        with atomic_path(target) as tmp:
            shutil.copyfile(run / name, tmp)
    log.info("exported %s to %s, %s and %s (%.1f s)", run, adapter_dir, log_csv, record_path,
             time.perf_counter() - start)
