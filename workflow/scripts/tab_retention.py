from cft.jobs import log_to
from cft.retention.evaluate import retention_perplexity_table, retention_task_table

if __name__ == "__main__":
    log_to(snakemake.log[0])
    tabulate = retention_task_table if snakemake.rule == "tab_retention_tasks" else retention_perplexity_table
    tabulate(list(snakemake.input), snakemake.output[0])
