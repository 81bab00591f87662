# Ablations (train.ablations, e.g. the paper's grid granularity and hard-target budget sweeps): their
# adapters come from train_adapter and their fidelity from evaluate_fidelity; these rules gather them,
# beside the base model and the main methods of the same models, into their own table and figure.


rule tab_ablations:
    input:
        unpack(ablation_table_inputs),
    output:
        prompts=report(
            "results/tables/ablations_prompts.csv",
            caption="../report/tab_ablations.rst",
            category="Ablations",
        ),
        summary=report(
            "results/tables/ablations_summary.csv",
            caption="../report/tab_ablations.rst",
            category="Ablations",
        ),
    log:
        "logs/tab_ablations/tab_ablations.log",
    benchmark:
        "benchmarks/tab_ablations/tab_ablations.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        bootstrap=config["evaluate"]["bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/tab_fidelity.py"


rule fig_ablations_summary:
    input:
        "results/tables/ablations_summary.csv",
    output:
        pdf="results/figures/ablations_summary.pdf",
        png=report(
            "results/figures/ablations_summary.png",
            caption="../report/fig_ablations_summary.rst",
            category="Ablations",
        ),
    log:
        "logs/fig_ablations_summary/fig_ablations_summary.log",
    benchmark:
        "benchmarks/fig_ablations_summary/fig_ablations_summary.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=config["models"],
    script:
        "../scripts/fig_fidelity_summary.py"
