"""A fidelity evaluation killed mid-run leaves no table behind that could pass for complete, and its
rerun completes it with the same metrics as an uninterrupted run (training's SIGKILL test lives in
test_training.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from cft.evaluation.fidelity import FidelitySettings, evaluate_fidelity
from cft.io import write_jsonl
from cft.prompts import PromptSpec
from tiny_models import save_tiny_record

PROMPTS = [
    PromptSpec.from_params("binomial", {"n": 4.0, "p": 0.5}),
    PromptSpec.from_params("gaussian", {"mu": 0.0, "sigma": 1.0}),
    PromptSpec.from_params("geometric", {"p": 0.5}),
    PromptSpec.from_params("uniform", {"a": 0.0, "b": 1.0}),
]
SETTINGS = dict(num_samples=12, batch_size=6, max_new_tokens=4, digit_resolution=1, trie_decimals=1,
                trie_max_bins=64, max_digit_intervals=200)
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
