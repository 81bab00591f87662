import sys

from cft.figures.baselines import plot_baseline_fits

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    fits = {key.removeprefix("temperature__"): path for key, path in snakemake.input.items()
            if key.startswith("temperature__")}
    logs = {tuple(key.removeprefix("ats__").split("__")): path for key, path in snakemake.input.items()
            if key.startswith("ats__")}
    plot_baseline_fits(fits, logs, snakemake.output.pdf, snakemake.output.png)
