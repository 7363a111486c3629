"""hih-eval reproduces hih-train's test metrics from a saved checkpoint.

One tiny run of the real ``hih-train`` console script (a subprocess: hydra.run.dir, the
``${hydra:runtime.output_dir}`` run dir, .hydra/overrides.yaml, the console output) is shared by
every test here, trained once per session even under pytest-xdist. ``hih-eval`` runs through its
Hydra entry point in-process, and as the plain ``hih.pipeline.evaluate``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from cli import run_cli
from hih.checkpoints import CheckpointMismatchError
from hih.data.synthetic import ensure_synthetic
from hih.pipeline import compose, evaluate, train
from tiny import N_TEST, N_TRAIN, tiny

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def trained(tmp_path_factory, worker_id):
    """(run dir, overrides, stdout) of one hih-train run; xdist workers share it through a file lock."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent  # the session's folder, common to all workers
    run, data = root / "eval_train_run", root / "eval_faces"
    overrides = tiny(data, "model=hih_c")
    with FileLock(str(root / "eval_train_run.lock")):
        log = run / "stdout.txt"
        if not log.is_file():
            # Made here, serially: the CLI would use a forked pool (see test_train_e2e's data_dir).
            ensure_synthetic(data / "synthetic", n_train=N_TRAIN, n_test=N_TEST, workers=1, progress=False)
            proc = run_cli("hih-train", [*overrides, f"hydra.run.dir={run}"])
            log.write_text(proc.stdout)
    return run, overrides, log.read_text()


def best_checkpoint(run: Path) -> Path:
    """The checkpoint hih-train tested: the ModelCheckpoint's best (one epoch: the only epoch_*.ckpt)."""
    (best,) = sorted((run / "checkpoints").glob("epoch_*.ckpt"))
    return best


def metrics_of(run: Path) -> dict[str, float]:
    return json.loads((run / "metrics.json").read_text())


def test_train_cli_writes_and_prints_its_results(trained):
    run, overrides, stdout = trained
    metrics = metrics_of(run)
    assert {"test/nme", "test/fr_10", "test/auc_10", "test/nme/pose"} <= set(metrics)
    for name in ("ced.png", "predictions.png", "checkpoints/last.ckpt", ".hydra/config.yaml", "train.log"):
        assert (run / name).is_file(), name
    # The console gets the results table and where the files went.
    assert "hih_c on synthetic" in stdout and "expression" in stdout
    assert f"{metrics['test/nme']:.2f}" in stdout
    assert f"metrics: {run / 'metrics.json'}" in stdout
    assert str(run / "ced.png") in stdout and str(run / "predictions.png") in stdout


def test_evaluate_reproduces_the_training_metrics(trained, tmp_path):
    run, overrides, _ = trained
    cfg = compose("eval", [*overrides, f"ckpt_path={best_checkpoint(run)}"], output_dir=tmp_path)
    metrics = evaluate(cfg)
    expected = metrics_of(run)
    assert set(metrics) == set(expected)
    assert metrics == pytest.approx(expected, rel=0, abs=1e-6)
    assert metrics_of(tmp_path) == metrics
    assert (tmp_path / "ced.png").is_file() and (tmp_path / "predictions.png").is_file()


@pytest.fixture
def hydra_logging_restored():
    """An in-process Hydra app points the root logger at its run dir: put the handlers back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level


def test_eval_cli_reproduces_the_training_metrics(trained, tmp_path, monkeypatch, capsys, hydra_logging_restored):
    from hih.cli import eval as eval_cli

    # The hih-eval console script's own entry point (a Hydra app), in-process to spare a Python start.
    run, overrides, _ = trained
    out = tmp_path / "eval"
    monkeypatch.setattr(
        sys, "argv", ["hih-eval", *overrides, f"ckpt_path={best_checkpoint(run)}", f"hydra.run.dir={out}"]
    )
    eval_cli.main()
    expected = metrics_of(run)
    assert set(metrics_of(out)) == set(expected)
    assert metrics_of(out) == pytest.approx(expected, rel=0, abs=1e-6)
    assert (out / "eval.log").is_file() and (out / ".hydra" / "overrides.yaml").is_file()
    printed = capsys.readouterr().out
    assert f"metrics: {out / 'metrics.json'}" in printed
    # Test progress that a log file shows (stdout is not a terminal here): batches of their total, ETA.
    progress = [line for line in printed.splitlines() if line.startswith("Test  batch")]
    assert progress and all("eta" in line for line in progress), printed
    assert progress[-1].split()[2].split("/")[0] == progress[-1].split()[2].split("/")[1]
    assert progress[-1] in (out / "eval.log").read_text()


def test_train_without_fitting_tests_the_given_checkpoint(trained, tmp_path):
    run, overrides, _ = trained
    cfg = compose("train", [*overrides, "train=false", f"ckpt_path={best_checkpoint(run)}"], output_dir=tmp_path)
    assert train(cfg) == pytest.approx(metrics_of(run), rel=0, abs=1e-6)


def test_train_without_fitting_builds_the_checkpoints_model(trained, tmp_path):
    # The composed model is the quickstart's (hih_l); the checkpoint's (hih_c) is built, as hih-eval does.
    run, overrides, _ = trained
    composed = [o for o in overrides if o != "model=hih_c"]
    cfg = compose("train", [*composed, "train=false", f"ckpt_path={best_checkpoint(run)}"], output_dir=tmp_path)
    assert cfg.model.name == "hih_l"
    assert train(cfg) == pytest.approx(metrics_of(run), rel=0, abs=1e-6)


def test_eval_with_a_model_override_that_disagrees_names_both(trained, tmp_path):
    run, overrides, _ = trained
    ckpt = run / "checkpoints" / "last.ckpt"
    cfg = compose("eval", [*overrides, "model=wov", "model.channels=32", f"ckpt_path={ckpt}"], output_dir=tmp_path)
    with pytest.raises(CheckpointMismatchError) as err:
        evaluate(cfg)
    message = str(err.value)
    assert str(ckpt) in message
    assert "model=wov (checkpoint: model=hih_c; network head wov vs hih_c)" in message
    assert "model.channels=32 (checkpoint: 16)" in message
    assert not (tmp_path / "metrics.json").exists()


def test_decoding_options_apply_to_the_checkpoints_model(trained, tmp_path):
    from hih.checkpoints import config_from_checkpoint

    run, _, _ = trained
    overrides = ["model.codec.decimal_decode=centre", "model.codec.integer_only=true"]
    cfg = compose("eval", [f"ckpt_path={best_checkpoint(run)}", *overrides], output_dir=tmp_path)
    config_from_checkpoint(cfg, cfg.ckpt_path, cfg.cli_overrides)
    assert cfg.model.name == "hih_c" and cfg.model.channels == 16  # the checkpoint's model
    assert cfg.model.codec.decimal_decode == "centre" and cfg.model.codec.integer_only is True
    with pytest.raises(CheckpointMismatchError, match=r"model.codec.decimal_size=4 \(checkpoint: 8\)"):
        cfg = compose("eval", [f"ckpt_path={best_checkpoint(run)}", "model.codec.decimal_size=4"], output_dir=tmp_path)
        config_from_checkpoint(cfg, cfg.ckpt_path, cfg.cli_overrides)


def without_config(ckpt: Path, dest: Path) -> Path:
    """A copy of ``ckpt`` as written before checkpoints carried their config."""
    import torch

    from hih.checkpoints import CONFIG_KEY

    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert CONFIG_KEY in state
    del state[CONFIG_KEY]
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, dest)
    return dest


def test_an_old_checkpoint_loads_with_explicit_overrides(trained, tmp_path):
    run, overrides, _ = trained
    old = without_config(best_checkpoint(run), tmp_path / "old" / "checkpoints" / "old.ckpt")
    metrics = evaluate(compose("eval", [*overrides, f"ckpt_path={old}"], output_dir=tmp_path / "eval"))
    assert metrics == pytest.approx(metrics_of(run), rel=0, abs=1e-6)
    # Without the training overrides, the composed default model does not fit: the old error.
    with pytest.raises(CheckpointMismatchError, match="does not fit this model configuration"):
        evaluate(compose("eval", [*overrides, "model=wov", f"ckpt_path={old}"], output_dir=tmp_path / "eval2"))


def test_the_checkpoint_carries_its_config_in_plain_types(trained):
    import torch

    from hih.checkpoints import CONFIG_KEY

    run, _, _ = trained
    for ckpt in (best_checkpoint(run), run / "checkpoints" / "last.ckpt"):
        record = torch.load(ckpt, map_location="cpu", weights_only=True)[CONFIG_KEY]  # no pickled code
        assert record["model"]["name"] == "hih_c" and record["model"]["channels"] == 16
        assert record["model"]["net"]["input_size"] == 64  # resolved: the architecture as trained
        assert record["data"]["input_size"] == 64 and record["data"]["heatmap_size"] == 16
        assert record["data"]["datamodule"]["root"] == "${paths.data_dir}/synthetic"  # the evaluating machine's folder
        assert record["data"]["datamodule"]["codec"] == "${oc.select:model.codec,null}"  # the model eval builds
        assert record["labels"]["crop_from"] == "box" and record["model"]["codec"]["integer_target"] == "subpixel"


def test_the_checkpoints_label_settings_give_the_crop(trained, tmp_path):
    import torch

    from hih.checkpoints import CONFIG_KEY, config_from_checkpoint

    run, _, _ = trained
    state = torch.load(best_checkpoint(run), map_location="cpu", weights_only=True)
    state[CONFIG_KEY]["labels"].update(crop_from="landmarks", crop_scale=1.2)  # as if trained with labels=authors
    ckpt = tmp_path / "authors.ckpt"
    torch.save(state, ckpt)
    cfg = compose("eval", [f"ckpt_path={ckpt}"], output_dir=tmp_path)
    config_from_checkpoint(cfg, ckpt, cfg.cli_overrides)
    assert cfg.data.datamodule.crop_from == "landmarks" and cfg.data.datamodule.crop_scale == 1.2
    # A detector-like test of the same checkpoint: the command line's crop.
    cfg = compose("eval", [f"ckpt_path={ckpt}", "labels.crop_from=box", "labels.crop_scale=1.25"], output_dir=tmp_path)
    config_from_checkpoint(cfg, ckpt, cfg.cli_overrides)
    assert cfg.data.datamodule.crop_from == "box" and cfg.data.datamodule.crop_scale == 1.25


def test_eval_predict_and_export_need_only_the_checkpoint(trained, tmp_path):
    run, overrides, _ = trained
    data_dir = next(o for o in overrides if o.startswith("paths.data_dir="))
    ckpt = best_checkpoint(run)
    proc = run_cli("hih-eval", [f"ckpt_path={ckpt}", data_dir, f"hydra.run.dir={tmp_path / 'eval'}"])
    assert metrics_of(tmp_path / "eval") == pytest.approx(metrics_of(run), rel=0, abs=1e-6)
    assert "model from" in proc.stdout and "hih_c, 64 px input, 16x16 heatmap" in proc.stdout

    images = tmp_path / "images"
    images.mkdir()
    for path in sorted((Path(data_dir.split("=", 1)[1]) / "synthetic" / "WFLW_images").rglob("*.jpg"))[:2]:
        (images / path.name).write_bytes(path.read_bytes())
    run_cli(
        "hih-predict",
        [f"ckpt_path={ckpt}", f"input={images}", "detector=none", f"hydra.run.dir={tmp_path / 'predict'}"],
    )
    predictions = json.loads((tmp_path / "predict" / "predictions.json").read_text())
    assert len(predictions["faces"]) == 2 and all(len(p["landmarks"]) == 98 for p in predictions["faces"])

    run_cli("hih-export", [f"ckpt_path={ckpt}", "dynamo=false", f"hydra.run.dir={tmp_path / 'export'}"])
    assert (tmp_path / "export" / "hih_c.onnx").stat().st_size > 0


def test_eval_on_another_dataset_with_the_same_landmarks(trained, tmp_path):
    # The synthetic faces are written in the WFLW format: data=wflw reads them with the WFLW reader.
    run, overrides, _ = trained
    data_dir = Path(next(o for o in overrides if o.startswith("paths.data_dir=")).split("=", 1)[1])
    cfg = compose(
        "eval",
        [
            f"ckpt_path={best_checkpoint(run)}",
            "data=wflw",
            f"data.datamodule.root={data_dir / 'synthetic'}",
            "data.datamodule.num_workers=0",
        ],
        output_dir=tmp_path / "wflw",
    )
    metrics = evaluate(cfg)
    assert cfg.data.name == "wflw" and cfg.data.input_size == 64  # the composed data, the checkpoint's geometry
    assert metrics == pytest.approx(metrics_of(run), rel=0, abs=1e-4)
    with pytest.raises(CheckpointMismatchError, match=r"predicts 98 landmarks \(synthetic\), but data=300w has 68"):
        evaluate(compose("eval", [f"ckpt_path={best_checkpoint(run)}", "data=300w"], output_dir=tmp_path / "300w"))


def test_eval_without_a_checkpoint_is_a_clear_error(trained, tmp_path):
    _, overrides, _ = trained
    cfg = compose("eval", [*overrides, f"ckpt_path={tmp_path / 'nope.ckpt'}"], output_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        evaluate(cfg)


def test_eval_defaults_fit_the_train_defaults():
    # `make train` then `hih-eval ckpt_path=...`: both compose the same model and data.
    train_cfg, eval_cfg = compose("train", output_dir="/tmp/unused"), compose("eval", output_dir="/tmp/unused")
    for key in ("model", "data"):
        assert train_cfg[key] == eval_cfg[key], key
