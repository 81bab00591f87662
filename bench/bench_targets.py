"""Time and memory of building the training targets of all 1988 train prompts.

Reference point (structured-sampling.md, measurements.md): the paper's code builds the d=5, 1001-bin
output spaces and character-level tries of the train split in about 135 s and 2.8 GB (1.65 M atoms,
6.6 M trie nodes); at 16384 bins it needs about 24 minutes and 35 GB.

Each phase runs in a fresh process so that its peak memory is its own; the peak is the growth of the
process's maximum resident set over what the imports already hold. Times are medians over repeats;
the CPU time beside the wall time is less sensitive to other jobs on a shared machine.

Goal (issue #9): all train output spaces and tries with the model's tokenizer well under the
paper's ~2 minutes; "well under" is taken as at most 60 s.

    .venv/bin/python -m bench.bench_targets [--repeats 3] [--no-model] [--model ...]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from bench.common import Goal, add_model_arguments, print_goals, print_header

PAPER_SECONDS = 135.0
PAPER_PEAK_MB = 2800.0
MAX_SECONDS = 60.0


class CharTokenizer:
    """One id per character, eos distinct: the paper's reference tokenizer for this timing."""

    eos_token_id = 0
    ids = {c: i + 1 for i, c in enumerate("0123456789-.")}

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[self.ids[c] for c in text] for text in texts]}


def make_tokenizer(name: str):
    """The paper's character tokenizer for `char`, else the tokenizer of the model folder `name`."""
    if name == "char":
        return CharTokenizer()
    from cft.models import load_tokenizer

    return load_tokenizer(name)


def train_specs():
    from cft.grids import PAPER_HELDOUT_FAMILIES, PAPER_TRAIN_FAMILIES, build_splits

    return build_splits(PAPER_TRAIN_FAMILIES, PAPER_HELDOUT_FAMILIES, "full_grid")["train"]


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_phase(max_bins: int, tokenizer_name: str | None, keep: bool, limit: int | None = None) -> dict:
    """Build every train output space (and trie when a tokenizer is named) in this process."""
    from cft.targets import TargetSettings
    from cft.trie import TokenTrie

    specs = train_specs()[:limit]
    tokenizer = make_tokenizer(tokenizer_name) if tokenizer_name else None
    rss_before = max_rss_mb()

    kept, atoms, nodes = [], 0, 0
    space_seconds = trie_seconds = 0.0
    cpu_start = time.process_time()
    for spec in specs:
        start = time.perf_counter()
        space = TargetSettings(max_bins=max_bins).space(spec)
        middle = time.perf_counter()
        trie = TokenTrie.from_output_space(space, tokenizer) if tokenizer is not None else None
        space_seconds += middle - start
        trie_seconds += time.perf_counter() - middle
        atoms += len(space.values)
        nodes += trie.n_nodes if trie is not None else 0
        if keep:
            kept.append((space, trie))
    return {
        "prompts": len(specs),
        "atoms": atoms,
        "nodes": nodes,
        "space_seconds": space_seconds,
        "trie_seconds": trie_seconds,
        "cpu_seconds": time.process_time() - cpu_start,
        "peak_mb": max_rss_mb() - rss_before,
    }


def measure(label: str, repeats: int, max_bins: int, tokenizer_name: str | None, keep: bool,
            limit: int | None = None) -> float:
    """Print one phase's line and return its median seconds."""
    runs = []
    for _ in range(repeats):
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            runs.append(pool.submit(run_phase, max_bins, tokenizer_name, keep, limit).result())
    total = statistics.median(r["space_seconds"] + r["trie_seconds"] for r in runs)
    cpu = statistics.median(r["cpu_seconds"] for r in runs)
    peak = max(r["peak_mb"] for r in runs)
    line = (
        f"{label:<42} {runs[0]['prompts']:>5} prompts {total:7.2f} s (cpu {cpu:6.2f} s)  peak {peak:6.0f} MB"
        f"  atoms {runs[0]['atoms']:>10,}  (spaces {statistics.median(r['space_seconds'] for r in runs):.2f} s"
    )
    if tokenizer_name is None:
        print(line + ")", flush=True)
        return total
    line += f", tries {statistics.median(r['trie_seconds'] for r in runs):.2f} s)  nodes {runs[0]['nodes']:>10,}"
    if limit is None:  # the paper's figures are for the whole train split
        line += f"  paper/ours: time x{PAPER_SECONDS / total:.1f}, memory x{PAPER_PEAK_MB / max(peak, 1.0):.1f}"
    print(line, flush=True)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.add_argument("--repeats", type=int, default=3, help="fresh-process runs per phase (median time)")
    parser.add_argument("--no-model", action="store_true", help="skip the model's tokenizer (char tries only)")
    parser.add_argument("--limit", type=int, help="only the first N train prompts (smoke runs; no goal verdict)")
    args = parser.parse_args()

    print_header("target construction: all train output spaces and tries")
    print(f"paper's code: {PAPER_SECONDS:.0f} s, {PAPER_PEAK_MB:.0f} MB for d=5, 1001 bins, char tries")
    seconds = measure("1001 bins, spaces + char tries, all kept", args.repeats, 1001, "char", True, args.limit)
    if not args.no_model:
        from cft.models import resolve_model_dir

        model_dir = str(resolve_model_dir(args.model, args.cache_dir))
        seconds = measure("1001 bins, spaces + model tries, all kept", args.repeats, 1001, model_dir, True, args.limit)
    measure("16384 bins, spaces only, each dropped", args.repeats, 16384, None, False, args.limit)
    measure("16384 bins, spaces only, all kept", 1, 16384, None, True, args.limit)
    if args.limit is not None:
        print(f"smoke run on {args.limit} prompts: no verdict on the {MAX_SECONDS:g}-second goal")
        return
    tokenizer = "char" if args.no_model else "model"
    print_goals([Goal(f"all train spaces + {tokenizer} tries", seconds, MAX_SECONDS, "s")])


if __name__ == "__main__":
    main()
