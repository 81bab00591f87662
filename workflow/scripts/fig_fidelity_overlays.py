from cft.figures.fidelity import plot_fidelity_overlays
from cft.jobs import log_to
from cft.models import stand_in_note

if __name__ == "__main__":
    log_to(snakemake.log[0])
    distributions = {
        tuple(key.split("__")): path for key, path in snakemake.input.items() if "__" in key
    }
    plot_fidelity_overlays(snakemake.input.prompts, distributions, snakemake.output.pdf,
                           snakemake.output.png, note=stand_in_note(snakemake.params.models))
