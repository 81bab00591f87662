"""The cluster profiles: the SLURM plugin's own submission of a GPU training job, the partition of
every job of the paper matrix, the one-GPU-box profile's resource limits, and the ablation variants of
the paper config in the DAG."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from cft.config import ablation_variants, load_config
from test_workflow import job_counts, snakemake

FAKE_SBATCH = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_SLURM_LOG"
cat > /dev/null
echo 4242
"""


def fake_slurm(bin_dir):
    """`sbatch` records its arguments and answers a job id; the query tools answer nothing useful."""
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    for tool in ("sacct", "squeue", "sinfo", "sacctmgr", "sshare", "scontrol", "scancel"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)


def submit_one_job(repo_root, tmp_path, target, *extra):
    """Run the workflow through profiles/slurm until the plugin has called sbatch once, then stop it."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    workdir = tmp_path / "work"
    shutil.copytree(repo_root / "config", workdir / "config")
    # Existing (empty) inputs: only the training job itself is submitted; it never runs.
    for path in ("results/models/gemma3_27b.json", "results/models/qwen3_1p7b.json",
                 "results/datasets/train_subset.jsonl"):
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).write_text("{}\n")
    # The paper config's local assets, so that the preflight (Snakefile `onstart`) lets the run start.
    config = load_config(workdir / "config" / "config.yaml", workdir / "config" / "paper.yaml")
    perplexity = config["evaluate"]["retention"]["perplexity"]
    for slice_name in perplexity["slices"]:
        shard = workdir / perplexity["root"] / slice_name / perplexity["split"] / "val.jsonl.gz"
        shard.parent.mkdir(parents=True, exist_ok=True)
        shard.write_bytes(b"")
    irt_parameters = workdir / config["evaluate"]["retention"]["tinybench"]["irt_parameters"]
    irt_parameters.parent.mkdir(parents=True, exist_ok=True)
    irt_parameters.write_bytes(b"")
    fake_slurm(tmp_path / "bin")
    log = tmp_path / "sbatch.log"
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "FAKE_SLURM_LOG": str(log)}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(repo_root / "workflow" / "Snakefile"),
               "--workflow-profile", str(repo_root / "profiles/slurm"), "--configfile=config/paper.yaml",
               "--retries", "0", "--allowed-rules", "train_adapter", *extra, "--", target]
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        # The plugin polls job states for minutes; the submission is all this test needs.
        while process.poll() is None and not log.exists():
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            # SIGTERM would make Snakemake wait for the submitted job to finish.
            os.killpg(process.pid, signal.SIGKILL)
        output = process.communicate(timeout=60)[0]
    assert log.exists(), output[-3000:]
    return log.read_text().splitlines()[0], output


def test_slurm_submission_of_a_two_gpu_training_job(repo_root, tmp_path):
    call, output = submit_one_job(repo_root, tmp_path, "results/adapters/gemma3_27b/soft/train_log.csv")
    args = call.split()
    # A 27B model trains on two GPUs of the profile's GPU partition, with memory and time scaled to it.
    assert "--gpus=2" in args, call
    assert args[args.index("-p") + 1] == "gpu"
    assert args[args.index("-A") + 1] == "my_account"
    assert args[args.index("--mem") + 1] == "164000"
    assert args[args.index("-t") + 1] == str(60 + 60 * 27)
    assert "--cpus-per-gpu=8" in args
    # Never a per-GPU task count: that starts the training script once per GPU (plugin issues #316, #459).
    assert not any(a.startswith("--ntasks") for a in args)
    assert "--target-jobs" in args and "train_adapter:model=gemma3_27b,method=soft" in call


def test_slurm_submission_of_an_ablation_job(repo_root, tmp_path):
    call, _ = submit_one_job(repo_root, tmp_path, "results/adapters/qwen3_1p7b/hard_s8_e4/train_log.csv")
    args = call.split()
    assert "--gpus=1" in args
    assert args[args.index("-p") + 1] == "gpu"
    assert "train_adapter:model=qwen3_1p7b,method=hard_s8_e4" in call


class JobResources(dict):
    """A job's resources as the plugin reads them: `.get(name)` and attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def dry_run_jobs(stdout: str):
    """(rule, threads, resources) of every job a dry run lists. A dry run does not mark local rules
    (tables, figures: never submitted), so they are listed too; they request no GPU."""
    for block in stdout.split("\n\n"):
        match = re.search(r"^rule (\w+):$", block, re.M)
        if not match:
            continue
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        resources = JobResources()
        listed = re.search(r"^\s+resources: (.*)$", block, re.M)
        for item in listed.group(1).split(", ") if listed else []:
            name, value = item.split("=", 1)
            resources[name] = int(value) if value.isdigit() else value
        yield match.group(1), int(threads.group(1)) if threads else 1, resources


def test_paper_matrix_routes_every_gpu_job_to_the_gpu_partition(repo_root):
    """Every job of the paper config, as the SLURM plugin would submit it under profiles/slurm: the
    plugin's own partition selection (from the profile's partitions.yaml) and its sbatch arguments
    for the resources the dry run resolved. Jobs requesting a GPU go to `gpu` with their GPUs and
    CPUs per GPU; all others to `cpu` without a GPU."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm import Executor
    from snakemake_executor_plugin_slurm.partitions import read_partition_file
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    result = snakemake(repo_root, "-n", "--forceall", "--workflow-profile", "profiles/slurm",
                       "--configfile=config/paper.yaml", "all")
    assert result.returncode == 0, result.stderr[-3000:]
    profile = yaml.safe_load((repo_root / "profiles/slurm/config.yaml").read_text())
    partitions = read_partition_file(repo_root / "profiles/slurm" / profile["slurm-partition-config"])
    quiet = SimpleNamespace(debug=lambda *a: None, info=lambda *a: None, warning=lambda *a: None)
    # The executor's own partition choice: a `slurm_partition` resource wins, else the best fit among
    # the partitions; no fallback to the cluster's default partition (`_fallback_partition`).
    executor = SimpleNamespace(_partitions=partitions, logger=quiet, _fallback_partition="(no partition fits)")
    routed = {"cpu": set(), "gpu": set()}
    jobs = list(dry_run_jobs(result.stdout))
    assert len(jobs) > 900
    for rule, threads, resources in jobs:
        job = SimpleNamespace(name=rule, threads=threads, resources=resources)
        partition_arg = Executor.get_partition_arg(executor, job)
        partition = partition_arg.split()[-1]
        params = dict(run_uuid="run", slurm_logfile="log", comment_str=rule, account="-A my_account",
                      partition=partition_arg, workdir=None)
        args = (get_submit_command(job, params) + set_gres_string(job)).split()
        gpus = resources.get("gpu", 0)
        where = f"{rule} {resources}"
        if gpus > 0:
            assert partition == "gpu", where
            assert f"--gpus={gpus}" in args and "--cpus-per-gpu=8" in args, where
        else:
            assert partition == "cpu", where
            assert not any("gpu" in arg for arg in args), where
        routed[partition].add(rule)
    # The rules the profile once listed by name, and those it missed (issue #16), all on GPUs.
    assert {"train_adapter", "evaluate_fidelity", "evaluate_fidelity_transforms", "evaluate_openended", "evaluate_mcq", "evaluate_choices",
            "evaluate_tinybench", "evaluate_perplexity", "noveltybench_generate", "noveltybench_score",
            "fit_temperature", "train_ats"} <= routed["gpu"]
    assert {"prepare_model", "make_split"} <= routed["cpu"]


def test_local_gpu_profile_requests_and_limits_gpus(repo_root):
    """On the CPU default, jobs ask for no GPU; the local-gpu profile switches the device to CUDA,
    so training and evaluation jobs ask for one, and caps the GPUs in use at once."""
    profile = yaml.safe_load((repo_root / "profiles/local-gpu/config.yaml").read_text())
    assert profile["resources"]["gpu"] >= 1 and profile["config"]["device"] == "cuda"
    for args, gpus in ((["--workflow-profile", "profiles/local-gpu"], "gpu=1"), ([], "gpu=0")):
        result = snakemake(repo_root, "-n", "--forceall", *args, "--", "results/adapters/smollm2_135m/soft/train_log.csv")
        assert result.returncode == 0, result.stderr[-3000:]
        block = result.stdout[result.stdout.index("rule train_adapter:"):]
        train = next(line for line in block.splitlines() if line.strip().startswith("resources:"))
        assert gpus in train.replace(" ", "").split(","), train


def test_paper_dry_run_includes_the_ablations(repo_root, tmp_path):
    result = snakemake(repo_root, "-n", "--forceall", "--configfile=config/paper.yaml", "all")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    no_ablations = tmp_path / "no_ablations.yaml"
    no_ablations.write_text("train: {ablations: []}\n")
    plain = snakemake(repo_root, "-n", "--forceall", "--configfile", "config/paper.yaml", str(no_ablations),
                      "--", "all")
    assert plain.returncode == 0, plain.stderr[-3000:]
    plain_counts = job_counts(plain.stdout)
    # 12 models x {soft, hard}, plus every (model, ablation) pair: among them Qwen3-1.7B's 4 x 3
    # grid-granularity and 3 hard-budget ablations; each ablation adapter is also evaluated once.
    config = load_config(repo_root / "config/config.yaml", repo_root / "config/paper.yaml")
    pairs = sum(len(ablation["models"]) for ablation in ablation_variants(config).values())
    assert pairs >= 4 * 3 + 3
    assert plain_counts["train_adapter"] == 12 * len(config["train"]["methods"])
    assert counts["train_adapter"] == plain_counts["train_adapter"] + pairs
    assert counts["evaluate_fidelity"] == plain_counts["evaluate_fidelity"] + pairs
    assert "tab_ablations" not in plain_counts
    assert counts["prepare_model"] == 12
    assert counts["tab_ablations"] == counts["fig_ablations_summary"] == 1
    for name in ("soft_d1_b1001", "soft_d2_b4096", "soft_d5_b16384", "hard_s8_e4", "hard_s16_e2", "hard_s32_e1"):
        assert f"results/adapters/qwen3_1p7b/{name}/adapter" in result.stdout
    assert "results/adapters/gemma3_27b/soft_d2_b4096" not in result.stdout


def test_default_dry_run_has_no_ablation_jobs(repo_root):
    result = snakemake(repo_root, "-n", "--forceall", "all")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tab_ablations" not in job_counts(result.stdout)
