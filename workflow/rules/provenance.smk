# Provenance: results/manifest.json records what produced this run's results (git state, the merged
# config and its hash, package versions, the machine, the sha256 of every model file and data asset)
# and the sha256 of every table (cft.provenance).

# Every table of the run: those `all` asks for, and the per-prompt tables written beside them.
TABLES = sorted({
    *(path for path in final_outputs() if path.startswith("results/tables/")),
    "results/tables/fidelity_prompts.csv",
    "results/tables/openended_prompts.csv",
    *(["results/tables/ablations_prompts.csv"] if ABLATIONS else []),
})


rule manifest:
    input:
        tables=TABLES,
        models=expand("results/models/{model}.json", model=MODELS),
        datasets=[*expand("results/datasets/{split}.jsonl", split=SPLITS), "results/datasets/train_subset.jsonl"],
    output:
        report("results/manifest.json", caption="../report/manifest.rst", category="Provenance"),
    log:
        "logs/manifest/manifest.log",
    benchmark:
        "benchmarks/manifest/manifest.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=lambda wc: 10 + 2 * len(MODELS),
    params:
        cores=workflow.cores,
        repo=workflow.basedir,
    script:
        "../scripts/write_manifest.py"
