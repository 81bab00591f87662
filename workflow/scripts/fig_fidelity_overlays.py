import sys

from cft.figures.fidelity import plot_fidelity_overlays
from cft.figures.style import stand_in_note

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    distributions = {
        tuple(key.split("__")): path for key, path in snakemake.input.items() if "__" in key
    }
    plot_fidelity_overlays(snakemake.input.prompts, distributions, snakemake.output.pdf,
                           snakemake.output.png, note=stand_in_note(snakemake.params.models))
