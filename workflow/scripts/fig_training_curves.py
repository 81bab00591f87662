from cft.figures.training_curves import plot_training_curves
from cft.jobs import log_to

if __name__ == "__main__":
    log_to(snakemake.log[0])
    logs = {tuple(key.split("__")): path for key, path in snakemake.input.items()}
    plot_training_curves(logs, snakemake.output.pdf, snakemake.output.png)
