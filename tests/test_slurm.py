"""The workflow on a real one-node SLURM cluster (tests/slurm_cluster.py) through profiles/slurm and
snakemake-executor-plugin-slurm: a tiny run end to end with the same results as a local run and
every job in the partition its GPU request calls for, a training job cancelled by the scheduler and
resumed by the profile's retry, and a 2-GPU training job that starts two processes.

The profile is the shipped one with the edits a site makes (tests' `site_profile`); the scheduler's
own record of each job (`scontrol show job`, kept by MinJobAge) says where it ran."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from cft.config import load_config, train_settings
from cft.launch import train_adapter_job
from slurm_cluster import start_cluster
from tiny_models import save_tiny_checkpoint

pytest.importorskip("snakemake_executor_plugin_slurm")

TINY = """
models:
  - {name: tiny, source: tiny_model, dtype: float32, params_b: 0.0001}
data: {train_prompts: 4}
train:
  methods: [soft, hard]
  ablations: []
  common: {batch_size: 2, max_steps: 2, checkpoint_every: 2}
  # Long enough for the scheduler to cancel it after its first checkpoint, with steps left to resume.
  soft: {epochs: 12, max_steps: 24}
  hard: {epochs: 1}
evaluate:
  variants: [base, soft, hard, temperature]
  splits: [heldout]
  bootstrap: 20
  fidelity: {num_samples: 2, max_new_tokens: 8, batch_size: 4, exact: false}
"""
TARGETS = ["results/tables/fidelity_summary.csv", "results/figures/fidelity_summary.pdf"]
GPU_RULES = {"train_adapter", "fit_temperature", "evaluate_fidelity", "evaluate_fidelity_transforms"}
CPU_RULES = {"prepare_model"}
TIMEOUT_S = 1200
# Timing columns differ between runs; everything else must not.
TIMING = ["exact_seconds", "sampled_seconds"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()


def site_profile(repo_root: Path, dest: Path, **set_resources) -> Path:
    """profiles/slurm with what a site edits, for this node: one CPU per job and per GPU (the node has
    two), `squeue` for job states (no accounting database), quick first status checks, and device
    auto, so that jobs request GPUs but run on the CPU the fake GPUs leave them. The partition
    names of partitions.yaml are the node's."""
    profile = yaml.safe_load((repo_root / "profiles/slurm/config.yaml").read_text())
    profile.update({"cores": 1, "latency-wait": 5, "slurm-status-command": "squeue",
                    "slurm-init-seconds-before-status-checks": 2})
    profile["default-resources"]["cpus_per_gpu"] = 1
    profile["config"]["device"] = "auto"
    # The shipped memory of a 27B checkpoint's preparation does not fit the test node.
    set_resources = {"prepare_model": {"mem_mb": 2000}, **set_resources}
    for rule, resources in set_resources.items():
        profile.setdefault("set-resources", {}).setdefault(rule, {}).update(resources)
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    shutil.copy(repo_root / "profiles/slurm" / profile["slurm-partition-config"], dest)
    return dest


def tiny_workdir(repo_root: Path, workdir: Path, tiny_yaml: str) -> Path:
    shutil.copytree(repo_root / "config", workdir / "config")
    save_tiny_checkpoint(workdir / "tiny_model")
    (workdir / "tiny.yaml").write_text(tiny_yaml)
    return workdir


def snakemake(repo_root, workdir, *args, env=None, wait=True):
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(repo_root / "workflow" / "Snakefile"),
               "--configfile", "config/config.yaml", "tiny.yaml", *args]
    if not wait:
        return subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def start_local(repo_root, workdir, *targets):
    """The same run on this machine, started in the background: the SLURM run spends most of its
    time waiting between status checks, so the two overlap."""
    return snakemake(repo_root, workdir, "--workflow-profile", "none", "--cores", "1",
                     "--config", "device=auto", "--", *targets, wait=False)


def finish(process) -> tuple[int, str]:
    try:
        output = process.communicate(timeout=TIMEOUT_S)[0]
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, output


def scheduled_jobs(cluster, workdir: Path) -> list[dict]:
    """The scheduler's record of the jobs submitted from `workdir`, with the rule from the plugin's
    job comment and the GPUs of the request (0 without)."""
    jobs = []
    for job in cluster.jobs().values():
        if job.get("WorkDir") != str(workdir):
            continue
        rule = re.fullmatch(r"rule_(\w+?)(_wildcards_.*)?", job["Comment"]).group(1)
        gpus = re.search(r"gres:gpu:(\d+)", job.get("TresPerJob", ""))
        jobs.append({**job, "rule": rule, "gpus": int(gpus.group(1)) if gpus else 0})
    return sorted(jobs, key=lambda job: int(job["JobId"]))


def assert_adapters_equal(a: Path, b: Path) -> None:
    one, two = load_file(a / "adapter_model.safetensors"), load_file(b / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6)
    assert any(t.abs().max() > 0 for name, t in two.items() if "lora_B" in name)


def test_tiny_run_on_slurm_matches_a_local_run(repo_root, tmp_path, cluster):
    """base, soft, hard and a fitted temperature, their fidelity evaluations, the table, a figure and
    the report, through profiles/slurm. The soft training job is cancelled by the scheduler after its
    first checkpoint: the profile's `retries` resubmits it, it resumes from the checkpoint, and every
    result equals that of an uninterrupted local run."""
    workdir = tiny_workdir(repo_root, tmp_path / "slurm", TINY)
    shutil.copytree(workdir, tmp_path / "local")
    profile = site_profile(repo_root, tmp_path / "profile")
    reference = start_local(repo_root, tmp_path / "local", *TARGETS)

    start = time.monotonic()
    run = snakemake(repo_root, workdir, "--workflow-profile", str(profile), "--", *TARGETS, env=cluster.env,
                    wait=False)
    try:
        checkpoints = workdir / "results/checkpoints/tiny/soft/checkpoints"
        while not (checkpoints.is_dir() and any(p.name.startswith("step_") for p in checkpoints.iterdir())):
            assert run.poll() is None, run.stdout.read()[-4000:]
            time.sleep(0.2)
        soft = [job for job in scheduled_jobs(cluster, workdir) if job["Comment"].endswith("_tiny_soft")
                and job["rule"] == "train_adapter"]
        assert [job["JobState"] for job in soft] == ["RUNNING"], soft
        cluster.run("scancel", soft[0]["JobId"])
    except BaseException:
        run.kill()
        raise
    returncode, output = finish(run)
    wall_s = time.monotonic() - start
    assert returncode == 0, output[-6000:]
    print(f"tiny SLURM run: {wall_s:.0f} s")
    report = snakemake(repo_root, workdir, "--workflow-profile", str(profile), "--report", "report.html",
                       "--", *TARGETS, env=cluster.env)
    assert report.returncode == 0, report.stderr[-4000:]
    assert "fidelity_summary.png" in (workdir / "report.html").read_text()
    returncode, reference = finish(reference)
    assert returncode == 0, reference[-4000:]

    # The cancelled job, then its retry, which resumed from the checkpoint (step 2, 4, ... of 24).
    jobs = scheduled_jobs(cluster, workdir)
    cancelled = [job for job in jobs if job["JobState"] != "COMPLETED"]
    assert [(job["rule"], job["JobState"], job["JobId"]) for job in cancelled] == [
        ("train_adapter", "CANCELLED", soft[0]["JobId"])], cancelled
    log = (workdir / "logs/train_adapter/tiny_soft.log").read_text()
    assert re.search(r"resumed soft training from .*step_\d+ \(step [1-9]\d* of 24\)", log), log[-2000:]
    assert len(pd.read_csv(workdir / TRAIN_LOG)) == 24
    assert "resumed" not in (tmp_path / "local/logs/train_adapter/tiny_soft.log").read_text()

    # The jobs of the local run, each either submitted (`rule`) or run by the workflow's own process
    # (`localrule`: tables and figures); every submitted job is in the scheduler's record, completed.
    local_jobs = Counter(re.findall(r"^(?:rule|localrule) (\w+):$", reference, re.M))
    submitted = set(re.findall(r"^rule (\w+):$", output, re.M))
    # (The cancelled job's SLURM log, shown as a failed job's log, names its rule `localrule`.)
    local_only = set(re.findall(r"^localrule (\w+):$", output, re.M)) - submitted
    assert submitted | local_only == set(local_jobs)
    completed = Counter(job["rule"] for job in jobs if job["JobState"] == "COMPLETED")
    assert completed == Counter({rule: n for rule, n in local_jobs.items() if rule in submitted})
    # Where each ran, from the scheduler: a job with a GPU request in `gpu`, every other in `cpu`.
    for job in jobs:
        assert job["Partition"] == ("gpu" if job["gpus"] else "cpu"), job
        if job["gpus"]:
            assert job["CpusPerTres"] == "gres:gpu:1", job
    assert {job["rule"] for job in jobs if job["gpus"]} == GPU_RULES
    assert {job["rule"] for job in jobs if not job["gpus"]} == CPU_RULES

    # The same results as the local run.
    for target in TARGETS:
        assert (workdir / target).stat().st_size > 0
    for table in ("fidelity_summary.csv", "fidelity_prompts.csv"):
        slurm, local = (pd.read_csv(root / "results/tables" / table).drop(columns=TIMING, errors="ignore")
                        for root in (workdir, tmp_path / "local"))
        pd.testing.assert_frame_equal(slurm, local)
    for variant in ("base", "soft", "hard", "temperature"):
        samples = f"results/fidelity/tiny/{variant}/samples.jsonl"
        assert (workdir / samples).read_text() == (tmp_path / "local" / samples).read_text(), variant
    for method in ("soft", "hard"):
        assert_adapters_equal(workdir / f"results/adapters/tiny/{method}/adapter",
                              tmp_path / f"local/results/adapters/tiny/{method}/adapter")
    fits = [json.loads((root / "results/variants/tiny/temperature.json").read_text())
            for root in (workdir, tmp_path / "local")]
    for fit in fits:
        del fit["seconds"]
    assert fits[0] == fits[1]


TRAIN_LOG = "results/adapters/tiny/soft/train_log.csv"


TWO_GPUS = """
models:
  - {name: tiny, source: tiny_model, dtype: float32, params_b: 20}
data: {train_prompts: 4}
evaluate: {variants: [base, soft]}
train:
  methods: [soft]
  ablations: []
  launcher: {kind: torchrun}
  common: {batch_size: 1, max_steps: 2, checkpoint_every: 1, lr: 3.0e-2, lora_dropout: 0.0, warmup_ratio: 0.0,
           lora_target_modules: [q_proj, v_proj]}
  soft: {epochs: 1}
"""


def test_two_gpu_training_job_starts_two_processes(repo_root, tmp_path, cluster):
    """A model above 14B parameters trains on 2 GPUs: one job on the GPU node, torchrun starts two
    processes (gloo on the CPU), and the adapter is that of one process with twice the batch, as
    in test_launch.py's two-process test."""
    workdir = tiny_workdir(repo_root, tmp_path / "slurm", TWO_GPUS)
    # The 20B model's host memory and time do not fit the test node: a site's per-rule override.
    profile = site_profile(repo_root, tmp_path / "profile", train_adapter={"mem_mb": 2000, "runtime": 30})
    run = snakemake(repo_root, workdir, "--workflow-profile", str(profile), "--", TRAIN_LOG, env=cluster.env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    [training] = [job for job in scheduled_jobs(cluster, workdir) if job["rule"] == "train_adapter"]
    assert (training["Partition"], training["gpus"], training["JobState"]) == ("gpu", 2, "COMPLETED"), training
    log = (workdir / "logs/train_adapter/tiny_soft.log").read_text()
    assert "launching: " in log and "--nproc_per_node=2" in log, log[-2000:]
    record = json.loads((workdir / "results/adapters/tiny/soft/train_config.json").read_text())
    assert record["total_steps"] == 2

    config = load_config(workdir / "config/config.yaml", workdir / "tiny.yaml")
    single = tmp_path / "single"
    train_adapter_job(launcher={"kind": "none"}, gpus=0, threads=1, device="cpu",
                      model_record=str(workdir / "results/models/tiny.json"),
                      prompts_path=str(workdir / "results/datasets/train_subset.jsonl"),
                      settings={**train_settings(config, "tiny", "soft"), "batch_size": 2},
                      checkpoint_dir=str(single / "run"), adapter_dir=str(single / "adapter"),
                      log_csv=str(single / "train_log.csv"), record_path=str(single / "train_config.json"))
    assert_adapters_equal(single / "adapter", workdir / "results/adapters/tiny/soft/adapter")
