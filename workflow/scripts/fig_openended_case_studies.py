import sys

from cft.figures.style import stand_in_note
from cft.figures.transfer import plot_openended_case_studies

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    plot_openended_case_studies(list(snakemake.input), snakemake.params.categories, snakemake.output.pdf,
        snakemake.output.png, note=stand_in_note(snakemake.params.models))
