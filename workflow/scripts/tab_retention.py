import sys

from cft.retention.evaluate import retention_perplexity_table, retention_task_table

if __name__ == "__main__":
    sys.stderr = open(snakemake.log[0], "w")
    tabulate = retention_task_table if snakemake.rule == "tab_retention_tasks" else retention_perplexity_table
    tabulate(list(snakemake.input), snakemake.output[0])
