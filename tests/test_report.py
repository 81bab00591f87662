"""The HTML report: every report() output has its caption, one figure rebuilds alone, and a report
built from a real (tiny) run renders its figures in headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cft.config import load_config
from test_workflow import job_counts

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--workflow-profile", "none"]


def smk(repo_root, workdir, *args, timeout=1800):
    return subprocess.run([*SNAKEMAKE, "--snakefile", str(repo_root / "workflow" / "Snakefile"), *args], cwd=workdir,
                          capture_output=True, text=True, timeout=timeout)


def test_every_report_output_has_a_caption_file(repo_root):
    rules = (repo_root / "workflow" / "rules").glob("*.smk")
    calls = [m for path in rules for m in re.finditer(r"report\(\s*\"([^\"]+)\",(.*?)\)", path.read_text(), re.S)]
    assert len(calls) >= 7
    for call in calls:
        caption = re.search(r'caption="([^"]+)"', call.group(2))
        assert caption, f"{call.group(1)} has no caption"
        path = (repo_root / "workflow" / "rules" / caption.group(1)).resolve()
        assert path.is_file() and path.read_text().strip(), f"{call.group(1)}: missing caption {path}"
    assert (repo_root / "workflow" / "report" / "workflow.rst").read_text().strip()


def touch(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix:
        path.write_text("")
    else:
        path.mkdir(exist_ok=True)
    os.utime(path, (mtime, mtime))


def test_one_figure_rebuilds_alone_even_when_upstream_is_out_of_date(repo_root, tmp_path):
    """Training logs exist, but their inputs are newer (upstream out of date): a plain request for
    the figure would retrain; with -f and --allowed-rules only the figure's job runs."""
    shutil.copytree(repo_root / "config", tmp_path / "config")
    config = load_config(repo_root / "config" / "config.yaml")
    old, new = time.time() - 3600, time.time() - 60
    for model in config["models"]:
        for method in config["train"]["methods"]:
            for name in ("adapter", "train_log.csv", "train_config.json"):
                touch(tmp_path / f"results/adapters/{model['name']}/{method}/{name}", old)
        touch(tmp_path / f"results/models/{model['name']}.json", new)
    touch(tmp_path / "results/datasets/train_subset.jsonl", new)

    plain = smk(repo_root, tmp_path, "-n", "--nolock", "fig_training_curves")
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert job_counts(plain.stdout)["train_adapter"] == len(config["train"]["methods"])

    alone = smk(repo_root, tmp_path, "-n", "--nolock", "-f", "fig_training_curves",
                "--allowed-rules", "fig_training_curves")
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert job_counts(alone.stdout) == {"fig_training_curves": 1}


# ---- the report in a browser ----------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]

CHECK_PAGE = """<!doctype html><html><body><div id="out">pending</div><script>
const sources = %s;
Promise.all(sources.map(src => new Promise(done => {
  const img = new Image();
  // Drawn on a canvas: a truncated file still loads with its header's size, but draws blank.
  img.onload = () => {
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let inked = 0;
    for (let i = 0; i < pixels.length; i += 4) {
      if (pixels[i + 3] > 0 && pixels[i] + pixels[i + 1] + pixels[i + 2] < 600) inked++;
    }
    done(img.naturalWidth + "x" + img.naturalHeight + "x" + (inked / (pixels.length / 4)).toFixed(4));
  };
  img.onerror = () => done("error");
  img.src = src;
}))).then(sizes => { document.getElementById("out").textContent = "sizes:" + sizes.join(","); });
</script></body></html>"""


def chromium_dom(url: str, profile_dir: Path) -> str:
    """The DOM of `url` after its scripts ran, from headless Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's package)")
    result = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}",
                             "--virtual-time-budget=10000", "--dump-dom", url],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def report_entries(report: Path) -> dict:
    """The `results` object that Snakemake's report page embeds: path -> name, mime type, data URI."""
    text = report.read_text()
    start = text.index("var results = {") + len("var results = ")
    return json.JSONDecoder().raw_decode(text[start:])[0]


def check_report_renders(report: Path, workdir: Path, figures: list[str], tmp_path: Path) -> None:
    """The report's app renders in Chromium with every category, every figure is in it with its
    caption as a PNG, and each embedded PNG renders in Chromium as a non-empty image."""
    figures = [str(Path(figure).with_suffix(".png")) for figure in figures]
    entries = report_entries(report)
    sources = []
    for figure in figures:
        entry = entries[figure]
        assert entry["mime_type"] == "image/png"
        assert entry["caption"].strip()
        assert base64.b64decode(entry["data_uri"].split("base64,", 1)[1]) == (workdir / figure).read_bytes()
        sources.append(entry["data_uri"])

    dom = chromium_dom(report.resolve().as_uri(), tmp_path / "chromium-report")
    # Only what the app rendered counts, not the data inside its scripts.
    rendered = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S)
    text = " ".join(re.sub(r"<[^>]+>", " ", rendered).split())
    for category in {figure_category(report, f) for f in figures}:
        assert category in text, f"category {category!r} not rendered: {text[:500]}"
    assert "Calibration fine-tuning (cft)" in text      # workflow.rst
    assert "<svg" in rendered                           # the rule graph

    page = tmp_path / "check.html"
    page.write_text(CHECK_PAGE % json.dumps(sources))
    dom = chromium_dom(page.as_uri(), tmp_path / "chromium-check")
    sizes = re.search(r"sizes:([^<]*)", dom).group(1).split(",")
    assert len(sizes) == len(figures)
    for figure, size in zip(figures, sizes):
        assert size != "error", figure
        width, height, inked = size.split("x")
        assert int(width) > 200 and int(height) > 100, (figure, size)
        # Axes, labels and data draw on at least 1% of the pixels.
        assert float(inked) > 0.01, (figure, size)


def figure_category(report: Path, figure: str) -> str:
    text = report.read_text()
    start = text.index("var categories = {") + len("var categories = ")
    categories = json.JSONDecoder().raw_decode(text[start:])[0]
    return next(name for name, groups in categories.items() for paths in groups.values() if figure in paths)


TINY_RUN = """
models:
  - {name: tiny, source: tiny_model, dtype: float32, params_b: 0.0001}
data: {train_prompts: 4}
train:
  methods: [soft]
  ablations: []
  common: {batch_size: 2, max_steps: 2, checkpoint_every: 2}
  soft: {epochs: 1}
evaluate:
  variants: [base, soft]
  splits: [heldout]
  bootstrap: 20
  fidelity: {num_samples: 2, max_new_tokens: 8, batch_size: 4, exact: false}
"""
# The exact answer shares (a registered evaluation, cft.evaluations) carry captions from the registry.
TINY_FIGURES = ["results/figures/training_curves.pdf", "results/figures/fidelity_summary.pdf",
                "results/figures/openended_choices.pdf"]


@pytest.mark.slow
def test_report_of_a_tiny_real_run_renders_in_chromium(repo_root, tmp_path):
    """The workflow's own rules on a tiny random Llama (training, sampling evaluation, a registered
    evaluation, tables, figures), then `--report`, opened in Chromium."""
    sys.path.insert(0, str(repo_root / "tests"))
    from tiny_models import save_tiny_checkpoint

    workdir = tmp_path / "work"
    shutil.copytree(repo_root / "config", workdir / "config")
    save_tiny_checkpoint(workdir / "tiny_model")
    (workdir / "tiny.yaml").write_text(TINY_RUN)
    configs = ["--configfile", "config/config.yaml", "tiny.yaml"]
    run = smk(repo_root, workdir, "--cores", "2", *configs, "--", *TINY_FIGURES)
    assert run.returncode == 0, run.stderr[-4000:]
    report = smk(repo_root, workdir, "--cores", "1", *configs, "--report", "report.html", "--", *TINY_FIGURES)
    assert report.returncode == 0, report.stderr[-4000:]
    check_report_renders(workdir / "report.html", workdir, TINY_FIGURES, tmp_path)


def test_report_of_the_default_run_renders_in_chromium(repo_root, tmp_path):
    """The report of the default run (`make run`), where its results exist; skipped before."""
    config = load_config(repo_root / "config" / "config.yaml")
    figures = ["results/figures/training_curves.pdf",
               *[f"results/figures/fidelity_{name}.pdf" for name in ("summary", "heatmap", "overlays", "valid_rate")]]
    if not all((repo_root / f).exists() and (repo_root / f).with_suffix(".png").exists() for f in figures):
        pytest.skip("the default run's figures are not there yet (make run)")
    report = tmp_path / "report.html"
    result = smk(repo_root, repo_root, "--cores", "1", "--nolock", "--report", str(report), "--", *figures)
    assert result.returncode == 0, result.stderr[-4000:]
    assert config["models"][0]["name"] in report.read_text()
    check_report_renders(report, repo_root, figures, tmp_path)
