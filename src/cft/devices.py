"""Each GPU job on its own devices, on one machine with several GPUs (profiles/local-gpu).

Snakemake's local executor counts GPUs (the `gpu` resource caps how many are in use at once) but does
not say which device a job gets: without more, every job would see all GPUs and use the first. A job
therefore claims its devices itself before CUDA starts: it takes an exclusive `fcntl` lock on one file
per device in a lock folder shared by the machine's jobs, and sets `CUDA_VISIBLE_DEVICES` to the
devices it holds. The kernel releases the locks when the job's process ends, however it ends, so a
killed job never leaves a device taken.

Under SLURM the scheduler has already bound the job's devices (`SLURM_JOB_ID` is set): nothing is
claimed. Jobs that request no GPU claim nothing either.

A job's CPU threads are fixed the same way, by the job itself (`use_threads`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_DIR_VARIABLE = "CFT_GPU_LOCK_DIR"
RETRY_S = 1.0

# The lock files held by this process; kept open for its lifetime.
_held: list = []


def machine_devices(environ=os.environ) -> list[str]:
    """The GPUs jobs may use: `CUDA_VISIBLE_DEVICES` when set (a user or allocation restricted them),
    else every GPU that nvidia-smi lists, else none (a machine without NVIDIA GPUs)."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [device.strip() for device in visible.split(",") if device.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    listed = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                            capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in listed.splitlines() if line.strip()]


def lock_dir(environ=os.environ) -> Path:
    """One folder per user and machine, shared by every job of every workflow run there."""
    return Path(environ.get(LOCK_DIR_VARIABLE) or Path(tempfile.gettempdir()) / f"cft-gpu-locks-{os.getuid()}")


def try_claim(count: int, devices: list[str], folder: Path) -> list[str] | None:
    """Lock `count` free devices of `devices`, or none (and return None) when fewer are free."""
    folder.mkdir(parents=True, exist_ok=True)
    taken = []
    for device in devices:
        handle = open(folder / f"gpu{device}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        taken.append((device, handle))
        if len(taken) == count:
            _held.extend(handle for _, handle in taken)
            return [device for device, _ in taken]
    for _, handle in taken:
        handle.close()
    return None


def bind_gpus(count: int, environ=os.environ) -> list[str]:
    """Claim `count` GPUs for this job and make them its only visible devices; call it before anything
    starts CUDA. Returns the claimed device ids (empty when nothing is claimed).

    Snakemake's `gpu` resource keeps the GPUs requested at once within the machine's, so free devices
    exist when a job starts; a job that finds too few (another program holds them) waits for them.
    """
    if count <= 0 or "SLURM_JOB_ID" in environ:
        return []
    devices = machine_devices(environ)
    if not devices:
        return []
    if count > len(devices):
        raise RuntimeError(f"the job requests {count} GPUs but this machine has {len(devices)} "
                           f"({','.join(devices)}); lower the `gpu` resource")
    folder = lock_dir(environ)
    waited = False
    while (claimed := try_claim(count, devices, folder)) is None:
        if not waited:
            log.info("waiting for %d of GPUs %s to be free (locks in %s)", count, ",".join(devices), folder)
            waited = True
        time.sleep(RETRY_S)
    environ["CUDA_VISIBLE_DEVICES"] = ",".join(claimed)
    log.info("bound to GPU %s (CUDA_VISIBLE_DEVICES)", ",".join(claimed))
    return claimed


def use_threads(threads: int) -> None:
    """Run torch's CPU operations and the BLAS of numpy and scipy at ``threads`` threads.

    Both split their float reductions (a matmul's, a long dot product's partial sums) by thread, so
    the result changes with the thread count. Snakemake sets OMP_NUM_THREADS and OPENBLAS_NUM_THREADS
    of a job to the threads it grants, fewer than the job asks for when `--cores` is lower, and a
    cluster job gets what its allocation says: a job that sets both counts from its config gives the
    same numbers wherever it runs (docs/running.md, "What is reproducible")."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads, user_api="blas")
