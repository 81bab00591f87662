"""results/manifest.json: provenance of a run, and tables that a rerun on unchanged inputs reproduces
byte for byte. Two fresh runs of the workflow up to the manifest on a tiny random Llama (every
evaluation of the base model, every table), one at `--cores 2` and one at `--cores 1`, must give the
same table hashes: a job's numbers do not depend on the cores it is granted (docs/running.md, "What
is reproducible"). Adapters are left out to halve the test's time: that training reruns to the same
adapter is tests/test_training.py's subject."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from test_report import smk
from tiny_models import save_tiny_checkpoint

from cft.provenance import sha256_file, sha256_tree

TINY_RUN = """
models:
  - {name: tiny, source: tiny_model, dtype: float32, params_b: 0.0001}
data: {train_prompts: 4}
train: {methods: [soft], ablations: []}
evaluate:
  variants: [base]
  splits: [heldout]
  bootstrap: 20
  fidelity: {num_samples: 2, max_new_tokens: 8, batch_size: 4, exact: false}
  openended: {num_samples: 2, max_new_tokens: 4, max_prompts: 3}
  mcq: {num_samples: 2, max_new_tokens: 16}
  noveltybench: {num_prompts: 2, k: 2, max_new_tokens: 8}
  retention:
    tinybench: {limits: {standin_truthfulqa: 4, standin_arithmetic_2_digit_addition: 2,
                         standin_arithmetic_2_digit_multiplication: 2}}
    perplexity: {max_tokens: 64, context_length: 32, stride: 16}
"""


def run_workflow(repo_root, workdir, cores: int):
    shutil.copytree(repo_root / "config", workdir / "config")
    (workdir / "data").symlink_to(repo_root / "data")
    save_tiny_checkpoint(workdir / "tiny_model")
    (workdir / "tiny.yaml").write_text(TINY_RUN)
    run = smk(repo_root, workdir, "--cores", str(cores), "--configfile", "config/config.yaml", "tiny.yaml", "--",
              "results/manifest.json")
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads((workdir / "results" / "manifest.json").read_text())


@pytest.mark.slow
def test_manifest_records_the_run_and_a_rerun_gives_the_same_tables(repo_root, tmp_path):
    first = run_workflow(repo_root, tmp_path / "first", cores=2)
    second = run_workflow(repo_root, tmp_path / "second", cores=1)

    assert len(first["tables"]) == 9
    assert first["tables"] == second["tables"]
    assert first["config_sha256"] == second["config_sha256"]
    assert first["config"]["models"][0]["name"] == "tiny" and first["config"]["train"]["report_to"] == []

    inside_git = subprocess.run(["git", "-C", str(repo_root), "rev-parse", "HEAD"], capture_output=True).returncode == 0
    if inside_git:  # a commit of this repository (HEAD may have moved on since the run)
        known = subprocess.run(["git", "-C", str(repo_root), "cat-file", "-e", first["git"]["commit"] + "^{commit}"])
        assert known.returncode == 0 and isinstance(first["git"]["dirty"], bool)
    assert first["packages"]["torch"] and first["machine"]["cpu_cores"] >= 1
    assert first["machine"]["snakemake_cores"] == 2
    # At --cores 1 Snakemake grants a model job one thread; it runs at the config's two all the same.
    for root in ("first", "second"):
        summaries = list((tmp_path / root / "results/noveltybench/tiny/base").glob("nb-*/summary.json"))
        assert summaries and all(json.loads(path.read_text())["environment"]["torch_threads"] == 2
                                 for path in summaries)
    tiny = first["models"]["tiny"]
    assert tiny["files"] == sha256_tree(tmp_path / "first" / "tiny_model")
    assert "noveltybench_classifier_stand_in" in first["models"]
    data = first["data"]
    assert data["results/datasets/heldout.jsonl"] == sha256_file(tmp_path / "first/results/datasets/heldout.jsonl")
    assert "data/noveltybench/curated.jsonl" in data
    assert any(name.startswith("cft/baselines/data/") for name in data)
    for path, digest in first["tables"].items():
        assert sha256_file(tmp_path / "first" / path) == digest, path
