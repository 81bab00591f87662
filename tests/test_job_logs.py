"""Every job log says what the job did: the workflow scripts of model preparation and training, run
as Snakemake runs them (a fresh process with a `snakemake` object), write their INFO lines to the
rule's log file: where outputs went, how long each phase took, and a resume's starting step."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tiny_models import save_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]

# Builds the `snakemake` object that Snakemake's script preamble provides: attributes for the named
# inputs, outputs and params, lists for log.
RUNNER = """
import json, runpy, sys
from types import SimpleNamespace

class Files(list):
    def __init__(self, named):
        super().__init__(named.values())
        self.__dict__.update(named)
    def keys(self):
        return self.__dict__.keys()
    def __getitem__(self, key):
        return self.__dict__[key] if isinstance(key, str) else list.__getitem__(self, key)

job = json.loads(sys.argv[2])
snakemake = SimpleNamespace(input=Files(job["input"]), output=Files(job["output"]), log=job["log"],
                            params=SimpleNamespace(**job["params"]), resources=SimpleNamespace(gpu=0),
                            threads=1, config=job["config"], wildcards=SimpleNamespace(**job["wildcards"]))
runpy.run_path(sys.argv[1], init_globals={"snakemake": snakemake}, run_name="__main__")
"""


def run_script(name: str, job: dict) -> str:
    done = subprocess.run([sys.executable, "-c", RUNNER, str(ROOT / "workflow" / "scripts" / name), json.dumps(job)],
                          capture_output=True, text=True, timeout=600)
    # The script sends its stderr, a traceback included, to its log.
    log = Path(job["log"][0])
    assert done.returncode == 0, done.stderr[-3000:] + (log.read_text()[-3000:] if log.exists() else "")
    return Path(job["log"][0]).read_text()


def test_prepare_and_train_logs_say_what_the_job_did(tmp_path):
    model_dir = save_tiny_checkpoint(tmp_path / "tiny")
    record = tmp_path / "results" / "models" / "tiny.json"
    prepare_log = run_script("prepare_model.py", {
        "input": {}, "output": {"record": str(record)}, "log": [str(tmp_path / "prepare.log")],
        "params": {"model": {"name": "tiny", "source": str(model_dir), "dtype": "float32", "params_b": 0.001},
                   "cache_dir": str(tmp_path / "cache")},
        "config": {}, "wildcards": {"model": "tiny"},
    })
    assert " INFO " not in prepare_log  # the format is time, logger, message
    assert f"record written to {record}" in prepare_log and str(model_dir) in prepare_log

    prompts = tmp_path / "prompts.jsonl"
    from cft.datasets import dataset_row
    from cft.grids import build_splits
    from cft.targets import TargetSettings

    specs = build_splits(["gaussian", "binomial"], ["poisson"], "paper_selected")["train"][:4]
    target = TargetSettings(decimals=1, max_bins=11, quantile_low=0.01, quantile_high=0.99)
    prompts.write_text("".join(json.dumps(dataset_row("train", s, target)) + "\n" for s in specs))
    adapter_root = tmp_path / "results" / "adapters" / "tiny" / "hard"
    checkpoints = tmp_path / "results" / "checkpoints" / "tiny" / "hard"
    train_job = {
        "input": {"model": str(record), "prompts": str(prompts)},
        "output": {"adapter": str(adapter_root / "adapter"), "log_csv": str(adapter_root / "train_log.csv"),
                   "record": str(adapter_root / "train_config.json"), "snapshots": str(adapter_root / "snapshots")},
        "log": [str(tmp_path / "train.log")],
        "params": {"settings": {"method": "hard", "batch_size": 2, "samples_per_prompt": 1, "max_steps": 2,
                                "checkpoint_every": 1, "target": {"max_bins": 11, "decimals": 1}},
                   "checkpoint_dir": str(checkpoints), "device": "cpu"},
        "config": {"train": {}, "torch_threads": 1}, "wildcards": {"model": "tiny", "method": "hard"},
    }
    train_log = run_script("train_adapter.py", train_job)
    assert "hard training from scratch: 2 steps" in train_log
    assert "loaded " in train_log and "hard training: steps 1-2 in " in train_log
    assert f"exported {checkpoints} to {adapter_root / 'adapter'}" in train_log

    # A job killed after its last checkpoint resumes from it, and says so.
    shutil.rmtree(checkpoints / "adapter")
    (checkpoints / "DONE").unlink()
    train_log = run_script("train_adapter.py", train_job)
    assert "resumed hard training from" in train_log and "(step 2 of 2)" in train_log
    assert "training from scratch" not in train_log
