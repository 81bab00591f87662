from cft.figures.retention import plot_retention_perplexity, plot_retention_tasks
from cft.figures.style import stand_in_note
from cft.jobs import log_to

if __name__ == "__main__":
    log_to(snakemake.log[0])
    plot = plot_retention_tasks if snakemake.rule == "fig_retention_tasks" else plot_retention_perplexity
    plot(snakemake.input[0], snakemake.output.pdf, snakemake.output.png, note=stand_in_note(snakemake.params.models))
