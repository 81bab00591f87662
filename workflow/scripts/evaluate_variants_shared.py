from cft.evaluations import run_shared_decoder_job

if __name__ == "__main__":
    run_shared_decoder_job(snakemake)
