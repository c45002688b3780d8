"""`got-lightning report RUN_DIR`: held-out CER and loss over a run's steps, and the error analysis
of its last validation against the untrained model, from what `fit` wrote."""

import json
import re

from tests.helpers import run_executable
from tests.training_helpers import fit_config


def test_report_of_a_run_plots_every_validation_and_analyses_the_last_against_before_fit(micro_model_dir, digit_pages, tmp_path):
    run = tmp_path / "run"
    config = fit_config(
        tmp_path / "c.yaml",
        digit_pages,
        micro_model_dir,
        run,
        validate_before_fit=True,
        trainer={"limit_val_batches": 1.0, "val_check_interval": 2, "check_val_every_n_epoch": None},
        model={"learning_rate": 3e-3},
    )
    assert run_executable("fit", "--config", str(config), "--trainer.max_steps", "4").returncode == 0
    result = run_executable("report", str(run))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = {
        name: json.loads((run / "validation" / name / "metrics.json").read_text())
        for name in ("before-fit", "step-000002", "step-000004")
    }
    assert f"before fit {metrics['before-fit']['cer']:.4f}, step 2 " in result.stdout
    assert "error analysis: step 4 against before fit" in result.stdout

    data = json.loads((run / "report.json").read_text(encoding="utf-8"))
    assert [(v["label"], v["step"]) for v in data["validations"]] == [("before fit", 0), ("step 2", 2), ("step 4", 4)]
    assert [v["loss"] for v in data["validations"]] == [metrics[name]["loss"] for name in metrics]
    assert data["totals"]["tuned"]["cer"] == metrics["step-000004"]["cer"]
    assert data["totals"]["base"]["cer"] == metrics["before-fit"]["cer"]

    html = (run / "report.html").read_text(encoding="utf-8")
    for chart in ("cer", "loss"):
        svg = re.search(rf'<svg[^>]*data-chart="{chart}".*?</svg>', html, re.S).group(0)
        assert re.findall(r'data-step="(\d+)"', svg) == ["0", "2", "4"]


def test_report_of_a_run_without_validations_is_one_clear_line(tmp_path):
    result = run_executable("report", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "has no validation/step-*/" in result.stderr.strip().splitlines()[-1]
