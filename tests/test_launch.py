"""Multi-GPU training: the launcher commands, when a job uses one, DistributedDataParallel's gradient
averaging over two gloo processes, and a real two-process torchrun (gloo, CPU) whose adapter equals
that of one process training on the same global batches."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from cft.io import write_jsonl
from cft.launch import entry_point_args, launcher_command, train_adapter_job, uses_launcher
from cft.training.distributed import data_parallel
from cft.prompts import PromptSpec
from tiny_models import save_tiny_record

# Every process of these tests runs on this machine, so gloo talks over the loopback interface:
# left to itself it picks the address the hostname resolves to, which in a sandbox can take
# connections that never complete. A wedged group fails the test after PROCESS_GROUP_TIMEOUT
# instead of gloo's default of 30 minutes.
LOOPBACK = next(name for _, name in socket.if_nameindex() if name.startswith("lo"))
PROCESS_GROUP_TIMEOUT = timedelta(seconds=60)
LAUNCH_DEADLINE_S = 600


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


ARGS = dict(model_record="results/models/m.json", prompts_path="results/datasets/train_subset.jsonl",
            settings={"method": "soft", "lr": 2e-4}, checkpoint_dir="results/checkpoints/m/soft",
            adapter_dir="results/adapters/m/soft/adapter", log_csv="results/adapters/m/soft/train_log.csv",
            record_path="results/adapters/m/soft/train_config.json")


def test_torchrun_command_runs_the_training_module_once_per_gpu():
    args = entry_point_args(**ARGS, threads=4)
    command = launcher_command("torchrun", 2, args, python="/venv/bin/python")
    assert command[:6] == ["/venv/bin/python", "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", "-m"]
    assert command[6] == "cft.training"
    tail = command[7:]
    assert tail[tail.index("--settings") + 1] == json.dumps({"lr": 2e-4, "method": "soft"})
    assert tail[tail.index("--adapter-dir") + 1] == "results/adapters/m/soft/adapter"
    assert tail[tail.index("--threads") + 1] == "4"


def test_accelerate_command():
    command = launcher_command("accelerate", 4, ["--x"], python="py")
    assert command[:3] == ["py", "-m", "accelerate.commands.launch"]
    assert "--multi_gpu" in command and "--num_processes=4" in command
    assert command[-3:] == ["-m", "cft.training", "--x"]


@pytest.mark.parametrize("kind, processes", [("slurm", 2), ("torchrun", 1)])
def test_bad_launcher_settings_are_refused(kind, processes):
    with pytest.raises(ValueError, match="train.launcher.kind" if kind == "slurm" else "at least 2"):
        launcher_command(kind, processes, [])


@pytest.mark.parametrize("launcher, gpus, expected", [
    ({"kind": "none"}, 2, False), ({"kind": "torchrun"}, 1, False), ({"kind": "torchrun"}, 0, False),
    ({"kind": "torchrun"}, 2, True), ({"kind": "accelerate", "num_processes": 4}, 4, True),
])
def test_only_multi_gpu_jobs_with_a_launcher_are_launched(launcher, gpus, expected):
    assert uses_launcher(launcher, gpus) is expected


def test_entry_point_parses_what_the_launcher_passes(monkeypatch):
    import cft.training.__main__ as entry

    seen = {}
    monkeypatch.setattr(entry, "train_from_workflow", lambda **kwargs: seen.update(kwargs))
    entry.main(entry_point_args(**ARGS, threads=3))
    assert seen["settings"] == ARGS["settings"]
    assert seen["threads"] == 3 and seen["device"] is None
    assert {k: seen[k] for k in ARGS if k != "settings"} == {k: v for k, v in ARGS.items() if k != "settings"}


def test_paper_config_launches_the_largest_models(repo_root):
    """The paper config's 20B and 27B models get two GPUs and so the torchrun launcher; the others not."""
    from cft.config import load_config

    config = load_config(repo_root / "config/config.yaml", repo_root / "config/paper.yaml")
    launched = [m["name"] for m in config["models"]
                if uses_launcher(config["train"]["launcher"], 2 if m["params_b"] > 14 else 1)]
    assert launched == ["gemma3_27b", "gpt_oss_20b"]
    default = load_config(repo_root / "config/config.yaml")
    assert default["train"]["launcher"]["kind"] == "none"


def two_layers() -> torch.nn.ModuleDict:
    torch.manual_seed(0)
    return torch.nn.ModuleDict({"used": torch.nn.Linear(3, 1), "unused": torch.nn.Linear(3, 1)})


def square_loss(layers: torch.nn.ModuleDict, batch) -> torch.Tensor:
    return layers["used"](batch["x"]).square().sum()


def rank_input(rank: int, step: int) -> torch.Tensor:
    return torch.full((1, 3), float(rank + 1 + step))


def data_parallel_steps(rank: int, port: int, out: str) -> None:
    """Two backward passes on rank `rank` of 2, each on this rank's own input; saves the gradients."""
    os.environ["GLOO_SOCKET_IFNAME"] = LOOPBACK
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=PROCESS_GROUP_TIMEOUT)
    layers = two_layers()
    loss = data_parallel(layers, lambda batch: square_loss(layers, batch))
    grads = []
    for step in range(2):
        loss({"x": rank_input(rank, step)}).backward()
        grads.append({name: None if p.grad is None else p.grad.clone() for name, p in layers.named_parameters()})
        layers.zero_grad(set_to_none=True)
    torch.save(grads, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_data_parallel_averages_gradients_and_leaves_unused_parameters_alone(tmp_path):
    """Through `data_parallel` every process ends its backward with the mean of the processes' own
    gradients, and a parameter the loss never reaches (a multimodal model's vision tower under LoRA)
    keeps no gradient, step after step, instead of stopping DDP at the second step."""
    processes = mp.start_processes(data_parallel_steps, args=(free_port(), str(tmp_path)), nprocs=2,
                                   join=False, start_method="spawn")
    # join raises as soon as a process fails, and returns False while one still runs.
    deadline = time.monotonic() + LAUNCH_DEADLINE_S
    while not processes.join(timeout=max(deadline - time.monotonic(), 0.0)):
        if time.monotonic() >= deadline:
            for process in processes.processes:
                process.kill()
            pytest.fail(f"the two gloo processes did not finish within {LAUNCH_DEADLINE_S} s")
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    layers = two_layers()
    for step in range(2):
        expected = {}
        for rank in (0, 1):
            layers.zero_grad(set_to_none=True)
            square_loss(layers, {"x": rank_input(rank, step)}).backward()
            for name, p in layers.named_parameters():
                if p.grad is not None:
                    expected[name] = expected.get(name, 0) + p.grad / 2
        assert set(expected) == {"used.weight", "used.bias"}
        for grads in ranks:
            assert grads[step]["unused.weight"] is None and grads[step]["unused.bias"] is None
            for name, grad in expected.items():
                torch.testing.assert_close(grads[step][name], grad)


PROMPTS = [
    PromptSpec.from_params("gaussian", {"mu": 0.0, "sigma": 1.0}),
    PromptSpec.from_params("binomial", {"n": 5.0, "p": 0.5}),
    PromptSpec.from_params("uniform", {"a": 0.0, "b": 2.0}),
    PromptSpec.from_params("geometric", {"p": 0.5}),
]


def job_files(root, name, settings):
    if not (root / "model.json").exists():
        save_tiny_record(root)
        write_jsonl(root / "prompts.jsonl", [{"spec": p.to_dict()} for p in PROMPTS])
    return dict(model_record=str(root / "model.json"), prompts_path=str(root / "prompts.jsonl"),
                settings=settings, checkpoint_dir=str(root / name / "run"),
                adapter_dir=str(root / name / "adapter"), log_csv=str(root / name / "train_log.csv"),
                record_path=str(root / name / "train_config.json"))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["soft", "hard"])
def test_two_process_torchrun_matches_one_process(method, tmp_path):
    """torchrun with 2 CPU processes (gloo), batch 1 per process, trains the same adapter as one
    process with batch 2: same examples and seeds per step (the paper's sharding formula), gradients
    averaged across processes. Dropout is off, since each process draws its own masks. Hard targets'
    loss is a mean over tokens, and the two processes' answers have different lengths."""
    common = dict(method=method, epochs=1, samples_per_prompt=1, lr=3e-2, lora_dropout=0.0, warmup_ratio=0.0,
                  checkpoint_every=1, max_steps=2, lora_target_modules=["q_proj", "v_proj"])
    single = job_files(tmp_path, "single", {**common, "batch_size": 2})
    train_adapter_job(launcher={"kind": "none"}, gpus=0, threads=1, device="cpu", **single)

    launched = job_files(tmp_path, "launched", {**common, "batch_size": 1})
    command = launcher_command("torchrun", 2, entry_point_args(**launched, threads=1))
    # Its own session, so that a deadline stops torchrun's workers with it.
    launch = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True,
                              env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "GLOO_SOCKET_IFNAME": LOOPBACK})
    try:
        _, stderr = launch.communicate(timeout=LAUNCH_DEADLINE_S)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        _, stderr = launch.communicate()
        pytest.fail(f"torchrun did not finish within {LAUNCH_DEADLINE_S} s:\n{stderr[-4000:]}")
    assert launch.returncode == 0, stderr[-4000:]

    record = json.loads((tmp_path / "launched" / "train_config.json").read_text())
    assert record["total_steps"] == 2 and record["steps_per_epoch"] == 2
    one = load_file(tmp_path / "single" / "adapter" / "adapter_model.safetensors")
    two = load_file(tmp_path / "launched" / "adapter" / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6)
    # Training moved the weights (LoRA B starts at zero).
    assert any(t.abs().max() > 0 for name, t in two.items() if "lora_B" in name)
    # The logged loss of a launched step is the mean over processes: the one-process batch loss.
    losses_one = pd.read_csv(tmp_path / "single" / "train_log.csv")["loss"]
    losses_two = pd.read_csv(tmp_path / "launched" / "train_log.csv")["loss"]
    np.testing.assert_allclose(losses_two, losses_one, rtol=1e-5)
    assert len(losses_two) == 2
    # The logged tokens are every process's: the one-process batch's count.
    tokens_one = pd.read_csv(tmp_path / "single" / "train_log.csv")["tokens"]
    tokens_two = pd.read_csv(tmp_path / "launched" / "train_log.csv")["tokens"]
    assert tokens_two.tolist() == tokens_one.tolist()
