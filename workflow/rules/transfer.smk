# Transfer beyond the trained task: open-ended random generation (the paper's 102 prompts) and the
# answer-position balance of generated MCQs, for every (model, variant), then their tables and figures.

# The case-study and answer-set categories are checked with the rest of the config
# (cft.config.validate_config).

# Which variants each evaluation takes is what their kind can do (their entries in cft.evaluations):
# a prompting protocol such as SSoT, which answers after a generated seed string and reasoning, runs the
# open-ended prompts (its answers read out of their tag, without a support size); the MCQ evaluation
# reads a bare generated question, so it does not take it. The exact answer probabilities on the
# closed answer sets (`choices`) are a registered evaluation (evaluations.smk).
OPENENDED_VARIANTS = variants_for("openended")
MCQ_VARIANTS = variants_for("mcq")


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
    threads: model_job_threads()
    resources:
        **model_job_resources(),
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
    threads: model_job_threads()
    resources:
        **model_job_resources(),
    params:
        settings=transfer_settings("mcq"),
        device=torch_device(),
    script:
        "../scripts/evaluate_mcq.py"


rule tab_openended:
    input:
        every_variant("results/openended/{model}/{variant}/prompts.csv", OPENENDED_VARIANTS),
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
        every_variant("results/mcq/{model}/{variant}/summary.json", MCQ_VARIANTS),
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
        every_variant("results/openended/{model}/{variant}/samples.jsonl", OPENENDED_VARIANTS),
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
