"""The `cft` console command.

    cft families                         list the distribution families
    cft target FAMILY k=v ... [--json]   print a prompt and its discretized target
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from cft.families import FAMILIES, get_family
from cft.prompts import PromptSpec
from cft.targets import output_space_for

EXIT_USAGE = 2


def _cmd_families(args: argparse.Namespace) -> int:
    from cft.grids import PAPER_GRIDS

    train = {f for f, g in PAPER_GRIDS.items() if g.train}
    header = f"{'id':<18} {'name':<20} {'parameters':<26} {'kind':<11} {'tier':<4} split"
    print(header)
    for family in FAMILIES.values():
        split = "train" if family.family_id in train else "held-out"
        print(f"{family.family_id:<18} {family.display_name:<20} {', '.join(family.parameter_names):<26} "
              f"{family.kind:<11} {family.tier:<4} {split}")
    return 0


def _parse_assignments(pairs: Sequence[str]) -> dict[str, float]:
    params: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"parameter {pair!r} is not of the form key=value")
        if key in params:
            raise ValueError(f"parameter {key!r} given twice")
        try:
            params[key] = float(value)
        except ValueError:
            raise ValueError(f"parameter {key!r}: {value!r} is not a number") from None
    return params


def _cmd_target(args: argparse.Namespace) -> int:
    if args.decimals < 0:
        raise ValueError(f"--decimals must be >= 0, got {args.decimals}")
    if args.max_bins < 2:
        raise ValueError(f"--max-bins must be >= 2, got {args.max_bins}")
    family = get_family(args.family)
    params = _parse_assignments(args.params)
    family.check_parameters(params)
    spec = PromptSpec(family.family_id, tuple((name, params[name]) for name in family.parameter_names))
    space = output_space_for(spec, decimals=args.decimals, max_bins=args.max_bins,
                             quantile_low=args.quantile_low, quantile_high=args.quantile_high)
    if args.json:
        print(json.dumps({"prompt": spec.prompt, "values": list(space.values),
                          "probs": [float(p) for p in space.probs]}))
        return 0
    print(spec.prompt)
    print(f"# {len(space.values)} atoms, decimals={space.decimals}, integer_only={space.integer_only}")
    for value, prob in zip(space.values, space.probs):
        print(f"{value}\t{prob:.10g}")
    return 0


def _cmd_noveltybench_summarize(args: argparse.Namespace) -> int:
    from cft.io import read_jsonl
    from cft.transfer.noveltybench import summarize

    try:
        rows = read_jsonl(args.scores)
    except OSError as error:
        raise ValueError(f"cannot read {args.scores}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{args.scores} is not JSON lines ({error.msg}, line {error.lineno})") from None
    missing = [i for i, row in enumerate(rows, 1) if not {"partition_scores", "utility"} <= set(row)]
    if missing:
        raise ValueError(f"{args.scores}: line {missing[0]} has no partition_scores or utility")
    summary = summarize(rows)
    print(json.dumps({"mean_distinct": summary["mean_distinct"], "mean_utility": summary["mean_utility"]},
                     indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cft", description="Calibration fine-tuning toolkit")
    commands = parser.add_subparsers(dest="command", required=True)

    families = commands.add_parser("families", help="list the distribution families")
    families.set_defaults(run=_cmd_families)

    target = commands.add_parser("target", help="print the prompt and discretized target of one distribution")
    target.add_argument("family", help="family id, e.g. gaussian (see `cft families`)")
    target.add_argument("params", nargs="*", metavar="k=v", help="parameters as the prompt shows them")
    target.add_argument("--decimals", type=int, default=5)
    target.add_argument("--max-bins", type=int, default=1001)
    target.add_argument("--quantile-low", type=float, default=0.001)
    target.add_argument("--quantile-high", type=float, default=0.999)
    target.add_argument("--json", action="store_true", help="print one JSON object: prompt, values, probs")
    target.set_defaults(run=_cmd_target)

    novelty = commands.add_parser("noveltybench-summarize",
                                  help="print NoveltyBench's summary (mean_distinct, mean_utility) of a scores file")
    novelty.add_argument("scores", help="a NoveltyBench scores.jsonl")
    novelty.set_defaults(run=_cmd_noveltybench_summarize)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as error:
        print(f"cft {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
