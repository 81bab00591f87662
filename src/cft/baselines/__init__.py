"""Baselines evaluated beside the fine-tuned adapters, each a variant of `cft.variants`.

* `cft.baselines.temperature`: one global temperature per model, fitted on the train split;
* `cft.baselines.ats`: Adaptive Temperature Scaling, a head that predicts a per-token temperature;
* String Seed of Thought, a prompting protocol without training, lives in `cft.prompting.ssot`.
"""
