"""One tree forward for base and its logit transforms (issue #17): `evaluate_fidelity_transforms`
writes, for base, a fitted global temperature and a trained ATS head, the same files as a separate
`evaluate_fidelity` run of each variant (timing columns aside), while running the decoder over each
prompt's tree and its output head's matmul once instead of once per variant."""

from __future__ import annotations

import pandas as pd
import pytest

from cft.evaluation import exact
from cft.evaluation.fidelity import (
    TIMING_COLUMNS,
    FidelityOutputs,
    FidelitySettings,
    evaluate_fidelity,
    evaluate_fidelity_transforms,
)
from cft.io import read_json, write_jsonl
from cft.prompts import PromptSpec
from tiny_models import save_tiny_baselines, tiny_baseline_files

# A continuous and an integer prompt per split, so both exact grids (digit intervals, integer support)
# and the trie KL go through the shared scorer.
TEST_SETS = {
    "unseen": [PromptSpec.from_params("gaussian", {"mu": 1.0, "sigma": 2.0}),
               PromptSpec.from_params("poisson", {"lambda": 3.0})],
    "heldout": [PromptSpec.from_params("uniform", {"a": 0.0, "b": 3.0})],
}
SETTINGS = FidelitySettings(num_samples=8, batch_size=4, max_new_tokens=6, digit_resolution=1,
                            target=dict(decimals=2, max_bins=64), max_digit_intervals=200, seed=5)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, one_torch_thread):
    """The tiny model with a fitted global temperature and an ATS head trained on the soft-target KL."""
    root = tmp_path_factory.mktemp("treeshare")
    save_tiny_baselines(root)
    for split, specs in TEST_SETS.items():
        write_jsonl(root / f"{split}.jsonl", [{"spec": s.to_dict()} for s in specs])
    return root


def outputs(out, variant):
    folder = out / variant
    folder.mkdir(parents=True, exist_ok=True)
    return FidelityOutputs(folder / "prompts.csv", folder / "samples.jsonl", folder / "distributions.json")


class Counting:
    """Counts the packed rows that `PromptScorer` runs through the decoder and the prefixes its
    output heads score (each base-head matmul once, however many heads read it)."""

    def __init__(self, monkeypatch):
        self.rows = self.head_prefixes = 0
        run_rows, heads_log_probs = exact.PromptScorer._run_rows, exact.PromptScorer._heads_log_probs

        def counted_rows(scorer, rows):
            self.rows += len(rows)
            return run_rows(scorer, rows)

        def counted_heads(scorer, heads, base, prefixes, *args):
            self.head_prefixes += len(prefixes)
            return heads_log_probs(scorer, heads, base, prefixes, *args)

        monkeypatch.setattr(exact.PromptScorer, "_run_rows", counted_rows)
        monkeypatch.setattr(exact.PromptScorer, "_heads_log_probs", counted_heads)

    def reset(self):
        counts, self.rows, self.head_prefixes = (self.rows, self.head_prefixes), 0, 0
        return counts


def test_shared_tree_writes_what_separate_runs_write(tiny, tmp_path, monkeypatch):
    test_sets = {split: tiny / f"{split}.jsonl" for split in TEST_SETS}
    counter = Counting(monkeypatch)
    for variant, files in tiny_baseline_files(tiny).items():
        files_out = outputs(tmp_path / "separate", variant)
        evaluate_fidelity(model_record_path=tiny / "model.json", adapter_dir=None, variant=variant,
                          test_sets=test_sets, settings=SETTINGS, prompts_csv=files_out.prompts_csv,
                          samples_jsonl=files_out.samples_jsonl, distributions_json=files_out.distributions_json,
                          threads=1, variant_files=files)
    separate_rows, separate_head_prefixes = counter.reset()
    frames = evaluate_fidelity_transforms(
        model_record_path=tiny / "model.json", variants=tiny_baseline_files(tiny), test_sets=test_sets,
        settings=SETTINGS, outputs={v: outputs(tmp_path / "shared", v) for v in tiny_baseline_files(tiny)}, threads=1)

    # The decoder ran over each prompt's tree once, not once per variant, and so did the base head.
    assert counter.rows > 0 and counter.rows * 3 == separate_rows
    # (At most a third: a call made twice, such as an integer prompt's trie and support, is answered once.)
    assert 0 < counter.head_prefixes * 3 <= separate_head_prefixes
    assert set(frames) == {"base", "temperature", "ats_kl"}
    for variant in frames:
        shared, separate = tmp_path / "shared" / variant, tmp_path / "separate" / variant
        # The same decoder rows, heads and seeds: equal to the bit, not just to round-off.
        for name in ("samples.jsonl", "distributions.json"):
            assert (shared / name).read_bytes() == (separate / name).read_bytes(), (variant, name)
        shared_prompts = pd.read_csv(shared / "prompts.csv").drop(columns=list(TIMING_COLUMNS))
        separate_prompts = pd.read_csv(separate / "prompts.csv").drop(columns=list(TIMING_COLUMNS))
        pd.testing.assert_frame_equal(shared_prompts, separate_prompts, check_exact=True)
    # The variants really differ: the comparison would be empty if every head were base's.
    exact_kl = {v: pd.read_csv(tmp_path / "shared" / v / "prompts.csv")["exact_trie_kl"] for v in frames}
    assert not exact_kl["temperature"].equals(exact_kl["base"]) and not exact_kl["ats_kl"].equals(exact_kl["base"])
    assert read_json(tmp_path / "shared" / "ats_kl" / "distributions.json")  # the grids were written


def test_only_base_and_logit_transforms_share_the_tree(tiny, tmp_path):
    with pytest.raises(ValueError, match="ssot"):
        evaluate_fidelity_transforms(model_record_path=tiny / "model.json", variants={"base": {}, "ssot": {}},
                                     test_sets={"heldout": tiny / "heldout.jsonl"}, settings=SETTINGS,
                                     outputs={v: outputs(tmp_path, v) for v in ("base", "ssot")}, threads=1)
    with pytest.raises(ValueError, match="outputs"):
        evaluate_fidelity_transforms(model_record_path=tiny / "model.json", variants={"base": {}},
                                     test_sets={"heldout": tiny / "heldout.jsonl"}, settings=SETTINGS,
                                     outputs={}, threads=1)
