import sys

from cft.figures.style import stand_in_note
from cft.figures.transfer import plot_openended_choices

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    plot_openended_choices(snakemake.input[0], snakemake.output.pdf, snakemake.output.png,
                           note=stand_in_note(snakemake.params.models))
