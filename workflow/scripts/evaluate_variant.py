from cft.evaluations import run_variant_job

if __name__ == "__main__":
    run_variant_job(snakemake)
