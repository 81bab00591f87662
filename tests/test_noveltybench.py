"""NoveltyBench: the published leaderboard's numbers, the partition rules, ratings and the pipeline."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from cft.figures.noveltybench import judges_note, plot_noveltybench
from cft.io import read_json, read_jsonl
from cft.models import ModelUnavailable
from cft.transfer.noveltybench import (
    GenerationSettings,
    evaluate_noveltybench,
    generate,
    load_prompts,
    noveltybench_table,
    scores_from_partition,
    summarize,
    utility,
)
from cft.transfer.quality import SKYWORK_THRESHOLDS, LogLikelihoodQuality, rating_from_reward
from cft.transfer.similarity import (
    DebertaSimilarity,
    EmbeddingSimilarity,
    calibrate_threshold,
    equal_by_unigrams,
    judged_pairs,
    make_similarity,
    partition_responses,
)
from transfer_fixtures import tiny_model_record


@pytest.fixture(scope="module")
def data_dir(repo_root):
    return repo_root / "data" / "noveltybench"


@pytest.fixture(scope="module")
def leaderboard(data_dir):
    """{model folder: (score rows, published summary)} of the vendored leaderboard entries."""
    folders = sorted(p for p in (data_dir / "leaderboard").iterdir() if p.is_dir())
    assert len(folders) == 2
    return {f.name: (read_jsonl(f / "scores.jsonl"), read_json(f / "summary.json")) for f in folders}


def test_summary_reproduces_the_published_leaderboard(leaderboard):
    for name, (rows, published) in leaderboard.items():
        ours = summarize(rows)
        assert ours["num_prompts"] == 100, name
        assert ours["mean_distinct"] == pytest.approx(published["mean_distinct"], abs=1e-12), name
        assert ours["mean_utility"] == pytest.approx(published["mean_utility"], abs=1e-12), name


def test_utility_and_scores_reproduce_every_published_row(leaderboard):
    for rows, _ in leaderboard.values():
        for row in rows:
            assert utility(row["generation_scores"]) == pytest.approx(row["utility"], rel=1e-12, abs=1e-12)
            # Ratings at later class members are never credited: any value there must not matter.
            ratings = [s if s else 7 for s in row["generation_scores"]]
            assert scores_from_partition(row["partition"], ratings) == (
                row["generation_scores"], row["partition_scores"])
            # The published files write distinct = classes - 1; the class count is the metric.
            assert row["distinct"] == max(row["partition"]) == len(row["partition_scores"]) - 1


class TableScorer:
    """A scorer answering from a fixed table of pair scores (a missing pair raises KeyError)."""

    name, stand_in = "table", True

    def __init__(self, table, threshold=0.5):
        self.table, self.threshold, self.calls = table, threshold, []

    def scores(self, pairs):
        self.calls.extend(pairs)
        return [self.table[pair] if pair in self.table else self.table[pair[::-1]] for pair in pairs]


# Llama-3.2-1B's published partitions merge some short answers that the unigram rule separates
# ("Gabon." / "Venezuela", emoji vs emoji): that entry was evidently partitioned before the rule was
# added. Every other published prompt is rebuilt exactly.
PARTITIONED_WITHOUT_UNIGRAM_RULE = {
    "curated-Llama-3.2-1B-Instruct": {"curated-9", "curated-19", "curated-31", "curated-59", "curated-67",
                                      "curated-76", "curated-91", "curated-98"},
}


def test_greedy_partition_reproduces_the_published_partitions(leaderboard):
    # Answering each judged pair as the published partition did must rebuild that partition: this
    # checks the greedy order and that only representatives are compared.
    for name, (rows, _) in leaderboard.items():
        rebuilt = set()
        for row in rows:
            texts = row["generations"]
            table = {(texts[rep], texts[j]): float(same) for rep, j, same in judged_pairs(row["partition"])}
            try:
                if partition_responses(texts, TableScorer(table)) == row["partition"]:
                    rebuilt.add(row["id"])
            except KeyError:    # a different decision led to a comparison the published run never made
                pass
        assert {row["id"] for row in rows} - rebuilt == PARTITIONED_WITHOUT_UNIGRAM_RULE.get(name, set())


def test_unigram_rule():
    assert equal_by_unigrams("Paris", "paris") is True
    assert equal_by_unigrams("", "") is True
    assert equal_by_unigrams("New York City", "York") is False
    assert equal_by_unigrams("the red fox", "a red fox") is True        # 2 shared * 2 >= 3
    assert equal_by_unigrams("one two three four", "one two five six") is True   # 2 * 2 >= 4
    assert equal_by_unigrams("one two three four five", "one two six seven eight") is False
    assert equal_by_unigrams("one two three four five six", "one two three four five six") is None


def test_threshold_is_strict_and_short_pairs_skip_the_scorer():
    long_a = "a long answer with more than five words in it"
    long_b = "another long answer with more than five words here"
    at = TableScorer({(long_a, long_b): 0.5}, threshold=0.5)
    assert partition_responses([long_a, long_b], at) == [0, 1]
    above = TableScorer({(long_a, long_b): 0.51}, threshold=0.5)
    assert partition_responses([long_a, long_b], above) == [0, 0]
    short = TableScorer({})
    assert partition_responses(["Paris", "paris", "Rome"], short) == [0, 0, 1]
    assert short.calls == []


def test_greedy_order_compares_only_representatives():
    a, b, c = (f"response {x} " + "with several filler words" for x in "abc")
    # a~b and b~c but not a~c: c is never compared with b, so it opens its own class.
    scorer = TableScorer({(a, b): 1.0, (b, c): 1.0, (a, c): 0.0})
    assert partition_responses([a, b, c], scorer) == [0, 0, 1]
    assert (b, c) not in scorer.calls and (c, b) not in scorer.calls
    # Starting from b, both a and c join b's class.
    assert partition_responses([b, a, c], TableScorer({(a, b): 1.0, (b, c): 1.0, (a, c): 0.0})) == [0, 0, 0]


def test_judged_pairs_by_hand():
    assert judged_pairs([0, 1, 0, 2]) == [(0, 1, False), (0, 2, True), (0, 3, False), (1, 3, False)]


def test_calibrate_threshold_by_hand():
    threshold, agreement = calibrate_threshold([0.1, 0.4, 0.6, 0.9], [False, False, True, True])
    assert 0.4 < threshold < 0.6 and agreement == 1.0
    _, agreement = calibrate_threshold([0.1, 0.4, 0.6, 0.9], [False, True, False, True])
    assert agreement == 0.75


def test_skywork_rating_thresholds():
    assert rating_from_reward(-7.71875, SKYWORK_THRESHOLDS) == 1
    assert rating_from_reward(-7.7, SKYWORK_THRESHOLDS) == 2
    assert rating_from_reward(-2.046875, SKYWORK_THRESHOLDS) == 9
    assert rating_from_reward(-2.0, SKYWORK_THRESHOLDS) == 10
    assert rating_from_reward(-100.0, SKYWORK_THRESHOLDS) == 1


def test_utility_and_scores_by_hand():
    assert utility([10, 6, 0]) == pytest.approx((10 + 0.8 * 6) / (1 + 0.8 + 0.64))
    assert sum(0.8**i for i in range(10)) == pytest.approx(4.463129088)
    assert scores_from_partition([0, 0, 1, 2, 1], [5, 9, 3, 8, 1]) == ([5, 0, 3, 8, 0], [5, 3, 8])
    with pytest.raises(RuntimeError, match="order of first appearance"):
        scores_from_partition([1, 0], [5, 5])


def test_vendored_prompt_sets(data_dir):
    for name, digest in [("curated.jsonl", "ca9b6f470e5d7f7e34a281e2fdaa6f6e51c38bdae075ea580d184139ec391fa7"),
                         ("wildchat-1k.jsonl", "8534288089508df3f413c1151a58d5fa5bda9d8f8385ae2815384d4e310a54ca")]:
        assert hashlib.sha256((data_dir / name).read_bytes()).hexdigest() == digest
    curated = load_prompts(data_dir / "curated.jsonl", "curated")
    assert [p["id"] for p in curated[:2]] == ["curated-0", "curated-1"]
    assert "category" in curated[0]["metadata"]
    wildchat = load_prompts(data_dir / "wildchat-1k.jsonl", "wildchat")
    assert load_prompts(data_dir / "wildchat-1k.jsonl", "wildchat", 5) == wildchat[:5]
    subset = load_prompts(data_dir / "curated.jsonl", "curated", 8)
    categories = [p["metadata"]["category"] for p in subset]
    assert len(set(categories[:6])) == 6 and categories[6:] == categories[:2]
    assert subset[0] == curated[0] and subset[6] == curated[1]      # file order within a category
    assert sorted(p["id"] for p in load_prompts(data_dir / "curated.jsonl", "curated", 100)) == sorted(
        p["id"] for p in curated)
    with pytest.raises(ValueError, match="has 1000 prompts, found 100"):
        load_prompts(data_dir / "curated.jsonl", "wildchat")


def test_config_section(repo_root):
    from cft.config import ConfigError, load_config, validate_config

    default = load_config(repo_root / "config" / "config.yaml")["evaluate"]["noveltybench"]
    paper = load_config(repo_root / "config" / "config.yaml",
                        repo_root / "config" / "paper.yaml")["evaluate"]["noveltybench"]
    assert default["classifier"]["kind"] == "stand_in" and default["reward"]["kind"] == "stand_in"
    assert paper["classifier"] == {**paper["classifier"], "kind": "deberta", "threshold": 0.102}
    assert paper["reward"]["kind"] == "skywork" and tuple(paper["reward"]["thresholds"]) == SKYWORK_THRESHOLDS
    assert paper["prompt_sets"] == ["curated", "wildchat"] and paper["num_prompts"] is None
    config = load_config(repo_root / "config" / "config.yaml")
    config["evaluate"]["noveltybench"]["classifier"]["kind"] = "bleu"
    with pytest.raises(ConfigError, match="classifier"):
        validate_config(config)


def test_deberta_pair_layout_and_offline_failure(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from cft.transfer.similarity import packaged_embedder_dir

    # Any BERT-style tokenizer shows the layout: [CLS] a [SEP] b [SEP], types 0 then 1, each side cut.
    scorer = object.__new__(DebertaSimilarity)
    scorer.tokenizer = AutoTokenizer.from_pretrained(packaged_embedder_dir())
    scorer.max_length = 3
    ids, types = scorer.pair_inputs("one two three four", "five")
    tok = scorer.tokenizer
    assert ids == [tok.cls_token_id, *tok.encode("one two three", add_special_tokens=False), tok.sep_token_id,
                   *tok.encode("five", add_special_tokens=False), tok.sep_token_id]
    assert types == [0] * 5 + [1] * 2

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="stand_in"):
        make_similarity({"kind": "deberta", "path": str(tmp_path / "missing"),
                         "tokenizer": str(tmp_path / "missing-tokenizer")})


def test_log_likelihood_rater_matches_a_direct_computation(tmp_path):
    from cft.models import encode_prompt, format_prompt, load_model, load_tokenizer

    record = read_json(tiny_model_record(tmp_path))
    model, tokenizer = load_model(record["path"], dtype="float32"), load_tokenizer(record["path"])
    thresholds = (-9.0, -8.0, -7.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0)
    rater = LogLikelihoodQuality(model, tokenizer, thresholds=thresholds, batch_size=2)
    rated = rater.rate("Name a color.", ["red", "", "light blue"])
    assert rated.invalid == {1: "empty generation"} and rated.raw_rewards[1] is None and rated.ratings[1] == 1
    prompt_ids = encode_prompt(tokenizer, format_prompt(tokenizer, "Name a color."))
    for index, text in [(0, "red"), (2, "light blue")]:
        answer = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + answer])
        with torch.no_grad():
            log_probs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        expected = float(log_probs[len(prompt_ids) - 1 :].gather(-1, ids[0, len(prompt_ids):, None]).mean())
        assert rated.raw_rewards[index] == pytest.approx(expected, abs=1e-5)
        assert rated.ratings[index] == rating_from_reward(expected, thresholds)
    with pytest.raises(ValueError, match="strictly ascending"):
        LogLikelihoodQuality(model, tokenizer, thresholds=thresholds[::-1])


@pytest.mark.slow
def test_stand_in_embedder_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = make_similarity({"kind": "stand_in", "threshold": None})
    assert isinstance(scorer, EmbeddingSimilarity) and scorer.stand_in
    same, close, far = scorer.scores([
        ("The sky is blue today.", "The sky is blue today."),
        ("A cat sits on the mat.", "A kitten is sitting on a rug."),
        ("A cat sits on the mat.", "Quarterly revenue grew by four percent."),
    ])
    assert same == pytest.approx(1.0, abs=1e-5)
    assert close == pytest.approx(0.70, abs=0.03)
    assert far < 0.3


@pytest.mark.slow
def test_pipeline_end_to_end_on_a_tiny_model(tmp_path, data_dir):
    record = tiny_model_record(tmp_path)
    settings = GenerationSettings(k=4, max_new_tokens=12, batch_size=4, seed=11)
    rows = generate(model_record_path=record, variant="base", variant_files={},
                    prompts_path=data_dir / "curated.jsonl", prompt_set="curated", num_prompts=2,
                    settings=settings, out_path=tmp_path / "generations.jsonl", device="cpu")
    assert [len(r["generations"]) for r in rows] == [4, 4]
    again = generate(model_record_path=record, variant="base", variant_files={},
                     prompts_path=data_dir / "curated.jsonl", prompt_set="curated", num_prompts=1,
                     settings=settings, out_path=tmp_path / "again.jsonl", device="cpu")
    assert again[0]["generations"] == rows[0]["generations"]     # seeds do not depend on the subset
    summary = evaluate_noveltybench(
        generations_path=tmp_path / "generations.jsonl", model_record_path=record,
        classifier={"kind": "stand_in", "threshold": None}, reward={"kind": "stand_in"}, patience=0.8,
        partitions_path=tmp_path / "partitions.jsonl", scores_path=tmp_path / "scores.jsonl",
        summary_path=tmp_path / "summary.json", device="cpu")
    scores = read_jsonl(tmp_path / "scores.jsonl")
    assert summary["stand_in"] and summary["classifier"]["stand_in"] and summary["reward"]["stand_in"]
    assert summary["mean_distinct"] == pytest.approx(summarize(scores)["mean_distinct"])
    for row in scores:
        assert row["distinct"] == len(row["partition_scores"]) == max(row["partition"]) + 1
        assert math.isclose(row["utility"], utility(row["generation_scores"]))
    table = noveltybench_table([tmp_path / "summary.json"], tmp_path / "table.csv")
    assert table.loc[0, "stand_in"] and table.loc[0, "prompt_set"] == "curated"
    assert "STAND-IN" in judges_note(table)
    plot_noveltybench(tmp_path / "table.csv", tmp_path / "fig.pdf", tmp_path / "fig.png")
    assert (tmp_path / "fig.pdf").stat().st_size > 0 and (tmp_path / "fig.png").stat().st_size > 0


def test_generate_applies_the_variant_adapter(tmp_path, data_dir):
    from peft import LoraConfig, get_peft_model

    from cft.models import load_model

    record_path = tiny_model_record(tmp_path)
    record = read_json(record_path)
    # init_lora_weights=False gives a non-zero update, so the adapter must change the answers.
    lora = get_peft_model(load_model(record["path"], dtype="float32"),
                          LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    settings = GenerationSettings(k=3, max_new_tokens=8, batch_size=3, seed=11)
    common = dict(model_record_path=record_path, prompts_path=data_dir / "curated.jsonl", prompt_set="curated",
                  num_prompts=1, settings=settings, device="cpu")
    base = generate(variant="base", variant_files={}, out_path=tmp_path / "base.jsonl", **common)
    soft = generate(variant="soft", variant_files={"adapter": tmp_path / "adapter", "model": record_path},
                    out_path=tmp_path / "soft.jsonl", **common)
    assert soft[0]["variant"] == "soft" and soft[0]["seeds"] == base[0]["seeds"]
    assert soft[0]["generations"] != base[0]["generations"]
    with pytest.raises(ValueError, match="changes the prompt"):
        generate(variant="ssot", variant_files={}, out_path=tmp_path / "ssot.jsonl", **common)
