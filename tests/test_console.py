"""What a user sees on the console: a tiny hih-train prints each event once, no vendor tips, no
dependency deprecations, no zero FLOPs; a known user error is one message and exit status 1."""

from __future__ import annotations

import pytest

from cli import cli_env, run_cli
from hih.data.synthetic import ensure_synthetic
from tiny import N_TEST, N_TRAIN, tiny

# The model summary without Lightning's FLOPs column; ++ works with or without the callbacks entry.
SUMMARY = "++callbacks.model_summary._target_=hih.callbacks.ModelSummary"


def _env(**extra: str) -> dict[str, str]:
    return cli_env(drop=("HYDRA_FULL_ERROR",), **extra)  # .ci/run exports it


@pytest.mark.slow
def test_tiny_train_console_is_clean(tmp_path):
    data = tmp_path / "data"
    ensure_synthetic(data / "synthetic", n_train=N_TRAIN, n_test=N_TEST, workers=1, progress=False)
    run = tmp_path / "run"
    proc = run_cli("hih-train", [*tiny(data), SUMMARY, f"hydra.run.dir={run}"], env=_env(), cwd=tmp_path)
    out = proc.stdout + proc.stderr
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    repeated = sorted({line for line in lines if lines.count(line) > 1})
    assert not repeated, f"printed more than once: {repeated}"
    for noise in ("Tip:", "litlogger", "litmodels", "deprecated", "FLOPs", "INFO:", "Skipping setting"):
        assert noise not in out, f"{noise!r} on the console:\n{out}"
    assert "Seed set to 42" in out and "Testing" in out and "hih_l on synthetic" in out  # events, bar, table
    log = (run / "train.log").read_text()
    assert "[lightning.fabric.utilities.seed][INFO] - Seed set to 42" in log  # the file keeps the full format
    assert "Tip:" not in log


@pytest.mark.slow  # two console-script subprocesses
def test_missing_dataset_folder_is_one_message_without_traceback(tmp_path):
    args = [
        "experiment=paper/wflw",
        "trainer=cpu",
        f"paths.data_dir={tmp_path / 'nowhere'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    proc = run_cli("hih-train", args, env=_env(), cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"Error: wflw dataset root {tmp_path / 'nowhere'}")
    assert "Error: wflw dataset root" in (tmp_path / "run" / "train.log").read_text()

    rerun = [*args[:-1], f"hydra.run.dir={tmp_path / 'run2'}"]
    full = run_cli("hih-train", rerun, env=_env(HYDRA_FULL_ERROR="1"), cwd=tmp_path, check=False)
    assert full.returncode == 1
    assert "Traceback" in full.stderr and "FileNotFoundError: wflw dataset root" in full.stderr
