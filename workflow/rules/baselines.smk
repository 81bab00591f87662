# Baseline variants (cft.variants, cft.baselines): what evaluate_fidelity needs to evaluate them.
# `temperature` is one temperature fitted on train prompts; `ats_smooth` / `ats_kl` are Adaptive
# Temperature Scaling heads trained with the ATS paper's selective smoothing loss on instruction data
# or with the soft-target KL on the train prompts. `ssot` is a prompt protocol and needs no file.


def baseline_target_settings():
    """The target the evaluations score against (evaluate.target, the soft adapter's): the temperature
    and ATS-KL objectives fit to its tries."""
    return {"seed": config["seed"], "target": evaluation_target(config)}


rule fit_temperature:
    input:
        model="results/models/{model}.json",
        prompts="results/datasets/train_subset.jsonl",
    output:
        temperature="results/variants/{model}/temperature.json",
    log:
        "logs/fit_temperature/{model}.log",
    benchmark:
        "benchmarks/fit_temperature/{model}.tsv"
    threads: model_job_threads()
    resources:
        mem_mb=lambda wc: model_memory_mb(wc.model),
        runtime=lambda wc: train_runtime_min(wc.model),
        gpu=lambda wc: 1 if on_gpu() else 0,
    params:
        settings=lambda wc: {**config["baselines"]["temperature"], **baseline_target_settings()},
        device=torch_device(),
    script:
        "../scripts/fit_temperature.py"


rule train_ats:
    input:
        model="results/models/{model}.json",
        prompts="results/datasets/train_subset.jsonl",
    output:
        head="results/variants/{model}/{ats_variant}/head.pt",
        record="results/variants/{model}/{ats_variant}/head.json",
        log_csv="results/variants/{model}/{ats_variant}/train_log.csv",
    log:
        "logs/train_ats/{model}_{ats_variant}.log",
    benchmark:
        "benchmarks/train_ats/{model}_{ats_variant}.tsv"
    threads: model_job_threads()
    resources:
        mem_mb=lambda wc: model_memory_mb(wc.model, training=True),
        runtime=lambda wc: train_runtime_min(wc.model),
        gpu=lambda wc: 1 if on_gpu() else 0,
    params:
        loss=lambda wc: wc.ats_variant.removeprefix("ats_"),
        settings=lambda wc: {**config["baselines"]["ats"], **baseline_target_settings()},
        device=torch_device(),
    script:
        "../scripts/train_ats.py"


def baseline_fit_files(wildcards):
    """The temperature fits and ATS loss logs of every model, for the baselines figure."""
    files = {}
    for model in MODELS:
        if "temperature" in BASELINES:
            files[f"temperature__{model}"] = f"results/variants/{model}/temperature.json"
        for variant in ("ats_smooth", "ats_kl"):
            if variant in BASELINES:
                files[f"ats__{model}__{variant}"] = f"results/variants/{model}/{variant}/train_log.csv"
    return files


rule fig_baselines:
    input:
        unpack(baseline_fit_files),
    output:
        pdf="results/figures/baselines.pdf",
        png=report(
            "results/figures/baselines.png",
            caption="../report/fig_baselines.rst",
            category="Baselines",
        ),
    log:
        "logs/fig_baselines/fig_baselines.log",
    benchmark:
        "benchmarks/fig_baselines/fig_baselines.tsv"
    localrule: True
    threads: 1
    script:
        "../scripts/fig_baselines.py"
