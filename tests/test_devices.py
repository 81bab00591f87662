"""GPU jobs on one machine (cft.devices, profiles/local-gpu): each job claims its own devices from a
fake device list, without CUDA, and the profile's 1-GPU jobs fit side by side."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cft.devices import bind_gpus, try_claim
from test_workflow import snakemake

# A job process: claim, report the devices it sees, hold them until its stdin closes.
JOB = """
import json, os, sys
from cft.devices import bind_gpus
claimed = bind_gpus(int(sys.argv[1]))
print(json.dumps([claimed, os.environ["CUDA_VISIBLE_DEVICES"]]), flush=True)
sys.stdin.read()
"""


def start_job(gpus: int, env: dict) -> tuple[subprocess.Popen, list]:
    process = subprocess.Popen([sys.executable, "-c", JOB, str(gpus)], env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    claimed, visible = json.loads(process.stdout.readline())
    assert visible == ",".join(claimed)
    return process, claimed


def end_job(process: subprocess.Popen) -> None:
    process.stdin.close()
    assert process.wait(timeout=60) == 0


def test_concurrent_jobs_get_their_own_devices(tmp_path, monkeypatch):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path), "CUDA_VISIBLE_DEVICES": "0,1,2",
           "CFT_GPU_LOCK_DIR": str(tmp_path / "locks")}
    first, one = start_job(1, env)
    second, two = start_job(2, env)
    try:
        assert len(one) == 1 and len(two) == 2
        assert sorted(one + two) == ["0", "1", "2"]
        # Every device is held: a further claim gets none until a job ends.
        assert try_claim(1, ["0", "1", "2"], tmp_path / "locks") is None
    finally:
        end_job(first)
    # The ended job's device is free again (the kernel dropped its lock with the process).
    monkeypatch.setattr("cft.devices._held", [])
    assert try_claim(1, ["0", "1", "2"], tmp_path / "locks") == one
    end_job(second)


def test_jobs_claim_nothing_without_gpus_or_under_slurm(tmp_path):
    base = {"CFT_GPU_LOCK_DIR": str(tmp_path / "locks")}
    assert bind_gpus(0, {**base, "CUDA_VISIBLE_DEVICES": "0,1"}) == []
    # The scheduler has bound the job's devices already.
    slurm = {**base, "CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_ID": "7"}
    assert bind_gpus(1, slurm) == [] and slurm["CUDA_VISIBLE_DEVICES"] == "0"
    # A machine without GPUs: nothing to bind (CPU runs with a GPU profile still work).
    assert bind_gpus(1, {**base, "CUDA_VISIBLE_DEVICES": ""}) == []


def test_a_job_requesting_more_gpus_than_the_machine_has_fails(tmp_path):
    with pytest.raises(RuntimeError, match="requests 2 GPUs but this machine has 1"):
        bind_gpus(2, {"CFT_GPU_LOCK_DIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": "0"})


def test_local_gpu_profile_runs_one_gpu_jobs_side_by_side(repo_root):
    """Under profiles/local-gpu (16 cores, 2 GPUs), every job that runs a model asks for 1 GPU and the
    config's torch_threads (config/paper.yaml's 8): two of them fit the profile's limits at once.
    Without a profile, `--cores` does not change what a model job asks for."""
    import yaml

    profile = yaml.safe_load((repo_root / "profiles/local-gpu/config.yaml").read_text())
    paper = yaml.safe_load((repo_root / "config/paper.yaml").read_text())
    cores, gpus = profile["cores"], profile["resources"]["gpu"]
    assert gpus >= 2
    target = "results/fidelity/smollm2_135m/soft/distributions.json"
    result = snakemake(repo_root, "-n", "--forceall", "--workflow-profile", "profiles/local-gpu",
                       # (--config replaces the profile's `config`, so its device is repeated.)
                       "--config", "device=cuda", f"torch_threads={paper['torch_threads']}", "--", target)
    assert result.returncode == 0, result.stderr[-3000:]
    model_jobs = 0
    for block in result.stdout.split("\n\n"):
        if "gpu=1" not in block:
            continue
        model_jobs += 1
        threads = int(next(line for line in block.splitlines() if line.strip().startswith("threads:")).split()[-1])
        assert threads == paper["torch_threads"], block
        assert gpus * threads <= cores
    assert model_jobs >= 2   # train_adapter and evaluate_fidelity
    default = yaml.safe_load((repo_root / "config/config.yaml").read_text())
    assert default["torch_threads"] < 4
    cpu = snakemake(repo_root, "-n", "--forceall", "--cores", "4", "--", target)
    assert cpu.returncode == 0, cpu.stderr[-3000:]
    # Below the config's count, Snakemake grants a job fewer threads than it asks for; the job runs
    # torch at the config's count either way (cft.jobs.torch_threads, tests/test_thread_counts.py).
    assert f"threads: {default['torch_threads']}" in cpu.stdout and "threads: 4" not in cpu.stdout


def test_every_script_of_a_gpu_rule_binds_its_devices(repo_root):
    """A rule that declares a `gpu` resource (itself or through `model_job_resources`) runs a script
    that calls bind_gpus before CUDA starts; otherwise two of its jobs on a many-GPU machine would share
    device 0."""
    import inspect
    import re

    from cft.evaluations import run_shared_decoder_job, run_variant_job
    from cft.jobs import start_model_job
    from cft.variants import run_fit_job

    rules = {}
    for smk in (repo_root / "workflow" / "rules").glob("*.smk"):
        # Rules inside an `if` block or a loop are indented; a loop's rules are named by `name:`.
        for block in (b.lstrip() for b in re.split(r"\n(?=\s*rule[ :])", smk.read_text())):
            script = re.search(r'script:\s*"\.\./scripts/([\w.]+)"', block)
            declares_gpu = "gpu=" in block or "model_job_resources(" in block
            if block.startswith("rule") and declares_gpu and script:
                name = re.search(r"name:\s*(\S+)", block) if block.startswith("rule:") else None
                rules[name.group(1) if name else block.split()[1].rstrip(":")] = script.group(1)
    assert len(rules) >= 9 and {"evaluate_fidelity_transforms", 'f"evaluate_{evaluation.name}"', "fitter.rule"} <= set(rules)
    # The scripts bind them through `start_model_job`, the generic scripts of the registered
    # evaluations and of the fitted variant kinds through `run_variant_job`, `run_shared_decoder_job` and
    # `run_fit_job`, which call it.
    helpers = {"run_variant_job(snakemake)": inspect.getsource(run_variant_job),
               "run_shared_decoder_job(snakemake)": inspect.getsource(run_shared_decoder_job),
               "run_fit_job(snakemake)": inspect.getsource(run_fit_job),
               "start_model_job(snakemake)": inspect.getsource(start_model_job)}
    for rule, script in rules.items():
        text = (repo_root / "workflow" / "scripts" / script).read_text()
        for call, source in helpers.items():  # run_*_job's source calls start_model_job
            text += source if call in text else ""
        assert "bind_gpus(snakemake.resources.gpu)" in text, (rule, script)
