import sys

from cft.figures.style import stand_in_note
from cft.figures.transfer import plot_mcq_positions

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    plot_mcq_positions(snakemake.input[0], snakemake.output.pdf, snakemake.output.png,
        note=stand_in_note(snakemake.params.models))
