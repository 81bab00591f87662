"""The workflow reads the registries: a variant kind registered in `cft.variants` alone (no rule, schema
or list edited) and named in a temporary copy of the config reaches the dry run of every evaluation its
kind can take, and of no other; the evaluators refuse a kind the same table refuses."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from cft.config import ConfigError, load_config, validate_config
from cft.variants import EVALUATION_NEEDS, VARIANT_KINDS, accepts, open_variant, variant_kind

# Registers a toy kind and a variant of it, then runs Snakemake in the same process, so that the
# workflow sees the registry as this program left it.
RUN_WITH_TOY = """
import sys

from cft.styles import Style
from cft.variants import register_variant, register_variant_kind

register_variant_kind("toy", **{key: value == "True" for key, value in (a.split("=") for a in sys.argv[1:3])})(
    lambda model, files: model)
register_variant("toy", "toy", Style("#117733", "d", "-", "**"))

from snakemake.cli import main

main(sys.argv[3:])
"""

# Generalization scores only variants with exact metrics: the config may name toy there only then.
TOY_CONFIG = """
train: {{methods: [soft], ablations: []}}
evaluate:
  variants: [base, soft, toy]
  generalization: {{variants: {generalization}}}
"""

# Each evaluation's per-variant output (`cft.variants.EVALUATION_NEEDS` names the evaluations).
OUTPUTS = {
    "fidelity": "results/fidelity/smollm2_135m/{v}/prompts.csv",
    "openended": "results/openended/smollm2_135m/{v}/prompts.csv",
    "choices": "results/openended/smollm2_135m/{v}/choices.csv",
    "mcq": "results/mcq/smollm2_135m/{v}/summary.json",
    "generalization": "results/generalization/smollm2_135m/{v}/prompts.csv",
    "noveltybench": "results/noveltybench/smollm2_135m/{v}/nb-curated/generations.jsonl",
    "tinybench": "results/retention/smollm2_135m/{v}/tinybench_tasks.csv",
    "perplexity": "results/retention/smollm2_135m/{v}/perplexity_slices.csv",
}


def test_every_evaluation_has_its_output_here():
    assert set(OUTPUTS) == set(EVALUATION_NEEDS)


@pytest.mark.parametrize("teacher_forceable, has_logits, taken_by", [
    # A model of its own with logits: every evaluation.
    (True, True, set(OUTPUTS)),
    # A sampler without logits (an API model, say): only the sampled evaluations.
    (False, False, {"fidelity", "openended", "mcq", "noveltybench"}),
])
def test_a_toy_kind_registered_alone_reaches_the_evaluations_it_can_take(teacher_forceable, has_logits, taken_by,
                                                                         repo_root, tmp_path):
    shutil.copytree(repo_root / "config", tmp_path / "config")
    (tmp_path / "data").symlink_to(repo_root / "data")
    generalization = "[base, toy]" if teacher_forceable else "[base]"
    (tmp_path / "toy.yaml").write_text(TOY_CONFIG.format(generalization=generalization))
    run = subprocess.run(
        [sys.executable, "-c", RUN_WITH_TOY, f"teacher_forceable={teacher_forceable}", f"has_logits={has_logits}",
         "-n", "--nolock", "--forceall", "--workflow-profile", "none",
         "--snakefile", str(repo_root / "workflow" / "Snakefile"), "--configfile", "config/config.yaml", "toy.yaml",
         "--", "all"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = {evaluation for evaluation, output in OUTPUTS.items() if output.format(v="toy") in run.stdout}
    assert seen == taken_by
    # Beside the base model.
    assert all(OUTPUTS[evaluation].format(v="base") in run.stdout for evaluation in taken_by)


def test_the_config_and_the_evaluators_refuse_what_the_workflow_leaves_out(repo_root, tmp_path):
    """The config check and `open_variant` (before it reads any file) ask the same table."""
    config = load_config(repo_root / "config" / "config.yaml")
    config["evaluate"]["generalization"]["variants"] = ["base", "ssot"]
    with pytest.raises(ConfigError, match=r"evaluate\.generalization\.variants\[1\]': 'ssot' has no exact metrics"):
        validate_config(config)
    config["evaluate"]["generalization"]["variants"] = ["base"]
    config["evaluate"]["variants"] = ["base", "sot"]
    with pytest.raises(ConfigError, match=r"evaluate\.variants\[1\]': 'sot' is none of \[soft, hard, .*ssot\]"):
        validate_config(config)
    ssot = variant_kind("ssot")
    assert [e for e in EVALUATION_NEEDS if accepts(e, ssot)] == ["fidelity", "openended"]
    assert all(accepts(e, VARIANT_KINDS["temperature"]) for e in EVALUATION_NEEDS)
    with pytest.raises(ValueError, match="'ssot' .* cannot be evaluated by tinybench: it is no model of its own"):
        open_variant(tmp_path / "absent.json", "ssot", evaluation="tinybench")
    with pytest.raises(ValueError, match="mcq: it changes the prompt"):
        open_variant(tmp_path / "absent.json", "ssot", evaluation="mcq")
