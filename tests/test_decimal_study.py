"""The learning-curve study (sweep=decimal_study, hih.analysis.learning_curves) without training:
the sweep's runs compose as documented, and hand-written job folders give the curves, tables and figure."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import yaml

from hih.analysis.learning_curves import MEAN_OFFSET_ERR, collect, log_ladder, read_curves, run_names, write_study
from hih.methods import get_method
from hih.pipeline import compose
from tiny import tiny  # noqa: E402  (tests/tiny.py)

RUNS = Path(__file__).resolve().parents[1] / "conf" / "sweep" / "decimal_study"


def test_the_sweep_runs_every_run_file():
    sweep = yaml.safe_load((RUNS.parent / "decimal_study.yaml").read_text())
    listed = str(sweep["hydra"]["sweeper"]["params"]["+sweep/decimal_study"]).split(",")
    assert sorted(listed) == sorted(p.stem for p in RUNS.glob("*.yaml"))


def _one_run_per_model() -> list[str]:
    """The first run file of each model (composing all 19 costs half a minute, the others differ in numbers only)."""
    first: dict[str, str] = {}
    for path in sorted(RUNS.glob("*.yaml")):
        model = yaml.safe_load(path.read_text())["defaults"][0]["override /model"]
        first.setdefault(model, path.stem)
    return sorted(first.values())


@pytest.mark.parametrize("run", _one_run_per_model())
def test_each_model_composes_with_the_studys_settings(run, tmp_path):
    cfg = compose("train", ["sweep=decimal_study", f"+sweep/decimal_study={run}"], output_dir=tmp_path)
    assert cfg.data.input_size == 64 and cfg.trainer.val_check_interval == 100 and cfg.module.scheduler is None
    assert cfg.model.codec.integer_target == "cell"  # the paper's labels reach every codec
    takes_decimal = "decimal_size" in inspect.signature(get_method(cfg.model.name).codec.__init__).parameters
    assert (cfg.model.get("decimal_size") == 4) == takes_decimal, run
    if takes_decimal:
        assert cfg.model.codec.decimal_quantizer == "round"


def _job(
    root: Path, num: int, run: str, model: dict, csv_rows: list[str] | None, metrics: dict | None, status: dict
) -> None:
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    config = {"model": model, "labels": {"integer_target": "cell", "decimal_quantizer": "round"}}
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"+sweep/decimal_study={run}"]))
    if csv_rows is not None:
        (job / "csv").mkdir()
        (job / "csv" / "metrics.csv").write_text("\n".join(csv_rows) + "\n")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    (job / "status.json").write_text(json.dumps(status))


DONE = {"status": "completed", "started": "2026-01-01T10:00:00", "ended": "2026-01-01T10:01:40"}


@pytest.fixture
def multirun(tmp_path):
    root = tmp_path / "multirun"
    head = "epoch,step,train/loss,val/nme,val/nme_integer,val/decimal_acc,val/decimal_gain"
    _job(
        root,
        0,
        "baseline",
        {"name": "baseline", "loss": {"heatmap": 1.0}},
        ["epoch,step,train/loss,val/nme", "0,9,0.5,", "0,99,,12.0", "1,199,,10.0"],
        {"test/nme": 9.0, "test/nme/pose": 15.0},
        DONE,
    )
    _job(
        root,
        1,
        "hih_c_w1",
        {"name": "hih_c", "decimal_size": 4, "loss": {"heatmap": 1.0, "head": 1.0}},
        [head, "0,99,,11.0,11.5,0.0625,0.5", "1,199,,9.0,10.5,0.3125,1.5"],
        {"test/nme": 8.0, "test/nme_integer": 9.5, "test/decimal_acc": 0.125, "test/decimal_gain": 1.5},
        DONE,
    )
    _job(
        root,
        2,
        "baseline_seed1",
        {"name": "baseline"},
        ["epoch,step,val/nme", "0,99,13.0", "1,199,11.0"],
        {"test/nme": 9.4},
        DONE,
    )
    _job(
        root,
        3,
        "wov_w1",
        {"name": "wov", "loss": {"head": 1.0}},
        None,
        None,
        {"status": "failed", "error": "RuntimeError: boom", "started": "2026-01-01T10:00:00"},
    )
    return root


def test_read_curves_counts_optimizer_steps(tmp_path) -> None:
    (tmp_path / "csv").mkdir()
    rows = ["epoch,step,train/loss,val/nme,val/decimal_acc", "0,9,0.5,,", "0,99,,12.5,0.1", "1,199,,10.0,0.2"]
    (tmp_path / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
    assert read_curves(tmp_path) == {"val/nme": [(100, 12.5), (200, 10.0)], "val/decimal_acc": [(100, 0.1), (200, 0.2)]}
    assert log_ladder([100, 200, 300, 400, 800, 1000]) == {100, 200, 400, 800, 1000}


def test_run_names_are_the_sweep_choice_when_one_key_varies() -> None:
    assert run_names(["+sweep/decimal_study=a", "+sweep/decimal_study=b_w0.05"]) == ["a", "b_w0.05"]
    assert run_names(["model=a model.stacks=2", "model=b"]) == ["model=a model.stacks=2", "model=b"]


def test_collect_reads_every_job_failed_ones_included(multirun) -> None:
    runs = {r.name: r for r in collect(multirun)}
    assert list(runs) == ["baseline", "hih_c_w1", "baseline_seed1", "wov_w1"]
    hih = runs["hih_c_w1"]
    assert hih.curves["val/decimal_acc"] == [(100, 0.0625), (200, 0.3125)]
    assert hih.chance == 1 / 16 and hih.head_weight == 1.0 and hih.wall_s == 100.0
    assert runs["baseline"].test == {"test/nme": 9.0}  # subsets left out
    assert runs["baseline"].chance is None and runs["baseline"].head_weight is None
    assert runs["wov_w1"].status == "failed" and not runs["wov_w1"].curves


def test_tables_json_and_figure(multirun, tmp_path) -> None:
    out = write_study(multirun, tmp_path / "out")
    md = out["markdown"]
    # hih_c_w1: integer only 9.5 against the baseline's 9.0; 0.125 = 2x chance (1/16); 5x chance at step 200.
    assert "| hih_c_w1 | 1.0 | 8.000 | 9.500 | +0.500 | 0.125 (2.0x) | - | 1.500 | 200 | 100 |" in md
    assert "| baseline | - | 9.000 | - | - | - | - | - | - | 100 |" in md
    # The ladder: the integer heatmap at step 100 (11.5) against the baseline's NME there (12.0).
    assert "| hih_c_w1 | 100 | 11.000 | 11.500 | -0.500 | 0.062 | 0.500 | - |" in md
    assert "| hih_c_w1 | **test** | 8.000 | 9.500 | +0.500 | 0.125 | 1.500 | - |" in md
    assert "No curves (not in the tables): wov_w1 (failed)" in md
    assert "integer_target=cell, decimal_quantizer=round" in md and "chance decimal acc 1/16" in md
    study = json.loads(out["paths"]["json"].read_text())
    assert study["curves"]["baseline"]["val/nme"] == [[100, 12.0], [200, 10.0]]
    assert study["status"]["wov_w1"] == "failed" and study["wall_s_total"] == 300.0
    assert out["paths"]["md"].read_text().strip() == md.strip()
    assert out["paths"]["png"].stat().st_size > 10_000


def test_figure_draws_the_baseline_seeds_as_a_band_and_the_reference_lines(multirun) -> None:
    from hih.analysis.learning_curves import curves_figure

    fig = curves_figure([r for r in collect(multirun) if r.curves], "baseline")
    acc, offset, _gain, integer = fig.axes
    assert {line.get_label() for line in acc.get_lines()} >= {"hih_c_w1", "chance 1/16", "5x chance"}
    assert any(abs(line.get_ydata()[0] - MEAN_OFFSET_ERR) < 1e-12 for line in offset.get_lines())
    labels = [c.get_label() for c in integer.collections]
    assert "baseline, 2 seeds (min-max)" in labels
    assert "baseline_seed1" not in {line.get_label() for line in integer.get_lines()}  # in the band, not a line


@pytest.mark.slow
def test_a_tiny_study_runs_and_reads_back(tmp_path):
    """hih-train -m sweep=decimal_study with two of its runs, a few steps each, then the curves."""
    from cli import run_cli

    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "sweep=decimal_study",
        "+sweep/decimal_study=baseline,hih_c_w1",
        *tiny(
            tmp_path / "data",
            "data.datamodule.persistent_workers=false",
            "trainer.max_epochs=-1",
            "trainer.max_steps=4",
            "trainer.val_check_interval=2",
            "plot_samples=0",
        ),
        f"hydra.sweep.dir={sweep}",
    ]
    run_cli("hih-train", args, timeout=600)
    out = write_study(sweep)
    runs = {r.name: r for r in out["runs"]}
    assert list(runs) == ["baseline", "hih_c_w1"] and all(r.status == "completed" for r in runs.values())
    assert [s for s, _ in runs["hih_c_w1"].curves["val/decimal_acc"]] == [2, 4]  # every 2 optimizer steps
    assert runs["hih_c_w1"].chance == 1 / 16 and "| hih_c_w1 | 1.0 |" in out["markdown"]
