# cft: calibration fine-tuning of language models, from synthetic targets to figures.
# `snakemake --cores 2 all` runs the embedded default (config/config.yaml);
# `--configfile config/paper.yaml` runs the paper's full matrix.

from snakemake.utils import min_version

min_version("9.20")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/fidelity.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/noveltybench.smk"
include: "workflow/rules/retention.smk"
include: "workflow/rules/ablations.smk"


# Before the first job (not on dry runs): every external asset the config needs, or one message
# per missing one saying how to provide it.
onstart:
    check_assets()


rule all:
    default_target: True
    input:
        final_outputs(),
