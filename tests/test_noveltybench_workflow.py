"""The NoveltyBench rules are in the DAG of both configs: one generation and one scoring job per
(model, variant, prompt set), prompting variants (SSoT) left out, then one table and one figure."""

from __future__ import annotations

from test_workflow import job_counts, snakemake

from cft.config import load_config


def noveltybench_jobs(repo_root, *configfiles) -> int:
    """Generation jobs a config runs: its evaluated variants (base, trained methods, fitted baselines;
    not SSoT) that `evaluate.noveltybench.variants` keeps, times models and prompt sets."""
    config = load_config(*(repo_root / "config" / name for name in configfiles))
    section = config["evaluate"]["noveltybench"]
    variants = [v for v in config["evaluate"]["variants"]
                if (v in ("base", "temperature", "ats_smooth", "ats_kl") or v in config["train"]["methods"])
                and (section["variants"] is None or v in section["variants"])]
    return len(config["models"]) * len(variants) * len(section["prompt_sets"])


def test_default_dry_run_lists_the_noveltybench_rules(repo_root):
    result = snakemake(repo_root, "-n", "--forceall", "all")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    jobs = noveltybench_jobs(repo_root, "config.yaml")
    assert jobs == 3    # base, soft and hard (not SSoT), on the curated set
    assert noveltybench_jobs(repo_root, "config.yaml", "full.yaml") == 8  # every variant of the full matrix but SSoT
    assert {rule: counts.get(rule) for rule in ("noveltybench_generate", "noveltybench_score",
                                                "tab_noveltybench", "fig_noveltybench")} == {
        "noveltybench_generate": jobs, "noveltybench_score": jobs, "tab_noveltybench": 1, "fig_noveltybench": 1}
    for path in ("results/noveltybench/smollm2_135m/soft/nb-curated/generations.jsonl",
                 "results/noveltybench/smollm2_135m/hard/nb-curated/summary.json",
                 "results/tables/noveltybench_summary.csv", "results/figures/noveltybench.png"):
        assert path in result.stdout


def test_paper_dry_run_runs_both_prompt_sets(repo_root):
    result = snakemake(repo_root, "-n", "--forceall", "all", "--configfile", "config/paper.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["noveltybench_generate"] == counts["noveltybench_score"] == noveltybench_jobs(
        repo_root, "config.yaml", "paper.yaml")
    assert "nb-wildchat/scores.jsonl" in result.stdout and "variant=ssot, nb_set" not in result.stdout
