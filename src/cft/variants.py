"""Model variants: what an evaluation opens for `{variant}` of one model.

Every evaluation (fidelity, curve, generalization, transfer, NoveltyBench, retention) opens its model
with `open_variant`, so a new variant kind (a trained adapter, a logit transform, a prompting protocol)
becomes available to all of them at once.

Two registries:

* variant *kinds* (`register_variant_kind`): how the base model turns into the evaluated model, and what
  that model can do (`VariantKind.plain_format`, `has_logits`, `teacher_forceable`);
* named *variants* (`register_variant`): the names `evaluate.variants` may list besides the training
  methods (`cft.training.methods`), each with its kind and its look in the figures (`Style`).

A variant name (what `evaluate.variants` lists and the `{variant}` wildcard holds) resolves to a kind
(`variant_kind`):

* ``base``: the pretrained model;
* ``adapter``: the name of a training method (``soft``, ``hard``) or ablation: the base model with that
  run's LoRA adapter (``results/adapters/{model}/{variant}/adapter``);
* ``temperature``: the base model with one global temperature fitted on the train split
  (``results/variants/{model}/temperature.json``, `cft.baselines.temperature`);
* ``ats`` (names ``ats_<loss>``, e.g. ``ats_smooth``, ``ats_kl``): the base model with an Adaptive
  Temperature Scaling head (``results/variants/{model}/{variant}/head.pt``, `cft.baselines.ats`);
* ``ssot``: the base model prompted with String Seed of Thought (`cft.prompting.ssot`); the model is
  unchanged, the evaluators change the prompt and read the answer out of its tag.

Logit-transform kinds replace the model's output head (`cft.logits.with_logit_transform`), so every
evaluator works unchanged. The vLLM backend runs its own copy of the weights and cannot see the
transform; `open_variant` falls back to the hf backend for those kinds.

Which evaluation takes which kinds is its entry in `cft.evaluations` (its ``needs`` and ``protocols``):
the workflow's variant lists (`evaluated_variants`) and the evaluators' own check
(`open_variant(..., evaluation=...)`) both read it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from cft.devices import use_threads
from cft.evaluations import get_evaluation
from cft.io import read_json
from cft.jobs import FitJob, start_model_job, torch_threads
from cft.logits import GlobalTemperature, HeadFanout, TransformedHead, with_logit_transform
from cft.models import ChatOptions, load_model, load_tokenizer, pick_device
from cft.styles import DARK_GREY, OKABE_ITO, TOL_INDIGO, Style

log = logging.getLogger(__name__)


class UnknownVariant(ValueError):
    """A variant name that is neither a kind, a trained method, nor ``<kind>_<name>``."""


@dataclass(frozen=True)
class Fitter:
    """How the workflow writes the file a kind needs (`workflow/rules/baselines.smk` writes the rule from
    this entry alone): rule ``rule``, one job per model and variant of the kind, which calls
    ``function(job: FitJob)`` ("module:function", imported only in the job) on the frozen base model
    and the training subset, with the ``baselines.<settings>`` config section plus the evaluations'
    target. ``outputs`` are the job's files by name, with {model} and, where each variant of the kind
    has files of its own, {variant}; the kind's ``input_key`` names one of them."""

    rule: str
    function: str
    outputs: Mapping[str, str]
    settings: str
    # Host memory of a training job (an ATS head is trained) rather than of an evaluation.
    training: bool = False


@dataclass(frozen=True)
class VariantKind:
    """How one kind of variant turns the base model into the evaluated model, and what it can do.

    ``input_key`` names the file the kind needs (the key of the rule input and of `open_variant`'s
    ``files``) and ``input_path`` where the workflow keeps it ({model} and {variant} filled in).
    ``prompting`` names a prompting protocol (`cft.prompting`) the evaluators apply instead of the
    plain prompt. ``teacher_forceable`` is False where the answer's probabilities cannot be read
    teacher-forced right after the prompt (SSoT samples its answer after a generated seed string and
    reasoning). ``has_logits`` is False where the variant is no model of its own to score text with
    (a prompting protocol leaves the base model's log-likelihoods as they are). ``rank_preserving``
    marks a logit transform that never reorders a position's tokens (a positive temperature, global
    or per position): its greedy decoding is base's. ``fitter`` says how
    the workflow writes the kind's file where it is fitted on the base model (a temperature, an ATS
    head); a trained adapter's file comes from the training rules instead.
    """

    name: str
    apply: Callable[[Any, Mapping[str, Path]], Any]
    input_key: str | None = None
    input_path: str | None = None
    prompting: str | None = None
    teacher_forceable: bool = True
    has_logits: bool = True
    transforms_logits: bool = False
    rank_preserving: bool = False
    fitter: Fitter | None = None

    @property
    def plain_format(self) -> bool:
        """The variant answers the plain prompt in the plain answer format (no prompting protocol)."""
        return self.prompting is None


VARIANT_KINDS: dict[str, VariantKind] = {}


def register_variant_kind(name: str, **fields: Any):
    """Decorator: register ``apply(model, files) -> model`` as variant kind ``name``."""

    def register(apply: Callable[[Any, Mapping[str, Path]], Any]):
        if name in VARIANT_KINDS:
            raise ValueError(f"variant kind {name!r} is registered twice")
        VARIANT_KINDS[name] = VariantKind(name=name, apply=apply, **fields)
        return apply

    return register


@dataclass(frozen=True)
class Variant:
    """A variant name that `evaluate.variants` may list besides the training methods, and its kind."""

    name: str
    kind: str
    style: Style


VARIANTS: dict[str, Variant] = {}


def register_variant(name: str, kind: str, style: Style) -> Variant:
    if name in VARIANTS:
        raise ValueError(f"variant {name!r} is registered twice")
    if kind not in VARIANT_KINDS:
        raise ValueError(f"variant {name!r}: kind {kind!r} is not registered (known: {', '.join(VARIANT_KINDS)})")
    VARIANTS[name] = Variant(name, kind, style)
    return VARIANTS[name]


def variant_kind(name: str, adapters: Sequence[str] = ()) -> VariantKind:
    """The kind of variant ``name``: a registered variant, a trained adapter, a kind's own name or
    ``<kind>_<suffix>``."""
    if name in VARIANTS:
        return VARIANT_KINDS[VARIANTS[name].kind]
    if name in VARIANT_KINDS and name != "adapter":
        return VARIANT_KINDS[name]
    if name in adapters:
        return VARIANT_KINDS["adapter"]
    prefix = name.split("_", 1)[0]
    if "_" in name and prefix in VARIANT_KINDS and prefix != "adapter":
        return VARIANT_KINDS[prefix]
    allowed = sorted(set(VARIANTS) | set(VARIANT_KINDS) - {"adapter"} | set(adapters))
    raise UnknownVariant(f"variant {name!r} is none of {allowed} nor '<kind>_<name>' of a kind")


def fitted_kinds(variants: Iterable[str]) -> dict[str, list[str]]:
    """The kinds with a fitter among ``variants``, each with its variants there, in order."""
    kinds: dict[str, list[str]] = {}
    for name in variants:
        kind = variant_kind(name) if name in VARIANTS else None
        if kind is not None and kind.fitter is not None:
            kinds.setdefault(kind.name, []).append(name)
    return kinds


def run_fit_job(snakemake: Any) -> None:
    """The job of `workflow/scripts/fit_variant.py`: the fitter of the rule's kind, on its inputs."""
    from cft.evaluations import load_function

    start_model_job(snakemake)
    fitter = VARIANT_KINDS[snakemake.params.kind].fitter
    # A kind with one file per model (the temperature) has no {variant} wildcard: its variant is the kind.
    variant = snakemake.wildcards.get("variant", snakemake.params.kind)
    job = FitJob(model_record_path=snakemake.input.model, variant=variant, prompts_path=snakemake.input.prompts,
                 settings=snakemake.params.settings, outputs=dict(snakemake.output), device=snakemake.params.device,
                 threads=torch_threads(snakemake))
    load_function(fitter.function)(job)


def variant_files(model: str, name: str, adapters: Sequence[str] = ()) -> dict[str, str]:
    """The files variant ``name`` of ``model`` needs, keyed like `open_variant`'s ``files``."""
    kind = variant_kind(name, adapters)
    if kind.input_key is None:
        return {}
    return {kind.input_key: kind.input_path.format(model=model, variant=name)}


# --------------------------------------------------------------------------------------------------
# What each evaluation asks of a variant: the workflow lists a variant under an evaluation, and the
# evaluator opens it, only where its kind has every attribute the evaluation needs and either answers the
# plain prompt or uses a prompting protocol that the evaluation reads.

# Why a kind is refused, as `open_variant`'s error says it.
WHY_NOT = {
    "teacher_forceable": "it answers after generated text, so its answer probabilities cannot be read "
                         "teacher-forced after the prompt",
    "has_logits": "it is no model of its own to score text with",
    "plain_format": "it changes the prompt (a prompting protocol this evaluation does not read); the "
                    "evaluation asks its prompts as they are",
}


def unmet_needs(evaluation: str, kind: VariantKind) -> list[str]:
    """The attributes ``kind`` lacks for ``evaluation`` (a name of `cft.evaluations.EVALUATIONS`);
    [] = accepted."""
    entry = get_evaluation(evaluation)
    unmet = [need for need in entry.needs if not getattr(kind, need)]
    if not kind.plain_format and kind.prompting not in entry.protocols:
        unmet.append("plain_format")
    return unmet


def accepts(evaluation: str, kind: VariantKind) -> bool:
    """Whether ``evaluation`` evaluates variants of ``kind``."""
    return not unmet_needs(evaluation, kind)


def evaluated_variants(evaluation: str, variants: Iterable[str], adapters: Sequence[str] = ()) -> list[str]:
    """The variants of ``variants`` (in their order) that ``evaluation`` takes."""
    return [name for name in variants if accepts(evaluation, variant_kind(name, adapters))]


# --------------------------------------------------------------------------------------------------
# The kinds and the named variants (the training methods' styles are on their `register_method` entries)


@register_variant_kind("base")
def _base(model, files):
    return model


@register_variant_kind("adapter", input_key="adapter", input_path="results/adapters/{model}/{variant}/adapter")
def _adapter(model, files):
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(files["adapter"])).eval()


@register_variant_kind("temperature", input_key="temperature",
                       input_path="results/variants/{model}/temperature.json", transforms_logits=True,
                       rank_preserving=True,
                       fitter=Fitter("fit_temperature", "cft.baselines.temperature:fit_temperature_job",
                                     {"temperature": "results/variants/{model}/temperature.json"}, "temperature"))
def _temperature(model, files):
    return with_logit_transform(model, GlobalTemperature(read_json(files["temperature"])["temperature"]))


@register_variant_kind("ats", input_key="ats_head", input_path="results/variants/{model}/{variant}/head.pt",
                       transforms_logits=True, rank_preserving=True,
                       fitter=Fitter("train_ats", "cft.baselines.ats:train_ats_job",
                                     {"head": "results/variants/{model}/{variant}/head.pt",
                                      "record": "results/variants/{model}/{variant}/head.json",
                                      "log_csv": "results/variants/{model}/{variant}/train_log.csv"},
                                     "ats", training=True))
def _ats(model, files):
    from cft.baselines.ats import load_ats_head

    return with_logit_transform(model, load_ats_head(files["ats_head"]))


@register_variant_kind("ssot", prompting="ssot", teacher_forceable=False, has_logits=False)
def _ssot(model, files):
    return model


register_variant("base", "base", Style(OKABE_ITO["black"], "o", "-", ""))
register_variant("temperature", "temperature", Style(OKABE_ITO["orange"], "P", (0, (5, 1)), "--"))
register_variant("ats_smooth", "ats", Style(OKABE_ITO["bluish_green"], "X", (0, (3, 1, 1, 1, 1, 1)), "||"))
register_variant("ats_kl", "ats", Style(TOL_INDIGO, "*", (0, (1, 2)), "++"))
register_variant("ssot", "ssot", Style(DARK_GREY, "h", (0, (8, 2, 2, 2)), "oo"))


# --------------------------------------------------------------------------------------------------
# Opening a variant


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


def greedy_is_base(kind: VariantKind) -> bool:
    """Whether the variant's greedy decoding is the base model's, token for token: base itself, or a
    rank-preserving transform of its logits. (A transform that rounds two logits to one value could
    in principle break a tie differently; a positive scale cannot swap them.)"""
    return kind.name == "base" or (kind.transforms_logits and kind.rank_preserving)


@dataclass(frozen=True)
class HeadVariant:
    """One variant of a job that scores base and its logit transforms on one loaded base model."""

    name: str
    kind: VariantKind
    head: nn.Module


def head_variants(model, variants: Mapping[str, Mapping[str, Any]]) -> list[HeadVariant]:
    """``variants`` (name -> input files, ``{}`` for base) with their kinds and output heads on the
    base ``model``, in their order; each must be the base decoder with at most a transformed output
    head (`shares_base_decoder`)."""
    resolved = []
    for name, files in variants.items():
        kind = resolve_kind(name, files)
        if not shares_base_decoder(kind):
            raise ValueError(f"variant {name!r} of kind {kind.name!r} is not the base decoder with another "
                             "output head: evaluate it on its own")
        resolved.append(HeadVariant(name, kind, variant_head(model, kind, files)))
    return resolved


def decoder_heads(model, variants: Sequence[HeadVariant]) -> HeadFanout:
    """One `HeadFanout` of the `head_variants` ``variants`` on the base ``model``, in their order."""
    return HeadFanout(model.get_output_embeddings(),
                      [v.head.transform if isinstance(v.head, TransformedHead) else None for v in variants])


@contextmanager
def output_head(model, head: nn.Module):
    """``model`` with ``head`` as its output head inside the block (a `variant_head` of it)."""
    original = model.get_output_embeddings()
    model.set_output_embeddings(head)
    try:
        yield model
    finally:
        model.set_output_embeddings(original)
def _kind_files(files: Mapping[str, Any] | None, adapter_dir: str | Path | None) -> dict[str, Any]:
    """The inputs of any kind among ``files`` (a rule's whole input works), plus the adapter."""
    input_keys = {kind.input_key for kind in VARIANT_KINDS.values() if kind.input_key}
    kept = {key: value for key, value in dict(files or {}).items() if key in input_keys and value}
    if adapter_dir is not None:
        kept["adapter"] = adapter_dir
    return kept


def load_variant(model_record: Mapping[str, Any], adapter_dir: str | Path | None, device: str | None, *,
                 files: Mapping[str, Any] | None = None, variant: str | None = None):
    """The evaluated model in eval mode: the base model transformed by its variant kind.

    ``adapter_dir`` is the LoRA adapter of a trained variant. ``files`` holds the other kinds' inputs by
    key (``temperature``, ``ats_head``; a rule's Snakemake input works as is), which select the kind;
    without one the ``variant`` name does (``base``, ``ssot``). ``device`` None picks CUDA when the
    machine has it.
    """
    files = _kind_files(files, adapter_dir)
    kind = resolve_kind(variant, files)
    model = load_model(model_record["path"], dtype=model_record["dtype"], device=pick_device(device))
    return kind.apply(model, {key: Path(value) for key, value in files.items()})


@dataclass(frozen=True)
class OpenedVariant:
    """One (model, variant) as an evaluator uses it.

    ``model`` is None where the backend samples with its own copy of the weights and the evaluation
    asked for no in-process model. ``backend`` is the configured one, or ``hf`` where the kind transforms
    logits in this process. ``adapter_dir`` is the LoRA adapter an external backend applies per request.
    """

    record: dict[str, Any]
    tokenizer: Any
    model: Any
    kind: VariantKind
    chat: ChatOptions
    backend: str
    adapter_dir: str | Path | None

    @property
    def name(self) -> str:
        return self.record["name"]


def sampling_backend(variant: str, kind: VariantKind, backend: str) -> str:
    """The backend that samples ``variant``: hf where its kind transforms logits in this process."""
    if needs_hf_backend(kind) and backend != "hf":
        # vLLM runs its own copy of the weights and would sample the untransformed model.
        log.warning("variant %s transforms logits in this process: sampling with the hf backend", variant)
        return "hf"
    return backend


def open_variant(model_record_path: str | Path, variant: str, *, evaluation: str,
                 files: Mapping[str, Any] | None = None, adapter_dir: str | Path | None = None,
                 device: str | None = None, threads: int | None = None, backend: str = "hf",
                 in_process_model: bool = True) -> OpenedVariant:
    """Read the model record, load the tokenizer and the variant's model, and resolve its kind, chat
    options and sampling backend, for ``evaluation`` (a name of `cft.evaluations.EVALUATIONS`).

    ``files`` are the variant's inputs by key (a rule's Snakemake input works as is) and ``adapter_dir``
    a LoRA adapter given apart (a training snapshot). A kind the evaluation does not take is refused
    before any model loads. With ``in_process_model`` False the model is loaded only where the backend
    falls back to hf (an external backend such as vLLM loads its own).
    """
    if threads:
        use_threads(threads)
    files = _kind_files(files, adapter_dir)
    kind = resolve_kind(variant, files)
    unmet = unmet_needs(evaluation, kind)
    if unmet:
        why = "; ".join(WHY_NOT[need] for need in unmet)
        raise ValueError(f"variant {variant!r} ({kind.name}) cannot be evaluated by {evaluation}: {why}")
    backend = sampling_backend(variant, kind, backend)
    record = read_json(model_record_path)
    tokenizer = load_tokenizer(record["path"])
    model = None
    if in_process_model or backend == "hf":
        model = load_variant(record, None, device, files=files, variant=variant)
    return OpenedVariant(record=record, tokenizer=tokenizer, model=model, kind=kind,
                         chat=ChatOptions(**record.get("chat", {})), backend=backend,
                         adapter_dir=files.get("adapter"))
