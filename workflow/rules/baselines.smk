# Baseline variants (cft.variants, cft.baselines): the files their kinds need. `temperature` is one
# temperature fitted on train prompts; `ats_smooth` / `ats_kl` are Adaptive Temperature Scaling heads
# trained with the ATS paper's selective smoothing loss on instruction data or with the soft-target KL
# on the train prompts. `ssot` is a prompt protocol and needs no file.


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
        **model_job_resources(),
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
        **model_job_resources(training=True),
    params:
        loss=lambda wc: wc.ats_variant.removeprefix("ats_"),
        settings=lambda wc: {**config["baselines"]["ats"], **baseline_target_settings()},
        device=torch_device(),
    script:
        "../scripts/train_ats.py"


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
