from cft.figures.baselines import plot_baseline_fits
from cft.jobs import log_to

if __name__ == "__main__":
    log_to(snakemake.log[0])
    fits = {key.removeprefix("temperature__"): path for key, path in snakemake.input.items()
            if key.startswith("temperature__")}
    logs = {tuple(key.removeprefix("ats__").split("__")): path for key, path in snakemake.input.items()
            if key.startswith("ats__")}
    plot_baseline_fits(fits, logs, snakemake.output.pdf, snakemake.output.png)
