from cft.figures.transfer import plot_mcq_positions
from cft.jobs import log_to
from cft.models import stand_in_note

if __name__ == "__main__":
    log_to(snakemake.log[0])
    plot_mcq_positions(snakemake.input[0], snakemake.output.pdf, snakemake.output.png,
        note=stand_in_note(snakemake.params.models))
