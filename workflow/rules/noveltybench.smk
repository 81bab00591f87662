# NoveltyBench: k answers per prompt for every (model, variant) and prompt set, their equivalence
# classes and ratings in NoveltyBench's own file formats, then one table and one figure.
# Variants that change the prompt (SSoT) are left out: NoveltyBench asks its prompts as they are.

from cft.transfer.noveltybench import PROMPT_SET_FILES
from cft.variants import variant_kind

NOVELTYBENCH = config["evaluate"]["noveltybench"]
NOVELTYBENCH_VARIANTS = [
    v
    for v in VARIANTS
    if variant_kind(v, [*METHODS, *ABLATIONS]).prompting is None
    and (NOVELTYBENCH["variants"] is None or v in NOVELTYBENCH["variants"])
]


wildcard_constraints:
    nb_set="curated|wildchat",


def noveltybench_files(name):
    """`name` under every (model, variant, prompt set) of the NoveltyBench matrix."""
    return expand(
        "results/noveltybench/{model}/{variant}/nb-{nb_set}/" + name,
        model=MODELS,
        variant=NOVELTYBENCH_VARIANTS,
        nb_set=NOVELTYBENCH["prompt_sets"],
    )


def noveltybench_generation_settings(wildcards):
    keys = ("k", "max_new_tokens", "temperature", "top_p", "batch_size", "backend")
    return {**{key: NOVELTYBENCH[key] for key in keys}, "seed": config["seed"]}


def scorer_memory_mb(wildcards):
    """The stand-in judges are small; Skywork-27B needs its bf16 weights staged in host memory."""
    if NOVELTYBENCH["reward"]["kind"] == "skywork":
        return 60000
    return model_memory_mb(wildcards.model) + 1000


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
        mem_mb=lambda wc: model_memory_mb(wc.model),
        runtime=lambda wc: train_runtime_min(wc.model),
        gpu=lambda wc: 1 if on_gpu() else 0,
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
        mem_mb=scorer_memory_mb,
        runtime=lambda wc: train_runtime_min(wc.model),
        gpu=lambda wc: 1 if on_gpu() else 0,
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
