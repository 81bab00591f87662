"""The transfer rules (open-ended generation, MCQ balance, closed answer sets) are in the DAG of both
configs; `test_workflow` checks that a bad case-study or answer-set category stops it before any job."""

from __future__ import annotations

from test_workflow import job_counts, snakemake

from cft.config import load_config


def transfer_jobs(repo_root, *configfiles, ssot: bool = False) -> int:
    """(model, variant) pairs a config evaluates: listed variants that exist (base, a trained method,
    a fitted baseline), and with `ssot` (the open-ended prompts) the SSoT prompting protocol."""
    config = load_config(*(repo_root / "config" / name for name in configfiles))
    kinds = ("base", "temperature", "ats_smooth", "ats_kl", *(["ssot"] if ssot else []))
    variants = [v for v in config["evaluate"]["variants"] if v in kinds or v in config["train"]["methods"]]
    return len(config["models"]) * len(variants)

TRANSFER_RULES = ("evaluate_openended", "evaluate_mcq", "evaluate_choices", "tab_openended", "tab_mcq",
                  "tab_openended_choices", "fig_openended_support", "fig_openended_case_studies",
                  "fig_openended_choices", "fig_mcq_positions")


def test_default_dry_run_lists_the_transfer_rules(repo_root):
    result = snakemake(repo_root, "-n", "--forceall", "all")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    # One job per (model, variant) and evaluation, one per table and figure.
    pairs = transfer_jobs(repo_root, "config.yaml")
    assert pairs >= 3
    assert {rule: counts.get(rule) for rule in TRANSFER_RULES} == {
        "evaluate_openended": transfer_jobs(repo_root, "config.yaml", ssot=True), "evaluate_mcq": pairs,
        "evaluate_choices": pairs, "tab_openended": 1, "tab_mcq": 1, "tab_openended_choices": 1,
        "fig_openended_support": 1, "fig_openended_case_studies": 1, "fig_openended_choices": 1,
        "fig_mcq_positions": 1}
    for path in ("results/openended/smollm2_135m/soft/prompts.csv", "results/mcq/smollm2_135m/hard/summary.json",
                 "results/tables/openended_summary.csv", "results/tables/mcq_summary.csv",
                 "results/figures/openended_case_studies.png", "results/figures/mcq_positions.pdf"):
        assert path in result.stdout


def test_paper_dry_run_evaluates_every_model_and_variant(repo_root):
    result = snakemake(repo_root, "-n", "--forceall", "all", "--configfile", "config/paper.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["evaluate_mcq"] == transfer_jobs(repo_root, "config.yaml", "paper.yaml")
    assert counts["evaluate_openended"] == transfer_jobs(repo_root, "config.yaml", "paper.yaml", ssot=True)
    assert counts["evaluate_openended"] > counts["evaluate_mcq"] >= 12 * 3

