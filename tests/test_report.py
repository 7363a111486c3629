"""hih-report on hand-made multirun folders: statuses, tables in the paper's layout, plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hih.analysis.report import collect_runs, metric_table, read_status, write_report
from hih.cli.hydra_callbacks import SweepCallback

SUBSETS = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
SIZES = (4, 8, 16, 32)


def _metrics(nme: float, integer: bool = True) -> dict:
    out = {}
    for suffix in [""] + (["_integer"] if integer else []):
        bump = 0.5 if suffix else 0.0
        out[f"test/nme{suffix}"] = nme + bump
        out[f"test/fr_10{suffix}"] = 2 * nme + bump
        out[f"test/auc_10{suffix}"] = 0.5 - nme / 100
        for k, s in enumerate(SUBSETS):
            out[f"test/nme{suffix}/{s}"] = nme + k + bump
            out[f"test/fr_10{suffix}/{s}"] = 2 * nme + k
            out[f"test/auc_10{suffix}/{s}"] = 0.4
    return out


def make_multirun(root: Path) -> Path:
    """A decimal-resolution sweep of 4 jobs as Hydra writes it: 4x4 and 8x8 finished, 16x16 failed
    (status.json), 32x32 never started; plus the multirun.yaml describing the grid."""
    root.mkdir(parents=True, exist_ok=True)
    common = ["sweep=decimal", "trainer.max_epochs=1"]
    hydra = {
        "sweeper": {
            "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
            "max_batch_size": None,
            "params": {"model.decimal_size": ",".join(map(str, SIZES))},
        },
        "overrides": {"task": common},
    }
    (root / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra, "sweep_name": "decimal"}))
    for num, size in enumerate(SIZES[:3]):
        job = root / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model.decimal_size={size}", *common]))
        config = {
            "model": {"name": "hih_c", "decimal_size": size, "stacks": 1, "net": {"head": "hih_c"}},
            "data": {"name": "synthetic", "layout": "wflw"},
        }
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": num}}}))
        if num < 2:
            (job / "metrics.json").write_text(json.dumps(_metrics(4.0 + num)))
        else:
            (job / "status.json").write_text(
                json.dumps({"status": "failed", "error": "ValueError: decimal_size too large"})
            )
    return root


def test_statuses_and_labels(tmp_path):
    runs = collect_runs(make_multirun(tmp_path / "sweep"))
    assert [(r.num, r.label, r.status) for r in runs] == [
        (0, "model.decimal_size=4", "completed"),
        (1, "model.decimal_size=8", "completed"),
        (2, "model.decimal_size=16", "failed"),
        (3, "model.decimal_size=32", "not started"),
    ]
    assert runs[2].error == "ValueError: decimal_size too large"
    assert runs[0].metrics["test/nme"] == 4.0 and runs[0].model == "hih_c"


def test_running_killed_and_logged_failures(tmp_path):
    root = make_multirun(tmp_path / "sweep")
    (root / "2" / "status.json").write_text(json.dumps({"status": "running", "started": "t0", "host": "n1", "pid": 7}))
    assert collect_runs(root)[2].status == "running"
    # No status file, but the job log ends in a traceback (e.g. a launcher without the callback).
    (root / "2" / "status.json").unlink()
    (root / "2" / "train.log").write_text(
        "[INFO] start\nTraceback (most recent call last):\n  File x\nRuntimeError: CUDA out of memory\n"
    )
    run = collect_runs(root)[2]
    assert run.status == "failed" and run.error.startswith("RuntimeError: CUDA out of memory")
    (root / "2" / "train.log").write_text("[INFO] epoch 3\n")
    assert collect_runs(root)[2].status == "incomplete"


def test_tables_keep_every_run_in_paper_layout(tmp_path):
    runs = collect_runs(make_multirun(tmp_path / "sweep"))
    header, rows = metric_table(runs, "nme")
    assert header == ["run", "model", "status", "Fullset", "Pose", "Exp.", "Ill.", "Mu.", "Occ.", "Blur"]
    assert [r[0] for r in rows] == [
        "model.decimal_size=4",
        "model.decimal_size=8",
        "model.decimal_size=16",
        "model.decimal_size=32",
    ]
    assert rows[1][3:] == [5.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert rows[2][2:4] == ["failed", None]
    _, integer = metric_table(runs, "nme_integer")
    assert integer[0][3] == 4.5


def test_write_report(tmp_path, capsys):
    report = write_report(make_multirun(tmp_path / "sweep"))
    # Progress a log file shows: runs read of their total, then the plot stage.
    printed = capsys.readouterr().out
    assert "reading runs: 3/3 runs (100%)" in printed and "done in" in printed and "drawing the plots" in printed
    out = tmp_path / "sweep" / "report"
    md = report.markdown.read_text()
    assert "4 runs: 2 completed, 1 failed, 1 not started." in md
    assert "| model.decimal_size=8 | hih_c | completed | 5.00 | 5.00 | 6.00 | 7.00 | 8.00 | 9.00 | 10.00 |" in md
    assert "integer heatmap only, cell centre (beside Table 7" in md
    assert "ValueError: decimal_size too large" in md
    assert set(report.csvs) >= {"runs", "nme", "fr_10", "auc_10", "nme_integer"}
    assert (out / "nme.csv").read_text().splitlines()[0] == "run,model,status,Fullset,Pose,Exp.,Ill.,Mu.,Occ.,Blur"
    assert set(report.plots) == {"runs", "decimal"}  # two resolutions finished: NME against resolution
    assert all(p.stat().st_size > 0 for p in report.plots.values())
    assert report.counts == {"completed": 2, "failed": 1, "not started": 1}


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect_runs(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no Hydra job folders"):
        collect_runs(tmp_path / "empty")


class _Return:
    def __init__(self, exc=None):
        self.status = type("S", (), {"name": "FAILED" if exc else "COMPLETED"})()
        self._return_value = exc


def test_job_status_callback(tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(tmp_path)}}})
    cb = SweepCallback()
    cb.on_job_start(config=cfg)
    assert read_status(tmp_path)["status"] == "running"
    try:
        raise ValueError("bad value")
    except ValueError as e:
        cb.on_job_end(config=cfg, job_return=_Return(e))
    status = read_status(tmp_path)
    assert (
        status["status"] == "failed"
        and status["error"] == "ValueError: bad value"
        and "Traceback" in status["traceback"]
    )
    cb.on_job_end(config=cfg, job_return=_Return())
    assert read_status(tmp_path)["status"] == "completed"


def test_table7_uses_the_corner_convention_with_the_centre_beside_it(tmp_path):
    """Runs that log both integer-only conventions: Table 7's tables read the argmax cell corner
    (``*_integer_corner``), labelled as the paper's convention, and the centre tables follow."""
    root = make_multirun(tmp_path / "sweep")
    for num in (0, 1):
        metrics = json.loads((root / str(num) / "metrics.json").read_text())
        for key in [k for k in metrics if "_integer" in k]:
            metric, _, subset = key.partition("/")[2].partition("/")
            corner = metric.replace("_integer", "_integer_corner")
            metrics["test/" + corner + (f"/{subset}" if subset else "")] = metrics[key] + 1.0  # corner: worse
        (root / str(num) / "metrics.json").write_text(json.dumps(metrics))
    runs = collect_runs(root)
    _, corner = metric_table(runs, "nme_integer_corner")
    _, centre = metric_table(runs, "nme_integer")
    assert [r[3] for r in corner[:2]] == [5.5, 6.5] and [r[3] for r in centre[:2]] == [4.5, 5.5]
    assert corner[2][2:4] == ["failed", None]  # no run drops out of the table

    report = write_report(root)
    md = report.markdown.read_text()
    titles = [ln[3:] for ln in md.splitlines() if ln.startswith("## ")]
    nme = [t for t in titles if t.startswith("NME")]
    assert nme[1:] == [
        "NME (%) ↓, integer heatmap only, argmax cell corner (Table 7, the paper's convention)",
        "NME (%) ↓, integer heatmap only, cell centre (beside Table 7: not the paper's convention)",
    ]
    glance = titles.index("Table 7 at a glance: full-set NME (%) ↓, full decode against the integer heatmap only")
    assert glance == titles.index(nme[1]) - 1  # heads the integer-only section
    # full 4.0, corner 5.5, centre 4.5, ratio 5.5 / 4.0
    assert "| model.decimal_size=4 | hih_c | completed | 4.00 | 5.50 | 4.50 | 1.38 |" in md
    assert (tmp_path / "sweep" / "report" / "integer.csv").read_text().splitlines()[0] == (
        'run,model,status,full decode,"integer, corner (Table 7)","integer, centre",corner / full'
    )
    assert {"nme_integer_corner", "fr_10_integer_corner", "auc_10_integer_corner", "nme_integer"} <= set(report.csvs)
    runs_md = md.split("## Runs")[1]
    assert "| nme_integer_corner | nme_integer |" in runs_md.splitlines()[2]
