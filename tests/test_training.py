"""cft.training: losses, answer-position gathering, data order, and the trainers on a tiny Llama.

The tiny model (2 layers, hidden 32, a character-level vocabulary of about 80 tokens) makes every
trainer test run in about a second; one slow test repeats the loss check on the real SmolLM2.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import cft.training.trainer as trainer_module
from cft.models import load_model, load_tokenizer
from cft.targets import TargetSettings
from cft.training import (
    HardTargetTrainer,
    SoftTargetTrainer,
    StaleRunError,
    TrainConfig,
    TrainingAlreadyDone,
    answer_logits,
    hard_target_ce,
    soft_target_kl,
    train,
)
from cft.training.losses import log_probs_at
from cft.training.data import Example, balanced_order, collate, epoch_batches, steps_per_epoch
from tiny_models import TRAIN_PROMPTS, char_tokenizer, eval_loss, tiny_llama

PROMPTS = TRAIN_PROMPTS


# The tiny models gain nothing from threads; see conftest.one_torch_thread.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """The tiny model and tokenizer saved as a checkpoint folder, so `train` loads it like a real one."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = char_tokenizer()
    tiny_llama(len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_config(method: str, **overrides) -> TrainConfig:
    settings = dict(method=method, epochs=2, batch_size=2, lr=3e-2, checkpoint_every=2, samples_per_prompt=2)
    return TrainConfig(**{**settings, **overrides})


# ---- losses ---------------------------------------------------------------------------------------


def test_soft_loss_equals_hand_computed_kl():
    logits = torch.tensor([[[1.0, 0.5, -1.0, 0.0], [0.2, 2.0, 0.0, -0.5], [9.0, 9.0, 9.0, 9.0]],
                           [[0.0, 0.0, 3.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    target_ids = torch.tensor([[[0, 1], [3, -1], [0, -1]], [[2, 3], [-1, -1], [-1, -1]]])
    target_probs = torch.tensor([[[0.25, 0.75], [1.0, 0.0], [1.0, 0.0]], [[0.5, 0.5], [0, 0], [0, 0]]])
    step_mask = torch.tensor([[True, True, False], [True, False, False]])
    temperature = 2.0

    def kl(z, children):
        log_p = np.log(np.exp(np.array(z) / temperature) / np.exp(np.array(z) / temperature).sum())
        return sum(q * (math.log(q) - log_p[t]) for t, q in children.items())

    first = (kl([1.0, 0.5, -1.0, 0.0], {0: 0.25, 1: 0.75}) + kl([0.2, 2.0, 0.0, -0.5], {3: 1.0})) / 2
    second = kl([0.0, 0.0, 3.0, 1.0], {2: 0.5, 3: 0.5})
    loss = soft_target_kl(log_probs_at(logits, target_ids, temperature), target_ids, target_probs, step_mask)
    assert loss.item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_soft_loss_floors_tiny_targets_at_epsilon():
    logits = torch.zeros(1, 1, 3)
    ids, mask = torch.tensor([[[0, 1]]]), torch.tensor([[True]])
    loss = soft_target_kl(log_probs_at(logits, ids), ids, torch.tensor([[[1.0, 0.0]]]), mask, epsilon=0.1)
    q = np.array([1.0, 0.1]) / 1.1
    assert loss.item() == pytest.approx(float(np.sum(q * (np.log(q) - np.log(1 / 3)))), rel=1e-6)


def test_soft_loss_is_lower_for_target_aligned_logits():
    ids = torch.tensor([[[3, 7, 9]]])
    probs = torch.tensor([[[0.2, 0.3, 0.5]]])
    mask = torch.tensor([[True]])
    aligned = torch.full((1, 1, 12), -20.0)
    aligned[0, 0, [3, 7, 9]] = torch.log(probs[0, 0])
    random_logits = torch.randn(1, 1, 12, generator=torch.Generator().manual_seed(0))
    assert soft_target_kl(log_probs_at(aligned, ids), ids, probs, mask).item() < 1e-6
    assert soft_target_kl(log_probs_at(random_logits, ids), ids, probs, mask).item() > 0.1


def test_soft_loss_runs_in_float32_for_bf16_logits():
    logits = torch.randn(2, 3, 50, generator=torch.Generator().manual_seed(1))
    ids = torch.randint(0, 50, (2, 3, 4), generator=torch.Generator().manual_seed(2))
    probs = torch.full((2, 3, 4), 0.25)
    mask = torch.ones(2, 3, dtype=torch.bool)
    low = soft_target_kl(log_probs_at(logits.bfloat16(), ids), ids, probs, mask)
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(soft_target_kl(log_probs_at(logits.bfloat16().float(), ids), ids, probs,
                                                       mask).item())


def test_hard_loss_masks_the_prompt():
    """Token-mean CE over value tokens + eos; nothing at prompt positions can change it."""
    tokenizer = char_tokenizer()
    examples = [Example([5, 6, 7, 8], [20, 21]), Example([5, 6], [30, 31, 32])]
    batch = collate(examples, pad_id=tokenizer.pad_token_id, eos_id=tokenizer.eos_token_id)
    # The standard formulation: eos in the input, labels over the whole sequence with -100 on the
    # prompt and padding, shifted by one.
    width = batch["input_ids"].shape[1] + 1
    full_logits = torch.randn(2, width, 40, generator=torch.Generator().manual_seed(3))
    full_labels = torch.full((2, width), -100)
    full_labels[0, 4:7] = torch.tensor([20, 21, 2])
    full_labels[1, 2:6] = torch.tensor([30, 31, 32, 2])
    reference = F.cross_entropy(full_logits[:, :-1].flatten(0, 1), full_labels[:, 1:].flatten(), ignore_index=-100)

    gathered = full_logits.gather(1, batch["positions"].unsqueeze(-1).expand(-1, -1, 40))
    labels = batch["labels"]
    loss = hard_target_ce(log_probs_at(gathered, labels.unsqueeze(-1)).squeeze(-1), labels)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)

    perturbed = full_logits.clone()
    perturbed[0, :3] += 100.0   # positions that predict prompt tokens
    perturbed[1, :1] -= 50.0
    perturbed[1, 5:] += 7.0     # after eos and padding
    regathered = perturbed.gather(1, batch["positions"].unsqueeze(-1).expand(-1, -1, 40))
    relabelled = hard_target_ce(log_probs_at(regathered, labels.unsqueeze(-1)).squeeze(-1), labels)
    assert relabelled.item() == pytest.approx(loss.item(), rel=1e-6)
    # Token-weighted: 3 + 4 supervised tokens, each weighs 1/7.
    per_token = F.cross_entropy(gathered.flatten(0, 1), batch["labels"].flatten(), reduction="none", ignore_index=-100)
    assert loss.item() == pytest.approx(per_token.sum().item() / 7, rel=1e-6)


# ---- gathering and batch layout ------------------------------------------------------------------


def test_collate_layout():
    steps = [(np.array([4, 5]), np.array([0.5, 0.5])), (np.array([2]), np.array([1.0]))]
    batch = collate([Example([9, 9, 9], [4], steps), Example([9], [5, 6, 7], steps * 2)], pad_id=0, eos_id=2)
    assert batch["input_ids"].tolist() == [[9, 9, 9, 4], [9, 5, 6, 7]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1]]
    assert batch["positions"].tolist() == [[2, 3, 3, 3], [0, 1, 2, 3]]
    assert batch["labels"].tolist() == [[4, 2, -100, -100], [5, 6, 7, 2]]
    assert batch["step_mask"].tolist() == [[True, True, False, False], [True] * 4]
    assert batch["target_ids"][0, 0].tolist() == [4, 5] and batch["target_ids"][0, 1].tolist() == [2, -1]


@pytest.mark.parametrize("with_lora", [False, True])
def test_answer_logits_equal_slices_of_full_logits(with_lora):
    from peft import LoraConfig, get_peft_model

    model = tiny_llama(80).eval()
    if with_lora:
        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
        model.eval()
    batch = collate([Example([1, 10, 11, 12, 13], [20, 21]), Example([1, 10], [22, 23, 24, 25])], pad_id=2, eos_id=2)
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        picked = answer_logits(model, batch["input_ids"], batch["attention_mask"], batch["positions"])
    for row in range(2):
        for k in range(int(batch["step_mask"][row].sum())):
            assert torch.allclose(picked[row, k], full[row, batch["positions"][row, k]], atol=1e-5)


def test_shared_prefix_forward_gives_the_unshared_loss_and_gradients():
    """The batch's common prefix goes through the decoder once; logits, loss and every LoRA gradient
    match one forward over the whole batch (dropout off, so both see the same function)."""
    from peft import LoraConfig, get_peft_model

    from cft.training.losses import decoder_hidden_after, shared_prefix_length

    prefix = [1, 30, 31, 32, 33, 34, 35, 36, 37, 38]
    examples = [Example(prefix + [10, 11, 12], [20, 21]), Example(prefix + [14], [22, 23, 24, 25]),
                Example(prefix + [15, 16], [26])]
    batch = collate(examples, pad_id=2, eos_id=2)
    assert shared_prefix_length(batch["input_ids"], batch["attention_mask"], batch["positions"]) == len(prefix)

    def loss_and_grads(shared: bool):
        model = get_peft_model(tiny_llama(80), LoraConfig(r=4, target_modules=["q_proj", "v_proj", "o_proj"],
                                                          lora_dropout=0.0, init_lora_weights=False))
        model.train()
        if shared:
            logits = answer_logits(model, batch["input_ids"], batch["attention_mask"], batch["positions"])
        else:
            hidden = decoder_hidden_after(model, batch["input_ids"], batch["attention_mask"], prefix=0)
            picked = hidden.gather(1, batch["positions"].unsqueeze(-1).expand(-1, -1, hidden.size(-1)))
            logits = model.get_output_embeddings()(picked).float()
        labels = batch["labels"]
        loss = hard_target_ce(log_probs_at(logits, labels.unsqueeze(-1)).squeeze(-1), labels)
        loss.backward()
        return logits.detach(), loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    shared_logits, shared_loss, shared_grads = loss_and_grads(shared=True)
    plain_logits, plain_loss, plain_grads = loss_and_grads(shared=False)
    assert torch.allclose(shared_logits, plain_logits, atol=1e-5)
    assert shared_loss == pytest.approx(plain_loss, rel=1e-6)
    # Every LoRA weight, those of the prefix's keys and values included, gets its gradient.
    assert all(plain_grads[n].abs().sum() > 0 for n in plain_grads)
    for name, grad in plain_grads.items():
        assert torch.allclose(shared_grads[name], grad, atol=1e-6, rtol=1e-4), name


def test_no_prefix_is_shared_when_too_short_or_when_an_answer_position_lies_in_it():
    from cft.training.losses import MIN_SHARED_PREFIX, shared_prefix_length

    short = collate([Example([1, 5, 6, 7], [20]), Example([1, 5, 6, 8], [21])], pad_id=2, eos_id=2)
    assert shared_prefix_length(short["input_ids"], short["attention_mask"], short["positions"]) == 0
    # Two rows with the same prompt: the last prompt token predicts the answer, so it is not shared.
    same = [1] + list(range(30, 30 + MIN_SHARED_PREFIX + 2))
    batch = collate([Example(same, [20]), Example(same, [21, 22])], pad_id=2, eos_id=2)
    assert shared_prefix_length(batch["input_ids"], batch["attention_mask"], batch["positions"]) == len(same) - 1


# ---- order and seeds -----------------------------------------------------------------------------


def test_balanced_order_mixes_families_first():
    families = ["b"] * 5 + ["a"] * 3 + ["c"] * 1
    order = balanced_order(families, seed=11)
    assert sorted(order) == list(range(9))
    assert {families[i] for i in order[:3]} == {"a", "b", "c"}
    assert [families[i] for i in order[-2:]] == ["b", "b"]
    assert order == balanced_order(families, seed=11)
    assert order != balanced_order(families, seed=12)


def test_epoch_batches_follow_the_seed_formula():
    families = ["x", "y", "z"] * 7
    batches = epoch_batches(families, seed=11, epoch=2, batch_size=4)
    assert len(batches) == steps_per_epoch(21, 4) == 6
    assert [seed for _, seed in batches[3]] == [11 + 200_000 + 12 + j for j in range(4)]
    assert sorted(item for batch in batches for item, _ in batch) == list(range(21))
    # Two ranks cover the (padded) epoch between them, with the paper's rank offsets.
    ranks = [epoch_batches(families, seed=11, epoch=0, batch_size=4, rank=r, world_size=2) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == steps_per_epoch(21, 4, world_size=2) == 3
    assert [seed for _, seed in ranks[1][1]] == [11 + 8 + 4 + j for j in range(4)]
    covered = {item for rank in ranks for batch in rank for item, _ in batch}
    assert covered == set(range(21))


def test_train_config_defaults_and_unknown_keys():
    assert (TrainConfig(method="soft").target.max_bins, TrainConfig(method="soft").epochs) == (1001, 3)
    assert (TrainConfig(method="hard").target.max_bins, TrainConfig(method="hard").epochs) == (16384, 2)
    hard = TrainConfig.from_dict({"method": "hard", "target": {"max_bins": 99}})
    assert hard.target == TargetSettings(max_bins=99)
    # The record keeps the target's keys flat, where runs recorded before the target object have them.
    assert list(hard.to_dict())[10:16] == ["lora_target_modules", "decimals", "max_bins", "quantile_low",
                                           "quantile_high", "samples_per_prompt"]
    assert TrainConfig.from_dict(hard.to_dict()) == hard
    with pytest.raises(ValueError, match="train config key 'target': target key 'max_bins': 1 is not an integer"):
        TrainConfig(method="soft", target={"max_bins": 1})
    with pytest.raises(ValueError, match="'lora_rank'"):
        TrainConfig.from_dict({"method": "soft", "lora_rank": 8})
    with pytest.raises(ValueError, match="method"):
        TrainConfig(method="dpo")


# ---- trainers on the tiny model ------------------------------------------------------------------


@pytest.mark.parametrize("trainer_class", [SoftTargetTrainer, HardTargetTrainer])
def test_a_few_steps_lower_the_loss(trainer_class, tmp_path):
    tokenizer = char_tokenizer()
    config = tiny_config(trainer_class.method, epochs=4, batch_size=6, warmup_ratio=0.0)
    trainer = trainer_class(tiny_llama(len(tokenizer)), tokenizer, PROMPTS, config, tmp_path, progress=False)
    examples = [trainer.build_example(i, seed=1000 + i) for i in range(len(PROMPTS))]
    batch = collate(examples, pad_id=trainer.pad_id, eos_id=trainer.eos_id)

    before = eval_loss(trainer, batch)
    trainer.train()
    assert eval_loss(trainer, batch) < 0.9 * before
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert log["step"].tolist() == list(range(1, trainer.total_steps + 1))
    assert list(log.columns) == ["step", "epoch", "loss", "lr", "tokens", "seconds"]


def test_lora_stays_fp32_over_a_bf16_base(tmp_path):
    tokenizer = char_tokenizer()
    model = tiny_llama(len(tokenizer)).to(torch.bfloat16)
    trainer = SoftTargetTrainer(model, tokenizer, PROMPTS[:2], tiny_config("soft", max_steps=1), tmp_path,
                                progress=False)
    assert all(p.dtype == torch.float32 for _, p in trainer.trainable)
    assert {n.split(".")[-4] for n, _ in trainer.trainable} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    trainer.train()
    assert all(s.dtype == torch.float32 for state in trainer.optimizer.state.values() for s in state.values()
               if s.dim() > 0)


def test_the_saved_adapter_config_does_not_depend_on_string_hashing(tmp_path):
    """PEFT keeps target_modules as a set, whose order changes with each process's string hashing;
    the trainer hands it a sorted list, saved as it is."""
    tokenizer = char_tokenizer()
    trainer = SoftTargetTrainer(tiny_llama(len(tokenizer)), tokenizer, PROMPTS[:2], tiny_config("soft", max_steps=1),
                                tmp_path, progress=False)
    assert trainer.model.peft_config["default"].target_modules == ["k_proj", "o_proj", "q_proj", "v_proj"]
    saved = json.loads((trainer.train() / "adapter_config.json").read_text())
    assert saved["target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]


def adapter_weights(out_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(out_dir / "adapter" / "adapter_model.safetensors")


def crash_after_steps(monkeypatch, steps: int):
    """Make training raise a simulated crash once `steps` more optimizer steps have run; returns the
    function that restores the real step."""
    original_step = trainer_module.CalibrationTrainer.training_step
    calls = []

    def crashing_step(self, batch_items, epoch):
        if len(calls) == steps:
            raise RuntimeError("simulated crash")
        calls.append(epoch)
        return original_step(self, batch_items, epoch)

    monkeypatch.setattr(trainer_module.CalibrationTrainer, "training_step", crashing_step)
    return lambda: monkeypatch.setattr(trainer_module.CalibrationTrainer, "training_step", original_step)


@pytest.mark.parametrize("method", ["soft", "hard"])
def test_resume_after_a_crash_gives_the_same_adapter(method, tiny_dir, tmp_path, monkeypatch):
    config = tiny_config(method)
    reference = train(method, PROMPTS, tiny_dir, tmp_path / "straight", config, progress=False)

    # Crash in the middle of the second epoch, one step after the step-4 checkpoint.
    restore = crash_after_steps(monkeypatch, 5)
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(method, PROMPTS, tiny_dir, out, config, progress=False)
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and checkpoints[-1] == "step_000004"
    assert not (out / "DONE").exists()

    restore()
    train(method, PROMPTS, tiny_dir, out, config, progress=False)
    expected, resumed = adapter_weights(reference.parent), adapter_weights(out)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.allclose(expected[name], resumed[name], atol=1e-6), name
    straight_log = pd.read_csv(tmp_path / "straight" / "train_log.csv")
    resumed_log = pd.read_csv(out / "train_log.csv")
    assert np.allclose(straight_log["loss"], resumed_log["loss"], atol=1e-6)
    assert len(list((out / "checkpoints").iterdir())) == 2


def test_snapshots_survive_a_crash_and_match_the_straight_run(tiny_dir, tmp_path, monkeypatch):
    # 6 prompts at batch 2 for 2 epochs: 6 steps; 2 snapshots at 2 and 4 (6 is the final adapter).
    config = tiny_config("soft", snapshots=2)
    train("soft", PROMPTS, tiny_dir, tmp_path / "straight", config, progress=False)
    restore = crash_after_steps(monkeypatch, 3)
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train("soft", PROMPTS, tiny_dir, out, config, progress=False)
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["step_000002"]
    restore()
    # The snapshot count is run control: a resume with another one is not a stale run. The crash
    # came after the end-of-epoch checkpoint of step 3, so the resumed run keeps steps 4 and 5.
    train("soft", PROMPTS, tiny_dir, out, tiny_config("soft", snapshots=5), progress=False)
    for step in ("step_000002", "step_000004"):
        expected = load_file(tmp_path / "straight" / "snapshots" / step / "adapter_model.safetensors")
        resumed = load_file(out / "snapshots" / step / "adapter_model.safetensors")
        assert expected.keys() == resumed.keys()
        for name in expected:
            assert torch.allclose(expected[name], resumed[name], atol=1e-6), (step, name)
    # Step 2's snapshot differs from the final adapter: the curve has distinct points.
    final = adapter_weights(tmp_path / "straight")
    early = load_file(tmp_path / "straight" / "snapshots" / "step_000002" / "adapter_model.safetensors")
    assert any(not torch.allclose(final[name], early[name]) for name in final)

    assert trainer_module.missing_snapshots(out, 2) == []
    assert trainer_module.missing_snapshots(out, 5) == [1, 3]
    assert trainer_module.snapshot_steps(300, 3) == [75, 150, 225]
    assert trainer_module.snapshot_steps(2, 5) == [1]
    trainer_module.export_snapshots(out, tmp_path / "exported", 2)
    index = json.loads((tmp_path / "exported" / "steps.json").read_text())
    assert index == {"steps": [2, 4], "total_steps": 6}
    assert (tmp_path / "exported" / "step_000004" / "adapter_config.json").exists()


KILLED_RUN = """
import json, sys
import torch
from cft.prompts import PromptSpec
from cft.training import TrainConfig, train
torch.set_num_threads(1)
model_dir, out, prompts, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
train("hard", [PromptSpec.from_dict(p) for p in prompts], model_dir, out, TrainConfig.from_dict(config), progress=False)
"""


def newest_checkpoint_step(out: Path) -> int:
    names = [p.name for p in (out / "checkpoints").glob("step_*")] if (out / "checkpoints").is_dir() else []
    return max((int(name.removeprefix("step_")) for name in names), default=0)


def test_sigkilled_run_rerun_gives_the_same_adapter(tiny_dir, tmp_path):
    """A real SIGKILL, landing wherever it lands (mid-step or mid-checkpoint-write)."""
    # Enough steps after the kill point that a poller slowed by a loaded machine still sees it running.
    config = tiny_config("hard", checkpoint_every=1, epochs=6)
    reference = train("hard", PROMPTS, tiny_dir, tmp_path / "straight", config, progress=False)
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tiny_dir), str(out),
                                json.dumps([p.to_dict() for p in PROMPTS]), json.dumps(config.to_dict())])
    deadline = time.monotonic() + 120
    while newest_checkpoint_step(out) < 5:
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it was killed"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "DONE").exists()

    train("hard", PROMPTS, tiny_dir, out, config, progress=False)
    expected, resumed = adapter_weights(reference.parent), adapter_weights(out)
    for name in expected:
        assert torch.allclose(expected[name], resumed[name], atol=1e-6), name
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_done_guard_force_and_stale_settings(tiny_dir, tmp_path):
    config = tiny_config("soft", max_steps=2)
    out = tmp_path / "run"
    train("soft", PROMPTS, tiny_dir, out, config, progress=False)
    assert (out / "DONE").exists() and (out / "adapter" / "adapter_config.json").exists()
    with pytest.raises(TrainingAlreadyDone):
        train("soft", PROMPTS, tiny_dir, out, config, progress=False)
    with pytest.raises(StaleRunError):
        train("soft", PROMPTS, tiny_dir, out, tiny_config("soft", max_steps=2, lr=5e-2), progress=False)
    first = (out / "DONE").stat().st_mtime_ns
    train("soft", PROMPTS, tiny_dir, out, config, force=True, progress=False)
    assert (out / "DONE").stat().st_mtime_ns > first
    record = pd.read_json(out / "train_config.json", typ="series")
    assert record["total_steps"] == 2 and record["method"] == "soft"


def test_max_steps_sets_the_schedule_length(tiny_dir, tmp_path):
    train("hard", PROMPTS, tiny_dir, tmp_path, tiny_config("hard", max_steps=3, warmup_ratio=0.5), progress=False)
    log = pd.read_csv(tmp_path / "train_log.csv")
    # warmup int(0.5 * 3) = 1: the first step runs at lr 0, then a half cosine over the last two.
    assert log["lr"].tolist() == pytest.approx([0.0, 3e-2, 1.5e-2])


# ---- the real model ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method", ["soft", "hard"])
def test_real_smollm2_learns_in_a_few_steps(method, smollm2_dir, tmp_path):
    tokenizer = load_tokenizer(smollm2_dir)
    prompts = PROMPTS[:4]
    config = TrainConfig(method=method, batch_size=4, epochs=4, lr=1e-3, samples_per_prompt=1, warmup_ratio=0.0)
    trainer_class = SoftTargetTrainer if method == "soft" else HardTargetTrainer
    trainer = trainer_class(load_model(smollm2_dir), tokenizer, prompts, config, tmp_path, progress=False)
    examples = [trainer.build_example(i, seed=77 + i) for i in range(len(prompts))]
    batch = collate(examples, pad_id=trainer.pad_id, eos_id=trainer.eos_id)

    before = eval_loss(trainer, batch)
    trainer.train()
    assert trainer.step == 4
    assert eval_loss(trainer, batch) < 0.8 * before


def test_workflow_job_trains_again_when_a_resumed_run_lacks_snapshots(tiny_dir, tmp_path, monkeypatch):
    """A run crashed without snapshots, then rerun by the workflow with a snapshot count (it was added
    to evaluate.curve.methods meanwhile): the job must not fail on export but train again."""
    from cft.io import write_json, write_jsonl
    from cft.training import train_from_workflow

    write_json(tmp_path / "model.json", {"name": "tiny", "path": str(tiny_dir), "dtype": "float32", "chat": {}})
    write_jsonl(tmp_path / "prompts.jsonl", [{"spec": spec.to_dict()} for spec in PROMPTS])
    settings = dict(method="soft", epochs=2, batch_size=2, lr=3e-2, checkpoint_every=2)
    job = dict(model_record=str(tmp_path / "model.json"), prompts_path=str(tmp_path / "prompts.jsonl"),
               checkpoint_dir=str(tmp_path / "run"), adapter_dir=str(tmp_path / "adapter"),
               log_csv=str(tmp_path / "log.csv"), record_path=str(tmp_path / "record.json"), threads=1,
               device="cpu")
    restore = crash_after_steps(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_from_workflow(**job, settings=settings)
    restore()
    train_from_workflow(**job, settings={**settings, "snapshots": 2}, snapshots_dir=str(tmp_path / "snapshots"))
    index = json.loads((tmp_path / "snapshots" / "steps.json").read_text())
    assert index == {"steps": [2, 4], "total_steps": 6}
    assert (tmp_path / "snapshots" / "step_000002" / "adapter_model.safetensors").exists()
