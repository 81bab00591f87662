# Synthetic prompt datasets: the paper's splits with their discretized targets (evaluate.target).


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
        target=evaluation_target(config),
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


# Where the shape is learned: per train family, prompts it was trained on, interpolations inside the
# training range and prompts of the full unseen grid outside it (cft.evaluation.generalization).
rule make_generalization_sets:
    input:
        "results/datasets/train_subset.jsonl",
    output:
        expand("results/datasets/generalization_{group}.jsonl", group=GENERALIZATION_GROUPS),
    log:
        "logs/make_generalization_sets/make_generalization_sets.log",
    benchmark:
        "benchmarks/make_generalization_sets/make_generalization_sets.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        groups=GENERALIZATION_GROUPS,
        data=config["data"],
        prompts_per_family=config["evaluate"]["generalization"]["prompts_per_family"],
        seed=config["seed"],
        target=evaluation_target(config),
    script:
        "../scripts/make_generalization_sets.py"
