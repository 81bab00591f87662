"""Retention: whether a calibration-fine-tuned variant keeps the base model's abilities.

* `tasks`: the registry of benchmark tasks (the paper's five tinyBenchmarks tasks, packaged stand-ins);
* `scoring`: continuation log-likelihoods (choices share the context's forward pass) and greedy generation;
* `answers`: strict and flexible numeric answer extraction (GSM8K);
* `calibration`: ECE and Brier score of multiple-choice answer probabilities;
* `irt`: the tinyBenchmarks IRT, p-IRT and gp-IRT estimators;
* `perplexity`: PALOMA-layout corpora and sliding-window perplexity / bits per byte;
* `evaluate`: the drivers the workflow rules call, and the tables.
"""
