from cft.evaluations import run_table_job

if __name__ == "__main__":
    run_table_job(snakemake)
