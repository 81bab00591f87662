# Retention: does a calibration adapter keep the base model's abilities? TinyBenchmarks-style tasks
# (with gp-IRT estimates when the real data and parameter file are configured, raw accuracy always,
# and the confidence calibration of the multiple-choice answers) and PALOMA-style perplexity. Both are
# registered evaluations (cft.evaluations, evaluations.smk: one job per (model, variant) with a model of
# its own to score text with, a table with the differences to `base`, one figure); here, the data they
# read.


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
        directory(PERPLEXITY_STAND_IN_ROOT),
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
