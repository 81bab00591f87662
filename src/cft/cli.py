"""The `cft` console command.

    cft --version                        print the package version
    cft families                         list the distribution families
    cft target FAMILY k=v ... [--json]   print a prompt and its discretized target
    cft noveltybench-summarize SCORES    print NoveltyBench's summary of a scores file
    cft train --config FILE --model NAME [--method soft] [--out DIR]
                                         train one adapter without the workflow (cft.single_run)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from cft import __version__
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


def _cmd_train(args: argparse.Namespace) -> int:
    import logging

    from cft.single_run import train_one_adapter

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    adapter = train_one_adapter(args.config, args.model, args.method, args.out, threads=args.threads,
                                cache_dir=args.cache_dir)
    print(adapter)
    return 0


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except where there is none to show (required options, flags)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required or action.default in (None, False):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    formatter = HelpFormatter
    parser = argparse.ArgumentParser(prog="cft", description="Calibration fine-tuning toolkit",
                                     formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=lambda **kw: argparse.ArgumentParser(formatter_class=formatter, **kw))

    families = commands.add_parser("families", help="list the distribution families")
    families.set_defaults(run=_cmd_families)

    target = commands.add_parser("target", help="print the prompt and discretized target of one distribution")
    target.add_argument("family", help="family id, e.g. gaussian (see `cft families`)")
    target.add_argument("params", nargs="*", metavar="k=v", help="parameters as the prompt shows them")
    target.add_argument("--decimals", type=int, default=5, help="decimal places of the answers")
    target.add_argument("--max-bins", type=int, default=1001, help="at most this many atoms")
    target.add_argument("--quantile-low", type=float, default=0.001,
                        help="lower quantile where a continuous target's support starts")
    target.add_argument("--quantile-high", type=float, default=0.999,
                        help="upper quantile where a continuous target's support ends")
    target.add_argument("--json", action="store_true", help="print one JSON object: prompt, values, probs")
    target.set_defaults(run=_cmd_target)

    novelty = commands.add_parser("noveltybench-summarize",
                                  help="print NoveltyBench's summary (mean_distinct, mean_utility) of a scores file")
    novelty.add_argument("scores", help="a NoveltyBench scores.jsonl")
    novelty.set_defaults(run=_cmd_noveltybench_summarize)

    train = commands.add_parser("train", help="train one adapter without the workflow, as its train_adapter rule does")
    train.add_argument("--config", action="append", required=True, metavar="FILE",
                       help="a workflow config; repeat to merge several left to right, as --configfile does")
    train.add_argument("--model", required=True, help="a name from the config's models list")
    train.add_argument("--method", default="soft", help="a training method or ablation variant of the config")
    train.add_argument("--out", default="results", help="output folder, laid out as the workflow's results/")
    train.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    train.add_argument("--cache-dir", default="resources/models", help="where packaged models are de-quantized")
    train.set_defaults(run=_cmd_train)
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
