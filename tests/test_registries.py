"""The workflow reads the registries: a variant kind registered in `cft.variants` alone (no rule, schema
or list edited) and named in a temporary copy of the config reaches the dry run of every evaluation its
kind can take, and of no other; the evaluators refuse a kind the same table refuses; an evaluation
registered in `cft.evaluations` alone gets its jobs, table and figure in the dry run of `all`."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from cft.config import ConfigError, load_config, validate_config
from cft.evaluations import EVALUATIONS
from cft.variants import VARIANT_KINDS, accepts, open_variant, variant_kind

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

# Each evaluation's per-variant output (`cft.evaluations.EVALUATIONS` names the evaluations).
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
    assert set(OUTPUTS) == set(EVALUATIONS)


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
    assert [e for e in EVALUATIONS if accepts(e, ssot)] == ["fidelity", "openended"]
    assert all(accepts(e, VARIANT_KINDS["temperature"]) for e in EVALUATIONS)
    with pytest.raises(ValueError, match="'ssot' .* cannot be evaluated by tinybench: it is no model of its own"):
        open_variant(tmp_path / "absent.json", "ssot", evaluation="tinybench")
    with pytest.raises(ValueError, match="mcq: it changes the prompt"):
        open_variant(tmp_path / "absent.json", "ssot", evaluation="mcq")


# Registers an evaluation that only teacher-forceable variants can take, then dry-runs `all`.
RUN_WITH_TOY_EVALUATION = """
import sys

from cft.evaluations import Evaluation, Product, register_evaluation

register_evaluation(Evaluation(
    "toy_eval", needs=("teacher_forceable",), runner="toy:run", settings=("exact_choices",),
    outputs={"scores": "results/toy/{model}/{variant}/scores.csv"},
    table=Product("results/tables/toy_scores.csv", "toy:table", "Toy scores."),
    figure=Product("results/figures/toy_scores", "toy:plot", lambda s: "Toy: " + ", ".join(s["categories"])),
    category="Toy"))

from snakemake.cli import main

main(sys.argv[1:])
"""


def test_an_evaluation_registered_alone_gets_its_jobs_table_and_figure(repo_root, tmp_path):
    shutil.copytree(repo_root / "config", tmp_path / "config")
    (tmp_path / "data").symlink_to(repo_root / "data")
    run = subprocess.run(
        [sys.executable, "-c", RUN_WITH_TOY_EVALUATION, "-n", "--nolock", "--forceall", "--workflow-profile", "none",
         "--snakefile", str(repo_root / "workflow" / "Snakefile"), "--configfile", "config/config.yaml", "--", "all"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    config = load_config(repo_root / "config" / "config.yaml")
    taken = [v for v in config["evaluate"]["variants"] if accepts("choices", variant_kind(v, config["train"]["methods"]))]
    assert "ssot" in config["evaluate"]["variants"] and "ssot" not in taken
    counts = {line.split()[0]: int(line.split()[1]) for line in run.stdout.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert (counts["evaluate_toy_eval"], counts["tab_toy_scores"], counts["fig_toy_scores"]) == (len(taken), 1, 1)
    for variant in config["evaluate"]["variants"]:
        assert (f"results/toy/smollm2_135m/{variant}/scores.csv" in run.stdout) == (variant in taken)
    assert "results/figures/toy_scores.pdf" in run.stdout


def test_every_registered_evaluation_resolves_its_functions_and_captions(repo_root):
    """What `evaluations.smk` and the generic scripts read of each entry exists for the default config."""
    from cft.evaluations import load_function, registered_runs

    config = load_config(repo_root / "config" / "config.yaml")
    runs = registered_runs()
    assert [e.name for e in runs] == ["choices", "tinybench", "perplexity"]
    for evaluation in runs:
        settings = evaluation.settings_of(config)
        for function in (evaluation.runner, evaluation.table.function, evaluation.figure.function):
            assert callable(load_function(function)), function
        assert len(evaluation.table.caption_text(settings)) > 100
        assert len(evaluation.figure.caption_text(settings)) > 100
        assert all("{model}" in path and "{variant}" in path for path in evaluation.outputs.values())


# Registers a toy kind with a fitted file and a variant of it, then dry-runs `all`.
RUN_WITH_FITTED_TOY = """
import sys

from cft.styles import Style
from cft.variants import Fitter, register_variant, register_variant_kind

fitter = Fitter("fit_toy", "toy:fit", {"scale": "results/variants/{model}/{variant}/scale.json"}, "temperature")
register_variant_kind("toy", input_key="scale", input_path="results/variants/{model}/{variant}/scale.json",
                      transforms_logits=True, fitter=fitter)(lambda model, files: model)
register_variant("toy", "toy", Style("#117733", "d", "-", "**"))

from snakemake.cli import main

main(sys.argv[1:])
"""


def test_a_fitted_toy_kind_registered_alone_gets_its_fit_job(repo_root, tmp_path):
    """A kind with a `Fitter` (settings of an existing `baselines` section here, to leave the schema
    alone) gets its fit job, and every evaluation that takes it reads the fitted file."""
    shutil.copytree(repo_root / "config", tmp_path / "config")
    (tmp_path / "data").symlink_to(repo_root / "data")
    (tmp_path / "toy.yaml").write_text(TOY_CONFIG.format(generalization="[base, toy]"))
    run = subprocess.run(
        [sys.executable, "-c", RUN_WITH_FITTED_TOY, "-n", "-p", "--nolock", "--forceall", "--workflow-profile", "none",
         "--snakefile", str(repo_root / "workflow" / "Snakefile"), "--configfile", "config/config.yaml", "toy.yaml",
         "--", "all"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "rule fit_toy:" in run.stdout
    assert "output: results/variants/smollm2_135m/toy/scale.json" in run.stdout
    # The toy's evaluations (one per evaluation it takes) and the fit itself read or write the file.
    assert run.stdout.count("results/variants/smollm2_135m/toy/scale.json") >= len(OUTPUTS) + 1
    assert all(output.format(v="toy") in run.stdout for output in OUTPUTS.values())
