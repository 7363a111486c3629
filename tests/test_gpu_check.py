"""scripts/gpu_check.py: the CPU smoke run writes its results; without a GPU the real run refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # every test runs the script as a subprocess

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"
MODELS = ("baseline", "hih_c", "hih_l")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


def test_tiny_cpu_run_writes_throughput_and_training(tmp_path):
    out = tmp_path / "out"
    proc = _run("--device", "cpu", "--tiny", "--out", str(out), "--data-dir", str(tmp_path / "synth"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((out / "gpu_check.json").read_text())
    assert set(r["throughput"]) == set(MODELS) and set(r["training"]) == set(MODELS)
    for name in MODELS:
        t = r["throughput"][name]
        assert t["model_bound"]["img_per_s"] > 0 and t["pipeline"]["img_per_s"] > 0
        assert t["pipeline_over_model_bound"] > 0
        tr = r["training"][name]
        assert tr["steps"] >= 1 and tr["faces"] == r["n_test"]
        assert tr["nme"] > 0 and tr["nme_integer_centre"] > 0
    for name in ("hih_c", "hih_l"):
        tr = r["training"][name]
        assert 0.0 <= tr["decimal_acc"] <= 1.0 and tr["decimal_chance"] == 1 / 64
        assert tr["decimal_gain"] == pytest.approx(tr["nme_integer_centre"] - tr["nme"])
    # The baseline has no decimal map: its decode is the integer one, so no decimal entries.
    assert "decimal_acc" not in r["training"]["baseline"]
    assert r["training"]["baseline"]["nme_minus_baseline"] == 0.0
    md = (out / "gpu_check.md").read_text()
    assert "## Throughput" in md and "decimal_acc" in md


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when no GPU is present")
def test_without_gpu_exits_nonzero_naming_the_device(tmp_path):
    proc = _run("--out", str(tmp_path / "out"))
    assert proc.returncode != 0
    assert "no CUDA GPU" in proc.stderr
    assert not (tmp_path / "out" / "gpu_check.json").exists()


def test_cpu_without_tiny_is_refused(tmp_path):
    proc = _run("--device", "cpu", "--out", str(tmp_path / "out"))
    assert proc.returncode != 0 and "--tiny" in proc.stderr
