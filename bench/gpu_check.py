"""The CUDA paths against the CPU, on one GPU in a few minutes (`bench/gpu_check.sh` runs it there).

Nothing of this repository had run on CUDA before this check. For the tests' tiny Llama
(tests/tiny_models.py) and SmolLM2-135M-Instruct (the packaged default model), it runs every step
twice: on the checked device in bf16 (what `dtype: auto` loads on a GPU) and on the CPU in fp32 (the
path the tests cover):

* a few soft and hard training steps of the trainers themselves (LoRA weights fp32 over the bf16
  base, AdamW, the paper's batch layout), from the same initial adapter, on the same batches, with
  LoRA dropout off so that neither device draws anything; compared: every step's loss;
* exact scoring of two prompts (a binomial, and a Gaussian on the paper's 1001-atom soft-target
  trie) by `PromptScorer`'s tree-packed forward; compared: the total variation between the two
  devices' probabilities of each node's children, weighted by the node's target mass, and the exact
  trie KL;
* sampled generation with explicit seeds (`HFSampler`, 16 seeds, up to 12 tokens each): twice on the device,
  which must give the same texts, and once on the CPU. The uniforms of the draws come from CPU
  generators on either device (`cft.evaluation.sampling.draw_tokens`), so a draw made after the same
  text picks differently only where the uniform falls between the two devices' CDFs: the share of
  such draws estimates the total variation between their next-token distributions. Compared: that
  share, counting characters as draws (a character is a token of the tiny model's tokenizer; a
  SmolLM2 token holds one to a few).

Every comparison prints both devices' times and results and whether they agree within bf16
tolerance; the last line says whether all did. Exit status 0 when all agree, 1 when one does not, 2
when the device is not available (one line on stderr, nothing run). `--device cpu` is the smoke
mode: the same comparisons with CPU bf16 as the checked side (tests/test_bench.py runs it on the tiny
model).

    bench/gpu_check.sh [--wheels DIR]                             # on the GPU machine
    .venv/bin/python -m bench.gpu_check --device cpu --models tiny  # smoke mode
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import DEFAULT_MODEL, print_header, synchronize
from cft.evaluation.exact import PromptScorer, exact_trie_kl, score_trie
from cft.evaluation.sampling import HFSampler, SamplingParams
from cft.models import encode_prompt, format_prompt, load_model, load_tokenizer, resolve_model_dir
from cft.targets import SOFT_TARGET
from cft.training import TrainConfig
from cft.training.data import epoch_batches
from cft.training.methods import get_method
from cft.trie import TokenTrie

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' tiny model is a module of tests/, not of the package
from tiny_models import TRAIN_PROMPTS, save_tiny_checkpoint  # noqa: E402

TINY = "tiny"
REFERENCE_DEVICE = "cpu"
REFERENCE_DTYPE = "float32"
BATCH_SIZE = 4
# Above the paper's 2e-4, so that the steps after the first run on weights the updates have moved.
LEARNING_RATE = 1e-3
SCORED_PROMPTS = (TRAIN_PROMPTS[1], TRAIN_PROMPTS[0])  # Binomial(5, 0.5): 6 atoms; Gaussian(0, 1): 1001
SAMPLING = SamplingParams(num_samples=16, max_new_tokens=12, seed=11)

# bf16 keeps 8 significant bits (a relative spacing of 2^-8 = 0.4%), and a loss or a probability comes
# out of a dozen layers of rounded sums. The tolerances are two to four times what CPU bf16 gave
# against CPU fp32 on both models (bench/RESULTS.md): losses up to 2.1% apart (the later steps also
# carry the updates' drift), trie KLs up to 2.1%, a mass-weighted total variation of the children's
# probabilities up to 0.005, which a broken path would move by tenths.
LOSS_RTOL = 0.05
KL_RTOL = 0.05
NODE_TV_ATOL = 0.02
# bf16 against fp32 on the CPU: 7% of the tiny model's draws and 5% of SmolLM2's (bench/RESULTS.md);
# wrong logits would put the share near the distributions' whole non-overlapping mass.
MAX_DIFFERING_DRAWS = 0.15


@dataclass(frozen=True)
class Comparison:
    """One result computed on both devices: their times and values, and how far apart they are."""

    model: str
    step: str
    seconds: float
    reference_seconds: float
    value: str
    reference_value: str
    measure: str
    error: float
    tolerance: float
    reference: str = REFERENCE_DEVICE  # what the checked side is compared with

    @property
    def agrees(self) -> bool:
        return self.error <= self.tolerance

    def line(self, device: str) -> str:
        verdict = "ok" if self.agrees else "DISAGREE"
        return (f"{self.model:<22} {self.step:<30} | {device} {self.seconds:7.3f} s {self.value} | {self.reference} "
                f"{self.reference_seconds:7.3f} s {self.reference_value} | {self.measure} {self.error:.2e} "
                f"<= {self.tolerance:.2g} {verdict}")


def relative(value: float, reference: float) -> float:
    return abs(value - reference) / max(abs(reference), 1e-12)


def timed(device: str, work: Callable[[], Any]) -> tuple[Any, float]:
    """`work()` and its seconds, the device's queued kernels included."""
    synchronize(device)
    start = time.perf_counter()
    result = work()
    synchronize(device)
    return result, time.perf_counter() - start


def model_folder(name: str, cache_dir: str, work_dir: Path) -> Path:
    if name == TINY:
        return save_tiny_checkpoint(work_dir / TINY)
    return resolve_model_dir(name, cache_dir)


# ---- training --------------------------------------------------------------------------------------


def make_trainer(model_dir: Path, method: str, device: str, dtype: str):
    config = TrainConfig(method=method, batch_size=BATCH_SIZE, lr=LEARNING_RATE, warmup_ratio=0.0,
                         lora_dropout=0.0, samples_per_prompt=2, checkpoint_every=10_000)
    # The trainer writes to its folder only in `train()`; these steps call `training_step` alone.
    with tempfile.TemporaryDirectory() as out:
        return get_method(method).trainer(load_model(model_dir, dtype, device), load_tokenizer(model_dir),
                                          TRAIN_PROMPTS, config, out, progress=False)


def step_batches(trainer, steps: int) -> list[tuple[int, list[tuple[int, int]]]]:
    """The first `steps` (epoch, batch) of the run, across epochs where one epoch has fewer."""
    batches: list[tuple[int, list[tuple[int, int]]]] = []
    epoch = 0
    while len(batches) < steps:
        batches += [(epoch, batch) for batch in epoch_batches(trainer.family_ids, seed=trainer.config.seed,
                                                              epoch=epoch, batch_size=BATCH_SIZE)]
        epoch += 1
    return batches[:steps]


def training_comparisons(name: str, model_dir: Path, method: str, device: str, dtype: str,
                         steps: int) -> list[Comparison]:
    reference, reference_seconds = timed(REFERENCE_DEVICE,
                                         lambda: make_trainer(model_dir, method, REFERENCE_DEVICE, REFERENCE_DTYPE))
    checked, seconds = timed(device, lambda: make_trainer(model_dir, method, device, dtype))
    # Both start from the CPU's adapter, whatever generator each device's LoRA initialization used.
    with torch.no_grad():
        for (_, p), (_, q) in zip(checked.trainable, reference.trainable, strict=True):
            p.copy_(q)
    lora_dtypes = sorted({str(p.dtype).removeprefix("torch.") for _, p in checked.trainable})
    found = [Comparison(name, f"{method} trainer (load, LoRA)", seconds, reference_seconds,
                        f"LoRA {'/'.join(lora_dtypes)} over {str(checked.base_dtype).removeprefix('torch.')}",
                        "LoRA float32", "LoRA not float32", float(lora_dtypes != ["float32"]), 0.0)]
    for index, (epoch, batch) in enumerate(step_batches(reference, steps), start=1):
        row, seconds = timed(device, lambda: checked.training_step(batch, epoch))
        reference_row, reference_seconds = timed(REFERENCE_DEVICE, lambda: reference.training_step(batch, epoch))
        found.append(Comparison(name, f"{method} train step {index}", seconds, reference_seconds,
                                f"loss {row['loss']:.5f}", f"{reference_row['loss']:.5f}", "rel",
                                relative(row["loss"], reference_row["loss"]), LOSS_RTOL))
    return found


# ---- exact scoring and sampling ---------------------------------------------------------------------


def score_prompt(model, tokenizer, spec) -> tuple[TokenTrie, np.ndarray, float]:
    """The prompt's soft-target trie, the model's probability of each of its edges, and the exact trie KL."""
    trie = SOFT_TARGET.trie(spec, tokenizer, eos_id=tokenizer.eos_token_id)
    scorer = PromptScorer(model, encode_prompt(tokenizer, format_prompt(tokenizer, spec.prompt)))
    scores = score_trie(scorer, trie)
    return trie, np.exp(scores.edge_log_prob), exact_trie_kl(scores).value


def node_total_variation(trie: TokenTrie, probs: np.ndarray, reference_probs: np.ndarray) -> float:
    """Half the summed |difference| of each node's children's probabilities, averaged over the nodes
    with their target mass as weights: the nodes a target answer passes count, not the worst of the
    thousands of deep nodes that hardly any answer reaches, where bf16 moves a probability by 0.1."""
    per_node = 0.5 * np.add.reduceat(np.abs(probs - reference_probs), trie.child_ptr[:-1])
    return float(trie.node_mass @ per_node / trie.node_mass.sum())


def differing_draws(texts: list[str], reference_texts: list[str]) -> tuple[int, int]:
    """(draws that picked differently, draws made after the same text on both sides), a character
    standing for a draw: each pair of texts runs alike up to its first differing character, which is
    the one differing draw; a pair alike to its end made one more draw alike (the end)."""
    differing = alike = 0
    for text, reference in zip(texts, reference_texts, strict=True):
        if text == reference:
            alike += len(text) + 1
        else:
            differing += 1
            alike += next((i for i, (a, b) in enumerate(zip(text, reference)) if a != b),
                          min(len(text), len(reference)))
    return differing, differing + alike


def sample_texts(model, tokenizer) -> list[str]:
    sampler = HFSampler(model, tokenizer, batch_size=8)
    return sampler.sample(format_prompt(tokenizer, TRAIN_PROMPTS[0].prompt), SAMPLING, prompt_index=0)


def evaluation_comparisons(name: str, model_dir: Path, device: str, dtype: str) -> list[Comparison]:
    tokenizer = load_tokenizer(model_dir)
    checked = load_model(model_dir, dtype, device)
    reference = load_model(model_dir, REFERENCE_DTYPE, REFERENCE_DEVICE)
    found = []
    for spec in SCORED_PROMPTS:
        (trie, probs, kl), seconds = timed(device, lambda: score_prompt(checked, tokenizer, spec))
        (_, reference_probs, reference_kl), reference_seconds = timed(
            REFERENCE_DEVICE, lambda: score_prompt(reference, tokenizer, spec))
        label = f"score {spec.family_id} ({trie.n_nodes} nodes)"
        found.append(Comparison(name, label, seconds, reference_seconds, "children's probabilities", "the same",
                                "mass-weighted TV", node_total_variation(trie, probs, reference_probs),
                                NODE_TV_ATOL))
        found.append(Comparison(name, f"{label} KL", seconds, reference_seconds, f"{kl:.5f}",
                                f"{reference_kl:.5f}", "rel", relative(kl, reference_kl), KL_RTOL))
    texts, seconds = timed(device, lambda: sample_texts(checked, tokenizer))
    again, again_seconds = timed(device, lambda: sample_texts(checked, tokenizer))
    reference_texts, reference_seconds = timed(REFERENCE_DEVICE, lambda: sample_texts(reference, tokenizer))
    repeated = sum(a == b for a, b in zip(texts, again, strict=True))
    found.append(Comparison(name, f"sample {len(texts)} seeds again", again_seconds, seconds,
                            f"{repeated} of {len(texts)} texts as before", "the same seeds", "share differing",
                            1 - repeated / len(texts), 0.0, reference=f"{device} before"))
    differing, draws = differing_draws(texts, reference_texts)
    same = sum(a == b for a, b in zip(texts, reference_texts, strict=True))
    found.append(Comparison(name, f"sample {len(texts)} seeds", seconds, reference_seconds,
                            f"{same} of {len(texts)} texts as on {REFERENCE_DEVICE}", "the same seeds",
                            f"{differing} of {draws} draws differing", differing / draws, MAX_DIFFERING_DRAWS))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the checked device: cuda, cuda:1, ...; cpu = smoke mode")
    parser.add_argument("--dtype", default="bfloat16", help="the checked side's dtype (the CPU side is float32)")
    parser.add_argument("--models", nargs="+", default=[TINY, DEFAULT_MODEL],
                        help=f"{TINY} (the tests' model), packaged:NAME, a local folder or a hub id")
    parser.add_argument("--steps", type=int, default=3, help="training steps per method")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--cache-dir", default="resources/models", help="where packaged models are converted")
    args = parser.parse_args(argv)

    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        print(f"gpu_check: CUDA is not available to torch {torch.__version__} ({build}); nothing was checked",
              file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    print_header(f"GPU check: {args.device} {args.dtype} against {REFERENCE_DEVICE} {REFERENCE_DTYPE}", args.device)
    start = time.perf_counter()
    comparisons: list[Comparison] = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.models:
            model_dir, seconds = timed(REFERENCE_DEVICE, lambda: model_folder(name, args.cache_dir, Path(work)))
            print(f"{name}: {model_dir} ready in {seconds:.1f} s", flush=True)
            label = name.removeprefix("packaged:")
            for step in (lambda: training_comparisons(label, model_dir, "soft", args.device, args.dtype, args.steps),
                         lambda: training_comparisons(label, model_dir, "hard", args.device, args.dtype, args.steps),
                         lambda: evaluation_comparisons(label, model_dir, args.device, args.dtype)):
                for comparison in step():
                    print(comparison.line(args.device), flush=True)
                    comparisons.append(comparison)
    disagreeing = [c for c in comparisons if not c.agrees]
    verdict = "passed" if not disagreeing else f"FAILED ({len(disagreeing)} disagree)"
    print(f"GPU CHECK {verdict}: {len(comparisons) - len(disagreeing)} of {len(comparisons)} comparisons within "
          f"tolerance, {time.perf_counter() - start:.0f} s", flush=True)
    return 1 if disagreeing else 0


if __name__ == "__main__":
    sys.exit(main())
