"""Every per-variant evaluation script of `workflow/scripts/` runs through Snakemake on a tiny random
Llama, for a plain variant (base), a logit transform whose file reaches the script through
`cft.jobs.variant_job` (a fitted global temperature) and a prompting protocol (SSoT, where it
applies); base and the temperature reach the fidelity script of the shared tree
(`evaluate_fidelity_transforms`) and the shared retention script (`evaluate_variants_shared.py`). The tiny report run in `test_report` covers training and the fidelity script with an
adapter."""

from __future__ import annotations

import shutil

import pytest
from test_report import smk
from test_workflow import job_counts
from tiny_models import save_tiny_checkpoint

TINY_VARIANTS = """
models:
  - {name: tiny, source: tiny_model, dtype: float32, params_b: 0.0001}
data: {train_prompts: 4}
train: {methods: [soft], ablations: []}
baselines:
  temperature: {num_train_prompts: 2}
  ssot: {num_samples: 2, max_new_tokens: 16, openended_max_prompts: 2}
evaluate:
  variants: [base, temperature, ssot]
  splits: [heldout]
  fidelity: {num_samples: 2, max_new_tokens: 8, batch_size: 4, exact: false}
  openended: {num_samples: 2, max_new_tokens: 4, max_prompts: 3}
  mcq: {num_samples: 2, max_new_tokens: 16}
  noveltybench: {num_prompts: 2, k: 2, max_new_tokens: 8}
"""
PER_VARIANT = {
    "evaluate_fidelity": "results/fidelity/tiny/{v}/prompts.csv",
    "evaluate_openended": "results/openended/tiny/{v}/prompts.csv",
    "evaluate_choices": "results/openended/tiny/{v}/choices.csv",
    "evaluate_mcq": "results/mcq/tiny/{v}/summary.json",
    "evaluate_tinybench": "results/retention/tiny/{v}/tinybench_tasks.csv",
    "evaluate_perplexity": "results/retention/tiny/{v}/perplexity_slices.csv",
    "noveltybench_generate": "results/noveltybench/tiny/{v}/nb-curated/generations.jsonl",
}
# SSoT answers after generated text: only the fidelity and open-ended evaluations read it.
SSOT_RULES = ("evaluate_fidelity", "evaluate_openended")


@pytest.mark.slow
def test_every_evaluation_script_runs_each_variant_kind(repo_root, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(repo_root / "config", workdir / "config")
    (workdir / "data").symlink_to(repo_root / "data")
    save_tiny_checkpoint(workdir / "tiny_model")
    (workdir / "tiny.yaml").write_text(TINY_VARIANTS)
    targets = [pattern.format(v=variant) for rule, pattern in PER_VARIANT.items()
               for variant in ("base", "temperature", *(["ssot"] if rule in SSOT_RULES else []))]
    run = smk(repo_root, workdir, "--cores", "2", "--configfile", "config/config.yaml", "tiny.yaml", "--", *targets)
    assert run.returncode == 0, run.stderr[-4000:]
    counts = job_counts(run.stderr)  # a real run logs its job table to stderr
    expected = {rule: 3 if rule in SSOT_RULES else 2 for rule in PER_VARIANT}
    # Base and the temperature share one fidelity job (one tree forward) and one job of each retention
    # evaluation (one decoder forward); SSoT has its own fidelity and open-ended jobs.
    expected["evaluate_fidelity"] = 1
    expected["evaluate_tinybench"] = expected["evaluate_perplexity"] = None
    assert {rule: counts.get(rule) for rule in PER_VARIANT} == expected
    assert counts["evaluate_fidelity_transforms"] == 1
    assert counts["evaluate_tinybench_transforms"] == counts["evaluate_perplexity_transforms"] == 1
    assert counts["fit_temperature"] == 1
    for target in targets:
        assert (workdir / target).stat().st_size > 0, target
