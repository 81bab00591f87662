from cft.jobs import log_to
from cft.transfer.mcq import mcq_table

if __name__ == "__main__":
    log_to(snakemake.log[0])
    mcq_table(list(snakemake.input), snakemake.output[0])
