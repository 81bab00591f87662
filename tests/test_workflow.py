"""The workflow's DAG builds for both configs, and a bad config stops it before any job runs."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


def snakemake(repo_root, *args, cwd=None):
    return subprocess.run([sys.executable, "-m", "snakemake", "--nolock", *args],
                          cwd=cwd or repo_root, capture_output=True, text=True, timeout=600)


def job_counts(stdout: str) -> dict[str, int]:
    """Parse the 'Job stats' table that a dry run prints."""
    counts = {}
    in_table = False
    for line in stdout.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
            if match and match.group(1) != "total":
                counts[match.group(1)] = int(match.group(2))
            elif line.strip().startswith("total"):
                break
    return counts


def test_default_dry_run_is_the_paper_matrix(repo_root):
    result = snakemake(repo_root, "-n", "--forceall", "all")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["make_split"] == 3
    assert counts["train_adapter"] == 2  # soft, hard
    assert "fit_temperature" not in counts and "train_ats" not in counts
    assert counts["evaluate_fidelity"] == 3  # soft, hard and SSoT
    assert counts["evaluate_fidelity_transforms"] == 1  # base
    assert counts["evaluate_openended"] == 4  # SSoT included
    assert counts["evaluate_choices"] == counts["evaluate_mcq"] == counts["evaluate_tinybench"] == 3  # no SSoT
    assert counts["evaluate_perplexity"] == counts["noveltybench_generate"] == 3
    assert counts["evaluate_curve"] == 2  # the snapshots of soft and hard (evaluate.curve)
    assert counts["tab_fidelity_curve"] == counts["fig_fidelity_curve"] == 1
    assert counts["tab_fidelity_comparisons"] == counts["fig_fidelity_comparisons"] == 1
    assert "evaluate_generalization" not in counts and "make_generalization_sets" not in counts


def test_full_dry_run_runs_every_variant(repo_root):
    result = snakemake(repo_root, "-n", "--forceall", "all", "--configfile=config/full.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["train_adapter"] == 4  # soft, hard, fullsupport, exactdigit
    assert counts["fit_temperature"] == 1
    assert counts["train_ats"] == 2  # ats_smooth, ats_kl
    assert counts["evaluate_fidelity"] == 5  # 4 adapters and SSoT
    assert counts["evaluate_fidelity_transforms"] == 1  # base, temperature and the ATS heads: one tree forward
    assert counts["evaluate_openended"] == 9  # SSoT included
    assert counts["evaluate_choices"] == counts["evaluate_mcq"] == 8  # no SSoT
    # Retention: the four adapters alone, base and its three transforms in one job per evaluation.
    assert counts["evaluate_tinybench"] == counts["evaluate_perplexity"] == 4
    assert counts["evaluate_tinybench_transforms"] == counts["evaluate_perplexity_transforms"] == 1
    assert counts["tab_openended_choices"] == counts["fig_openended_choices"] == 1
    assert counts["evaluate_curve"] == 2
    assert counts["tab_fidelity_curve"] == counts["fig_fidelity_curve"] == 1
    assert counts["tab_fidelity_comparisons"] == counts["fig_fidelity_comparisons"] == 1
    assert counts["evaluate_generalization"] == 2  # base and soft on seen / inside / outside prompts
    assert counts["tab_fidelity_generalization"] == counts["make_generalization_sets"] == 1


def test_paper_dry_run_lists_the_matrix(repo_root):
    result = snakemake(repo_root, "-n", "--forceall", "all", "--configfile", "config/paper.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    # 12 models x (soft, hard, fullsupport), the Qwen3-1.7B ablations (12 soft grids, 3 hard budgets)
    # and exactdigit_d5 on the 9 models whose tokenizers write digits singly.
    assert counts["train_adapter"] == 12 * 3 + 12 + 3 + 9
    assert counts["prepare_model"] == 12
    assert counts["evaluate_curve"] == 12 * 2  # soft and hard of every model


@pytest.mark.parametrize("configfile, expected", [
    # the paper's soft recipe on SmolLM2: base, soft, hard with their curves and the three groups
    ("config/paper_recipe_smollm2.yaml", {"prepare_model": 1, "train_adapter": 2, "evaluate_curve": 2,
                                          "evaluate_generalization": 3, "tab_fidelity_comparisons": 1}),
    # SmolLM2 and Gemma 3 270M: the matrix and the curves per model, the groups left to the default
    ("config/second_model_gemma3.yaml", {"prepare_model": 2, "train_adapter": 4, "evaluate_curve": 2,
                                         "evaluate_generalization": None, "tab_fidelity_comparisons": 1}),
    # the remedy: soft alone, on every train prompt, against base
    ("config/distinct_prompts.yaml", {"prepare_model": 1, "train_adapter": 1, "evaluate_curve": 1,
                                      "evaluate_generalization": 2, "tab_fidelity_comparisons": 1}),
])
def test_issue21_configs_dry_run(configfile, expected, repo_root):
    result = snakemake(repo_root, "-n", "--forceall", "all", f"--configfile={configfile}")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert {rule: counts.get(rule) for rule in expected} == expected


@pytest.mark.parametrize("yaml, key", [
    ("data: {train_families: [gaussian, gausian]}", "data.train_families[1]"),
    ("evaluate: {openended: {case_studies: [weekday, town]}}", "evaluate.openended.case_studies[1]"),
    ("evaluate: {exact_choices: {categories: [weekday, city]}}", "evaluate.exact_choices.categories[1]"),
])
def test_bad_config_fails_before_any_job(yaml, key, repo_root, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml + "\n")
    result = snakemake(repo_root, "-n", "all", "--configfile", str(bad))
    assert result.returncode != 0
    assert key in result.stdout + result.stderr


@pytest.mark.parametrize("yaml, line", [
    ("train: {common: {lr: .nan}}", "invalid config: config key 'train.common.lr': nan is not a finite number"),
    ("train: {methods: [soft]}\nevaluate: {variants: [base, soft, hard]}",
     "invalid config: config key 'evaluate.variants[2]': 'hard' is not trained (train.methods is [soft])"),
])
def test_dry_run_shows_the_config_error_as_one_line(yaml, line, repo_root, tmp_path):
    """What a user of `snakemake -n --configfile` sees: the message as one line of its own."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml + "\n")
    result = snakemake(repo_root, "-n", "all", "--configfile", str(bad))
    assert result.returncode != 0
    assert line in (result.stdout + result.stderr).splitlines()
    assert "Traceback" not in result.stdout + result.stderr
