"""One decoder forward for base and its logit transforms in retention (issue #28): the shared jobs of
tinyBenchmarks and perplexity write, for base, a fitted global temperature and an ATS head, the same
files as a separate run of each variant, while running the decoder once for all of them and decoding
the generation tasks' greedy answers once (the transforms preserve every position's token order)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from cft.io import read_jsonl
from cft.logits import GlobalTemperature, HeadFanout, TransformedHead, logits_by_head
from cft.retention import evaluate as retention
from cft.retention.perplexity import write_standin_corpus
from cft.retention.scoring import GreedyGenerator
from cft.variants import VARIANT_KINDS, greedy_is_base
from tiny_models import save_tiny_baselines, tiny_baseline_files, tiny_llama

TINYBENCH = {"tasks": ["standin_truthfulqa", "standin_arithmetic_2_digit_addition"],
             "limits": {"standin_truthfulqa": 6, "standin_arithmetic_2_digit_addition": 5},
             "data_dir": None, "irt_parameters": None, "use_chat_template": True, "max_new_tokens": 6,
             "batch_size": 3}
PERPLEXITY = {"slices": ["shakespeare_modern", "shakespeare_folio"], "split": "test", "text_field": "text",
              "context_length": 48, "stride": 16, "max_tokens": 200, "max_documents": 2}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, one_torch_thread):
    """The tiny model with a fitted global temperature, an ATS head, the task items and the corpus."""
    root = tmp_path_factory.mktemp("retention_shared")
    save_tiny_baselines(root)
    retention.prepare_tinybench_items(TINYBENCH, root / "items.jsonl")
    write_standin_corpus(root / "corpus")
    return root


def test_a_fanout_gives_each_head_its_own_logits():
    model = tiny_llama(40)
    head = model.get_output_embeddings()
    temperature = GlobalTemperature(2.5)
    fanout = HeadFanout(head, [None, temperature])
    hidden = torch.randn(2, 3, model.config.hidden_size)
    stacked = fanout(hidden)
    assert stacked.shape == (2, 2, 3, 40)
    assert torch.equal(stacked[0], head(hidden)) and torch.equal(stacked[1], TransformedHead(head, temperature)(hidden))
    assert logits_by_head(head(hidden)).shape == (1, 2, 3, 40)


def test_only_rank_preserving_transforms_share_base_greedy_decoding():
    assert greedy_is_base(VARIANT_KINDS["base"])
    assert greedy_is_base(VARIANT_KINDS["temperature"]) and greedy_is_base(VARIANT_KINDS["ats"])
    assert not greedy_is_base(VARIANT_KINDS["adapter"]) and not greedy_is_base(VARIANT_KINDS["ssot"])


def test_shared_tinybench_equals_separate_runs_with_one_greedy_decoding(tiny, tmp_path, monkeypatch):
    files = tiny_baseline_files(tiny)
    separate = {}
    for name, kind_files in files.items():
        separate[name] = retention.evaluate_tinybench(
            model_record_path=tiny / "model.json", variant_files=kind_files, variant=name,
            items_path=tiny / "items.jsonl", settings=TINYBENCH, tasks_csv=tmp_path / "slow" / name / "tasks.csv",
            examples_jsonl=tmp_path / "slow" / name / "examples.jsonl", device="cpu", threads=1)
    decodings = []
    generate = GreedyGenerator.generate
    monkeypatch.setattr(GreedyGenerator, "generate",
                        lambda self, prompts: decodings.append(len(prompts)) or generate(self, prompts))
    outputs = {name: {"tasks": tmp_path / "fast" / name / "tasks.csv", "examples": tmp_path / "fast" / name / "ex.jsonl"}
               for name in files}
    shared = retention.evaluate_tinybench_shared(model_record_path=tiny / "model.json", variants=files,
                                                 items_path=tiny / "items.jsonl", settings=TINYBENCH,
                                                 outputs=outputs, device="cpu", threads=1)
    assert decodings == [5], "one greedy decoding of the 5 arithmetic items serves all three variants"
    for name in files:
        pd.testing.assert_frame_equal(shared[name], separate[name])
        pd.testing.assert_frame_equal(pd.read_csv(outputs[name]["tasks"]), pd.read_csv(tmp_path / "slow" / name / "tasks.csv"))
        assert read_jsonl(outputs[name]["examples"]) == read_jsonl(tmp_path / "slow" / name / "examples.jsonl")
    # The transforms change the multiple-choice probabilities, so the test compares different numbers.
    probabilities = {name: [e["probabilities"] for e in read_jsonl(outputs[name]["examples"]) if "probabilities" in e]
                     for name in files}
    assert probabilities["base"] != probabilities["temperature"] != probabilities["ats_kl"]


def test_shared_perplexity_equals_separate_runs_with_one_decoder_forward(tiny, tmp_path, monkeypatch):
    files = tiny_baseline_files(tiny)
    separate = {name: retention.evaluate_perplexity(
        model_record_path=tiny / "model.json", variant_files=kind_files, variant=name, root=tiny / "corpus",
        settings=PERPLEXITY, stand_in=True, slices_csv=tmp_path / f"{name}_slow.csv", device="cpu", threads=1)
        for name, kind_files in files.items()}

    forwards = []
    forward = torch.nn.Module.__call__

    def counted(module, *args, **kwargs):
        if type(module).__name__ == "LlamaModel":
            forwards.append(1)
        return forward(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "__call__", counted)
    shared = retention.evaluate_perplexity_shared(
        model_record_path=tiny / "model.json", variants=files, root=tiny / "corpus", settings=PERPLEXITY,
        stand_in=True, outputs={name: {"slices": tmp_path / f"{name}_fast.csv"} for name in files}, device="cpu",
        threads=1)
    monkeypatch.undo()
    windows = len(forwards)
    for name in files:
        pd.testing.assert_frame_equal(shared[name], separate[name])
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / f"{name}_fast.csv"), pd.read_csv(tmp_path / f"{name}_slow.csv"))
    assert len(set(shared[name].loc[shared[name]["slice"] == "all", "perplexity"].iloc[0] for name in files)) == 3
    # One decoder forward per window for the three variants: as many as one variant alone needs.
    forwards.clear()
    monkeypatch.setattr(torch.nn.Module, "__call__", counted)
    retention.evaluate_perplexity(model_record_path=tiny / "model.json", variant_files={}, variant="base",
                                  root=tiny / "corpus", settings=PERPLEXITY, stand_in=True,
                                  slices_csv=tmp_path / "again.csv", device="cpu", threads=1)
    monkeypatch.undo()
    assert windows == len(forwards) > 0
