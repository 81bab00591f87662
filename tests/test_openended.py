"""cft.transfer.openended: prompts, support size, answer normalization and statistics, the evaluator
end to end (tiny model; one slow test on SmolLM2), the tables and the figures."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from transfer_fixtures import tiny_model_record

from cft.config import ConfigError
from cft.figures.transfer import case_study_shares, plot_openended_case_studies, plot_openended_support
from cft.io import read_json, read_jsonl
from cft.models import encode_prompt, load_model, load_tokenizer
from cft.transfer.openended import (
    CATEGORIES,
    PAPER_PROMPTS_SHA256,
    PAPER_THRESHOLDS,
    OpenEndedSettings,
    answer_stats,
    canonical_answer,
    check_case_studies,
    evaluate_openended,
    first_token_logits,
    normalize_answer,
    openended_prompts,
    openended_tables,
    prompts_sha256,
    support_sizes,
    threshold_key,
)
from cft.variants import load_variant


# The tiny models gain nothing from threads; see conftest.one_torch_thread.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- prompts -------------------------------------------------------------------------------------


def test_prompts_reproduce_the_papers_file():
    prompts = openended_prompts()
    assert len(prompts) == len(set(prompts)) == len(CATEGORIES) == 102
    assert prompts_sha256(prompts) == PAPER_PROMPTS_SHA256
    assert prompts[0] == "Think of a random word. Output ONLY the answer."
    assert prompts[65] == "Choose a random weekday. Output ONLY the answer."
    assert [p.split(" a random ")[0] for p in prompts[:5]] == ["Think of", "Choose", "Name", "Pick", "Think of"]


def test_paper_thresholds():
    assert len(PAPER_THRESHOLDS) == 21
    assert PAPER_THRESHOLDS[0] == 0.01 and PAPER_THRESHOLDS[-1] == 0.99 and 0.9 in PAPER_THRESHOLDS
    assert [threshold_key(t) for t in (0.9, 0.01, 0.05, 1.0)] == [
        "support_p0p9", "support_p0p01", "support_p0p05", "support_p1"]


def test_case_studies_must_be_categories():
    check_case_studies(["weekday", "city"])
    with pytest.raises(ConfigError, match=r"evaluate\.openended\.case_studies\[1\].*'weekdays'"):
        check_case_studies(["city", "weekdays"])


# ---- support size --------------------------------------------------------------------------------


def test_support_size_golden_values():
    probs = torch.tensor([0.6, 0.2, 0.1, 0.1])
    sizes = support_sizes(probs, [0.5, 0.6, 0.8, 0.9, 0.95, 1.0])
    assert sizes.tolist() == [[1, 1, 2, 3, 4, 4]]


def test_support_size_ignores_order_and_ties():
    flat = torch.full((4,), 0.25)
    assert support_sizes(flat, [0.25, 0.5, 0.51, 0.75, 1.0]).tolist() == [[1, 2, 3, 3, 4]]
    shuffled = torch.tensor([0.1, 0.6, 0.1, 0.2])
    assert support_sizes(shuffled, [0.5, 0.8, 0.9]).tolist() == [[1, 2, 3]]


def test_support_size_thresholds_zero_and_one():
    probs = torch.tensor([[0.5, 0.3, 0.2, 0.0, 0.0], [0.2, 0.2, 0.2, 0.2, 0.2]])
    assert support_sizes(probs, [0.0, 1.0]).tolist() == [[1, 3], [1, 5]]
    # A float32 sum a hair below 1 still reaches t = 1 at the last non-zero token.
    thirds = torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0], dtype=torch.float32)
    assert support_sizes(thirds, [1.0]).tolist() == [[3]]
    with pytest.raises(ValueError, match="thresholds"):
        support_sizes(probs, [1.5])


def test_support_size_runs_in_float32_not_the_input_dtype():
    # In bf16 the probabilities become (0.5, 0.398, 0.101) and 0.9 rounds to 0.8984375, so a bf16
    # computation would stop at 2 tokens; in float32 the top two cover 0.8989 < 0.9 of the mass.
    probs = torch.tensor([0.5, 0.399, 0.101], dtype=torch.bfloat16)
    assert support_sizes(probs, [0.9]).tolist() == [[3]]
    sorted_bf16 = torch.sort(probs, descending=True).values
    assert (torch.cumsum(sorted_bf16, 0) >= torch.tensor(0.9, dtype=torch.bfloat16)).nonzero()[0].item() + 1 == 2


def test_support_size_on_a_flat_vocabulary():
    vocab = 100_000
    sizes = support_sizes(torch.full((vocab,), 1 / vocab), [0.9, 0.99])
    assert abs(sizes[0, 0].item() - 90_000) <= 2 and abs(sizes[0, 1].item() - 99_000) <= 2


def test_first_token_logits_do_not_depend_on_batching(tmp_path):
    record = tiny_model_record(tmp_path)
    model = load_model(tmp_path / "tiny", dtype="float32")
    tokenizer = load_tokenizer(tmp_path / "tiny")
    prompts = ["Pick a city.", "Name a random musical instrument now.", "x", "Choose a day of the week"]
    batched = first_token_logits(model, tokenizer, prompts, batch_size=4)
    single = first_token_logits(model, tokenizer, prompts, batch_size=1)
    assert batched.shape == (4, model.config.vocab_size) and batched.dtype == torch.float32
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([encode_prompt(tokenizer, prompts[1])])).logits[0, -1]
    torch.testing.assert_close(batched[1], alone.float(), atol=1e-5, rtol=1e-5)
    assert record.exists()


# ---- answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    ("Paris.", "Paris."),
    (' "Paris" ', "Paris"),
    ("'Paris'", "Paris"),
    ("**Paris**", "**Paris**"),
    ('"Paris', '"Paris'),
    ("Paris\nFrance", "Paris"),
    ("\n\n  New   York \t City \nUSA", "New York City"),
    ("<think>Maybe Rome</think>\nOslo", "Oslo"),
    ("<think>never closed\nRome", ""),
    ("</think> Lima", "Lima"),
    ("", ""),
    ("   \n \n", ""),
    ('"', '"'),
])
def test_normalize_answer_matches_the_paper(raw, expected):
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("**Paris.**", "paris"),
    ('"PARIS"', "paris"),
    ("Paris!\nFrance", "paris"),
    ("`Rust`", "rust"),
    ("Saint-Étienne", "saint-étienne"),
    ("...", ""),
])
def test_canonical_answer_folds_formatting(raw, expected):
    assert canonical_answer(raw) == expected


def test_answer_stats_counts_empties_in_the_denominator():
    stats = answer_stats(["a", "", "a", "b"])
    assert stats["num_unique"] == 2 and stats["unique_rate"] == 0.5 and stats["empty_count"] == 1
    expected_entropy = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert stats["entropy_bits"] == pytest.approx(expected_entropy)
    assert stats["top_answers"] == [["a", 0.5], ["b", 0.25]]


def test_answer_stats_edge_cases():
    alpha = answer_stats(["alpha", "", "beta", "alpha", "gamma"])
    assert (alpha["num_unique"], alpha["unique_rate"]) == (3, 0.6)
    empty = answer_stats(["", ""])
    assert empty == {"num_unique": 0, "unique_rate": 0.0, "empty_count": 2, "entropy_bits": None, "top_answers": []}
    assert answer_stats(["b", "a", "b", "a", "c"], top=2)["top_answers"] == [["a", 0.4], ["b", 0.4]]
    assert answer_stats(["x"] * 4)["entropy_bits"] == 0.0
    with pytest.raises(ValueError):
        answer_stats([])


def test_settings_add_the_headline_threshold():
    settings = OpenEndedSettings(thresholds=(0.5, 0.1, 0.5), headline_threshold=0.9)
    assert settings.all_thresholds == [0.1, 0.5, 0.9]
    assert settings.sampling.num_samples == 100 and settings.sampling.max_new_tokens == 16


# ---- the evaluator, the tables and the figures ----------------------------------------------------


def run_evaluator(record, tmp_path, variant="base", **overrides):
    settings = OpenEndedSettings(**{"num_samples": 3, "max_new_tokens": 4, "max_prompts": 2, "batch_size": 2,
                                    "thresholds": (0.5, 0.99), **overrides})
    prompts_csv, samples = tmp_path / f"{variant}.csv", tmp_path / f"{variant}.jsonl"
    frame = evaluate_openended(model_record_path=record, adapter_dir=None, variant=variant, settings=settings,
                               prompts_csv=prompts_csv, samples_jsonl=samples)
    return frame, prompts_csv, samples


def check_outputs(frame, samples_path, num_prompts, num_samples, vocab_size):
    assert list(frame["category"]) == list(CATEGORIES[:num_prompts])
    for column in ("support_p0p5", "support_p0p9", "support_p0p99"):
        assert frame[column].between(1, vocab_size).all()
    assert (frame["support_p0p5"] <= frame["support_p0p9"]).all()
    assert (frame["support_p0p9"] <= frame["support_p0p99"]).all()
    assert (frame["support_size"] == frame["support_p0p9"]).all()
    assert frame["unique_rate"].between(0, 1).all()
    samples = read_jsonl(samples_path)
    assert len(samples) == num_prompts * num_samples
    assert len({row["seed"] for row in samples}) == len(samples)
    for row in samples:
        assert row["answer"] == normalize_answer(row["raw_text"])
        assert (row["error"] is None) == bool(row["answer"])
    for prompt_id, row in frame.iterrows():
        answers = [s["answer"] for s in samples if s["prompt_id"] == prompt_id]
        assert row["num_unique"] == len({a for a in answers if a})
        assert row["empty_count"] == answers.count("")
    return samples


def test_evaluator_end_to_end_on_a_tiny_model(tmp_path):
    record = tiny_model_record(tmp_path)
    frame, prompts_csv, samples_path = run_evaluator(record, tmp_path)
    samples = check_outputs(frame, samples_path, num_prompts=2, num_samples=3,
                            vocab_size=len(load_tokenizer(tmp_path / "tiny")))
    assert frame["stand_in"].tolist() == [False, False]
    # Same seeds, same answers: the evaluation is reproducible.
    (tmp_path / "again").mkdir()
    again, _, again_path = run_evaluator(record, tmp_path / "again")
    assert [s["raw_text"] for s in read_jsonl(again_path)] == [s["raw_text"] for s in samples]
    pd.testing.assert_frame_equal(again, frame)


def test_tables_and_figures(tmp_path):
    rows = []
    for variant, empties in (("base", [0, 2]), ("soft", [1, 0])):
        for prompt_id, empty in enumerate(empties):
            rows.append({"model": "m", "variant": variant, "source": "packaged:x", "stand_in": True,
                         "prompt_id": prompt_id, "category": CATEGORIES[prompt_id], "prompt": "p",
                         "support_size": 10 * (prompt_id + 1), "support_p0p5": 2, "support_p0p9": 10 * (prompt_id + 1),
                         "num_samples": 4, "num_unique": 2, "unique_rate": 0.5, "num_unique_canonical": 1,
                         "unique_rate_canonical": 0.25, "empty_count": empty, "entropy_bits": 1.0,
                         "entropy_bits_canonical": 0.0, "thinking_tag_count": 0, "top_answers": "[]"})
    paths = []
    for variant in ("base", "soft"):
        paths.append(tmp_path / f"{variant}.csv")
        pd.DataFrame([r for r in rows if r["variant"] == variant]).to_csv(paths[-1], index=False)
    summary = openended_tables(paths, tmp_path / "prompts.csv", tmp_path / "summary.csv")
    assert summary["variant"].tolist() == ["base", "soft"]
    assert summary["support_size_mean"].tolist() == [15.0, 15.0]
    assert summary["empty_rate"].tolist() == [2 / 8, 1 / 8]
    assert summary["prompts_with_empty"].tolist() == [1, 1]
    assert summary["support_p0p5_mean"].tolist() == [2.0, 2.0]
    assert len(pd.read_csv(tmp_path / "prompts.csv")) == 4

    plot_openended_support(tmp_path / "summary.csv", tmp_path / "support.pdf", tmp_path / "support.png",
                           note="\nstand-in")
    samples = tmp_path / "samples.jsonl"
    answers = {"base": ["monday"] * 3 + [""], "soft": ["monday", "tuesday", "friday", "sunday"]}
    pd.DataFrame([{"model": "m", "variant": v, "category": "weekday", "canonical_answer": a}
                  for v, items in answers.items() for a in items]).to_json(samples, orient="records", lines=True)
    shares = case_study_shares(pd.DataFrame(read_jsonl(samples)), "weekday", top=2)
    assert shares.loc["monday", "base"] == 0.75 and shares.loc["(empty)", "base"] == 0.25
    assert shares.sum(axis=0).tolist() == pytest.approx([1.0, 1.0])
    plot_openended_case_studies([samples], ["weekday"], tmp_path / "case.pdf", tmp_path / "case.png")
    for name in ("support", "case"):
        assert (tmp_path / f"{name}.pdf").stat().st_size > 1000 and (tmp_path / f"{name}.png").stat().st_size > 1000


@pytest.mark.slow
def test_evaluator_on_smollm2(smollm2_dir, tmp_path):
    record = tmp_path / "smollm2.json"
    record.write_text(pd.Series({"name": "smollm2_135m", "source": "packaged:smollm2-135m-instruct",
                                 "path": str(smollm2_dir), "dtype": "float32", "chat": {}}).to_json())
    frame, _, samples_path = run_evaluator(record, tmp_path, max_new_tokens=8)
    check_outputs(frame, samples_path, num_prompts=2, num_samples=3,
                  vocab_size=load_tokenizer(smollm2_dir).vocab_size)
    assert frame["stand_in"].all()
    # An instruct model answering "a random word" is far from deterministic and far from uniform.
    assert (frame["support_size"] > 1).all() and (frame["support_size"] < 49152).all()


def test_evaluator_applies_a_lora_adapter(tmp_path):
    from peft import LoraConfig, get_peft_model

    record = tiny_model_record(tmp_path)
    peft_model = get_peft_model(load_model(tmp_path / "tiny", dtype="float32"),
                                LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, weight in peft_model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0, 2.0)  # B starts at zero; make the adapter change the model
    peft_model.save_pretrained(tmp_path / "adapter")
    base, _, _ = run_evaluator(record, tmp_path, thresholds=(0.3, 0.5, 0.7, 0.99))
    adapted = evaluate_openended(
        model_record_path=record, adapter_dir=tmp_path / "adapter", variant="soft",
        settings=OpenEndedSettings(num_samples=3, max_new_tokens=4, max_prompts=2, batch_size=2,
                                   thresholds=(0.3, 0.5, 0.7, 0.99)),
        prompts_csv=tmp_path / "soft.csv", samples_jsonl=tmp_path / "soft.jsonl")
    assert adapted["variant"].tolist() == ["soft", "soft"]
    # The random tiny model is nearly uniform, so its support sizes barely move; its logits and its
    # sampled answers must.
    base_texts = [row["raw_text"] for row in read_jsonl(tmp_path / "base.jsonl")]
    assert [row["raw_text"] for row in read_jsonl(tmp_path / "soft.jsonl")] != base_texts
    tokenizer = load_tokenizer(tmp_path / "tiny")
    prompts = openended_prompts()[:2]
    logits = {name: first_token_logits(load_variant(read_json(record), adapter, "cpu"), tokenizer, prompts,
                                       batch_size=2)
              for name, adapter in (("base", None), ("soft", tmp_path / "adapter"))}
    assert (logits["base"] - logits["soft"]).abs().max() > 1e-2
    assert base["support_size"].between(1, len(tokenizer)).all()


def test_evaluator_loads_baseline_variants_from_their_files(tmp_path):
    record = tiny_model_record(tmp_path)
    (tmp_path / "temperature.json").write_text('{"temperature": 0.02}')
    base, _, _ = run_evaluator(record, tmp_path, thresholds=(0.5,))
    sharp = evaluate_openended(
        model_record_path=record, adapter_dir=None, variant="temperature",
        # vLLM would sample the untransformed weights: the evaluator falls back to hf (no GPU needed).
        settings=OpenEndedSettings(num_samples=3, max_new_tokens=4, max_prompts=2, batch_size=2, thresholds=(0.5,),
                                   backend="vllm"),
        prompts_csv=tmp_path / "t.csv", samples_jsonl=tmp_path / "t.jsonl",
        variant_files={"model": record, "temperature": tmp_path / "temperature.json"})
    # Dividing the logits by 0.02 concentrates the first-token distribution on a few tokens.
    assert (sharp["support_size"] < base["support_size"]).all()


def test_ssot_answers_come_out_of_their_tags_without_a_support_size(tmp_path, monkeypatch):
    """SSoT runs the same prompts under its system prompt; each answer is its tag's content, an output
    without one is an empty answer with the reason, and the support size is left empty with why."""
    import cft.transfer.openended as openended

    outputs = [
        "<random_string>k2#x</random_string><thinking>sum mod 7</thinking><answer>**Paris.**</answer>",
        "<random_string>q</random_string><answer>Lyon</answer>",
        "I would rather not pick.",
        "<random_string>zz</random_string><thinking>so</thinking><answer>Nan",  # cut inside the tag
    ]
    seen = []

    class ScriptedSampler:
        def sample(self, prompt, params, *, prompt_index):
            seen.append((prompt, params.max_new_tokens))
            return list(outputs)

    monkeypatch.setattr(openended, "make_sampler", lambda *args: ScriptedSampler())
    record = tiny_model_record(tmp_path)
    frame, _, samples = run_evaluator(record, tmp_path, variant="ssot", num_samples=4, max_new_tokens=512)
    assert all("<random_string>" in prompt and budget == 512 for prompt, budget in seen)
    assert frame["support_size"].isna().all() and frame["support_p0p5"].isna().all()
    assert frame["support_skipped"].str.startswith("ssot").all()
    assert (frame["num_unique"] == 2).all() and (frame["unique_rate"] == 0.5).all()
    assert (frame["num_unique_canonical"] == 2).all() and (frame["empty_count"] == 2).all()
    assert (frame["ssot_mean_generated_tokens"] > frame["ssot_mean_extra_tokens"]).all()
    rows = read_jsonl(samples)[:4]
    assert [row["answer"] for row in rows] == ["**Paris.**", "Lyon", "", ""]
    assert [row["canonical_answer"] for row in rows] == ["paris", "lyon", "", ""]
    assert [row["error"] for row in rows] == [None, None, "no_answer_tag", "truncated"]

    summary = openended_tables([tmp_path / "ssot.csv"], tmp_path / "p.csv", tmp_path / "s.csv")
    assert math.isnan(summary.loc[0, "support_size_mean"]) and summary.loc[0, "unique_rate_mean"] == 0.5
    plot_openended_support(tmp_path / "s.csv", tmp_path / "f.pdf", tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_vllm_backend_gets_the_gpu_to_itself(tmp_path, monkeypatch):
    """With vLLM the transformers model only computes the support sizes and is dropped before the
    engine starts; the engine (here an hf sampler on its own copy, no GPU) gets the adapter path."""
    import cft.transfer.openended as openended
    from cft.evaluation.sampling import HFSampler

    record = tiny_model_record(tmp_path)
    calls = []

    def fake_make_sampler(settings, model, tokenizer, model_record, adapter_dir):
        calls.append((settings.backend, model, adapter_dir))
        return HFSampler(load_model(model_record["path"], dtype="float32"), tokenizer, batch_size=2)

    monkeypatch.setattr(openended, "make_sampler", fake_make_sampler)
    vllm, _, _ = run_evaluator(record, tmp_path, backend="vllm")
    assert calls == [("vllm", None, None)]
    monkeypatch.undo()
    (tmp_path / "hf").mkdir()
    hf, _, _ = run_evaluator(record, tmp_path / "hf")
    pd.testing.assert_frame_equal(vllm, hf)
