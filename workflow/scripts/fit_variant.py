from cft.variants import run_fit_job

if __name__ == "__main__":
    run_fit_job(snakemake)
