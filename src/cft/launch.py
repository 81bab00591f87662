"""Multi-GPU training: the launcher command of one `train_adapter` job.

A job that the workflow gives more than one GPU (models above 14B parameters, `gpus_for` in
workflow/rules/common.smk) and a config with `train.launcher.kind` set trains through an existing
launcher, `torchrun` or `accelerate launch`, which starts one process per GPU running the package's
training entry point (`python -m cft.training`); the processes train data-parallel
(`cft.training.distributed`). Every other job trains in the Snakemake job's own process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from cft.training import train_from_workflow

LAUNCHERS = ("none", "torchrun", "accelerate")


def entry_point_args(*, model_record: str, prompts_path: str, settings: Mapping[str, Any], checkpoint_dir: str,
                     adapter_dir: str, log_csv: str, record_path: str, threads: int,
                     snapshots_dir: str | None = None,
                     tensorboard_dir: str | None = None) -> list[str]:
    """The command-line arguments of `python -m cft.training` for one job (see cft/training/__main__.py)."""
    return [
        "--model-record", str(model_record), "--prompts", str(prompts_path),
        "--settings", json.dumps(dict(settings), sort_keys=True),
        "--checkpoint-dir", str(checkpoint_dir), "--adapter-dir", str(adapter_dir),
        "--log-csv", str(log_csv), "--record", str(record_path), "--threads", str(threads),
        *(["--snapshots-dir", str(snapshots_dir)] if snapshots_dir is not None else []),
        *(["--tensorboard-dir", str(tensorboard_dir)] if tensorboard_dir else []),
    ]


def launcher_command(kind: str, num_processes: int, args: Sequence[str], *,
                     python: str = sys.executable) -> list[str]:
    """The command that starts `num_processes` copies of `python -m cft.training <args>` on this machine.

    Both launchers run as modules of `python`, so they use the job's environment. torchrun runs
    `--standalone`: a local rendezvous on a free port, so that jobs sharing a node do not collide.
    `accelerate launch` uses its default main port (29500): prefer torchrun where GPU jobs share nodes.
    """
    if num_processes < 2:
        raise ValueError(f"a launcher starts at least 2 processes, got {num_processes}")
    if kind == "torchrun":
        return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={num_processes}",
                "-m", "cft.training", *args]
    if kind == "accelerate":
        # --mixed_precision=no: the trainer picks dtypes itself (LoRA in fp32 over a bf16 base).
        return [python, "-m", "accelerate.commands.launch", "--multi_gpu", f"--num_processes={num_processes}",
                "--num_machines=1", "--mixed_precision=no", "-m", "cft.training", *args]
    raise ValueError(f"config key 'train.launcher.kind': {kind!r} is not one of {', '.join(LAUNCHERS)}")


def tensorboard_dir(config: Mapping[str, Any], model: str, variant: str, results: str = "results") -> str | None:
    """Where `train.report_to: [tensorboard]` puts the training curves of (model, variant); None when off."""
    if "tensorboard" not in config["train"].get("report_to", []):
        return None
    return f"{results}/tensorboard/{model}/{variant}"


def uses_launcher(launcher: Mapping[str, Any], gpus: int) -> bool:
    return launcher.get("kind", "none") != "none" and gpus > 1


def train_adapter_job(*, launcher: Mapping[str, Any], gpus: int, model_record: str, prompts_path: str,
                      settings: Mapping[str, Any], checkpoint_dir: str, adapter_dir: str, log_csv: str,
                      record_path: str, threads: int, device: str | None, log=None,
                      snapshots_dir: str | None = None,
                      tensorboard_dir: str | None = None) -> None:
    """The `train_adapter` rule: in this process, or through the launcher with one process per GPU.

    `log` (an open file) receives the launched processes' output; their exit status is checked.
    `tensorboard_dir`: where training curves go while the job runs (None: nowhere).
    """
    outputs = dict(model_record=model_record, prompts_path=prompts_path, settings=settings,
                   checkpoint_dir=checkpoint_dir, adapter_dir=adapter_dir, log_csv=log_csv,
                   record_path=record_path, snapshots_dir=snapshots_dir,
                   tensorboard_dir=tensorboard_dir)
    if not uses_launcher(launcher, gpus):
        train_from_workflow(**outputs, threads=threads, device=device)
        return
    processes = launcher.get("num_processes") or gpus
    args = entry_point_args(**outputs, threads=max(1, threads // processes))
    command = launcher_command(launcher["kind"], processes, args)
    print("launching: " + " ".join(command), file=log or sys.stderr, flush=True)
    subprocess.run(command, check=True, stdout=log, stderr=log)
