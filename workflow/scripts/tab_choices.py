from cft.jobs import log_to
from cft.transfer.choices import choices_table

if __name__ == "__main__":
    log_to(snakemake.log[0])
    choices_table(list(snakemake.input), snakemake.output[0])
