"""hih-train's config cannot be misused: a real dataset never trains with the quickstart's sizes in
silence, sweeps need no ``+``, and sweepers get a validation metric (``optimized_metric``)."""

from __future__ import annotations

import pytest

from cli import cli_env, run_cli
from hih.pipeline import check_experiment_data, compose, optimized_value

REAL = ("wflw", "300w", "cofw")


def test_the_synthetic_default_is_the_quickstart():
    cfg = compose("train")
    assert cfg.data.name == "synthetic" and cfg.data.input_size == 128 and cfg.model.name == "hih_l"
    check_experiment_data(cfg)  # no refusal


@pytest.mark.parametrize("data", REAL)
def test_a_real_dataset_with_the_quickstart_is_refused_naming_the_paper_experiment(data):
    cfg = compose("train", [f"data={data}"])
    assert cfg.data.input_size == 128  # what would have been trained in silence
    with pytest.raises(ValueError) as err:
        check_experiment_data(cfg)
    message = str(err.value)
    assert f"experiment=paper/{data}" in message and f"data={data}" in message and "~experiment" in message
    assert "\n" not in message  # one paragraph


@pytest.mark.parametrize("data", REAL)
def test_the_paper_experiment_gives_the_paper_settings(data):
    cfg = compose("train", [f"experiment=paper/{data}"])
    check_experiment_data(cfg)
    assert cfg.data.name == data and cfg.data.input_size == 256 and cfg.data.heatmap_size == 64
    assert cfg.module.optimizer._target_ == "torch.optim.Adam" and cfg.module.optimizer.lr == 1e-5
    assert cfg.module.scheduler.step_size == 50 and cfg.module.scheduler.gamma == 0.1
    assert "n_train" not in cfg.data.datamodule  # no keys of the synthetic set


def test_without_the_quickstart_a_real_dataset_gets_the_base_sizes():
    cfg = compose("train", ["~experiment", "data=wflw"])
    check_experiment_data(cfg)
    assert cfg.data.input_size == 256 and cfg.data.heatmap_size == 64


@pytest.mark.slow
def test_hih_train_on_wflw_stops_before_training(tmp_path):
    # Without HYDRA_FULL_ERROR (CI exports it): the user's view, the message alone.
    env = cli_env(drop=("HYDRA_FULL_ERROR",))
    proc = run_cli("hih-train", ["data=wflw", f"hydra.run.dir={tmp_path / 'run'}"], env=env, check=False)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "experiment=paper/wflw" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "csv").exists()


def test_sweeps_need_no_plus():
    cfg = compose("train", ["sweep=heads"])
    assert cfg.sweep_name == "heads" and "sweep:heads" in list(cfg.tags)
    assert "sweep_name" not in compose("train")  # the slot is empty by default


def test_the_hpo_sweeper_optimises_the_validation_nme():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from hih.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose("train", ["hydra/sweeper=hpo"], return_hydra_config=True)
    assert cfg.optimized_metric == "val/nme"
    assert cfg.hydra.sweeper.direction == "minimize"


def test_optimized_value_prefers_the_validation_metrics():
    cfg = compose("train")
    fitted, tested = {"val/nme": 3.0, "val/fr_10": 1.0}, {"test/nme": 2.0}
    assert optimized_value(cfg, fitted, tested) == 3.0
    assert optimized_value(compose("train", ["optimized_metric=test/nme"]), fitted, tested) == 2.0
    assert optimized_value(cfg, {}, {}) is None  # train=false test=false: nothing to return
    with pytest.raises(ValueError, match=r"optimized_metric=val/nme was not logged by this run; it logged: test/nme"):
        optimized_value(cfg, {}, tested)


@pytest.mark.slow
def test_hih_train_returns_the_tested_checkpoints_validation_nme(tmp_path):
    import json

    import torch

    from hih.data.synthetic import ensure_synthetic
    from hih.pipeline import fit_and_test
    from tiny import N_TEST, N_TRAIN, tiny

    ensure_synthetic(tmp_path / "faces" / "synthetic", n_train=N_TRAIN, n_test=N_TEST, workers=1, progress=False)
    run = tmp_path / "run"
    cfg = compose("train", tiny(tmp_path / "faces", "model=baseline", "trainer.max_epochs=2"), output_dir=run)
    fitted, tested = fit_and_test(cfg)
    assert tested == json.loads((run / "metrics.json").read_text())  # the report: test metrics
    (best,) = (run / "checkpoints").glob("epoch_*.ckpt")
    state = torch.load(best, map_location="cpu", weights_only=True)
    (checkpoint_state,) = [v for k, v in state["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert fitted["val/nme"] == pytest.approx(float(checkpoint_state["best_model_score"]))
    assert optimized_value(cfg, fitted, tested) == fitted["val/nme"]

    # The checkpoint describes its model; another method on the same network re-decodes it.
    from hih.inference import build_model

    redecoded = compose(
        "predict", [f"ckpt_path={best}", f"input_dir={tmp_path}", "model=dark"], output_dir=tmp_path / "p"
    )
    net, codec = build_model(redecoded)
    assert redecoded.model.name == "dark" and codec.decoder == "dark"
    assert redecoded.model.channels == 16 and codec.input_size == 64 and codec.heatmap_size == 16
