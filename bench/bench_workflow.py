"""Wall time per rule and in total of a finished workflow run, from its Snakemake benchmark files.

Every rule writes `benchmarks/<rule>/<job>.tsv` (one header line, then one row per measured run; the
`s` column is the job's wall time in seconds). Per rule this prints the number of jobs and their
summed seconds; the total is given twice:

* summed job time: what the run would take on one core, job after job;
* run wall time: from the earliest job start to the latest job end, where a job ends when its file
  was last written and starts `s` seconds before. It counts jobs that ran side by side once, but
  also any pause between two `snakemake` invocations, so it is meaningful for one uninterrupted run.

Goal (issue #9): the default `all` within 60 minutes.

    .venv/bin/python -m bench.bench_workflow [--benchmarks benchmarks] [--goal-minutes 60]
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.common import Goal

GOAL_MINUTES = 60.0
# Rules that every default `all` runs: a run without a benchmark of each is unfinished, and its wall
# time says nothing about the goal.
REQUIRED_RULES = ("prepare_model", "make_split", "select_train_subset", "train_adapter", "evaluate_fidelity",
                  "evaluate_fidelity_transforms", "tab_fidelity", "fig_training_curves")


@dataclass(frozen=True)
class JobTime:
    rule: str
    job: str
    seconds: float
    finished_at: float  # epoch seconds of the file's last write

    @property
    def started_at(self) -> float:
        return self.finished_at - self.seconds


def read_benchmark(path: Path, root: Path) -> JobTime:
    """One job's wall time; with several measured runs (Snakemake's `repeat`), their mean."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows:
        raise ValueError(f"{path} holds no measurement")
    seconds = sum(float(row["s"]) for row in rows) / len(rows)
    relative = path.relative_to(root)
    return JobTime(rule=relative.parts[0], job=str(relative.with_suffix("")), seconds=seconds,
                   finished_at=path.stat().st_mtime)


def collect(root: Path) -> list[JobTime]:
    return sorted((read_benchmark(path, root) for path in root.rglob("*.tsv")), key=lambda job: job.started_at)


def per_rule(jobs: Iterable[JobTime]) -> dict[str, tuple[int, float]]:
    """rule -> (jobs, summed seconds), slowest rule first."""
    totals: dict[str, tuple[int, float]] = {}
    for job in jobs:
        count, seconds = totals.get(job.rule, (0, 0.0))
        totals[job.rule] = (count + 1, seconds + job.seconds)
    return dict(sorted(totals.items(), key=lambda item: -item[1][1]))


def run_wall_seconds(jobs: list[JobTime]) -> float:
    """From the first job's start to the last job's end."""
    return max(job.finished_at for job in jobs) - min(job.started_at for job in jobs)


def report(jobs: list[JobTime], goal_minutes: float) -> list[str]:
    lines = [f"{'rule':<28} {'jobs':>5} {'seconds':>10} {'minutes':>8}"]
    for rule, (count, seconds) in per_rule(jobs).items():
        lines.append(f"{rule:<28} {count:>5} {seconds:>10.1f} {seconds / 60:>8.1f}")
    summed = sum(job.seconds for job in jobs)
    wall = run_wall_seconds(jobs)
    lines.append(f"{'summed job time':<28} {len(jobs):>5} {summed:>10.1f} {summed / 60:>8.1f}")
    lines.append(f"{'run wall time (first start to last end)':<45} {wall / 60:>8.1f} min")
    missing = [rule for rule in REQUIRED_RULES if rule not in {job.rule for job in jobs}]
    if missing:
        lines.append(f"unfinished run (no benchmark of {', '.join(missing)}): no verdict on the "
                     f"{goal_minutes:g}-minute goal")
    else:
        lines.append(Goal("default `all` wall time", wall / 60, goal_minutes, "min").line())
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", default="benchmarks", help="the run's benchmark folder")
    parser.add_argument("--goal-minutes", type=float, default=GOAL_MINUTES)
    args = parser.parse_args()

    root = Path(args.benchmarks)
    jobs = collect(root) if root.is_dir() else []
    print(f"== workflow: wall time per rule from {root}/**/*.tsv")
    if not jobs:
        print(f"no benchmark files under {root}: run `make run` first")
        return
    for line in report(jobs, args.goal_minutes):
        print(line)


if __name__ == "__main__":
    main()
