import sys

from cft.figures.noveltybench import plot_noveltybench
from cft.figures.style import stand_in_note

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    plot_noveltybench(snakemake.input[0], snakemake.output.pdf, snakemake.output.png,
        note=stand_in_note(snakemake.params.models))
