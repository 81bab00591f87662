from cft.figures.noveltybench import plot_noveltybench
from cft.figures.style import stand_in_note
from cft.jobs import log_to

if __name__ == "__main__":
    log_to(snakemake.log[0])
    plot_noveltybench(snakemake.input[0], snakemake.output.pdf, snakemake.output.png,
        note=stand_in_note(snakemake.params.models))
