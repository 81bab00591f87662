# Structured-sampling fidelity: every (model, variant) on the unseen-parameter and held-out splits,
# then the tables every figure and the report read.


rule evaluate_fidelity:
    input:
        unpack(fidelity_inputs),
    output:
        prompts="results/fidelity/{model}/{variant}/prompts.csv",
        samples="results/fidelity/{model}/{variant}/samples.jsonl",
        distributions="results/fidelity/{model}/{variant}/distributions.json",
    log:
        "logs/evaluate_fidelity/{model}_{variant}.log",
    benchmark:
        "benchmarks/evaluate_fidelity/{model}_{variant}.tsv"
    threads: model_job_threads()
    resources:
        mem_mb=lambda wc: model_memory_mb(wc.model),
        runtime=lambda wc: train_runtime_min(wc.model),
        gpu=lambda wc: 1 if on_gpu() else 0,
    params:
        settings=fidelity_settings,
        splits=config["evaluate"]["splits"],
        device=torch_device(),
    script:
        "../scripts/evaluate_fidelity.py"


rule tab_fidelity:
    input:
        prompts=expand(
            "results/fidelity/{model}/{variant}/prompts.csv",
            model=MODELS,
            variant=VARIANTS,
        ),
        samples=expand(
            "results/fidelity/{model}/{variant}/samples.jsonl",
            model=MODELS,
            variant=VARIANTS,
        ),
        test_sets=expand("results/datasets/{split}.jsonl", split=config["evaluate"]["splits"]),
    output:
        prompts=report(
            "results/tables/fidelity_prompts.csv",
            caption="../report/tab_fidelity.rst",
            category="Fidelity",
        ),
        summary=report(
            "results/tables/fidelity_summary.csv",
            caption="../report/tab_fidelity.rst",
            category="Fidelity",
        ),
    log:
        "logs/tab_fidelity/tab_fidelity.log",
    benchmark:
        "benchmarks/tab_fidelity/tab_fidelity.tsv"
    localrule: True
    threads: 1
    params:
        bootstrap=config["evaluate"]["bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/tab_fidelity.py"
