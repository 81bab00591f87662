# Resolve every configured model once: packaged models are de-quantized into resources/models/,
# hub ids and local folders are checked for availability before any long job starts.


rule prepare_model:
    output:
        "results/models/{model}.json",
    log:
        "logs/prepare_model/{model}.log",
    benchmark:
        "benchmarks/prepare_model/{model}.tsv"
    threads: 2
    resources:
        mem_mb=lambda wc: model_memory_mb(wc.model),
        runtime=30,
    params:
        model=lambda wc: model_entry(config, wc.model),
        cache_dir="resources/models",
    script:
        "../scripts/prepare_model.py"
