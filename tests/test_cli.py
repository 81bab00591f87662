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
