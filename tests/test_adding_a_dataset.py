"""The worked example of docs/adding_a_dataset.md: hih/data/datasets/face5.py + conf/data/face5.yaml
are all it takes; the dataset registers itself, reads, trains and tests through the suite."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from hih.data import FaceDataModule
from hih.data.datasets import DatasetInfo, dataset_names, get_dataset, get_layout, read_dataset, register_dataset
from hih.data.datasets.face5 import HEADER
from hih.data.synthetic import ensure_synthetic
from hih.pipeline import compose, train
from tiny import N_TEST, N_TRAIN  # noqa: E402  (tests/tiny.py)

#: The WFLW points that are face5's: pupils, nose tip, mouth corners.
FROM_WFLW = [96, 97, 54, 76, 82]


def write_face5(root: Path, synthetic: Path) -> None:
    """face5 CSVs over the synthetic faces' images (paths relative to the face5 root)."""
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        lines = [",".join(HEADER)]
        for rec in read_dataset("synthetic", synthetic, split):
            pts = rec.landmarks[FROM_WFLW].reshape(-1)
            lines.append(",".join([os.path.relpath(rec.image_path, root), *(f"{v:.4f}" for v in pts)]))
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("face5")
    ensure_synthetic(base / "synthetic", n_train=N_TRAIN, n_test=N_TEST, workers=1, progress=False)
    write_face5(base / "face5", base / "synthetic")
    return base


def test_registered_with_its_layout(data_dir):
    assert "face5" in dataset_names()
    info = get_dataset("FACE5")
    assert get_layout("face5") is info.layout and info.layout.num_landmarks == 5
    records = read_dataset("face5", data_dir / "face5", "test")
    assert len(records) == N_TEST
    synthetic = read_dataset("synthetic", data_dir / "synthetic", "test")
    np.testing.assert_allclose(records[3].landmarks, synthetic[3].landmarks[FROM_WFLW], atol=1e-3)
    # the box is the points' extent, doubled about its centre
    pts = records[3].landmarks
    np.testing.assert_allclose(records[3].bbox[2] - records[3].bbox[0], 2 * np.ptp(pts[:, 0]), rtol=1e-5)


def test_reader_names_file_and_line(data_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "test.csv").write_text(",".join(HEADER) + "\nimg.png,1,2,3\n")
    with pytest.raises(ValueError, match=r"test\.csv:2: expected 11 fields"):
        read_dataset("face5", bad, "test")
    with pytest.raises(FileNotFoundError, match="train.csv"):
        read_dataset("face5", bad, "train")


def test_datamodule_asks_the_registry(data_dir):
    dm = FaceDataModule("face5", data_dir / "face5", input_size=64, batch_size=4, num_workers=0)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["landmarks"].shape == (4, 5, 2) and batch["subsets"].shape == (4, 0)
    with pytest.raises(ValueError, match=r"dataset 'face5' does not take the option\(s\) \['n_train'\]"):
        FaceDataModule("face5", data_dir / "face5", n_train=3)
    with pytest.raises(ValueError, match="unknown dataset 'aflw'.*face5"):
        FaceDataModule("aflw", data_dir)


def test_a_throwaway_dataset_is_seen_everywhere(data_dir):
    face5 = get_dataset("face5")
    info = register_dataset(DatasetInfo("face5_copy", face5.layout, face5.read, aliases=("f5c",)))
    assert "face5_copy" in dataset_names() and get_dataset("f5c") is info
    assert get_layout("face5_copy") is face5.layout  # a dataset name names its layout
    assert len(read_dataset("f5c", data_dir / "face5", "train")) == N_TRAIN
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(DatasetInfo("other", face5.layout, face5.read, aliases=("f5c",)))


@pytest.mark.slow
def test_trains_end_to_end_with_hih_train(data_dir, tmp_path):
    run = tmp_path / "run"
    overrides = [
        "~experiment",
        "data=face5",
        f"paths.data_dir={data_dir}",
        "data.input_size=64",
        "data.heatmap_size=16",
        "data.datamodule.batch_size=8",
        "data.datamodule.num_workers=0",
        "model=hih_l",
        "model.channels=16",
        "model.head_width=16",
        "model.decimal_size=4",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
        "plot_samples=2",
        "logger=csv",
    ]
    metrics = train(compose("train", overrides, output_dir=run))
    assert json.loads((run / "metrics.json").read_text()) == metrics and math.isfinite(metrics["test/nme"])
    assert (run / "predictions.png").is_file()
