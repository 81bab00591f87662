from cft.figures.comparisons import plot_comparisons
from cft.jobs import log_to
from cft.models import stand_in_note

if __name__ == "__main__":
    log_to(snakemake.log[0])
    plot_comparisons(snakemake.input[0], snakemake.output.pdf, snakemake.output.png, group_column="group",
                     title="Where the shape is learned: paired comparisons on seen prompts, unseen inside "
                           "and unseen outside the training range",
                     note=stand_in_note(snakemake.params.models))
