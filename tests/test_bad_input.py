"""One test per row of docs/bad_input.md: each failure mode gives a clear error naming what was wrong.

Set HIH_PRINT_MESSAGES=1 to print the messages (that is how the table in the doc was filled)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException, MissingConfigException

from hih.checkpoints import CheckpointMismatchError, load_weights
from hih.data.datamodule import FaceDataModule
from hih.data.dataset import FaceDataset
from hih.data.datasets import get_layout, read_dataset
from hih.data.records import FaceRecord, ImageLoadError, load_image
from hih.data.synthetic import ensure_synthetic
from hih.inference import read_boxes
from hih.pipeline import build_module, compose
from hih.rundir import RunDirExistsError, check_run_dir

TINY = [
    "data.input_size=64",
    "data.heatmap_size=16",
    "model.channels=16",
    "model.head_width=16",
    "model.decimal_size=4",
]


def _show(err: pytest.ExceptionInfo) -> str:
    message = f"{err.type.__name__}: {err.value}"
    if os.environ.get("HIH_PRINT_MESSAGES"):
        print(f"\n---\n{message}")
    return message


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "synthetic"
    ensure_synthetic(root, n_train=4, n_test=2, seed=0, workers=1, progress=False)
    return root


def _copy(synthetic, tmp_path):
    root = tmp_path / "wflw"
    shutil.copytree(synthetic, root)
    return root, next(root.rglob("*test*.txt"))


def test_missing_data_root(tmp_path):
    dm = FaceDataModule(dataset="wflw", root=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError) as err:
        dm.prepare_data()
    assert (
        "wflw dataset root" in _show(err) and "nowhere" in str(err.value) and "data.datamodule.root=" in str(err.value)
    )


def test_missing_annotation_list(tmp_path, synthetic):
    root, list_file = _copy(synthetic, tmp_path)
    list_file.unlink()
    with pytest.raises(FileNotFoundError) as err:
        read_dataset("wflw", root, "test")
    assert str(list_file) in _show(err)


def test_malformed_annotation_names_file_and_line(tmp_path, synthetic):
    root, list_file = _copy(synthetic, tmp_path)
    lines = list_file.read_text().splitlines()
    lines[1] = " ".join(lines[1].split()[2:])  # a line missing one landmark
    list_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as err:
        read_dataset("wflw", root, "test")
    assert f"{list_file}:2" in _show(err) and "expected 207 fields" in str(err.value)


def test_non_numeric_annotation_value(tmp_path, synthetic):
    root, list_file = _copy(synthetic, tmp_path)
    tokens = list_file.read_text().splitlines()[0].split()
    tokens[5] = "abc"
    list_file.write_text(" ".join(tokens) + "\n")
    with pytest.raises(ValueError) as err:
        read_dataset("wflw", root, "test")
    assert f"{list_file}:1" in _show(err) and "'abc'" in str(err.value)


def test_annotation_naming_a_missing_image(tmp_path, synthetic):
    root, list_file = _copy(synthetic, tmp_path)
    first = read_dataset("wflw", root, "test")[0].image_path
    first.unlink()
    with pytest.raises(FileNotFoundError) as err:
        read_dataset("wflw", root, "test")
    assert f"{list_file}:1" in _show(err) and first.name in str(err.value)


def test_unreadable_image(tmp_path):
    bad = tmp_path / "face.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageLoadError) as err:
        load_image(bad)
    assert str(bad) in _show(err) and "cannot decode" in str(err.value)


def test_wrong_landmark_count(tmp_path):
    rec = FaceRecord(tmp_path / "a.jpg", np.zeros((68, 2)), [0, 0, 10, 10], np.zeros(6, bool))
    with pytest.raises(ValueError) as err:
        FaceDataset([rec], get_layout("wflw"))
    assert "has 68 landmarks; layout 'wflw' expects 98" in _show(err) and "a.jpg" in str(err.value)


def test_unknown_config_option_lists_the_choices():
    with pytest.raises(MissingConfigException) as err:
        compose("train", ["model=nonexistent"])
    message = _show(err)
    assert "nonexistent" in message and "hih_c" in message and "baseline" in message


def test_unknown_config_key():
    with pytest.raises(ConfigCompositionException) as err:
        compose("train", ["trainer.max_epoch=3"])
    assert "max_epoch" in _show(err)


def _module(tmp_path, *overrides):
    return build_module(compose("train", [*TINY, *overrides], output_dir=tmp_path))


def test_checkpoint_of_another_model_config(tmp_path):
    ckpt = tmp_path / "two_stacks.ckpt"
    torch.save({"state_dict": _module(tmp_path, "model.stacks=2").state_dict()}, ckpt)
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(_module(tmp_path), ckpt)
    message = _show(err)
    assert str(ckpt) in message and "unexpected keys: net.backbone" in message and "model.stacks" in message


def test_checkpoint_with_other_shapes(tmp_path):
    ckpt = tmp_path / "wide.ckpt"
    torch.save({"state_dict": _module(tmp_path, "model.channels=24").state_dict()}, ckpt)
    with pytest.raises(CheckpointMismatchError) as err:
        load_weights(_module(tmp_path), ckpt)
    assert "shape mismatches: net.backbone" in _show(err) and "checkpoint (6, 3, 7, 7) vs model (4, 3, 7, 7)" in str(
        err.value
    )


def test_corrupt_checkpoint(tmp_path):
    ckpt = tmp_path / "corrupt.ckpt"
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": _module(tmp_path).state_dict()}, good)
    ckpt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # a truncated download / copy
    with pytest.raises(RuntimeError) as err:
        load_weights(_module(tmp_path), ckpt)
    assert f"cannot load checkpoint {ckpt}" in _show(err)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {_Exploit.marker}",))


def test_pickle_with_code_is_refused_and_never_run(tmp_path):
    _Exploit.marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Exploit()}, ckpt)  # what a booby-trapped .ckpt looks like
    with pytest.raises(RuntimeError) as err:
        load_weights(_module(tmp_path), ckpt)
    assert "weights_only=True" in _show(err) and "system" in str(err.value)
    assert not _Exploit.marker.exists()


def test_run_dir_with_earlier_results(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(RunDirExistsError) as err:
        check_run_dir(tmp_path)
    assert str(tmp_path) in _show(err) and "ckpt_path=last" in str(err.value)


def test_resume_without_a_checkpoint(tmp_path):
    from hih.pipeline import resolve_ckpt

    with pytest.raises(FileNotFoundError) as err:
        resolve_ckpt("last", tmp_path)
    assert str(tmp_path / "checkpoints" / "last.ckpt") in _show(err)


def test_bad_box_file_line(tmp_path):
    boxes = tmp_path / "boxes.txt"
    boxes.write_text("a.jpg 0 0 10 10\nb.jpg 0 0 10\n")
    with pytest.raises(ValueError) as err:
        read_boxes(boxes)
    assert f"{boxes}, line 2" in _show(err)


def test_run_dir_guard_stops_the_hydra_app(tmp_path):
    # Hydra turns callback exceptions into warnings; the guard must really stop the app.
    from omegaconf import OmegaConf

    from hih.cli.hydra_callbacks import RunDirGuard

    (tmp_path / "metrics.json").write_text("{}")
    cfg = OmegaConf.create({"task_name": "train", "ckpt_path": None, "hydra": {"run": {"dir": str(tmp_path)}}})
    with pytest.raises(SystemExit, match="refusing to overwrite them"):
        RunDirGuard().on_run_start(cfg)
    RunDirGuard().on_run_start(OmegaConf.merge(cfg, {"ckpt_path": "last"}))  # a resume may continue there
    with pytest.raises(SystemExit):
        RunDirGuard().on_run_start(OmegaConf.merge(cfg, {"task_name": "eval", "ckpt_path": "x.ckpt"}))
