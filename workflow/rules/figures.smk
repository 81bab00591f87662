# One rule per figure, no wildcards, so that `snakemake --cores 2 <rule>` rebuilds just that figure.


rule fig_training_curves:
    input:
        unpack(training_logs),
    output:
        pdf="results/figures/training_curves.pdf",
        png=report(
            "results/figures/training_curves.png",
            caption="../report/fig_training_curves.rst",
            category="Training",
        ),
    log:
        "logs/fig_training_curves/fig_training_curves.log",
    benchmark:
        "benchmarks/fig_training_curves/fig_training_curves.tsv"
    localrule: True
    threads: 1
    script:
        "../scripts/fig_training_curves.py"


rule fig_fidelity_summary:
    input:
        "results/tables/fidelity_summary.csv",
    output:
        pdf="results/figures/fidelity_summary.pdf",
        png=report(
            "results/figures/fidelity_summary.png",
            caption="../report/fig_fidelity_summary.rst",
            category="Fidelity",
        ),
    log:
        "logs/fig_fidelity_summary/fig_fidelity_summary.log",
    benchmark:
        "benchmarks/fig_fidelity_summary/fig_fidelity_summary.tsv"
    localrule: True
    threads: 1
    params:
        models=config["models"],
    script:
        "../scripts/fig_fidelity_summary.py"


rule fig_fidelity_heatmap:
    input:
        "results/tables/fidelity_prompts.csv",
    output:
        pdf="results/figures/fidelity_heatmap.pdf",
        png=report(
            "results/figures/fidelity_heatmap.png",
            caption="../report/fig_fidelity_heatmap.rst",
            category="Fidelity",
        ),
    log:
        "logs/fig_fidelity_heatmap/fig_fidelity_heatmap.log",
    benchmark:
        "benchmarks/fig_fidelity_heatmap/fig_fidelity_heatmap.tsv"
    localrule: True
    threads: 1
    params:
        models=config["models"],
    script:
        "../scripts/fig_fidelity_heatmap.py"


rule fig_fidelity_overlays:
    input:
        unpack(fidelity_distributions),
        prompts="results/tables/fidelity_prompts.csv",
    output:
        pdf="results/figures/fidelity_overlays.pdf",
        png=report(
            "results/figures/fidelity_overlays.png",
            caption="../report/fig_fidelity_overlays.rst",
            category="Fidelity",
        ),
    log:
        "logs/fig_fidelity_overlays/fig_fidelity_overlays.log",
    benchmark:
        "benchmarks/fig_fidelity_overlays/fig_fidelity_overlays.tsv"
    localrule: True
    threads: 1
    params:
        models=config["models"],
    script:
        "../scripts/fig_fidelity_overlays.py"


rule fig_fidelity_valid_rate:
    input:
        "results/tables/fidelity_summary.csv",
    output:
        pdf="results/figures/fidelity_valid_rate.pdf",
        png=report(
            "results/figures/fidelity_valid_rate.png",
            caption="../report/fig_fidelity_valid_rate.rst",
            category="Fidelity",
        ),
    log:
        "logs/fig_fidelity_valid_rate/fig_fidelity_valid_rate.log",
    benchmark:
        "benchmarks/fig_fidelity_valid_rate/fig_fidelity_valid_rate.tsv"
    localrule: True
    threads: 1
    params:
        models=config["models"],
    script:
        "../scripts/fig_fidelity_valid_rate.py"


rule fig_fidelity_curve:
    input:
        "results/tables/fidelity_curve.csv",
    output:
        pdf="results/figures/fidelity_curve.pdf",
        png=report(
            "results/figures/fidelity_curve.png",
            caption="../report/fig_fidelity_curve.rst",
            category="Fidelity",
        ),
    log:
        "logs/fig_fidelity_curve/fig_fidelity_curve.log",
    benchmark:
        "benchmarks/fig_fidelity_curve/fig_fidelity_curve.tsv"
    localrule: True
    threads: 1
    params:
        models=config["models"],
    script:
        "../scripts/fig_fidelity_curve.py"


rule fig_fidelity_comparisons:
    input:
        "results/tables/fidelity_comparisons.csv",
    output:
        pdf="results/figures/fidelity_comparisons.pdf",
        png=report(
            "results/figures/fidelity_comparisons.png",
            caption="../report/fig_fidelity_comparisons.rst",
            category="Fidelity",
        ),
    log:
        "logs/fig_fidelity_comparisons/fig_fidelity_comparisons.log",
    benchmark:
        "benchmarks/fig_fidelity_comparisons/fig_fidelity_comparisons.tsv"
    localrule: True
    threads: 1
    params:
        models=config["models"],
    script:
        "../scripts/fig_fidelity_comparisons.py"


rule fig_fidelity_generalization:
    input:
        "results/tables/fidelity_generalization.csv",
    output:
        pdf="results/figures/fidelity_generalization.pdf",
        png=report(
            "results/figures/fidelity_generalization.png",
            caption="../report/fig_fidelity_generalization.rst",
            category="Fidelity",
        ),
    log:
        "logs/fig_fidelity_generalization/fig_fidelity_generalization.log",
    benchmark:
        "benchmarks/fig_fidelity_generalization/fig_fidelity_generalization.tsv"
    localrule: True
    threads: 1
    params:
        models=config["models"],
    script:
        "../scripts/fig_fidelity_generalization.py"
