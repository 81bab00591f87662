"""The fidelity curve and the paired comparisons through Snakemake on a tiny random Llama: snapshots
kept by training, scored exactly, tabulated beside base and the final adapter, and drawn."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from scipy import stats
from test_report import smk
from test_workflow import job_counts
from tiny_models import save_tiny_checkpoint

TINY_CURVE = """
models:
  - {name: tiny, source: tiny_model, dtype: float32, params_b: 0.0001}
data: {train_prompts: 4, train_families: [gaussian, binomial, uniform], heldout_families: [bernoulli, poisson]}
train:
  methods: [soft, hard]
  ablations: []
  common: {batch_size: 2, max_steps: 3, checkpoint_every: 2}
  soft: {epochs: 2}
  hard: {epochs: 1, samples_per_prompt: 2}
evaluate:
  variants: [base, soft, hard]
  splits: [heldout]
  bootstrap: 20
  curve: {methods: [soft, hard], snapshots: 2}
  generalization: {variants: [base, soft], prompts_per_family: 1}
  fidelity: {num_samples: 0, max_new_tokens: 8, batch_size: 4, exact: true, max_digit_intervals: 200}
"""
OUTPUTS = ["results/tables/fidelity_curve.csv", "results/figures/fidelity_curve.pdf",
           "results/tables/fidelity_comparisons.csv", "results/figures/fidelity_comparisons.pdf",
           "results/tables/fidelity_generalization.csv", "results/figures/fidelity_generalization.pdf"]


@pytest.mark.slow
def test_curve_and_comparisons_of_a_tiny_real_run(repo_root, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(repo_root / "config", workdir / "config")
    save_tiny_checkpoint(workdir / "tiny_model")
    (workdir / "tiny.yaml").write_text(TINY_CURVE)
    run = smk(repo_root, workdir, "--cores", "2", "--configfile", "config/config.yaml", "tiny.yaml", "--", *OUTPUTS)
    assert run.returncode == 0, run.stderr[-4000:]
    counts = job_counts(run.stderr)
    assert counts["evaluate_curve"] == 2 and counts["train_adapter"] == 2
    assert counts["evaluate_generalization"] == 2

    curve = pd.read_csv(workdir / OUTPUTS[0])
    steps = {variant: sorted(set(group["step"])) for variant, group in curve.groupby("variant")}
    # Snapshots at steps 1 and 2, the final adapter at 3, base at 0.
    assert steps == {"base": [0], "hard": [1, 2, 3], "soft": [1, 2, 3]}
    assert set(curve["metric"]) == {"digit_kl", "exact_w1_norm", "exact_trie_kl", "exact_valid_mass",
                                    "first_token_numeric_mass"}
    tokens = curve[(curve.variant == "soft") & (curve.metric == "digit_kl")].sort_values("step")["tokens_seen"]
    assert tokens.is_monotonic_increasing and tokens.iloc[0] > 0
    assert (curve["training_flops"] >= 0).all()
    # The final point is the final adapter's evaluation: the same digit KL as in fidelity_prompts.csv.
    prompts = pd.read_csv(workdir / "results/tables/fidelity_prompts.csv")
    final = curve[(curve.variant == "soft") & (curve.step == 3) & (curve.metric == "exact_trie_kl")]["median"].iloc[0]
    assert final == pytest.approx(prompts[prompts.variant == "soft"].groupby("family_id")["exact_trie_kl"].mean().median())

    comparisons = pd.read_csv(workdir / OUTPUTS[2])
    assert set(zip(comparisons.variant_a, comparisons.variant_b)) == {("soft", "base"), ("hard", "base"), ("soft", "hard")}
    row = comparisons[(comparisons.variant_a == "soft") & (comparisons.variant_b == "base")
                      & (comparisons.metric == "exact_trie_kl")].iloc[0]
    family = {v: prompts[prompts.variant == v].groupby("family_id")["exact_trie_kl"].mean() for v in ("soft", "base")}
    assert row.p_value == pytest.approx(stats.wilcoxon(family["soft"], family["base"]).pvalue, rel=1e-8)
    generalization = pd.read_csv(workdir / OUTPUTS[4])
    assert list(dict.fromkeys(generalization["group"])) == ["seen", "unseen_inside", "unseen_outside"]
    assert set(zip(generalization.variant_a, generalization.variant_b)) == {("soft", "base")}
    # One training prompt per family leaves Gaussian and Uniform without an interpolation (a range of
    # one point); Binomial's 2 training prompts span n from 5 to 15 and p from 0.65 to 0.75.
    assert generalization.groupby("group", observed=True)["n_families"].max().to_dict() == {
        "seen": 3, "unseen_inside": 1, "unseen_outside": 3}
    for output in OUTPUTS:
        assert (workdir / output).stat().st_size > 0, output
