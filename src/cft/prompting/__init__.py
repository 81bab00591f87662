"""Prompting protocols: how a variant that changes the prompt asks it and where its answer is read.

* `cft.prompting.ssot`: String Seed of Thought, a seed string and reasoning before a tagged answer.

A protocol is a low-level module like `cft.models`' chat formatting: the evaluators
(`cft.evaluation.fidelity`, `cft.transfer.openended`) and the variant registry (`cft.variants`) import
it, and it imports neither.
"""
