# The registered evaluations (cft.evaluations): for each, one job per (model, variant) that its kind
# allows, one table over them and one figure of the table, written from the registry entry alone. The
# evaluations that share work across variants or splits (fidelity, transfer, NoveltyBench) have rules
# of their own in the other files. An entry with a shared runner also gets one job per model for base
# and its logit transforms together, which replaces their separate jobs.

for evaluation in REGISTERED_EVALUATIONS:

    rule:
        name:
            f"evaluate_{evaluation.name}"
        input:
            unpack(registered_inputs(evaluation)),
        output:
            **evaluation.outputs,
        log:
            f"logs/evaluate_{evaluation.name}/{{model}}_{{variant}}.log",
        benchmark:
            f"benchmarks/evaluate_{evaluation.name}/{{model}}_{{variant}}.tsv"
        threads: model_job_threads()
        resources:
            **model_job_resources(runtime=evaluation.runtime_min),
        params:
            evaluation=evaluation.name,
            settings=evaluation.settings_of(config),
            device=torch_device(),
        script:
            "../scripts/evaluate_variant.py"

    # Base and its logit transforms in one job per model (the entry's shared runner), where the config
    # evaluates two or more of them: one decoder forward serves every head.
    if shared_decoder_variants(evaluation):

        rule:
            name:
                f"evaluate_{evaluation.name}_transforms"
            input:
                unpack(shared_decoder_inputs(evaluation)),
            output:
                **shared_decoder_outputs(evaluation),
            log:
                f"logs/evaluate_{evaluation.name}_transforms/{{model}}.log",
            benchmark:
                f"benchmarks/evaluate_{evaluation.name}_transforms/{{model}}.tsv"
            threads: model_job_threads()
            resources:
                **model_job_resources(runtime=evaluation.runtime_min,
                                      passes=len(shared_decoder_variants(evaluation))),
            params:
                evaluation=evaluation.name,
                settings=evaluation.settings_of(config),
                variant_files=shared_decoder_files(evaluation),
                device=torch_device(),
            script:
                "../scripts/evaluate_variants_shared.py"

        workflow.ruleorder(f"evaluate_{evaluation.name}_transforms", f"evaluate_{evaluation.name}")

    rule:
        name:
            f"tab_{evaluation.table.stem}"
        input:
            registered_outputs(evaluation),
        output:
            report(evaluation.table.path, caption="../report/registered.rst", category=evaluation.category),
        log:
            f"logs/tab_{evaluation.table.stem}/tab_{evaluation.table.stem}.log",
        benchmark:
            f"benchmarks/tab_{evaluation.table.stem}/tab_{evaluation.table.stem}.tsv"
        localrule: True
        threads: 1
        params:
            evaluation=evaluation.name,
            caption=evaluation.table.caption_text(evaluation.settings_of(config)),
        script:
            "../scripts/tabulate.py"

    rule:
        name:
            f"fig_{evaluation.figure.stem}"
        input:
            evaluation.table.path,
        output:
            pdf=f"{evaluation.figure.path}.pdf",
            png=report(f"{evaluation.figure.path}.png", caption="../report/registered.rst",
                       category=evaluation.category),
        log:
            f"logs/fig_{evaluation.figure.stem}/fig_{evaluation.figure.stem}.log",
        benchmark:
            f"benchmarks/fig_{evaluation.figure.stem}/fig_{evaluation.figure.stem}.tsv"
        localrule: True
        threads: 1
        params:
            evaluation=evaluation.name,
            models=config["models"],
            caption=evaluation.figure.caption_text(evaluation.settings_of(config)),
        script:
            "../scripts/plot.py"
