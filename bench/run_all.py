"""Run every benchmark of issue #9 in turn and end with the goals' verdicts: `make bench`.

    training   bench_training: soft/hard step vs the naive step, tokens/s, FLOP/s vs matmul peak
    exact      bench_exact:    exact evaluation vs N samples, time and W1 error
    targets    bench_targets:  all train output spaces and tries
    workflow   bench_workflow: wall time per rule of the last `make run` (benchmarks/)

Each runs in its own process with the same --model/--device/--dtype/--threads; the output of each
streams through, and the GOAL lines are repeated at the end. `--quick` is a smoke run (a step or
two, a few samples, 40 target prompts) that checks the scripts work but measures nothing worth recording. Benchmark
on a quiet machine: one busy neighbour can slow a 2-thread job several times.

    .venv/bin/python -m bench.run_all [--quick] [--only training exact] [--samples 1000] [--model ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from bench.common import add_model_arguments

BENCHES = ("training", "exact", "targets", "workflow")


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    model = ["--model", args.model, "--device", args.device, "--dtype", args.dtype,
             "--threads", str(args.threads), "--cache-dir", args.cache_dir]
    steps, repeats, samples = (1, 1, 8) if args.quick else (args.steps, args.repeats, args.samples)
    return {
        "training": ["bench.bench_training", *model, "--steps", str(steps),
                     *(["--prompts", "16"] if args.quick else [])],
        "exact": ["bench.bench_exact", *model, "--repeats", str(repeats), "--samples", str(samples)],
        "targets": ["bench.bench_targets", *model, "--repeats", str(repeats),
                    *(["--limit", "40"] if args.quick else [])],
        "workflow": ["bench.bench_workflow", "--benchmarks", args.benchmarks],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--only", nargs="+", choices=BENCHES, default=list(BENCHES))
    parser.add_argument("--quick", action="store_true", help="smoke run: checks that everything works")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per kind and method")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the exact and target timings")
    parser.add_argument("--samples", type=int, default=1000, help="answers drawn per prompt by bench_exact")
    parser.add_argument("--benchmarks", default="benchmarks", help="benchmark folder of a finished run")
    args = parser.parse_args()

    goal_lines, failed = [], []
    for name, argv in commands(args).items():
        if name not in args.only:
            continue
        process = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE, text=True)
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith("GOAL ") or line.startswith("unfinished run"):
                goal_lines.append(line.rstrip())
        if process.wait() != 0:
            failed.append(name)
    print("== goals")
    for line in goal_lines:
        print(line)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
