# One rule per figure, no wildcards, so that `snakemake --cores 2 <rule>` rebuilds just that figure.


rule fig_training_curves:
    input:
        unpack(training_logs),
    output:
        pdf=report(
            "results/figures/training_curves.pdf",
            caption="../report/fig_training_curves.rst",
            category="Training",
        ),
        png="results/figures/training_curves.png",
    log:
        "logs/fig_training_curves/fig_training_curves.log",
    benchmark:
        "benchmarks/fig_training_curves/fig_training_curves.tsv"
    localrule: True
    threads: 1
    script:
        "../scripts/fig_training_curves.py"
