"""One tree forward for base and its logit transforms against one per variant: time of the exact part.

For the paper's Gaussian(mu=3.5, sigma=3) (the d=5, 1001-atom trie, about 4.2k nodes, plus the digit
intervals of width 1e-2: about 6,000 decoder positions), it times the exact metrics of the workflow's
fidelity job (`cft.evaluation.fidelity.exact_metrics`) for base, a global temperature and two ATS heads

* per variant: each variant loaded as its own model with a fresh `PromptScorer`, as four
  `evaluate_fidelity` jobs run them;
* shared: one `PromptScorer` on the base model and one view of it per head (`PromptScorer.with_heads`:
  one decoder forward and one base-head matmul for all four), as `evaluate_fidelity_transforms` runs them;

alternating the two paths `--repeats` times, so that a busy neighbour slows both alike, and checks
that both give the same metrics to the bit. Each timing is reported as wall time and as this
process's CPU time; with `--threads 1` the CPU time hardly depends on the neighbours. The transforms' values do not change the cost: the
temperature is fixed and the ATS heads are randomly initialized (not the identity). Sampling is not
timed: it stays per variant in both paths.

    .venv/bin/python -m bench.bench_tree_share [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.common import add_model_arguments, print_header, synchronize
from cft.baselines.ats import ATSHead, save_ats_head
from cft.evaluation.exact import PromptScorer
from cft.evaluation.fidelity import FidelitySettings, exact_metrics
from cft.io import write_json
from cft.models import encode_prompt, format_prompt, load_model, load_tokenizer, resolve_model_dir
from cft.prompts import PromptSpec
from cft.variants import load_variant, variant_head, variant_kind

PROMPT = ("gaussian", {"mu": 3.5, "sigma": 3.0})
VARIANTS = ("base", "temperature", "ats_smooth", "ats_kl")


def transform_files(folder: Path, hidden_size: int) -> dict[str, dict[str, Path]]:
    """Each variant's input file: a temperature of 1.3 and two ATS heads with random output layers."""
    write_json(folder / "temperature.json", {"temperature": 1.3})
    files = {"base": {}, "temperature": {"temperature": folder / "temperature.json"}}
    for seed, name in enumerate(("ats_smooth", "ats_kl")):
        torch.manual_seed(seed)
        head = ATSHead(hidden_size)
        torch.nn.init.normal_(head.net[-1].weight, std=0.05)
        save_ats_head(head, folder / f"{name}.pt", {})
        files[name] = {"ats_head": folder / f"{name}.pt"}
    return files


def timed(device: str, work):
    """(wall seconds, CPU seconds of this process, result) of ``work()``. With one thread the CPU
    time is what the work costs; the wall time also holds the waits a busy machine imposes."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def per_variant(models: dict, tokenizer, spec: PromptSpec, prompt_ids) -> dict:
    """Each variant on its own model and scorer, as separate `evaluate_fidelity` jobs."""
    return {name: exact_metrics(PromptScorer(model, prompt_ids), tokenizer, spec, FidelitySettings(num_samples=0))[0]
            for name, model in models.items()}


def shared(base, heads: dict, tokenizer, spec: PromptSpec, prompt_ids) -> dict:
    """One scorer on the base model, one view per head, as `evaluate_fidelity_transforms`."""
    scorers = PromptScorer(base, prompt_ids).with_heads(list(heads.values()))
    return {name: exact_metrics(scorer, tokenizer, spec, FidelitySettings(num_samples=0))[0]
            for name, scorer in zip(heads, scorers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--repeats", type=int, default=3, help="timings of each path (alternating)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print_header("exact metrics of base + temperature + 2 ATS heads: shared tree vs per variant", args.device)
    model_dir = resolve_model_dir(args.model, args.cache_dir)
    record = {"path": str(model_dir), "dtype": args.dtype}
    tokenizer = load_tokenizer(model_dir)
    spec = PromptSpec.from_params(*PROMPT)
    prompt_ids = encode_prompt(tokenizer, format_prompt(tokenizer, spec.prompt))
    base = load_model(model_dir, args.dtype, args.device)
    with tempfile.TemporaryDirectory() as scratch:
        files = transform_files(Path(scratch), base.config.get_text_config(decoder=True).hidden_size)
        models = {name: load_variant(record, None, args.device, files=files[name], variant=name) for name in VARIANTS}
        heads = {name: variant_head(base, variant_kind(name), files[name]) for name in VARIANTS}

    runs = []
    for _ in range(args.repeats):
        separate = timed(args.device, lambda: per_variant(models, tokenizer, spec, prompt_ids))
        together = timed(args.device, lambda: shared(base, heads, tokenizer, spec, prompt_ids))
        if json.dumps(separate[2], sort_keys=True) != json.dumps(together[2], sort_keys=True):
            raise SystemExit("the shared tree gave other exact metrics than the separate runs")
        runs.append({"per_variant_wall_s": round(separate[0], 1), "per_variant_cpu_s": round(separate[1], 1),
                     "shared_wall_s": round(together[0], 1), "shared_cpu_s": round(together[1], 1),
                     "load_average_1min": round(os.getloadavg()[0], 1)})
        print(json.dumps(runs[-1]), flush=True)
    result = {
        "prompt": spec.distribution_id,
        "variants": list(VARIANTS),
        "runs": runs,
        "cpu_speedup_median": round(statistics.median(r["per_variant_cpu_s"] / r["shared_cpu_s"] for r in runs), 2),
        "wall_speedup_median": round(statistics.median(r["per_variant_wall_s"] / r["shared_wall_s"] for r in runs), 2),
        "identical_metrics": True,
    }
    print(json.dumps(result), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
