# Structured-sampling fidelity: every (model, variant) on the unseen-parameter and held-out splits,
# then the tables every figure and the report read.


rule evaluate_fidelity:
    input:
        unpack(fidelity_inputs),
    output:
        prompts="results/fidelity/{model}/{variant}/prompts.csv",
        samples="results/fidelity/{model}/{variant}/samples.jsonl",
        distributions="results/fidelity/{model}/{variant}/distributions.json",
    log:
        "logs/evaluate_fidelity/{model}_{variant}.log",
    benchmark:
        "benchmarks/evaluate_fidelity/{model}_{variant}.tsv"
    threads: model_job_threads()
    resources:
        **model_job_resources(),
    params:
        settings=fidelity_settings,
        splits=config["evaluate"]["splits"],
        device=torch_device(),
    script:
        "../scripts/evaluate_fidelity.py"


if SHARED_TREE_VARIANTS:

    # Base, the temperature baseline and the ATS heads differ only in the head on the base decoder's
    # final hidden states: one job per model runs each prompt's tree through the decoder once, scores
    # it with every head, samples each variant with its own head and seeds, and writes each variant's
    # files at the paths evaluate_fidelity would (cft.evaluation.fidelity.evaluate_fidelity_transforms).
    ruleorder: evaluate_fidelity_transforms > evaluate_fidelity

    rule evaluate_fidelity_transforms:
        input:
            unpack(fidelity_transform_inputs),
        output:
            prompts=expand("results/fidelity/{{model}}/{variant}/prompts.csv", variant=SHARED_TREE_VARIANTS),
            samples=expand("results/fidelity/{{model}}/{variant}/samples.jsonl", variant=SHARED_TREE_VARIANTS),
            distributions=expand(
                "results/fidelity/{{model}}/{variant}/distributions.json", variant=SHARED_TREE_VARIANTS
            ),
        log:
            "logs/evaluate_fidelity_transforms/{model}.log",
        benchmark:
            "benchmarks/evaluate_fidelity_transforms/{model}.tsv"
        threads: model_job_threads()
        resources:
            **model_job_resources(passes=len(SHARED_TREE_VARIANTS)),
        params:
            settings=fidelity_settings,
            splits=config["evaluate"]["splits"],
            variant_files=lambda wc: {v: variant_files(wc.model, v) for v in SHARED_TREE_VARIANTS},
            device=torch_device(),
        script:
            "../scripts/evaluate_fidelity_transforms.py"


rule tab_fidelity:
    input:
        prompts=expand(
            "results/fidelity/{model}/{variant}/prompts.csv",
            model=MODELS,
            variant=VARIANTS,
        ),
        samples=expand(
            "results/fidelity/{model}/{variant}/samples.jsonl",
            model=MODELS,
            variant=VARIANTS,
        ),
        test_sets=expand("results/datasets/{split}.jsonl", split=config["evaluate"]["splits"]),
    output:
        prompts=report(
            "results/tables/fidelity_prompts.csv",
            caption="../report/tab_fidelity.rst",
            category="Fidelity",
        ),
        summary=report(
            "results/tables/fidelity_summary.csv",
            caption="../report/tab_fidelity.rst",
            category="Fidelity",
        ),
    log:
        "logs/tab_fidelity/tab_fidelity.log",
    benchmark:
        "benchmarks/tab_fidelity/tab_fidelity.tsv"
    localrule: True
    threads: 1
    params:
        bootstrap=config["evaluate"]["bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/tab_fidelity.py"


# Fidelity along training: each snapshot of an adapter scored exactly (no sampling) on the curve's test
# splits (evaluate.curve.splits).
rule evaluate_curve:
    input:
        model="results/models/{model}.json",
        snapshots="results/adapters/{model}/{method}/snapshots",
        adapter="results/adapters/{model}/{method}/adapter",
        train_log="results/adapters/{model}/{method}/train_log.csv",
        test_sets=expand("results/datasets/{split}.jsonl", split=CURVE_SPLITS),
    output:
        prompts="results/curve/{model}/{method}/prompts.csv",
        steps="results/curve/{model}/{method}/steps.csv",
    log:
        "logs/evaluate_curve/{model}_{method}.log",
    benchmark:
        "benchmarks/evaluate_curve/{model}_{method}.tsv"
    threads: model_job_threads()
    resources:
        **model_job_resources(),
    params:
        settings=fidelity_settings,
        splits=CURVE_SPLITS,
        device=torch_device(),
    script:
        "../scripts/evaluate_curve.py"


rule tab_fidelity_curve:
    input:
        prompts=expand("results/curve/{model}/{method}/prompts.csv", model=MODELS, method=CURVE_METHODS),
        steps=expand("results/curve/{model}/{method}/steps.csv", model=MODELS, method=CURVE_METHODS),
        fidelity="results/tables/fidelity_prompts.csv",
    output:
        report(
            "results/tables/fidelity_curve.csv",
            caption="../report/tab_fidelity_curve.rst",
            category="Fidelity",
        ),
    log:
        "logs/tab_fidelity_curve/tab_fidelity_curve.log",
    benchmark:
        "benchmarks/tab_fidelity_curve/tab_fidelity_curve.tsv"
    localrule: True
    threads: 1
    params:
        bootstrap=config["evaluate"]["bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/tab_fidelity_curve.py"


# Paired comparisons over families with a two-sided Wilcoxon test and paired bootstrap intervals.
rule tab_fidelity_comparisons:
    input:
        "results/tables/fidelity_prompts.csv",
    output:
        report(
            "results/tables/fidelity_comparisons.csv",
            caption="../report/tab_fidelity_comparisons.rst",
            category="Fidelity",
        ),
    log:
        "logs/tab_fidelity_comparisons/tab_fidelity_comparisons.log",
    benchmark:
        "benchmarks/tab_fidelity_comparisons/tab_fidelity_comparisons.tsv"
    localrule: True
    threads: 1
    params:
        variants=VARIANTS,
        methods=METHODS,
        bootstrap=config["evaluate"]["bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/tab_fidelity_comparisons.py"


# Where the shape is learned: exact fidelity on seen prompts and on unseen ones inside and outside
# the training range, then the paired comparisons per group.
rule evaluate_generalization:
    input:
        unpack(variant_inputs),
        sets=expand("results/datasets/generalization_{group}.jsonl", group=GENERALIZATION_GROUPS),
    output:
        "results/generalization/{model}/{variant}/prompts.csv",
    log:
        "logs/evaluate_generalization/{model}_{variant}.log",
    benchmark:
        "benchmarks/evaluate_generalization/{model}_{variant}.tsv"
    threads: model_job_threads()
    resources:
        **model_job_resources(),
    params:
        settings=fidelity_settings,
        groups=GENERALIZATION_GROUPS,
        device=torch_device(),
    script:
        "../scripts/evaluate_generalization.py"


rule tab_fidelity_generalization:
    input:
        expand("results/generalization/{model}/{variant}/prompts.csv", model=MODELS, variant=GENERALIZATION_VARIANTS),
    output:
        report(
            "results/tables/fidelity_generalization.csv",
            caption="../report/tab_fidelity_generalization.rst",
            category="Fidelity",
        ),
    log:
        "logs/tab_fidelity_generalization/tab_fidelity_generalization.log",
    benchmark:
        "benchmarks/tab_fidelity_generalization/tab_fidelity_generalization.tsv"
    localrule: True
    threads: 1
    params:
        variants=GENERALIZATION_VARIANTS,
        methods=METHODS,
        bootstrap=config["evaluate"]["bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/tab_fidelity_generalization.py"
