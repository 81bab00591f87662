"""The bench suite's pure helpers on hand-made inputs (the benchmarks themselves are not run here), and
the GPU check in its CPU smoke mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench/ is a folder of scripts next to src/, not an installed package

from bench import bench_exact, bench_ssot, bench_targets, bench_training, bench_vocab, bench_workflow, gpu_check, run_all  # noqa: E402
from bench.common import Goal, ModelShape, model_shape, training_step_flops  # noqa: E402
from cft.evaluation.metrics import w1_to_target  # noqa: E402
from cft.evaluation.parsing import ParsedSample  # noqa: E402
from cft.prompts import PromptSpec  # noqa: E402
from cft.training import TrainConfig  # noqa: E402
from cft.training.data import Example, collate  # noqa: E402
from cft.training.losses import answer_hidden, hard_target_ce, head_log_probs, soft_target_kl  # noqa: E402


def tiny_llama(vocab_size: int = 50):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=64)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def test_training_step_flops_by_hand():
    shape = ModelShape(base_linear_params=10, lora_params=2, num_layers=1, attention_dim=4, hidden_size=3,
                       vocab_size=5)
    # T = 2 * 3 = 6; attention 4*1*4*3*6 = 288; head 4*3*5*2 = 120; 4*10*6 + 6*2*6 + 3*288 + 120.
    assert training_step_flops(shape, batch_size=2, seq_len=3, logit_positions=2) == 1296
    # The naive step projects every position: only the head term grows, by 4*3*5*(6 - 2).
    assert training_step_flops(shape, 2, 3, 6) - training_step_flops(shape, 2, 3, 2) == 4 * 3 * 5 * 4
    # A 2-token prefix computed once: T = 6 - 2 = 4; attention 4*1*4*3*4 = 192.
    assert training_step_flops(shape, 2, 3, 2, shared_prefix=2) == 4 * 10 * 4 + 6 * 2 * 4 + 3 * 192 + 120


def test_model_shape_counts_frozen_and_lora_weights():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama(), LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    shape = model_shape(model)
    # q 16x16, k and v 16x8, o 16x16, gate/up/down 16x32: the LM head is not counted.
    assert shape.base_linear_params == 256 + 128 + 128 + 256 + 3 * 512
    # LoRA A is r x in, B is out x r: q 64+64, k 64+32, v 64+32, o 64+64.
    assert shape.lora_params == 128 + 96 + 96 + 128
    assert (shape.num_layers, shape.attention_dim, shape.hidden_size, shape.vocab_size) == (1, 16, 16, 50)


def test_goal_verdicts():
    assert Goal("step", 2.5, 3.0, "s").met
    slow = Goal("step", 4.5, 3.0, "s")
    assert not slow.met and slow.shortfall == pytest.approx(1.5)
    assert "MISSED by x1.50" in slow.line() and "<= 3 s" in slow.line()
    low = Goal("peak fraction", 0.25, 0.5, higher_is_better=True)
    assert not low.met and low.shortfall == pytest.approx(2.0) and ">= 0.5" in low.line()
    assert Goal("speedup", 40, 30, "x", higher_is_better=True).line().endswith(": met")


@pytest.mark.parametrize("method", ["soft", "hard"])
def test_naive_loss_equals_gathered_loss(method):
    """The benches' baselines compute the trainer's loss, only the expensive ways."""
    model = tiny_llama()
    steps = [(np.array([4, 5]), np.array([0.7, 0.3])), (np.array([9]), np.array([1.0])),
             (np.array([2, 3, 7]), np.array([0.2, 0.3, 0.5]))]
    soft = method == "soft"
    examples = [Example([1, 2, 3, 8], [4, 9], steps if soft else None),
                Example([1, 2], [5, 6], steps if soft else None)]
    batch = collate(examples, pad_id=0, eos_id=7)
    trainer = SimpleNamespace(model=model, method=method, config=TrainConfig(method=method))
    with torch.no_grad():
        hidden = answer_hidden(model, batch["input_ids"], batch["attention_mask"], batch["positions"])
        if soft:
            children = head_log_probs(model, hidden, batch["target_ids"])
            ours = soft_target_kl(children, batch["target_ids"], batch["target_probs"], batch["step_mask"])
        else:
            labels = batch["labels"]
            ours = hard_target_ce(head_log_probs(model, hidden, labels.unsqueeze(-1)).squeeze(-1), labels)
        naive = bench_training.naive_loss(trainer, batch)
        if soft:
            # bench_vocab's pre-issue-29 loss (full logits at the answer positions) is the same loss too.
            full_logits = bench_vocab.full_logits_soft_loss(trainer, batch)
            assert full_logits.item() == pytest.approx(ours.item(), rel=1e-5)
    assert naive.item() == pytest.approx(ours.item(), rel=1e-5)


def write_tsv(path: Path, seconds: list[float], finished_at: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{s}\t0:00:00\t1\t1\t1\t1\t0\t0\t50\t{s}\n" for s in seconds)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n" + rows)
    os.utime(path, (finished_at, finished_at))


def test_workflow_benchmarks_per_rule_and_wall(tmp_path):
    write_tsv(tmp_path / "make_split" / "train.tsv", [10.0], 1010.0)       # 1000 - 1010
    write_tsv(tmp_path / "make_split" / "unseen.tsv", [4.0, 6.0], 1012.0)  # mean 5: 1007 - 1012
    write_tsv(tmp_path / "train_adapter" / "m_soft.tsv", [300.0], 1400.0)  # 1100 - 1400
    jobs = bench_workflow.collect(tmp_path)
    assert [job.rule for job in jobs] == ["make_split", "make_split", "train_adapter"]
    assert bench_workflow.per_rule(jobs) == {"train_adapter": (1, 300.0), "make_split": (2, 15.0)}
    assert bench_workflow.run_wall_seconds(jobs) == pytest.approx(400.0)
    lines = bench_workflow.report(jobs, goal_minutes=60)
    assert lines[-1].startswith("unfinished run") and "evaluate_fidelity" in lines[-1]

    for rule in bench_workflow.REQUIRED_RULES:
        write_tsv(tmp_path / rule / "x.tsv", [1.0], 1400.0)
    lines = bench_workflow.report(bench_workflow.collect(tmp_path), goal_minutes=6)
    assert lines[-1] == "GOAL default `all` wall time: measured 6.667 min, goal <= 6 min: MISSED by x1.11"


def test_exact_vs_sampled_comparison():
    spec = PromptSpec.from_params("gaussian", {"mu": 3.5, "sigma": 3.0})
    parsed = [ParsedSample("1.5", 1.5, None), ParsedSample("4", 4.0, None), ParsedSample("x", None, "malformed"),
              ParsedSample("7.25", 7.25, None)]
    record = {"exact_w1": 0.5, "trie_nodes": 10, "exact_grid": "digit intervals 1e-2", "exact_valid_mass": 0.9,
              "exact_trie_kl": 1.0}
    row = bench_exact.compare(spec, [2.0, 1.0, 3.0], record, sample_seconds=8.0, parsed=parsed)
    expected_w1 = w1_to_target([1.5, 4.0, 7.25], spec.family.distribution(spec.param_dict))
    assert row["valid_samples"] == 3 and row["samples"] == 4
    assert row["sampled_w1"] == pytest.approx(expected_w1)
    assert row["sampled_minus_exact_w1"] == pytest.approx(expected_w1 - 0.5)
    assert row["seconds_per_1000_samples"] == 2000.0  # 8 s for 4 samples
    assert row["speedup_exact_vs_1000_samples"] == 1000.0  # against the median exact time, 2 s


def test_run_all_passes_the_model_to_every_model_bench():
    parser = __import__("argparse").ArgumentParser()
    bench_training.add_model_arguments(parser)
    args = parser.parse_args(["--model", "some/model", "--device", "cuda"])
    args.quick, args.steps, args.repeats, args.samples, args.benchmarks = True, 6, 3, 1000, "benchmarks"
    commands = run_all.commands(args)
    for name in ("training", "exact", "targets"):
        assert commands[name][commands[name].index("--model") + 1] == "some/model"
        assert commands[name][commands[name].index("--device") + 1] == "cuda"
    assert commands["exact"][commands["exact"].index("--samples") + 1] == "8"  # quick
    assert commands["targets"][-2:] == ["--limit", "40"]
    assert bench_targets.CharTokenizer()(["-1.5"])["input_ids"] == [[11, 2, 12, 6]]


def test_ssot_bench_cuts_at_the_first_answer_outside_thinking():
    text = "<think><answer>1</answer></think><random_string>x</random_string><answer>2</answer> <answer>3</answer>"
    end = bench_ssot.first_answer_end(text)
    assert text[:end].endswith("<answer>2</answer>")
    assert bench_ssot.first_answer_end("<answer>2") is None
    assert bench_ssot.first_answer_end("<think><answer>1</answer>") is None  # inside an open trace


def test_compare_tables_finds_a_changed_cell_and_a_missing_table(tmp_path):
    from bench.compare_tables import compare_tables, main

    for run in ("a", "b"):
        (tmp_path / run / "results" / "tables").mkdir(parents=True)
        (tmp_path / run / "results" / "tables" / "t.csv").write_text("x,y\n1,2\n")
    assert compare_tables(tmp_path / "a", tmp_path / "b") == []
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    (tmp_path / "b" / "results" / "tables" / "t.csv").write_text("x,y\n1,3\n")
    (tmp_path / "a" / "results" / "tables" / "u.csv").write_text("z\n0\n")
    problems = compare_tables(tmp_path / "a", tmp_path / "b")
    assert problems == [f"only in {tmp_path / 'a'}: u.csv",
                        "t.csv: shapes (1, 2) / (1, 2), columns in one only [], differing ['y']"]
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1


def run_gpu_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHON": sys.executable})


def test_gpu_check_smoke_mode_compares_every_step_on_the_tiny_model():
    """`bench/gpu_check.sh --device cpu`: the GPU check's comparisons with CPU bf16 as the checked side."""
    result = run_gpu_check("--device", "cpu", "--models", "tiny", "--threads", "1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("GPU CHECK passed: 14 of 14 comparisons within tolerance"), lines[-1]
    # A comparison's line: the model, the step, then " | "-separated results ending in the verdict.
    verdicts = {line.split(" | ")[0].removeprefix("tiny").strip(): line.rsplit(" ", 1)[1]
                for line in lines if line.startswith("tiny ")}
    assert verdicts == {step: "ok" for step in (
        "soft trainer (load, LoRA)", "soft train step 1", "soft train step 2", "soft train step 3",
        "hard trainer (load, LoRA)", "hard train step 1", "hard train step 2", "hard train step 3",
        "score binomial (7 nodes)", "score binomial (7 nodes) KL", "score gaussian (3703 nodes)",
        "score gaussian (3703 nodes) KL", "sample 16 seeds again", "sample 16 seeds")}
    assert "LoRA float32 over bfloat16" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_gpu_check_without_cuda_fails_in_one_line():
    result = run_gpu_check()
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("gpu_check: CUDA is not available to torch") and result.stderr.count("\n") == 1


def test_gpu_check_counts_the_draws_that_picked_differently():
    # Alike to the end (3 draws: 2 characters and the end); apart at the third character (2 alike);
    # apart at the first; one ends where the other goes on (1 alike, then the end against "b").
    texts, reference = ["ab", "abc", "xy", "a"], ["ab", "abd", "zy", "ab"]
    assert gpu_check.differing_draws(texts, reference) == (3, 3 + 3 + 2 + 0 + 1)


def test_vocab_bench_times_both_heads_after_checking_they_agree():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 5000, bias=False)
    times = bench_vocab.head_times(head, repeats=1)
    assert set(times) == {"full", "blocked"} and all(seconds > 0 for seconds in times.values())
