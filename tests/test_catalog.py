"""The Snakemake Workflow Catalog's "standardized usage" layout: workflow/Snakefile, config/README.md
and .snakemake-workflow-catalog.yml with the keys the catalog reads (usage.mandatory-flags,
usage.software-stack-deployment, usage.report), and README's usage saying the same."""

from __future__ import annotations

import yaml


def test_catalog_file_and_layout(repo_root):
    assert (repo_root / "workflow" / "Snakefile").is_file() and not (repo_root / "Snakefile").exists()
    assert (repo_root / "config" / "README.md").read_text().strip()
    usage = yaml.safe_load((repo_root / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    assert usage["mandatory-flags"]["desc"].strip() and isinstance(usage["mandatory-flags"]["flags"], (str, list))
    assert set(usage["software-stack-deployment"]) == {"conda", "apptainer", "apptainer+conda"}
    # The workflow declares no conda or container environments, so it must not claim to run with them.
    rules = "".join(p.read_text() for p in (repo_root / "workflow" / "rules").glob("*.smk"))
    assert ("conda:" in rules) == usage["software-stack-deployment"]["conda"]
    assert ("container:" in rules) == usage["software-stack-deployment"]["apptainer"]
    assert usage["report"] is True and "report:" in (repo_root / "workflow" / "Snakefile").read_text()


def test_readme_usage_matches_the_catalog(repo_root):
    readme = (repo_root / "README.md").read_text()
    usage = yaml.safe_load((repo_root / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert ".snakemake-workflow-catalog.yml" in readme and "workflow/Snakefile" in readme
    flags = usage["mandatory-flags"]["flags"]
    assert (flags in ("", [])) == ("no mandatory flag" in readme)
    assert 'pip install -c requirements/constraints.txt -e ".[test]"' in readme
    assert 'pip install -c requirements/constraints.txt -e ".[test]"' in usage["mandatory-flags"]["desc"]
