"""scripts/gpu_check.py: the CPU smoke run (``--tiny``) trains and tests through hih-train's Trainer and writes
its results; without a GPU the real run refuses."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hih.methods import get_method

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"
MODELS = ("baseline", "hih_c")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


def _script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_composes_the_paper_experiment_with_the_debug_group(tmp_path):
    gc = _script()
    args = gc.parse_args(["--tiny", "--out", str(tmp_path)])
    assert args.device == "cpu"
    cfg = gc.compose_model("hih_c", args, torch.device("cpu"))
    assert "debug=tiny" in gc.overrides("hih_c", args, torch.device("cpu"))
    assert cfg.data.input_size == 64 and cfg.model.channels == 16 and cfg.model.head_width == 16
    assert cfg.module.scheduler is not None  # the paper's lr schedule, as hih-train
    assert cfg.data.name == "synthetic_photos" and "paper" in cfg.tags


@pytest.mark.slow  # trains and tests two tiny models through Lightning
def test_tiny_cpu_run_trains_through_the_trainer_and_writes_results(tmp_path):
    out = tmp_path / "out"
    argv = ["--tiny", "--out", str(out), "--data-dir", str(tmp_path / "synth"), "--budget-s", "4"]
    assert _script().main([*argv, "--models", *MODELS]) == 0
    r = json.loads((out / "gpu_check.json").read_text())
    assert set(r["throughput"]) == set(MODELS) and set(r["training"]) == set(MODELS)
    for name in MODELS:
        t = r["throughput"][name]
        for phase in ("model_bound", "pipeline", "pipeline_uncached"):
            assert t[phase]["steps"] >= 1 and t[phase]["img_per_s"] > 0
        tr = r["training"][name]
        assert tr["steps"] >= 2 and tr["faces"] == r["n_test"] > 0
        assert tr["nme"] > 0
    head = get_method("hih_c").head_metric
    tr = r["training"]["hih_c"]
    assert tr["head_metric"] == head.name and 0.0 <= tr[head.name] <= 1.0 and tr["decimal_chance"] == 1 / 64
    assert tr[head.gain] == pytest.approx(tr["nme_integer_centre"] - tr["nme"], abs=1e-4)
    # The baseline has no head: no head metric, no integer-only decode beside its own.
    assert "head_metric" not in r["training"]["baseline"]
    assert r["training"]["baseline"]["nme_minus_baseline"] == 0.0
    assert r["loader"]["cached"]["img_per_s"] > 0 and r["loader"]["uncached"]["img_per_s"] > 0
    assert "data=synthetic_photos" in r["overrides"] and "debug=tiny" in r["overrides"]
    md = (out / "gpu_check.md").read_text()
    assert "## Throughput" in md and head.name in md and "full photos" in md


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when no GPU is present")
def test_without_gpu_exits_nonzero_naming_the_device(tmp_path):
    proc = _run("--out", str(tmp_path / "out"))
    assert proc.returncode != 0
    assert "no CUDA GPU" in proc.stderr
    assert not (tmp_path / "out" / "gpu_check.json").exists()


@pytest.mark.slow
def test_cpu_without_tiny_is_refused(tmp_path):
    proc = _run("--device", "cpu", "--out", str(tmp_path / "out"))
    assert proc.returncode != 0 and "--tiny" in proc.stderr
