import sys

from cft.figures.retention import plot_retention_perplexity, plot_retention_tasks
from cft.figures.style import stand_in_note

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    plot = plot_retention_tasks if snakemake.rule == "fig_retention_tasks" else plot_retention_perplexity
    plot(snakemake.input[0], snakemake.output.pdf, snakemake.output.png, note=stand_in_note(snakemake.params.models))
