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


def subcommand_parsers():
    from cft.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction)]
    return parser, commands.choices


def test_version(capsys):
    import cft

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
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
    # The same settings as the workflow's train_adapter job of this config.
    from cft.config import load_config, train_settings

    expected = train_settings(load_config("config/config.yaml", config), "tiny", "hard")
    assert all(record["config"][key] == value for key, value in expected.items() if key != "lora_target_modules")


def test_train_subcommand_names_an_unknown_method(tmp_path, capsys):
    code, _, err = run(capsys, "train", "--config", "config/config.yaml", "--model", "smollm2_135m",
                       "--method", "sofft", "--out", str(tmp_path))
    assert code == 2
    assert "'sofft'" in err and "soft" in err
