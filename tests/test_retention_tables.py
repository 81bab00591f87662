"""Per-item scoring rules, the retention tables' deltas against base, and the two figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cft.figures.retention import plot_retention_perplexity, plot_retention_tasks
from cft.retention.evaluate import (
    generation_example,
    retention_perplexity_table,
    retention_task_table,
    score_multiple_choice,
    task_rows,
)
from cft.retention.tasks import Choice, GenerationItem, MultipleChoiceItem


class FixedScorer:
    """Log-likelihoods by continuation, recording which contexts were run together."""

    def __init__(self, scores):
        self.scores = scores
        self.calls = []

    def score(self, context, continuations):
        self.calls.append((context, list(continuations)))
        return [self.scores[c] for c in continuations]


def test_multiple_choice_metrics_by_hand():
    # " a" is likelier in total, " bbbb" per character.
    scorer = FixedScorer({" a": -2.0, " bbbb": -4.0, " c": -10.0})
    item = MultipleChoiceItem("q", (Choice("ctx", " a", "a"), Choice("ctx", " bbbb", "bbbb"),
                                    Choice("ctx", " c", "c")), gold=1, labels=(0.0, 1.0, 1.0))
    acc = score_multiple_choice(scorer, item, "acc")
    assert acc["score"] == 0.0 and acc["argmax_correct"] == 0.0
    assert scorer.calls == [("ctx", [" a", " bbbb", " c"])]            # one shared context, one call
    assert score_multiple_choice(scorer, item, "acc_norm")["score"] == 1.0
    mc2 = score_multiple_choice(scorer, item, "mc2")
    probs = np.exp([-2.0, -4.0, -10.0]) / np.exp([-2.0, -4.0, -10.0]).sum()
    assert mc2["score"] == pytest.approx(probs[1] + probs[2])
    assert mc2["confidence"] == pytest.approx(probs[0])


def test_winogrande_contexts_are_scored_separately():
    scorer = FixedScorer({" rest": -1.0})
    item = MultipleChoiceItem("w", (Choice("A x", " rest", "x"), Choice("A y", " rest", "y")), gold=0)
    score_multiple_choice(scorer, item, "acc")
    assert [c for c, _ in scorer.calls] == ["A x", "A y"]


def test_generation_rows_count_failures_as_wrong():
    item = GenerationItem("g", "What is 2 plus 2?", "4")
    examples = [generation_example(item, r) for r in ["#### 4", "It is 4.", "no idea"]]
    assert [e["strict_correct"] for e in examples] == [True, False, False]
    assert [e["flexible_correct"] for e in examples] == [True, True, False]
    assert examples[2]["strict_invalid_reason"] == "no_marker" and examples[2]["flexible_invalid_reason"] == "no_number"
    rows = task_rows("standin_arithmetic_2_digit_addition", examples, parameters=None)
    by_metric = {r["metric"]: r for r in rows}
    assert by_metric["exact_match_strict"]["accuracy"] == pytest.approx(1 / 3)
    assert by_metric["exact_match_strict"]["invalid_rate"] == pytest.approx(2 / 3)
    assert by_metric["exact_match_flexible"]["accuracy"] == pytest.approx(2 / 3)
    assert all(r["stand_in"] and r["gpirt"] is None for r in rows)


def write_variant(tmp_path, variant, accuracy, ece, bpb):
    tasks = tmp_path / f"{variant}_tasks.csv"
    pd.DataFrame([{"model": "m", "variant": variant, "task": "standin_truthfulqa", "benchmark": "", "stand_in": True,
                   "num_items": 10, "metric": "mc2", "accuracy": accuracy, "raw_accuracy": accuracy,
                   "invalid_rate": 0.0, "ece": ece, "brier": 0.5, "irt": None, "pirt": None, "gpirt": None},
                  {"model": "m", "variant": variant, "task": "standin_arithmetic_2_digit_addition", "benchmark": "",
                   "stand_in": True, "num_items": 10, "metric": "exact_match_flexible", "accuracy": accuracy / 2,
                   "raw_accuracy": accuracy / 2, "invalid_rate": 0.1, "ece": None, "brier": None, "irt": None,
                   "pirt": None, "gpirt": None}]).to_csv(tasks, index=False)
    perplexity = tmp_path / f"{variant}_ppl.csv"
    pd.DataFrame([{"model": "m", "variant": variant, "stand_in": True, "split": "test", "context_length": 2048,
                   "stride": 1024, "slice": s, "num_tokens": 100, "num_bytes": 400, "total_nll": 1.0,
                   "perplexity": 2.0 ** (4 * bpb), "bits_per_byte": bpb} for s in ("a", "all")]).to_csv(perplexity, index=False)
    return tasks, perplexity


def test_tables_carry_deltas_against_base_and_figures_render(tmp_path):
    base = write_variant(tmp_path, "base", 0.40, 0.10, 1.00)
    soft = write_variant(tmp_path, "soft", 0.30, 0.25, 1.10)
    tasks = retention_task_table([base[0], soft[0]], tmp_path / "tasks.csv")
    row = tasks[(tasks["variant"] == "soft") & (tasks["metric"] == "mc2")].iloc[0]
    assert row["delta_accuracy"] == pytest.approx(-0.10) and row["delta_ece"] == pytest.approx(0.15)
    assert (tasks[tasks["variant"] == "base"]["delta_accuracy"] == 0).all()
    perplexity = retention_perplexity_table([base[1], soft[1]], tmp_path / "ppl.csv")
    assert perplexity[perplexity["variant"] == "soft"]["delta_bits_per_byte"].to_numpy() == pytest.approx([0.1, 0.1])
    plot_retention_tasks(tmp_path / "tasks.csv", tmp_path / "t.pdf", tmp_path / "t.png", note="\nnote")
    plot_retention_perplexity(tmp_path / "ppl.csv", tmp_path / "p.pdf", tmp_path / "p.png")
    for name in ("t.pdf", "t.png", "p.pdf", "p.png"):
        assert (tmp_path / name).stat().st_size > 1000
