# Synthetic prompt datasets: the paper's splits with their discretized soft targets.


rule make_split:
    output:
        "results/datasets/{split}.jsonl",
    log:
        "logs/make_split/{split}.log",
    benchmark:
        "benchmarks/make_split/{split}.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        data=config["data"],
        decimals=config["train"]["soft"]["decimals"],
        max_bins=config["train"]["soft"]["max_bins"],
    script:
        "../scripts/make_split.py"


rule select_train_subset:
    input:
        "results/datasets/train.jsonl",
    output:
        "results/datasets/train_subset.jsonl",
    log:
        "logs/select_train_subset/select_train_subset.log",
    benchmark:
        "benchmarks/select_train_subset/select_train_subset.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        size=config["data"]["train_prompts"],
        seed=config["seed"],
    script:
        "../scripts/select_train_subset.py"
