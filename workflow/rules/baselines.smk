# Baseline variants (cft.variants, cft.baselines): the files their kinds need. `temperature` is one
# temperature fitted on train prompts; `ats_smooth` / `ats_kl` are Adaptive Temperature Scaling heads
# trained with the ATS paper's selective smoothing loss on instruction data or with the soft-target KL
# on the train prompts. `ssot` is a prompt protocol and needs no file.


# One rule per kind with a fitter (cft.variants.Fitter), written from the kind's registry entry:
# fit_temperature (one temperature per model) and train_ats (one head per model and ATS variant).
for kind, fitter in FITTERS.items():

    rule:
        name:
            fitter.rule
        input:
            model="results/models/{model}.json",
            prompts="results/datasets/train_subset.jsonl",
        output:
            **fitter.outputs,
        log:
            f"logs/{fitter.rule}/{fit_job_stem(fitter)}.log",
        benchmark:
            f"benchmarks/{fitter.rule}/{fit_job_stem(fitter)}.tsv"
        wildcard_constraints:
            variant="|".join(FITTED_KINDS[kind]),
        threads: model_job_threads()
        resources:
            **model_job_resources(training=fitter.training),
        params:
            kind=kind,
            settings={**config["baselines"][fitter.settings], **baseline_target_settings()},
            device=torch_device(),
        script:
            "../scripts/fit_variant.py"


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
