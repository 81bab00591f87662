"""Would TRL's SFTTrainer do for the hard-target method? Its loss and step time against ours.

The hard-target method is supervised fine-tuning on sampled completions, which `trl.SFTTrainer`
does. This script feeds both trainers the same examples (built by `HardTargetTrainer` with its
per-sample seeds: prompt token ids, then the sampled value and eos as the completion) and reports

* the loss of the first batch, before any update, by our `compute_loss` and by SFTTrainer's
  `compute_loss` on its own collator's batch (completion-only loss): they should agree;
* the seconds per optimizer step of each, same model, LoRA (r16/alpha32 on q/k/v/o, fp32), AdamW,
  cosine schedule, batch 8, no gradient clipping, timed in interleaved pairs on the same batches so
  that the load of a shared machine weighs on both alike (the first pair is warm-up and left out).

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
        # TRL trains on the batches that ours trains on first.
        examples = [[ours.build_example(ours.items[item], seed) for item, seed in batch]
                    for batch in batches[:args.steps + 1]]
        ours_loss = ours.compute_loss({k: v.to(ours.device) for k, v in ours.collate(examples[0]).items()}).item()

        rows = [{"input_ids": list(e.prompt_ids) + list(e.value_ids) + [tokenizer.eos_token_id],
                 "completion_mask": [0] * len(e.prompt_ids) + [1] * (len(e.value_ids) + 1)}
                for batch in examples for e in batch]
        # max_grad_norm=0: no gradient clipping, as in our trainer (SFTTrainer's default clips at 1.0).
        trl_config = SFTConfig(output_dir=f"{out}/trl", per_device_train_batch_size=BATCH_SIZE,
                               max_steps=args.steps + 1, learning_rate=config.lr, weight_decay=config.weight_decay,
                               lr_scheduler_type="cosine", warmup_steps=ours.warmup_steps, seed=config.seed,
                               completion_only_loss=True, save_strategy="no", report_to=[], max_grad_norm=0.0,
                               use_cpu=args.device == "cpu", dataloader_num_workers=0, max_length=None,
                               disable_tqdm=True)
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.lora_target_modules), bias="none", task_type="CAUSAL_LM")
        trl = SFTTrainer(model=load_model(model_dir, args.dtype, args.device), args=trl_config,
                         train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=lora)
        trl_batches = [trl.data_collator(trl.train_dataset.select(range(b * BATCH_SIZE, (b + 1) * BATCH_SIZE)).to_list())
                       for b in range(args.steps + 1)]
        with torch.no_grad():
            trl_loss = trl.compute_loss(trl.model, {k: v.to(trl.model.device) for k, v in trl_batches[0].items()}).item()
        lora_dtypes = sorted({str(p.dtype) for p in trl.model.parameters() if p.requires_grad})
        trl.create_optimizer_and_scheduler(num_training_steps=args.steps + 1)
        trl.model.train()
        trl.current_gradient_accumulation_steps = 1  # set by Trainer.train, which this loop stands in for

        def trl_step(inputs) -> None:
            """One optimizer step as Trainer.train's inner loop takes it (forward, loss and its metrics,
            backward, AdamW, schedule)."""
            trl.training_step(trl.model, {k: v.to(trl.model.device) for k, v in inputs.items()})
            trl.optimizer.step()
            trl.lr_scheduler.step()
            trl.model.zero_grad()

        # Interleaved, the same batch for both, so that a shared machine's load drifts over both alike.
        ours_seconds, trl_seconds = [], []
        for b in range(args.steps + 1):
            start = time.perf_counter()
            ours.training_step(batches[b], 0)
            ours_seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
            trl_step(trl_batches[b])
            trl_seconds.append(time.perf_counter() - start)

    ratios = [b / a for a, b in zip(ours_seconds[1:], trl_seconds[1:])]
    print(f"first-batch loss: ours {ours_loss:.6f}, SFTTrainer {trl_loss:.6f} "
          f"(difference {abs(ours_loss - trl_loss):.2e})")
    print(f"SFTTrainer LoRA parameter dtypes: {', '.join(lora_dtypes)}")
    print(f"s per step, median of {args.steps} interleaved pairs: ours {statistics.median(ours_seconds[1:]):.3f}, "
          f"SFTTrainer {statistics.median(trl_seconds[1:]):.3f}; SFTTrainer / ours per pair: median "
          f"{statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
