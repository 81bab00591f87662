"""The `cft` console command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cft.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_families_lists_all_30(capsys):
    code, out, _ = run(capsys, "families")
    assert code == 0
    lines = out.strip().splitlines()[1:]
    assert len(lines) == 30
    assert any(line.startswith("truncnorm") and "held-out" in line for line in lines)
    assert any(line.startswith("gaussian") and "train" in line for line in lines)


def test_target_json_poisson(capsys):
    code, out, _ = run(capsys, "target", "poisson", "lambda=1", "--json")
    assert code == 0
    payload = json.loads(out)
    assert set(payload) == {"prompt", "values", "probs"}
    assert payload["values"] == ["0", "1", "2", "3", "4", "5"]
    np.testing.assert_allclose(payload["probs"], [.367879, .367879, .18394, .061313, .015328, .00366], atol=2e-6)
    assert "Poisson distribution with parameters lambda=1.0" in payload["prompt"]


def test_target_text(capsys):
    code, out, _ = run(capsys, "target", "triangular", "a=2.5", "c=6.0", "b=9.5", "--decimals", "2")
    assert code == 0
    assert out.startswith("Generate exactly ONE random number from a Triangular distribution with parameters "
                          "a=2.5, c=6.0, b=9.5. Output ONLY the number.")


def test_target_hypergeometric(capsys):
    code, out, _ = run(capsys, "target", "hypergeometric", "M=100", "K=50", "N=20", "--json")
    assert code == 0
    assert len(json.loads(out)["values"]) == 21


@pytest.mark.parametrize("argv", [
    ["target", "gausian", "mu=0", "sigma=1"],
    ["target", "gaussian", "mu=0", "sigma=-1"],
    ["target", "gaussian", "mu=0", "sigma=1", "tau=2"],
    ["target", "gaussian", "mu=0"],
    ["target", "bernoulli", "p=1.5"],
    ["target", "gaussian", "mu=zero", "sigma=1"],
    ["target", "gaussian", "mu", "sigma=1"],
    ["target", "gaussian", "mu=0", "sigma=1", "--max-bins", "1"],
    ["target", "gaussian", "mu=0", "sigma=1", "--decimals", "-1"],
])
def test_invalid_input_is_one_line_exit_2(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "error" in err


@pytest.mark.parametrize("model", ["curated-gemma-3-1b-it", "curated-Llama-3.2-1B-Instruct"])
def test_noveltybench_summarize_reproduces_the_leaderboard(model, repo_root, capsys):
    folder = repo_root / "data" / "noveltybench" / "leaderboard" / model
    assert main(["noveltybench-summarize", str(folder / "scores.jsonl")]) == 0
    printed = json.loads(capsys.readouterr().out)
    published = json.loads((folder / "summary.json").read_text())
    assert printed == pytest.approx(published, rel=1e-12)


def test_noveltybench_summarize_bad_input_is_a_usage_error(tmp_path, capsys):
    assert main(["noveltybench-summarize", str(tmp_path / "missing.jsonl")]) == 2
    (tmp_path / "bad.jsonl").write_text('{"utility": 1}\n')
    assert main(["noveltybench-summarize", str(tmp_path / "bad.jsonl")]) == 2
    assert "line 1 has no partition_scores" in capsys.readouterr().err


BAD_TARGETS = {
    # One number grammar with the answer parser: ASCII digits, no underscores, finite.
    "arabic-indic-digit": (["target", "gaussian", "mu=\u0663", "sigma=1"],
                           "parameter 'mu': '\u0663' is not a number (ASCII digits, e.g. 2, -0.5, 1e-3)"),
    "underscore": (["target", "gaussian", "mu=1_000", "sigma=1"],
                   "parameter 'mu': '1_000' is not a number (ASCII digits, e.g. 2, -0.5, 1e-3)"),
    "nan-word": (["target", "gaussian", "mu=nan", "sigma=1"],
                 "parameter 'mu': 'nan' is not a number (ASCII digits, e.g. 2, -0.5, 1e-3)"),
    "spaces": (["target", "gaussian", "mu= 1", "sigma=1"],
               "parameter 'mu': ' 1' is not a number (ASCII digits, e.g. 2, -0.5, 1e-3)"),
    "empty-value": (["target", "gaussian", "mu=", "sigma=1"], "parameter 'mu': '' is empty"),
    "overflow": (["target", "gaussian", "mu=1e400", "sigma=1"], "parameter 'mu': '1e400' is not a finite number"),
    # Parameters in the magnitudes scipy handles (far outside, some laws abort the process).
    "sigma-1e300": (["target", "gaussian", "mu=0", "sigma=1e300"],
                    "parameter 'sigma': 1e300 is outside the magnitudes 1e-09 to 1e+09 (or 0) that cft target "
                    "accepts; scipy fails on some laws beyond"),
    "inverse-gaussian-abort": (["target", "inverse_gaussian", "mu=1e-15", "lambda=1e15"],
                               "parameter 'mu': 1e-15 is outside the magnitudes 1e-09 to 1e+09 (or 0) that cft "
                               "target accepts; scipy fails on some laws beyond"),
    # Output spaces are bounded before they are built, and windows are never silently replaced.
    "grid-beyond-2^53": (["target", "gaussian", "mu=0", "sigma=1e9", "--decimals", "8"],
                         "gaussian mu=0 sigma=1e+09: the window [-3.09023e+09, 3.09023e+09] reaches 3.09e+17 steps "
                         "of 10**-8 from 0, more than 2**53, beyond which float64 cannot index the grid exactly"),
    "far-from-zero": (["target", "gaussian", "mu=1e9", "sigma=1", "--decimals", "8"],
                      "gaussian mu=1e+09 sigma=1: the window [1e+09, 1e+09] reaches 1e+17 steps of 10**-8 from 0, "
                      "more than 2**53, beyond which float64 cannot index the grid exactly"),
    "window-collapses": (["target", "gaussian", "mu=1e9", "sigma=1e-9"],
                         "gaussian mu=1e+09 sigma=1e-09: the quantile window [1e+09, 1e+09] is not a finite interval "
                         "(parameters beyond float64 precision?); the paper's construction would silently use "
                         "[-10, 10]"),
    "integers-beyond-max-bins": (["target", "binomial", "n=5000", "p=0.5"],
                                 "binomial n=5000 p=0.5: the target spans 5001 integers [0, 5000], more than "
                                 "max_bins=1001; the paper's construction keeps only the first max_bins of them and "
                                 "would misplace the rest of the mass (raise max_bins)"),
    "binomial-n-1e9": (["target", "binomial", "n=1e9", "p=0.5"],
                       "binomial n=1e+09 p=0.5: the distribution's mean + 10 standard deviations reaches 5e+08, "
                       "beyond 1,000,000 (scipy's search for its quantiles could take hours)"),
    "skellam-far": (["target", "skellam", "mu1=1e-9", "mu2=1e9"],
                    "skellam mu1=1e-09 mu2=1e+09: the distribution's mean + 10 standard deviations reaches 1e+09, "
                    "beyond 1,000,000 (scipy's search for its quantiles could take hours)"),
    "scipy-refuses": (["target", "skellam", "mu1=1e-9", "mu2=1e5"],
                      "skellam mu1=1e-09 mu2=100000: scipy cannot evaluate this distribution (OverflowError: Error "
                      "in function boost::math::tgamma<d>(%1%): Result of tgamma is too large to represent.)"),
    # Options: integers of ASCII digits in their ranges, quantiles on their side of the median.
    "decimals-50": (["target", "gaussian", "mu=0", "sigma=1", "--decimals", "50"],
                    "argument --decimals: '50' is not in [0, 8] (see cft target --help)"),
    "decimals-text": (["target", "gaussian", "mu=0", "sigma=1", "--decimals", "2.5"],
                      "argument --decimals: '2.5' is not an integer (ASCII digits) (see cft target --help)"),
    "max-bins-huge": (["target", "gaussian", "mu=0", "sigma=1", "--max-bins", "10000000000"],
                      "argument --max-bins: '10000000000' is not in [2, 1e+06] (see cft target --help)"),
    "quantile-low-above-median": (["target", "gaussian", "mu=0", "sigma=1", "--quantile-low", "0.7"],
                                  "argument --quantile-low: '0.7' is not in (0, 0.5) (see cft target --help)"),
    "quantile-high-below-median": (["target", "gaussian", "mu=0", "sigma=1", "--quantile-high", "0.2"],
                                   "argument --quantile-high: '0.2' is not in (0.5, 1) (see cft target --help)"),
    "quantile-one": (["target", "gaussian", "mu=0", "sigma=1", "--quantile-high", "1"],
                     "argument --quantile-high: '1' is not in (0.5, 1) (see cft target --help)"),
    "quantile-nan": (["target", "gaussian", "mu=0", "sigma=1", "--quantile-low", "nan"],
                     "argument --quantile-low: 'nan' is not a number (ASCII digits, e.g. 2, -0.5, 1e-3) "
                     "(see cft target --help)"),
    "unknown-option": (["target", "gaussian", "mu=0", "sigma=1", "--bins", "3"],
                       "unrecognized arguments: --bins 3 (see cft --help)"),
}


@pytest.mark.parametrize("argv, message", BAD_TARGETS.values(), ids=BAD_TARGETS.keys())
def test_bad_target_input_is_one_exact_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    prog = "cft" if message.startswith("unrecognized") else "cft target"
    assert (code, out, err) == (2, "", f"{prog}: error: {message}\n")


def test_a_window_inside_the_bounds_still_builds(capsys):
    code, out, _ = run(capsys, "target", "binomial", "n=1000", "p=0.5", "--json")
    assert code == 0 and len(json.loads(out)["values"]) == 1001


def score_line(utility, partitions=(1.0, 2.0)):
    return json.dumps({"id": "p", "partition_scores": list(partitions), "utility": utility})


BAD_SCORES = {
    "bad-json-line": ([score_line(1.0), "", '{"id": "p", "utility": 1.0,,}'],
                      "{path}: line 3 is not JSON (Expecting property name enclosed in double quotes, column 28)"),
    "missing-field": ([score_line(1.0), '{"utility": 1}'], "{path}: line 2 has no partition_scores or utility"),
    "not-an-object": ([score_line(1.0), "[1, 2]"], "{path}: line 2 has no partition_scores or utility"),
    "utility-text": ([score_line(1.0), score_line("high")], "{path}: line 2: utility must be a number, got 'high'"),
    "utility-bool": ([score_line(True)], "{path}: line 1: utility must be a number, got True"),
    "partitions-not-list": ([json.dumps({"partition_scores": 3, "utility": 1.0})],
                            "{path}: line 1: partition_scores must be a list, got int"),
    "missing-file": (None, "cannot read {path}: No such file or directory"),
}


@pytest.mark.parametrize("lines, message", BAD_SCORES.values(), ids=BAD_SCORES.keys())
def test_noveltybench_summarize_bad_file_is_one_exact_line(tmp_path, capsys, lines, message):
    path = tmp_path / "scores.jsonl"
    if lines is not None:
        path.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "noveltybench-summarize", str(path))
    assert (code, out) == (2, "")
    assert err == f"cft noveltybench-summarize: error: {message.format(path=path)}\n"


def test_noveltybench_summarize_prints_null_for_nan(tmp_path, capsys):
    path = tmp_path / "scores.jsonl"
    path.write_text(score_line(1.0) + "\n" + '{"partition_scores": [1.0], "utility": NaN}\n')
    code, out, err = run(capsys, "noveltybench-summarize", str(path))
    assert code == 0
    assert json.loads(out) == {"mean_distinct": 1.5, "mean_utility": None}
    assert "NaN" not in out
    assert err == ("cft noveltybench-summarize: note: mean_utility is nan (a record's value is not finite), "
                   "printed as null\n")


def test_check_config(repo_root, tmp_path, capsys):
    default = str(repo_root / "config" / "config.yaml")
    assert run(capsys, "check-config", default) == (0, f"{default}: valid\n", "")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  common:\n    lr: .nan\n")
    assert run(capsys, "check-config", default, str(bad)) == (
        2, "", "cft check-config: error: config key 'train.common.lr': nan is not a finite number\n")
    bad.write_text("seed: 11\ndevice: cpu: gpu\n")
    assert run(capsys, "check-config", default, str(bad)) == (
        2, "", f"cft check-config: error: config file '{bad}' is not valid YAML at line 2, column 12: "
               "mapping values are not allowed here\n")


def subcommand_parsers():
    from cft.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction)]
    return parser, commands.choices


def test_version(capsys):
    import cft

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cft {cft.__version__}"


def test_help_and_docstring_list_every_subcommand_and_options_show_defaults(capsys):
    import cft.cli

    parser, subcommands = subcommand_parsers()
    top_help = parser.format_help()
    for name, sub in subcommands.items():
        assert name in top_help, name
        assert f"cft {name}" in cft.cli.__doc__, name
        for action in sub._actions:
            if action.option_strings and action.default not in (None, False) and action.dest != "help":
                assert f"(default: {action.default})" in " ".join(sub.format_help().split()), (name, action.dest)


def test_train_subcommand_trains_one_adapter_on_the_tiny_model(tmp_path, capsys):
    import yaml
    from tiny_models import save_tiny_checkpoint

    from cft.io import read_json

    model_dir = save_tiny_checkpoint(tmp_path / "tiny")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "models": [{"name": "tiny", "source": str(model_dir), "dtype": "float32", "params_b": 0.001}],
        "data": {"train_prompts": 8},
        "train": {"common": {"max_steps": 2, "batch_size": 4}, "hard": {"samples_per_prompt": 1}},
    }))
    out = tmp_path / "out"
    code, stdout, _ = run(capsys, "train", "--config", "config/config.yaml", "--config", str(config),
                          "--model", "tiny", "--method", "hard", "--out", str(out))
    assert code == 0
    adapter = out / "adapters" / "tiny" / "hard" / "adapter"
    assert stdout.strip() == str(adapter)
    assert (adapter / "adapter_config.json").is_file()
    record = read_json(out / "adapters" / "tiny" / "hard" / "train_config.json")
    assert record["total_steps"] == 2 and record["config"]["method"] == "hard"
    # The same settings as the workflow's train_adapter job of this config (workflow/rules/common.smk
    # passes adapter_settings), the snapshot count of the fidelity curve included.
    from cft.config import adapter_settings, load_config
    from cft.training import TrainConfig

    expected = adapter_settings(load_config("config/config.yaml", config), "tiny", "hard")
    assert expected["snapshots"] == record["config"]["snapshots"] == 1  # the default curve: the midpoint
    assert record["config"] == TrainConfig.from_dict(expected).to_dict()
    assert read_json(out / "adapters" / "tiny" / "hard" / "snapshots" / "steps.json") == {"steps": [1], "total_steps": 2}
    # A second run finds everything done and rewrites no input, so a workflow run on the same folder
    # finds its jobs up to date.
    inputs = [out / "datasets" / "train.jsonl", out / "datasets" / "train_subset.jsonl", out / "models" / "tiny.json"]
    mtimes = [path.stat().st_mtime_ns for path in inputs]
    code, _, _ = run(capsys, "train", "--config", "config/config.yaml", "--config", str(config),
                     "--model", "tiny", "--method", "hard", "--out", str(out))
    assert code == 0 and [path.stat().st_mtime_ns for path in inputs] == mtimes


def test_train_subcommand_names_an_unknown_method(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--config", "config/config.yaml", "--model", "smollm2_135m",
                       "--method", "sofft", "--out", str(tmp_path))
    assert code == 2
    assert "'sofft'" in err and "soft" in err
