from cft.figures.transfer import plot_openended_support
from cft.jobs import log_to
from cft.models import stand_in_note

if __name__ == "__main__":
    log_to(snakemake.log[0])
    plot_openended_support(snakemake.input[0], snakemake.output.pdf, snakemake.output.png,
        headline=snakemake.params.headline, note=stand_in_note(snakemake.params.models))
