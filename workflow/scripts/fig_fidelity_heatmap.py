from cft.figures.fidelity import plot_fidelity_heatmap
from cft.jobs import log_to
from cft.models import stand_in_note

if __name__ == "__main__":
    log_to(snakemake.log[0])
    plot_fidelity_heatmap(snakemake.input[0], snakemake.output.pdf, snakemake.output.png,
        note=stand_in_note(snakemake.params.models))
