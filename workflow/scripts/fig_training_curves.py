import sys

from cft.figures.training_curves import plot_training_curves

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    logs = {tuple(key.split("__")): path for key, path in snakemake.input.items()}
    plot_training_curves(logs, snakemake.output.pdf, snakemake.output.png)
