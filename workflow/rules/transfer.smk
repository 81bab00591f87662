# Transfer beyond the trained task: open-ended random generation (the paper's 102 prompts) and the
# answer-position balance of generated MCQs, for every (model, variant), then their tables and figures.

from cft.transfer.openended import check_case_studies

check_case_studies(config["evaluate"]["openended"]["case_studies"])

# SSoT is a prompting protocol that answers after a generated seed and reasoning; these prompts ask for
# the bare answer and the support size reads its first token, so it has no transfer evaluation here.
TRANSFER_VARIANTS = [v for v in VARIANTS if v != "ssot"]


def transfer_settings(section):
    """The `evaluate.<section>` settings plus the master seed that the sample seeds derive from."""
    return lambda wildcards: {**config["evaluate"][section], "seed": config["seed"]}


def every_variant(pattern):
    """`pattern` for every (model, variant) of the evaluation matrix."""
    return expand(pattern, model=MODELS, variant=TRANSFER_VARIANTS)


rule evaluate_openended:
    input:
        unpack(variant_inputs),
    output:
        prompts="results/openended/{model}/{variant}/prompts.csv",
        samples="results/openended/{model}/{variant}/samples.jsonl",
    log:
        "logs/evaluate_openended/{model}_{variant}.log",
    benchmark:
        "benchmarks/evaluate_openended/{model}_{variant}.tsv"
    threads: max(workflow.cores, 1)
    resources:
        mem_mb=lambda wc: model_memory_mb(wc.model),
        runtime=lambda wc: train_runtime_min(wc.model),
        gpu=lambda wc: 1 if on_gpu() else 0,
    params:
        settings=transfer_settings("openended"),
        device=torch_device(),
    script:
        "../scripts/evaluate_openended.py"


rule evaluate_mcq:
    input:
        unpack(variant_inputs),
    output:
        generations="results/mcq/{model}/{variant}/generations.jsonl",
        summary="results/mcq/{model}/{variant}/summary.json",
    log:
        "logs/evaluate_mcq/{model}_{variant}.log",
    benchmark:
        "benchmarks/evaluate_mcq/{model}_{variant}.tsv"
    threads: max(workflow.cores, 1)
    resources:
        mem_mb=lambda wc: model_memory_mb(wc.model),
        runtime=lambda wc: train_runtime_min(wc.model),
        gpu=lambda wc: 1 if on_gpu() else 0,
    params:
        settings=transfer_settings("mcq"),
        device=torch_device(),
    script:
        "../scripts/evaluate_mcq.py"


rule tab_openended:
    input:
        every_variant("results/openended/{model}/{variant}/prompts.csv"),
    output:
        prompts=report(
            "results/tables/openended_prompts.csv",
            caption="../report/tab_openended.rst",
            category="Transfer",
        ),
        summary=report(
            "results/tables/openended_summary.csv",
            caption="../report/tab_openended.rst",
            category="Transfer",
        ),
    log:
        "logs/tab_openended/tab_openended.log",
    benchmark:
        "benchmarks/tab_openended/tab_openended.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/tab_openended.py"


rule tab_mcq:
    input:
        every_variant("results/mcq/{model}/{variant}/summary.json"),
    output:
        report(
            "results/tables/mcq_summary.csv",
            caption="../report/tab_mcq.rst",
            category="Transfer",
        ),
    log:
        "logs/tab_mcq/tab_mcq.log",
    benchmark:
        "benchmarks/tab_mcq/tab_mcq.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/tab_mcq.py"


rule fig_openended_support:
    input:
        "results/tables/openended_summary.csv",
    output:
        pdf="results/figures/openended_support.pdf",
        png=report(
            "results/figures/openended_support.png",
            caption="../report/fig_openended_support.rst",
            category="Transfer",
        ),
    log:
        "logs/fig_openended_support/fig_openended_support.log",
    benchmark:
        "benchmarks/fig_openended_support/fig_openended_support.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        models=config["models"],
        headline=config["evaluate"]["openended"]["headline_threshold"],
    script:
        "../scripts/fig_openended_support.py"


rule fig_openended_case_studies:
    input:
        every_variant("results/openended/{model}/{variant}/samples.jsonl"),
    output:
        pdf="results/figures/openended_case_studies.pdf",
        png=report(
            "results/figures/openended_case_studies.png",
            caption="../report/fig_openended_case_studies.rst",
            category="Transfer",
        ),
    log:
        "logs/fig_openended_case_studies/fig_openended_case_studies.log",
    benchmark:
        "benchmarks/fig_openended_case_studies/fig_openended_case_studies.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=config["models"],
        categories=config["evaluate"]["openended"]["case_studies"],
    script:
        "../scripts/fig_openended_case_studies.py"


rule fig_mcq_positions:
    input:
        "results/tables/mcq_summary.csv",
    output:
        pdf="results/figures/mcq_positions.pdf",
        png=report(
            "results/figures/mcq_positions.png",
            caption="../report/fig_mcq_positions.rst",
            category="Transfer",
        ),
    log:
        "logs/fig_mcq_positions/fig_mcq_positions.log",
    benchmark:
        "benchmarks/fig_mcq_positions/fig_mcq_positions.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        models=config["models"],
    script:
        "../scripts/fig_mcq_positions.py"
