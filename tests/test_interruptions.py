"""SIGKILL and rerun.

A fidelity evaluation killed mid-run leaves no table behind that could pass for complete, and its
rerun completes it with the same metrics as an uninterrupted run. Every trainer (soft, hard,
fullsupport, exactdigit) killed before its first checkpoint, rerun, killed again after a checkpoint and
rerun ends with the adapter (same tensor names, same values) and the loss log of an uninterrupted
run; so do both ATS heads, which have no checkpoints and restart. The kills are real SIGKILLs that the
killed process sends itself at a chosen step, so where they land does not depend on the machine's
speed (test_training.py also kills the hard trainer from outside, wherever it lands).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import torch
from safetensors.torch import load_file

from cft.baselines.ats import load_ats_head, train_ats
from cft.evaluation.fidelity import FidelitySettings, evaluate_fidelity
from cft.io import write_jsonl
from cft.prompts import PromptSpec
from cft.training import TrainConfig, train
from tiny_models import TRAIN_PROMPTS, save_tiny_record

PROMPTS = [
    PromptSpec.from_params("binomial", {"n": 4.0, "p": 0.5}),
    PromptSpec.from_params("gaussian", {"mu": 0.0, "sigma": 1.0}),
    PromptSpec.from_params("geometric", {"p": 0.5}),
    PromptSpec.from_params("uniform", {"a": 0.0, "b": 1.0}),
]
SETTINGS = dict(num_samples=12, batch_size=6, max_new_tokens=4, digit_resolution=1,
                target={"decimals": 1, "max_bins": 64}, max_digit_intervals=200)
# Timing columns differ between runs; everything else must not.
TIMING = ["exact_seconds", "sampled_seconds"]

KILLED_EVALUATION = """
import json, logging, sys
import torch
from cft.evaluation.fidelity import FidelitySettings, evaluate_fidelity
torch.set_num_threads(1)
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
kwargs, settings = json.loads(sys.argv[1]), json.loads(sys.argv[2])
evaluate_fidelity(settings=FidelitySettings(**settings), **kwargs)
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupted-eval")
    save_tiny_record(root)
    write_jsonl(root / "unseen.jsonl", [{"spec": spec.to_dict()} for spec in PROMPTS])
    return root


def run_kwargs(root: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return dict(model_record_path=str(root / "model.json"), adapter_dir=None, variant="base",
                test_sets={"unseen": str(root / "unseen.jsonl")}, prompts_csv=str(out / "prompts.csv"),
                samples_jsonl=str(out / "samples.jsonl"), distributions_json=str(out / "distributions.json"),
                threads=1)


def test_killed_evaluation_leaves_no_table_and_the_rerun_completes_it(setup):
    straight = evaluate_fidelity(settings=FidelitySettings(**SETTINGS), **run_kwargs(setup, setup / "straight"))
    assert len(straight) == len(PROMPTS)

    out = setup / "killed"
    kwargs = run_kwargs(setup, out)
    process = subprocess.Popen([sys.executable, "-c", KILLED_EVALUATION, json.dumps(kwargs), json.dumps(SETTINGS)],
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    # Kill it once it has finished its first prompt and is working on the next.
    for line in process.stderr:
        if "exact" in line and "sampled" in line:
            break
        assert time.monotonic() < deadline, "no prompt finished in time"
    assert process.poll() is None, "the evaluation ended before it was killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not any((out / name).exists() for name in ("prompts.csv", "samples.jsonl", "distributions.json"))

    evaluate_fidelity(settings=FidelitySettings(**SETTINGS), **kwargs)
    rerun = pd.read_csv(out / "prompts.csv").drop(columns=TIMING)
    expected = pd.read_csv(setup / "straight" / "prompts.csv").drop(columns=TIMING)
    pd.testing.assert_frame_equal(rerun, expected)
    assert (out / "samples.jsonl").read_bytes() == (setup / "straight" / "samples.jsonl").read_bytes()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


# ---- trainers ------------------------------------------------------------------------------------

# 6 prompts in batches of 2: 3 steps per epoch (6 for hard, 2 samples per prompt); a checkpoint every
# 2 steps and at each epoch's end, so the second kill finds the one of step 4 as the newest.
TRAIN_CONFIG = dict(epochs=2, batch_size=2, lr=3e-2, checkpoint_every=2, samples_per_prompt=2,
                    target={"decimals": 2, "max_bins": 64}, max_nodes_per_step=8)
BEFORE_FIRST_CHECKPOINT, AFTER_CHECKPOINTS = 1, 5
# Columns of train_log.csv that an interrupted run must reproduce (seconds is wall time).
LOG_COLUMNS = ["step", "epoch", "loss", "lr", "tokens"]

KILLED_TRAINING = """
import json, os, signal, sys
import torch
import cft.training.trainer as trainer_module
from cft.prompts import PromptSpec
from cft.training import TrainConfig, train
torch.set_num_threads(1)
method, model_dir, out, prompts, config = sys.argv[1:4] + [json.loads(a) for a in sys.argv[4:6]]
kill_at = int(sys.argv[6])
step = trainer_module.CalibrationTrainer.training_step

def step_or_die(self, batch_items, epoch):
    if self.step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self, batch_items, epoch)

trainer_module.CalibrationTrainer.training_step = step_or_die
train(method, [PromptSpec.from_dict(p) for p in prompts], model_dir, out, TrainConfig(**config), progress=False)
"""


def train_killed_at(method: str, model_dir: Path, out: Path, config: dict, step: int) -> None:
    process = subprocess.run([sys.executable, "-c", KILLED_TRAINING, method, str(model_dir), str(out),
                              json.dumps([p.to_dict() for p in TRAIN_PROMPTS]), json.dumps(config), str(step)],
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]


def checkpoint_steps(out: Path) -> list[int]:
    folder = out / "checkpoints"
    return sorted(int(p.name.removeprefix("step_")) for p in folder.glob("step_*")) if folder.is_dir() else []


def assert_same_tensors(expected: dict[str, torch.Tensor], resumed: dict[str, torch.Tensor]) -> None:
    assert sorted(expected) == sorted(resumed)
    for name in expected:
        assert torch.allclose(expected[name], resumed[name], atol=1e-6), name


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_record(tmp_path_factory.mktemp("trainers")).parent / "tiny"


@pytest.mark.parametrize("method", ["soft", "hard", "fullsupport", "exactdigit"])
def test_every_trainer_killed_before_and_after_a_checkpoint_resumes_to_the_same_adapter(
        method, tiny_model_dir, tmp_path, one_torch_thread):
    config = {"method": method, **TRAIN_CONFIG}
    straight = train(method, TRAIN_PROMPTS, tiny_model_dir, tmp_path / "straight", TrainConfig(**config),
                     progress=False)

    out = tmp_path / "killed"
    train_killed_at(method, tiny_model_dir, out, config, BEFORE_FIRST_CHECKPOINT)
    assert checkpoint_steps(out) == [] and not (out / "DONE").exists()
    train_killed_at(method, tiny_model_dir, out, config, AFTER_CHECKPOINTS)
    assert checkpoint_steps(out)[-1] == AFTER_CHECKPOINTS - 1 and not (out / "DONE").exists()
    train(method, TRAIN_PROMPTS, tiny_model_dir, out, TrainConfig(**config), progress=False)

    assert (out / "DONE").exists()
    assert_same_tensors(load_file(straight / "adapter_model.safetensors"),
                        load_file(out / "adapter" / "adapter_model.safetensors"))
    expected_log = pd.read_csv(tmp_path / "straight" / "train_log.csv")
    resumed_log = pd.read_csv(out / "train_log.csv")
    assert list(resumed_log["step"]) == list(range(1, len(expected_log) + 1))
    pd.testing.assert_frame_equal(resumed_log[LOG_COLUMNS], expected_log[LOG_COLUMNS], atol=1e-6, rtol=0)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


# ---- ATS heads -----------------------------------------------------------------------------------

ATS_SETTINGS = dict(head_size=16, lr=0.05, steps=8, batch_size=3, target={"decimals": 1, "max_bins": 16},
                    max_response_tokens=8)
ATS_KILL_STEP = 5
# The killed process logs each finished step; a handler kills it once step ATS_KILL_STEP is logged,
# before the head, its record or its log is written.
KILLED_ATS = """
import json, logging, os, signal, sys
import torch
from cft.baselines.ats import train_ats
torch.set_num_threads(1)
kwargs, kill_at = json.loads(sys.argv[1]), int(sys.argv[2])

class DieAtStep(logging.Handler):
    def emit(self, record):
        if record.args and record.args[1] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

logger = logging.getLogger("cft.baselines.ats")
logger.setLevel(logging.INFO)
logger.addHandler(DieAtStep())
train_ats(**kwargs)
"""


def ats_kwargs(root: Path, out: Path, loss: str) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return dict(model_record_path=str(root / "model.json"), loss=loss, prompts_path=str(root / "prompts.jsonl"),
                settings={**ATS_SETTINGS, "instruction_data": str(root / "alpaca.jsonl")},
                head_out=str(out / "head.pt"), record_out=str(out / "head.json"), log_csv=str(out / "log.csv"),
                device="cpu", threads=1)


@pytest.fixture(scope="module")
def ats_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ats-kill")
    save_tiny_record(root)
    write_jsonl(root / "prompts.jsonl", [{"spec": spec.to_dict()} for spec in PROMPTS])
    write_jsonl(root / "alpaca.jsonl",
                [{"instruction": f"Say the number {i}.", "input": "", "output": f"{i}"} for i in range(6)])
    return root


@pytest.mark.parametrize("loss", ["smooth", "kl"])
def test_killed_ats_head_leaves_nothing_and_its_rerun_gives_the_same_head(loss, ats_root, tmp_path, one_torch_thread):
    train_ats(**ats_kwargs(ats_root, tmp_path / "straight", loss))

    out = tmp_path / "killed"
    kwargs = ats_kwargs(ats_root, out, loss)
    process = subprocess.run([sys.executable, "-c", KILLED_ATS, json.dumps(kwargs), str(ATS_KILL_STEP)],
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    assert list(out.iterdir()) == [], "a killed ATS run must leave no head, record or log behind"

    train_ats(**kwargs)
    expected, rerun = load_ats_head(tmp_path / "straight" / "head.pt"), load_ats_head(out / "head.pt")
    assert_same_tensors(expected.state_dict(), rerun.state_dict())
    expected_log = pd.read_csv(tmp_path / "straight" / "log.csv")
    rerun_log = pd.read_csv(out / "log.csv")
    pd.testing.assert_frame_equal(rerun_log.drop(columns="seconds"), expected_log.drop(columns="seconds"),
                                  atol=1e-6, rtol=0)
