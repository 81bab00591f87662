"""Model variants: what an evaluation loads for `{variant}` of one model.

Every evaluation (fidelity, transfer, retention) calls `load_variant`, so a new variant kind
(a trained adapter, a logit transform, a prompting protocol) becomes available to all of them at once.

A variant *name* (what `evaluate.variants` lists and the `{variant}` wildcard holds) resolves to a
*kind* (`variant_kind`):

* ``base``: the pretrained model;
* ``adapter``: the name of a training method (``soft``, ``hard``) or ablation: the base model with that
  run's LoRA adapter (``results/adapters/{model}/{variant}/adapter``);
* ``temperature``: the base model with one global temperature fitted on the train split
  (``results/variants/{model}/temperature.json``, `cft.baselines.temperature`);
* ``ats`` (names ``ats_<loss>``, e.g. ``ats_smooth``, ``ats_kl``): the base model with an Adaptive
  Temperature Scaling head (``results/variants/{model}/{variant}/head.pt``, `cft.baselines.ats`);
* ``ssot``: the base model prompted with String Seed of Thought (`cft.baselines.ssot`); the model is
  unchanged, the evaluators change the prompt and read the answer out of its tag.

Logit-transform kinds replace the model's output head by `TransformedHead` (the head, then a
transform of (hidden state, logits)). Everything that computes logits goes through that module: the
model's own forward and ``generate``, `cft.evaluation.sampling.HFSampler` (which calls the forward)
and `cft.evaluation.exact.PromptScorer` and `cft.training.losses.answer_logits` (which call
``get_output_embeddings()`` on the decoder's hidden states). So every evaluator works unchanged. The
vLLM backend runs its own copy of the weights and cannot see the transform; `needs_hf_backend` says so.

Adding a kind is one function decorated with `register_variant_kind` (and its settings and name in
the config).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cft.io import read_json
from cft.models import load_model, load_tokenizer


class UnknownVariant(ValueError):
    """A variant name that is neither a kind, a trained method, nor ``<kind>_<name>``."""


@dataclass(frozen=True)
class VariantKind:
    """How one kind of variant turns the base model into the evaluated model.

    ``input_key`` names the file the kind needs (the key of the rule input and of `load_variant`'s
    ``files``) and ``input_path`` where the workflow keeps it ({model} and {variant} filled in).
    ``prompting`` names a prompting protocol the evaluators apply instead of the plain prompt.
    ``exact_metrics`` is False where teacher-forced metrics do not measure what the variant samples
    (SSoT samples an answer after a generated seed and reasoning, not straight after the prompt).
    """

    name: str
    apply: Callable[[Any, Mapping[str, Path]], Any]
    input_key: str | None = None
    input_path: str | None = None
    prompting: str | None = None
    exact_metrics: bool = True
    transforms_logits: bool = False


VARIANT_KINDS: dict[str, VariantKind] = {}


def register_variant_kind(name: str, **fields: Any):
    """Decorator: register ``apply(model, files) -> model`` as variant kind ``name``."""

    def register(apply: Callable[[Any, Mapping[str, Path]], Any]):
        if name in VARIANT_KINDS:
            raise ValueError(f"variant kind {name!r} is registered twice")
        VARIANT_KINDS[name] = VariantKind(name=name, apply=apply, **fields)
        return apply

    return register


def variant_kind(name: str, adapters: tuple[str, ...] | list[str] = ()) -> VariantKind:
    """The kind of variant ``name``: a kind's own name, a trained adapter, or ``<kind>_<suffix>``."""
    if name in VARIANT_KINDS and name != "adapter":
        return VARIANT_KINDS[name]
    if name in adapters:
        return VARIANT_KINDS["adapter"]
    prefix = name.split("_", 1)[0]
    if "_" in name and prefix in VARIANT_KINDS and prefix != "adapter":
        return VARIANT_KINDS[prefix]
    allowed = sorted(set(VARIANT_KINDS) - {"adapter"} | set(adapters))
    raise UnknownVariant(f"variant {name!r} is none of {allowed} nor '<kind>_<name>' of a kind")


def variant_files(model: str, name: str, adapters: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """The files variant ``name`` of ``model`` needs, keyed like `load_variant`'s ``files``."""
    kind = variant_kind(name, adapters)
    if kind.input_key is None:
        return {}
    return {kind.input_key: kind.input_path.format(model=model, variant=name)}


# --------------------------------------------------------------------------------------------------
# Logit transforms


class TransformedHead(nn.Module):
    """The model's output head followed by ``transform(hidden, logits)``.

    It replaces the model's output embeddings, so the model's forward, `PromptScorer` and the training
    losses all see transformed logits. ``weight`` stays the head's (tied embeddings keep working).
    """

    def __init__(self, head: nn.Module, transform: nn.Module):
        super().__init__()
        self.head = head
        self.transform = transform

    @property
    def weight(self) -> torch.Tensor:
        return self.head.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.transform(hidden, self.head(hidden))


class GlobalTemperature(nn.Module):
    """Logits divided by one temperature; at 1.0 the logits are returned untouched."""

    def __init__(self, temperature: float):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, hidden: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits if self.temperature == 1.0 else logits / self.temperature


def with_logit_transform(model, transform: nn.Module):
    """``model`` with its output head followed by ``transform`` (in place; also returned)."""
    head = model.get_output_embeddings()
    if isinstance(head, TransformedHead):
        raise ValueError("the model already has a logit transform; stacking two is not supported")
    param = head.weight
    transform.to(device=param.device)
    model.set_output_embeddings(TransformedHead(head, transform))
    return model.eval()


# --------------------------------------------------------------------------------------------------
# The kinds


@register_variant_kind("base")
def _base(model, files):
    return model


@register_variant_kind("adapter", input_key="adapter", input_path="results/adapters/{model}/{variant}/adapter")
def _adapter(model, files):
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(files["adapter"])).eval()


@register_variant_kind("temperature", input_key="temperature",
                       input_path="results/variants/{model}/temperature.json", transforms_logits=True)
def _temperature(model, files):
    return with_logit_transform(model, GlobalTemperature(read_json(files["temperature"])["temperature"]))


@register_variant_kind("ats", input_key="ats_head", input_path="results/variants/{model}/{variant}/head.pt",
                       transforms_logits=True)
def _ats(model, files):
    from cft.baselines.ats import load_ats_head

    return with_logit_transform(model, load_ats_head(files["ats_head"]))


@register_variant_kind("ssot", prompting="ssot", exact_metrics=False)
def _ssot(model, files):
    return model


# --------------------------------------------------------------------------------------------------


def kind_from_files(files: Mapping[str, Any]) -> VariantKind:
    """The kind whose input is among ``files`` (base when none is)."""
    kinds = [kind for kind in VARIANT_KINDS.values() if kind.input_key and files.get(kind.input_key)]
    if len(kinds) > 1:
        raise ValueError(f"files of several variant kinds given: {[k.name for k in kinds]}")
    return kinds[0] if kinds else VARIANT_KINDS["base"]


def resolve_kind(variant: str | None, files: Mapping[str, Any] | None = None) -> VariantKind:
    """The kind of an evaluated variant: by its input file, else by its name (base, ssot)."""
    kind = kind_from_files(files or {})
    if kind.name == "base" and variant is not None:
        kind = variant_kind(variant)
    if kind.input_key and not (files or {}).get(kind.input_key):
        raise ValueError(f"variant {variant!r} of kind {kind.name!r} needs its {kind.input_key!r} file")
    return kind


def needs_hf_backend(kind: VariantKind) -> bool:
    """Logit transforms live in this process's model; an external engine (vLLM) would skip them."""
    return kind.transforms_logits


def shares_base_decoder(kind: VariantKind) -> bool:
    """Whether the variant is the base model's decoder on the plain prompt, with at most its output
    head transformed (base, a fitted temperature, the ATS heads): then one decoder forward serves
    them all (`cft.evaluation.fidelity.evaluate_fidelity_transforms`)."""
    return kind.prompting is None and (kind.name == "base" or kind.transforms_logits)


def variant_head(model, kind: VariantKind, files: Mapping[str, Any]) -> nn.Module:
    """The output head that variant ``kind`` puts on the base ``model`` (its own head for base, the
    head followed by the transform for a logit transform); ``model`` is left as it was."""
    if not shares_base_decoder(kind):
        raise ValueError(f"variant kind {kind.name!r} changes more than the output head of the base model")
    head = model.get_output_embeddings()
    try:
        return kind.apply(model, {key: Path(value) for key, value in files.items()}).get_output_embeddings()
    finally:
        model.set_output_embeddings(head)


@contextmanager
def output_head(model, head: nn.Module):
    """``model`` with ``head`` as its output head inside the block (a `variant_head` of it)."""
    original = model.get_output_embeddings()
    model.set_output_embeddings(head)
    try:
        yield model
    finally:
        model.set_output_embeddings(original)


def load_variant(model_record: Mapping[str, Any], adapter_dir: str | Path | None, device: str | None, *,
                 files: Mapping[str, Any] | None = None, variant: str | None = None):
    """The evaluated model in eval mode: the base model transformed by its variant kind.

    ``adapter_dir`` is the LoRA adapter of a trained variant (the original signature). ``files`` holds
    the other kinds' inputs by key (``temperature``, ``ats_head``; a rule's Snakemake input works as
    is), which select the kind; without one the ``variant`` name does (``base``, ``ssot``).
    """
    input_keys = {kind.input_key for kind in VARIANT_KINDS.values() if kind.input_key}
    files = {key: value for key, value in dict(files or {}).items() if key in input_keys and value}
    if adapter_dir is not None:
        files["adapter"] = adapter_dir
    kind = resolve_kind(variant, files)
    # `device: auto` reaches the jobs as None: CUDA when the machine has it.
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(model_record["path"], dtype=model_record["dtype"], device=device)
    return kind.apply(model, {key: Path(value) for key, value in files.items()})


def load_frozen_base(model_record_path: str | Path, device: str | None = None, threads: int | None = None):
    """(model record, tokenizer, base model in eval mode) for fitting a baseline on the frozen model;
    ``device`` None picks CUDA when the machine has it."""
    if threads:
        torch.set_num_threads(threads)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    record = read_json(model_record_path)
    return record, load_tokenizer(record["path"]), load_variant(record, None, device)
