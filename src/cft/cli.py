"""The `cft` console command.

    cft --version                        print the package version
    cft families                         list the distribution families
    cft target FAMILY k=v ... [--json]   print a prompt and its discretized target
    cft noveltybench-summarize SCORES    print NoveltyBench's summary of a scores file
    cft check-config FILE [FILE ...]     validate config files merged left to right, as the workflow does
    cft train --config FILE --model NAME [--method soft] [--out DIR]
                                         train one adapter without the workflow (cft.single_run)
    cft compare-runs A=CSV:VARIANT B=CSV:VARIANT [--out FILE]
                                         paired comparisons of a variant of one run against another's

Every error is one line on stderr, `cft <command>: error: ...`, with exit status 2. Numbers on the
command line follow the answer parser's grammar (cft.numbers): ASCII digits, no underscores.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from cft import __version__
from cft.families import FAMILIES, get_family
from cft.numbers import EMPTY, NON_FINITE, parse_integer, parse_number
from cft.prompts import PromptSpec
from cft.targets import MAX_BINS, MAX_DECIMALS, TargetSettings

EXIT_USAGE = 2

# Parameter magnitudes cft target accepts (besides 0). The paper's grids use 0.05 to 120; far outside,
# scipy fails and some laws abort the process (an inverse Gaussian with mu=1e-15, lambda=1e15).
PARAMETER_RANGE = (1e-9, 1e9)


class OneLineParser(argparse.ArgumentParser):
    """argparse's usage errors as one line (its default prints the usage block first)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number_text(text: str, what: str) -> float:
    value, error = parse_number(text)
    if error == NON_FINITE:
        raise ValueError(f"{what}: {text!r} is not a finite number")
    if error is not None:
        reason = "is empty" if error == EMPTY else "is not a number (ASCII digits, e.g. 2, -0.5, 1e-3)"
        raise ValueError(f"{what}: {text!r} {reason}")
    return value


def _bounded(kind: Callable[[str], Any], low: float, high: float, *, exclusive: bool = False):
    """An argparse type: `kind` of the text within [low, high] (or (low, high))."""

    def convert(text: str):
        value = kind(text)
        inside = low < value < high if exclusive else low <= value <= high
        if not inside:
            interval = f"({low:g}, {high:g})" if exclusive else f"[{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"{text!r} is not in {interval}")
        return value

    return convert


def _integer(text: str) -> int:
    value = parse_integer(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (ASCII digits)")
    return value


def _fraction(text: str) -> float:
    try:
        return _number_text(text, "value")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("value: ")) from None


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
        number = _number_text(value, f"parameter {key!r}")
        low, high = PARAMETER_RANGE
        if number != 0 and not low <= abs(number) <= high:
            raise ValueError(f"parameter {key!r}: {value} is outside the magnitudes {low:g} to {high:g} (or 0) "
                             "that cft target accepts; scipy fails on some laws beyond")
        params[key] = number
    return params


def _cmd_target(args: argparse.Namespace) -> int:
    family = get_family(args.family)
    params = _parse_assignments(args.params)
    family.check_parameters(params)
    spec = PromptSpec(family.family_id, tuple((name, params[name]) for name in family.parameter_names))
    target = TargetSettings(decimals=args.decimals, max_bins=args.max_bins,
                            quantile_low=args.quantile_low, quantile_high=args.quantile_high)
    given = " ".join(f"{name}={value:g}" for name, value in spec.params)
    try:
        # scipy warns (overflow, a series that did not converge) instead of failing on some extreme
        # parameters; no prompt of the paper's grids warns, so a warning here is an error.
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            # Refuse, before anything is allocated, a window the paper's construction would silently
            # replace or truncate (its workflow prompts never need that; a hand-written one can).
            target.check_window(spec)
            space = target.space(spec)
    except ValueError as error:
        raise ValueError(f"{family.family_id} {given}: {error}") from None
    except (ArithmeticError, TypeError, RuntimeWarning, SystemError) as error:
        # scipy refuses some extreme parameters with these (e.g. a negative binomial with r=1e300); a
        # warning raised inside one of its ufuncs arrives as a SystemError caused by the warning.
        error = error.__cause__ or error if isinstance(error, SystemError) else error
        detail = str(error).splitlines()[0] if str(error) else "no message"
        raise ValueError(f"{family.family_id} {given}: scipy cannot evaluate this distribution "
                         f"({type(error).__name__}: {detail})") from None
    if args.json:
        print(json.dumps({"prompt": spec.prompt, "values": list(space.values),
                          "probs": [float(p) for p in space.probs]}))
        return 0
    print(spec.prompt)
    print(f"# {len(space.values)} atoms, decimals={space.decimals}, integer_only={space.integer_only}")
    for value, prob in zip(space.values, space.probs):
        print(f"{value}\t{prob:.10g}")
    return 0


def _read_scores(path: str) -> list[dict[str, Any]]:
    """The records of a NoveltyBench scores.jsonl, each checked; errors name the line of the file."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    rows = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError(f"{path}: line {number} is not UTF-8") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: line {number} is not JSON ({error.msg}, column {error.colno})") from None
        if not isinstance(row, dict) or not {"partition_scores", "utility"} <= set(row):
            raise ValueError(f"{path}: line {number} has no partition_scores or utility")
        if not isinstance(row["partition_scores"], list):
            raise ValueError(f"{path}: line {number}: partition_scores must be a list, "
                             f"got {type(row['partition_scores']).__name__}")
        utility = row["utility"]
        if isinstance(utility, bool) or not isinstance(utility, (int, float)):
            raise ValueError(f"{path}: line {number}: utility must be a number, got {utility!r}")
        rows.append(row)
    return rows


def _cmd_noveltybench_summarize(args: argparse.Namespace) -> int:
    from cft.transfer.noveltybench import summarize

    rows = _read_scores(args.scores)
    summary = summarize(rows)
    printed = {"mean_distinct": summary["mean_distinct"], "mean_utility": summary["mean_utility"]}
    # NaN is not JSON: a mean that is not a number (a record's utility is NaN) is printed as null.
    for key, value in printed.items():
        if not math.isfinite(value):
            printed[key] = None
            print(f"cft {args.command}: note: {key} is {value} (a record's value is not finite), printed as null",
                  file=sys.stderr)
    print(json.dumps(printed, indent=2, allow_nan=False))
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    from cft.config import ConfigError, load_config

    try:
        load_config(*args.files)
    except ConfigError as error:
        raise ValueError(str(error)) from None
    print(f"{' + '.join(args.files)}: valid")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import logging

    from cft.single_run import train_one_adapter

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    adapter = train_one_adapter(args.config, args.model, args.method, args.out, threads=args.threads,
                                cache_dir=args.cache_dir)
    print(adapter)
    return 0


def _cmd_compare_runs(args: argparse.Namespace) -> int:
    import pandas as pd

    from cft.evaluation.comparisons import compare_runs
    from cft.io import write_csv

    (label_a, csv_a, variant_a), (label_b, csv_b, variant_b) = args.run_a, args.run_b
    table = compare_runs(pd.read_csv(csv_a), pd.read_csv(csv_b), variant_a=variant_a, variant_b=variant_b,
                         label_a=label_a, label_b=label_b, n_boot=args.bootstrap, seed=args.seed)
    if args.out:
        write_csv(args.out, table)
    columns = ["model", "split", "metric", "n_families", "median_a", "median_b", "median_ratio",
               "median_ratio_ci_low", "median_ratio_ci_high", "p_value", "n_a_better", "n_b_better"]
    print(table[columns].to_string(index=False, float_format=lambda value: f"{value:.3g}"))
    return 0


def _run_argument(text: str) -> tuple[str, str, str]:
    """LABEL=PROMPTS_CSV:VARIANT, e.g. default=results/tables/fidelity_prompts.csv:soft."""
    label, sep, rest = text.partition("=")
    path, colon, variant = rest.rpartition(":")
    if not (sep and colon and label and path and variant):
        raise argparse.ArgumentTypeError(f"expected LABEL=PROMPTS_CSV:VARIANT, got {text!r}")
    return label, path, variant


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except where there is none to show (required options, flags)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required or action.default in (None, False):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="cft", description="Calibration fine-tuning toolkit", formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=lambda **kw: OneLineParser(formatter_class=HelpFormatter, **kw))

    families = commands.add_parser("families", help="list the distribution families")
    families.set_defaults(run=_cmd_families)

    target = commands.add_parser("target", help="print the prompt and discretized target of one distribution")
    target.add_argument("family", help="family id, e.g. gaussian (see `cft families`)")
    target.add_argument("params", nargs="*", metavar="k=v", help="parameters as the prompt shows them")
    # The defaults are the paper's soft target (cft.targets.TargetSettings, the config's targets.soft).
    paper = TargetSettings()
    target.add_argument("--decimals", type=_bounded(_integer, 0, MAX_DECIMALS), default=paper.decimals,
                        help=f"printed decimals of a continuous target, 0 to {MAX_DECIMALS}")
    target.add_argument("--max-bins", type=_bounded(_integer, 2, MAX_BINS), default=paper.max_bins,
                        help=f"most atoms of the target, 2 to {MAX_BINS}")
    target.add_argument("--quantile-low", type=_bounded(_fraction, 0, 0.5, exclusive=True),
                        default=paper.quantile_low, help="lower quantile of the window, in (0, 0.5)")
    target.add_argument("--quantile-high", type=_bounded(_fraction, 0.5, 1, exclusive=True),
                        default=paper.quantile_high, help="upper quantile of the window, in (0.5, 1)")
    target.add_argument("--json", action="store_true", help="print one JSON object: prompt, values, probs")
    target.set_defaults(run=_cmd_target)

    novelty = commands.add_parser("noveltybench-summarize",
                                  help="print NoveltyBench's summary (mean_distinct, mean_utility) of a scores file")
    novelty.add_argument("scores", help="a NoveltyBench scores.jsonl")
    novelty.set_defaults(run=_cmd_noveltybench_summarize)

    check = commands.add_parser("check-config",
                                help="validate config files merged left to right (the workflow's config/config.yaml "
                                     "first, then each --configfile), one line naming the file or key")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(run=_cmd_check_config)

    compare = commands.add_parser("compare-runs",
                                  help="paired comparisons (Wilcoxon over families, bootstrap intervals) of a "
                                       "variant of one run against a variant of another run")
    compare.add_argument("run_a", type=_run_argument, metavar="LABEL=PROMPTS_CSV:VARIANT",
                         help="run a: a fidelity_prompts.csv (or a generalization prompts.csv) and its variant")
    compare.add_argument("run_b", type=_run_argument, metavar="LABEL=PROMPTS_CSV:VARIANT", help="run b, likewise")
    compare.add_argument("--bootstrap", type=_bounded(_integer, 1, 100000), default=1000,
                         help="bootstrap replicates of the intervals")
    compare.add_argument("--seed", type=_integer, default=0, help="seed of the bootstrap")
    compare.add_argument("--out", default=None, help="also write the whole table to this CSV")
    compare.set_defaults(run=_cmd_compare_runs)

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
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:
        # Usage errors (printed as one line by OneLineParser) and --help, as an exit status.
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    try:
        return args.run(args)
    except ValueError as error:
        print(f"cft {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
