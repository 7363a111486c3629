"""Every registered dataset has a data config that agrees with the registry: the config composes, names the
dataset, and repeats the registry's layout, landmark count and options (their defaults) exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hih.config import config_dir
from hih.data.datasets import dataset_names, get_dataset, get_layout
from hih.pipeline import compose

DATA = Path(config_dir()) / "data"
#: The data configs that are not datasets (the shared base).
NOT_DATASETS = {"_base"}


@pytest.mark.parametrize("name", dataset_names())
def test_data_config_agrees_with_the_registry(name):
    info = get_dataset(name)
    assert (DATA / f"{name}.yaml").is_file(), f"dataset {name!r} is registered but has no conf/data/{name}.yaml"
    cfg = compose("train", [f"data={name}", "~experiment"])  # the data config's own values
    data = cfg.data
    assert data.name == name and data.datamodule.dataset == name
    assert get_layout(data.layout) is info.layout
    assert data.num_landmarks == info.layout.num_landmarks
    # The dataset's own options: every one in the config, with the registry's default.
    base = set(OmegaConf.load(DATA / "_base.yaml").datamodule.keys())
    own = {k: v for k, v in OmegaConf.to_container(data.datamodule, resolve=False).items() if k not in base}
    own.pop("dataset", None)
    defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in info.options.items()}
    assert own == defaults


def test_every_data_config_is_a_registered_dataset():
    configs = {p.stem for p in DATA.glob("*.yaml")} - NOT_DATASETS
    assert configs == set(dataset_names())
