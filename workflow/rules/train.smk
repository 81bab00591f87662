# LoRA calibration fine-tuning: one job per (model, method).
# Checkpoints live in results/checkpoints/, outside the rule's outputs, so that a killed job's
# progress survives Snakemake's removal of incomplete outputs and the rerun resumes from it.


rule train_adapter:
    input:
        model="results/models/{model}.json",
        prompts="results/datasets/train_subset.jsonl",
    output:
        adapter=directory("results/adapters/{model}/{method}/adapter"),
        log_csv="results/adapters/{model}/{method}/train_log.csv",
        record="results/adapters/{model}/{method}/train_config.json",
        snapshots=directory("results/adapters/{model}/{method}/snapshots"),
    log:
        "logs/train_adapter/{model}_{method}.log",
    benchmark:
        "benchmarks/train_adapter/{model}_{method}.tsv"
    threads: model_job_threads()
    resources:
        **model_job_resources(training=True, gpus=gpus_for),
    params:
        settings=adapter_training_settings,
        checkpoint_dir=lambda wc: f"results/checkpoints/{wc.model}/{wc.method}",
        device=torch_device(),
    script:
        "../scripts/train_adapter.py"
