from cft.jobs import log_to
from cft.transfer.noveltybench import noveltybench_table

if __name__ == "__main__":
    log_to(snakemake.log[0])
    noveltybench_table(list(snakemake.input), snakemake.output[0])
