# NoveltyBench: k answers per prompt for every (model, variant) and prompt set, their equivalence
# classes and ratings in NoveltyBench's own file formats, then one table and one figure.
# Variants that change the prompt (SSoT) are left out: NoveltyBench asks its prompts as they are
# (NOVELTYBENCH_VARIANTS, common.smk).


wildcard_constraints:
    nb_set="curated|wildchat",


rule noveltybench_generate:
    input:
        unpack(variant_inputs),
        prompts=lambda wc: f"data/noveltybench/{PROMPT_SET_FILES[wc.nb_set]}",
    output:
        "results/noveltybench/{model}/{variant}/nb-{nb_set}/generations.jsonl",
    log:
        "logs/noveltybench_generate/{model}_{variant}_{nb_set}.log",
    benchmark:
        "benchmarks/noveltybench_generate/{model}_{variant}_{nb_set}.tsv"
    threads: model_job_threads()
    resources:
        **model_job_resources(),
    params:
        settings=noveltybench_generation_settings,
        num_prompts=NOVELTYBENCH["num_prompts"],
        device=torch_device(),
    script:
        "../scripts/noveltybench_generate.py"


rule noveltybench_score:
    input:
        generations="results/noveltybench/{model}/{variant}/nb-{nb_set}/generations.jsonl",
        model="results/models/{model}.json",
    output:
        partitions="results/noveltybench/{model}/{variant}/nb-{nb_set}/partitions.jsonl",
        scores="results/noveltybench/{model}/{variant}/nb-{nb_set}/scores.jsonl",
        summary="results/noveltybench/{model}/{variant}/nb-{nb_set}/summary.json",
    log:
        "logs/noveltybench_score/{model}_{variant}_{nb_set}.log",
    benchmark:
        "benchmarks/noveltybench_score/{model}_{variant}_{nb_set}.tsv"
    threads: model_job_threads()
    resources:
        **model_job_resources(mem_mb=scorer_memory_mb),
    params:
        classifier=NOVELTYBENCH["classifier"],
        reward=NOVELTYBENCH["reward"],
        patience=NOVELTYBENCH["patience"],
        device=torch_device(),
    script:
        "../scripts/noveltybench_score.py"


rule tab_noveltybench:
    input:
        noveltybench_files("summary.json"),
    output:
        report(
            "results/tables/noveltybench_summary.csv",
            caption="../report/tab_noveltybench.rst",
            category="Transfer",
        ),
    log:
        "logs/tab_noveltybench/tab_noveltybench.log",
    benchmark:
        "benchmarks/tab_noveltybench/tab_noveltybench.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/tab_noveltybench.py"


rule fig_noveltybench:
    input:
        "results/tables/noveltybench_summary.csv",
    output:
        pdf="results/figures/noveltybench.pdf",
        png=report(
            "results/figures/noveltybench.png",
            caption="../report/fig_noveltybench.rst",
            category="Transfer",
        ),
    log:
        "logs/fig_noveltybench/fig_noveltybench.log",
    benchmark:
        "benchmarks/fig_noveltybench/fig_noveltybench.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        models=config["models"],
    script:
        "../scripts/fig_noveltybench.py"
