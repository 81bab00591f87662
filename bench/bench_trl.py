"""Would TRL's SFTTrainer do for the hard-target method? Its loss and step time against ours.

The hard-target method is supervised fine-tuning on sampled completions, which `trl.SFTTrainer`
does. This script feeds both trainers the same examples (built by `HardTargetTrainer` with its
per-sample seeds: prompt token ids, then the sampled value and eos as the completion) and reports

* the loss of the first batch, before any update, by our `compute_loss` and by SFTTrainer's
  `compute_loss` on its own collator's batch (completion-only loss): they should agree;
* the median seconds per optimizer step of each, same model, LoRA (r16/alpha32 on q/k/v/o, fp32),
  AdamW, cosine schedule, batch 8 (the first step of each is warm-up and left out). Ours is timed
  before and after TRL, to bound the drift of a shared machine.

Needs `trl` and `datasets` (not dependencies of cft: `pip install trl`).

    .venv/bin/python -m bench.bench_trl [--steps 6] [--model ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from bench.bench_training import select_prompts
from bench.common import add_model_arguments, print_header

BATCH_SIZE = 8


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per trainer, after one warm-up")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print_header(args.device)

    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from cft.models import load_model, load_tokenizer, resolve_model_dir
    from cft.training import TrainConfig
    from cft.training.data import epoch_batches
    from cft.training.methods import get_method

    model_dir = resolve_model_dir(args.model, args.cache_dir)
    tokenizer = load_tokenizer(model_dir)
    config = TrainConfig(method="hard", batch_size=BATCH_SIZE, lr=5e-4, epochs=1, samples_per_prompt=5,
                         max_steps=2 * (args.steps + 1) + 1)
    with tempfile.TemporaryDirectory() as out:
        ours = get_method("hard").trainer(load_model(model_dir, args.dtype, args.device), tokenizer,
                                          select_prompts(240), config, out, progress=False)
        batches = epoch_batches(ours.family_ids, seed=config.seed, epoch=0, batch_size=BATCH_SIZE)
        examples = [[ours.build_example(ours.items[item], seed) for item, seed in batch] for batch in batches]
        ours_loss = ours.compute_loss({k: v.to(ours.device) for k, v in ours.collate(examples[0]).items()}).item()

        def time_ours(first: int) -> list[float]:
            seconds = []
            for b in range(first, first + args.steps + 1):
                start = time.perf_counter()
                ours.training_step(batches[b], 0)
                seconds.append(time.perf_counter() - start)
            return seconds[1:]

        ours_before = time_ours(0)

        rows = [{"input_ids": list(e.prompt_ids) + list(e.value_ids) + [tokenizer.eos_token_id],
                 "completion_mask": [0] * len(e.prompt_ids) + [1] * (len(e.value_ids) + 1)}
                for batch in examples for e in batch]
        trl_config = SFTConfig(output_dir=f"{out}/trl", per_device_train_batch_size=BATCH_SIZE,
                               max_steps=args.steps + 1, learning_rate=config.lr, weight_decay=config.weight_decay,
                               lr_scheduler_type="cosine", warmup_ratio=config.warmup_ratio, seed=config.seed,
                               completion_only_loss=True, save_strategy="no", report_to=[], logging_steps=1,
                               use_cpu=args.device == "cpu", dataloader_num_workers=0, max_length=None,
                               disable_tqdm=True)
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.lora_target_modules), bias="none", task_type="CAUSAL_LM")
        step_seconds: list[float] = []

        class StepTimer(TrainerCallback):
            def on_step_begin(self, *_, **__):
                self.start = time.perf_counter()

            def on_step_end(self, *_, **__):
                step_seconds.append(time.perf_counter() - self.start)

        trl = SFTTrainer(model=load_model(model_dir, args.dtype, args.device), args=trl_config,
                         train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=lora,
                         callbacks=[StepTimer()])
        first = trl.data_collator(trl.train_dataset.select(range(BATCH_SIZE)).to_list())
        with torch.no_grad():
            trl_loss = trl.compute_loss(trl.model, {k: v.to(trl.model.device) for k, v in first.items()}).item()
        lora_dtypes = sorted({str(p.dtype) for p in trl.model.parameters() if p.requires_grad})
        trl.train()
        ours_after = time_ours(args.steps + 1)

    before, after, trl_median = (statistics.median(s) for s in (ours_before, ours_after, step_seconds[1:]))
    print(f"first-batch loss: ours {ours_loss:.6f}, SFTTrainer {trl_loss:.6f} "
          f"(difference {abs(ours_loss - trl_loss):.2e})")
    print(f"SFTTrainer LoRA parameter dtypes: {', '.join(lora_dtypes)}")
    print(f"s per step (median of {args.steps}): ours {before:.3f} before, {after:.3f} after; "
          f"SFTTrainer {trl_median:.3f}: {trl_median / min(before, after):.2f}x to {trl_median / max(before, after):.2f}x ours")


if __name__ == "__main__":
    main()
