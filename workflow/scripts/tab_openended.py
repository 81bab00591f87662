from cft.jobs import log_to
from cft.transfer.openended import openended_tables

if __name__ == "__main__":
    log_to(snakemake.log[0])
    openended_tables(list(snakemake.input), snakemake.output.prompts, snakemake.output.summary)
