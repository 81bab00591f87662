"""cft: calibration fine-tuning of language models as a reproducible workflow."""

__version__ = "0.1.0"
