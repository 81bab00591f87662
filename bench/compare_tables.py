"""Whether two runs of the workflow wrote the same tables: the check that a refactor changed no result.

Run the same config at two commits, each in its own clone, then compare their `results/tables/`: every
table byte for byte, and for a table that differs, which columns do. For the tiny whole-workflow
config of `bench/identity/tiny.yaml` (every variant kind, every table of `all`):

    git clone -q . /tmp/before && git -C /tmp/before checkout -q <commit>
    cd /tmp/before && PYTHONPATH=src:tests python -c "from pathlib import Path; from tiny_models import
        save_tiny_checkpoint; save_tiny_checkpoint(Path('tiny_model'))"
    PYTHONPATH=src snakemake --cores 2 all --configfile config/config.yaml <repo>/bench/identity/tiny.yaml
    (the same in /tmp/after at the other commit)
    python -m bench.compare_tables /tmp/before /tmp/after

Exits 1 when a table differs or exists in one run only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def compare_tables(run_a: Path, run_b: Path) -> list[str]:
    """One line per difference between the two runs' tables; [] when they are the same."""
    tables_a = {p.name for p in (run_a / "results" / "tables").glob("*.csv")}
    tables_b = {p.name for p in (run_b / "results" / "tables").glob("*.csv")}
    problems = [f"only in {run}: {name}" for run, only in ((run_a, tables_a - tables_b), (run_b, tables_b - tables_a))
                for name in sorted(only)]
    for name in sorted(tables_a & tables_b):
        path_a, path_b = run_a / "results" / "tables" / name, run_b / "results" / "tables" / name
        if path_a.read_bytes() == path_b.read_bytes():
            continue
        a, b = pd.read_csv(path_a), pd.read_csv(path_b)
        differing = [c for c in a.columns if c in b.columns and not a[c].equals(b[c])]
        problems.append(f"{name}: shapes {a.shape} / {b.shape}, columns in one only "
                        f"{sorted(set(a.columns) ^ set(b.columns))}, differing {differing}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    args = parser.parse_args(argv)
    problems = compare_tables(args.run_a, args.run_b)
    count = len(list((args.run_a / "results" / "tables").glob("*.csv")))
    print("\n".join(problems) if problems else f"all {count} tables byte-identical")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
