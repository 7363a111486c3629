"""300W private test set (Table 6 "Test."): 01_Indoor + 02_Outdoor of the official release."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hih.data.readers import read_300w
from hih.data.records import save_image

RNG = np.random.default_rng(7)


def _write_official_layout(root: Path, per_folder: int = 300, nested: bool = True) -> dict[str, np.ndarray]:
    """A copy of the official release layout: 300W/01_Indoor/indoor_001.png + .pts, ... (tiny images)."""
    base = root / "300W" if nested else root
    lms = {}
    for folder, prefix in (("01_Indoor", "indoor"), ("02_Outdoor", "outdoor")):
        for i in range(1, per_folder + 1):
            stem = base / folder / f"{prefix}_{i:03d}"
            stem.parent.mkdir(parents=True, exist_ok=True)
            save_image(stem.with_suffix(".png"), RNG.integers(0, 256, (24, 24, 3), dtype=np.uint8))
            lm = RNG.uniform(2, 22, (68, 2))
            body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in lm)
            stem.with_suffix(".pts").write_text(f"version: 1\nn_points:  68\n{{\n{body}\n}}\n")
            lms[stem.name] = lm
    return lms


def test_private_split_reads_the_600_faces(tmp_path):
    lms = _write_official_layout(tmp_path)
    recs = read_300w(tmp_path, "private")
    assert len(recs) == 600
    assert sum("01_Indoor" in str(r.image_path) for r in recs) == 300
    for r in recs[::50]:
        np.testing.assert_allclose(r.landmarks, lms[Path(r.image_path).stem], atol=1e-3)
        assert r.image_path.suffix == ".png" and not r.subsets.any()


def test_private_split_also_directly_under_root(tmp_path):
    _write_official_layout(tmp_path, per_folder=2, nested=False)
    assert len(read_300w(tmp_path, "private")) == 4


def test_private_split_missing_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="01_Indoor"):
        read_300w(tmp_path, "private")


def test_hydra_data_300w_test_split_private(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    _write_official_layout(tmp_path / "300W", per_folder=3)  # <data_dir>/300W/300W/01_Indoor/...
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(
            "train", overrides=["data=300w", "data.datamodule.test_split=private", f"paths.data_dir={tmp_path}"]
        )
    dm = instantiate(cfg.data.datamodule, num_workers=0, _convert_="all")
    dm.setup("test")
    assert len(dm.test_set) == 6
    sample = dm.test_set[0]
    assert sample["landmarks"].shape == (68, 2) and sample["image"].shape[-1] == cfg.data.input_size
