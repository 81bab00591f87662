# Retention: does a calibration adapter keep the base model's abilities? TinyBenchmarks-style tasks
# (with gp-IRT estimates when the real data and parameter file are configured, raw accuracy always,
# and the confidence calibration of the multiple-choice answers) and PALOMA-style perplexity, for
# every (model, variant); then tables with the differences to `base`, and one figure each.
# Variants without a model of their own to score text with (SSoT, a prompting protocol) are left out
# (cft.variants.EVALUATION_NEEDS; the lists and input functions are in common.smk).


rule prepare_tinybench_items:
    output:
        "results/retention/tinybench_items.jsonl",
    log:
        "logs/prepare_tinybench_items/prepare_tinybench_items.log",
    benchmark:
        "benchmarks/prepare_tinybench_items/prepare_tinybench_items.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=RETENTION["tinybench"],
    script:
        "../scripts/prepare_tinybench_items.py"


rule prepare_perplexity_standin:
    output:
        directory("results/retention/perplexity_data"),
    log:
        "logs/prepare_perplexity_standin/prepare_perplexity_standin.log",
    benchmark:
        "benchmarks/prepare_perplexity_standin/prepare_perplexity_standin.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        split=RETENTION["perplexity"]["split"],
    script:
        "../scripts/prepare_perplexity_standin.py"


rule evaluate_tinybench:
    input:
        unpack(variant_inputs),
        task_items="results/retention/tinybench_items.jsonl",
    output:
        tasks="results/retention/{model}/{variant}/tinybench_tasks.csv",
        examples="results/retention/{model}/{variant}/tinybench_examples.jsonl",
    log:
        "logs/evaluate_tinybench/{model}_{variant}.log",
    benchmark:
        "benchmarks/evaluate_tinybench/{model}_{variant}.tsv"
    threads: model_job_threads()
    resources:
        **model_job_resources(),
    params:
        settings=RETENTION["tinybench"],
        device=torch_device(),
    script:
        "../scripts/evaluate_tinybench.py"


rule evaluate_perplexity:
    input:
        unpack(perplexity_inputs),
    output:
        "results/retention/{model}/{variant}/perplexity_slices.csv",
    log:
        "logs/evaluate_perplexity/{model}_{variant}.log",
    benchmark:
        "benchmarks/evaluate_perplexity/{model}_{variant}.tsv"
    threads: model_job_threads()
    resources:
        **model_job_resources(),
    params:
        settings=RETENTION["perplexity"],
        root=PERPLEXITY_ROOT,
        stand_in=PERPLEXITY_STAND_IN,
        device=torch_device(),
    script:
        "../scripts/evaluate_perplexity.py"


rule tab_retention_tasks:
    input:
        retention_files("tinybench_tasks.csv", TINYBENCH_VARIANTS),
    output:
        report("results/tables/retention_tasks.csv", caption="../report/tab_retention.rst", category="Retention"),
    log:
        "logs/tab_retention_tasks/tab_retention_tasks.log",
    benchmark:
        "benchmarks/tab_retention_tasks/tab_retention_tasks.tsv"
    localrule: True
    threads: 1
    script:
        "../scripts/tab_retention.py"


rule tab_retention_perplexity:
    input:
        retention_files("perplexity_slices.csv", PERPLEXITY_VARIANTS),
    output:
        report("results/tables/retention_perplexity.csv", caption="../report/tab_retention.rst",
               category="Retention"),
    log:
        "logs/tab_retention_perplexity/tab_retention_perplexity.log",
    benchmark:
        "benchmarks/tab_retention_perplexity/tab_retention_perplexity.tsv"
    localrule: True
    threads: 1
    script:
        "../scripts/tab_retention.py"


rule fig_retention_tasks:
    input:
        "results/tables/retention_tasks.csv",
    output:
        pdf="results/figures/retention_tasks.pdf",
        png=report(
            "results/figures/retention_tasks.png",
            caption="../report/fig_retention_tasks.rst",
            category="Retention",
        ),
    log:
        "logs/fig_retention_tasks/fig_retention_tasks.log",
    benchmark:
        "benchmarks/fig_retention_tasks/fig_retention_tasks.tsv"
    localrule: True
    threads: 1
    params:
        models=config["models"],
    script:
        "../scripts/fig_retention.py"


rule fig_retention_perplexity:
    input:
        "results/tables/retention_perplexity.csv",
    output:
        pdf="results/figures/retention_perplexity.pdf",
        png=report(
            "results/figures/retention_perplexity.png",
            caption="../report/fig_retention_perplexity.rst",
            category="Retention",
        ),
    log:
        "logs/fig_retention_perplexity/fig_retention_perplexity.log",
    benchmark:
        "benchmarks/fig_retention_perplexity/fig_retention_perplexity.tsv"
    localrule: True
    threads: 1
    params:
        models=config["models"],
    script:
        "../scripts/fig_retention.py"
