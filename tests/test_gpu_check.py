"""scripts/gpu_check.py: it trains what hih-train trains (same configs, same loss on a batch); the CPU smoke
run writes its results; without a GPU the real run refuses."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"
MODELS = ("baseline", "hih_c", "hih_l")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


def _script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loss_on_one_batch_equals_the_hih_train_modules(tmp_path):
    """The check composes experiment=paper/wflw model=hih_c and steps the module hih-train builds: same
    loss weights, same weights at the same seed, same loss on a batch of the WFLW-like photos."""
    from hih.data.targets import add_targets
    from hih.pipeline import build, compose

    gc = _script()
    device = torch.device("cpu")
    args = gc.parse_args(["--device", "cpu", "--tiny", "--out", str(tmp_path / "out")])
    cfg = gc.compose_model("hih_c", args, device)
    torch.manual_seed(0)
    module = gc.build_module(cfg)

    sizes = ["data.input_size=64", "data.heatmap_size=16", "model.channels=16", "model.head_width=16"]
    ref_cfg = compose(
        "train",
        [
            "experiment=paper/wflw",
            "model=hih_c",
            f"paths.data_dir={tmp_path / 'ref'}",
            "~logger",
            "trainer=default",
            *sizes,
        ],
        output_dir=tmp_path / "ref_run",
    )
    torch.manual_seed(0)
    ref = build(ref_cfg, with_callbacks=False).module
    assert dict(module.loss_weights) == dict(ref.loss_weights)
    assert module.loss_weights["head"] == ref_cfg.model.loss.head  # the config's weight, not the check's own
    ref_state = ref.state_dict()
    assert all(torch.equal(v, ref_state[k]) for k, v in module.state_dict().items())

    dm = gc.build_datamodule(cfg, cache=True)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    loss = gc.Stepper(module, cfg, device).loss(dict(batch))
    ref.train()
    expected = ref.training_step(add_targets(dict(batch), ref.codec), 0)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
    assert loss.item() > 0


@pytest.mark.slow  # runs the script as a subprocess
def test_tiny_cpu_run_writes_throughput_and_training(tmp_path):
    out = tmp_path / "out"
    proc = _run("--device", "cpu", "--tiny", "--out", str(out), "--data-dir", str(tmp_path / "synth"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((out / "gpu_check.json").read_text())
    assert set(r["throughput"]) == set(MODELS) and set(r["training"]) == set(MODELS)
    for name in MODELS:
        t = r["throughput"][name]
        assert t["model_bound"]["img_per_s"] > 0 and t["pipeline"]["img_per_s"] > 0
        assert t["pipeline_uncached"]["img_per_s"] > 0 and t["pipeline_over_model_bound"] > 0
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
    assert r["loader"]["cached"]["img_per_s"] > 0 and r["loader"]["uncached"]["img_per_s"] > 0
    assert r["cache"]["mb"] > 0 and "data=synthetic_photos" in r["overrides"]
    md = (out / "gpu_check.md").read_text()
    assert "## Throughput" in md and "decimal_acc" in md and "full photos" in md


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
