"""Evaluation: strict parsing of sampled answers, sampling backends, metrics and aggregation."""
