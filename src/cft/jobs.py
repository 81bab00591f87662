"""What every workflow script shares: the job's log, and which model variant a job evaluates where.

The scripts under `workflow/scripts/` receive Snakemake's `snakemake` object; these helpers read the
parts that the rules declare the same way for every evaluation (`variant_inputs` in
`workflow/rules/common.smk`, `params.device`, the config's `torch_threads`)."""

from __future__ import annotations

import logging
import sys
from typing import Any


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
    """The torch thread count of a job that runs a model: the config's `torch_threads`.

    Not `snakemake.threads`: Snakemake lowers a job's threads to `--cores`, and on a cluster the
    allocation decides them, while float reductions (matmuls, sums, log-normalizers) change with the
    thread count, so results would change with `--cores` or local vs SLURM (docs/running.md, "What
    is reproducible"). `snakemake.config` is the config before validation filled in defaults, hence
    the schema's default for a config that does not set it."""
    from cft.config import SCHEMA_PATH, load_yaml

    if "torch_threads" in snakemake.config:
        return snakemake.config["torch_threads"]
    return load_yaml(SCHEMA_PATH)["properties"]["torch_threads"]["default"]


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
