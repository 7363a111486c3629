"""scripts/decimal_study.py without training: per-method overrides, a run's own budget / seed, the CSV reading."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "decimal_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("decimal_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_label_options_only_where_the_codec_takes_them(study) -> None:
    hih = study.method_overrides(["model=hih_c"], "paper")
    assert "model.decimal_size=4" in hih and "++model.codec.decimal_quantizer=round" in hih
    assert "++model.codec.integer_target=cell" in hih
    for model in ("baseline", "wov", "wom"):
        other = study.method_overrides([f"model={model}"], "paper")
        assert other == ["++model.codec.integer_target=cell"], (model, other)
    assert study.method_overrides(["model=wov"], "config") == []
    assert "++model.codec.decimal_quantizer=round" in study.method_overrides(["model=hih_cp"], "paper")


def test_a_run_may_set_its_own_steps_and_seed(study, tmp_path, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(study.subprocess, "call", lambda cmd, **kw: calls.append(cmd) or 1)  # "fails": nothing trains
    args = argparse.Namespace(out=tmp_path, labels="paper", val_every=100, steps=1000, seed=42, extra=[])
    assert study.train("a", ["model=hih_c", "trainer.max_steps=3000", "seed=1"], args) is None
    assert study.train("b", ["model=wov"], args) is None
    own, default = calls
    assert "++trainer.max_steps=3000" in own and not any(c.startswith("++trainer.max_steps=1000") for c in own)
    assert "seed=1" in own and "seed=42" not in own
    assert "++trainer.max_steps=1000" in default and "seed=42" in default
    assert f"hydra.run.dir={tmp_path / 'runs' / 'b'}" == default[-1]


def test_read_curves_counts_optimizer_steps(study, tmp_path) -> None:
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    (csv_dir / "metrics.csv").write_text("epoch,step,train/loss,val/nme,val/decimal_acc\n0,9,0.5,,\n0,99,,12.5,0.1\n1,199,,10.0,0.2\n")
    curves = study.read_curves(tmp_path)
    assert curves == {"val/nme": [(100, 12.5), (200, 10.0)], "val/decimal_acc": [(100, 0.1), (200, 0.2)]}
    assert study._log_ladder([100, 200, 300, 400, 800, 1000]) == {100, 200, 400, 800, 1000}
