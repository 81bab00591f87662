from cft.evaluations import run_figure_job

if __name__ == "__main__":
    run_figure_job(snakemake)
