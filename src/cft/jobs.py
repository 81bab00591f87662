"""What every workflow script shares: the job's log, which model variant a job evaluates where, and
the record a fitted variant kind's function receives (`FitJob`).

The scripts under `workflow/scripts/` receive Snakemake's `snakemake` object; these helpers read the
parts that the rules declare the same way for every evaluation (`variant_inputs` in
`workflow/rules/common.smk`, `params.device`, the config's `torch_threads`). This module imports no other of the package
at its top, so that the fitters (`cft.baselines`) take their job record from here rather than from the
variant registry (`cft.variants`) that names them."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FitJob:
    """What a fitter's function receives (`cft.variants.Fitter`, `cft.variants.run_fit_job`)."""

    model_record_path: str
    variant: str
    prompts_path: str
    settings: Mapping[str, Any]
    outputs: Mapping[str, str]
    device: str | None
    threads: int | None


def log_to(path: str) -> None:
    """Send the job's stderr and INFO-level logging, timestamped, to its log file. Handlers that an
    import set up before this call are replaced (force=True), so that no INFO line goes elsewhere."""
    sys.stderr = open(path, "w")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        force=True)


def start_model_job(snakemake: Any) -> None:
    """The start of every job that runs a model: its log (`log_to`), then, on a machine with several
    GPUs, its own devices (`cft.devices.bind_gpus`), claimed before anything starts CUDA."""
    from cft.devices import bind_gpus

    log_to(snakemake.log[0])
    bind_gpus(snakemake.resources.gpu)


def torch_threads(snakemake: Any) -> int:
    """The thread count of a job that runs a model: the config's `torch_threads` (set in the scripts'
    config by workflow/rules/common.smk, defaults included).

    Not `snakemake.threads`: Snakemake lowers a job's threads to `--cores`, and on a cluster the
    allocation decides them, while float reductions (matmuls, sums, log-normalizers) change with the
    thread count, so results would change with `--cores` or local vs SLURM (docs/running.md, "What
    is reproducible")."""
    return snakemake.config["torch_threads"]


def variant_job(snakemake: Any) -> dict[str, Any]:
    """The keyword arguments naming the evaluated (model, variant) and where it runs: the model record,
    the variant's name and input files (an adapter, a fitted temperature, an ATS head), the device and
    the thread count."""
    return {
        "model_record_path": snakemake.input.model,
        "variant": snakemake.wildcards.variant,
        "variant_files": dict(snakemake.input),
        "device": snakemake.params.device,
        "threads": torch_threads(snakemake),
    }
