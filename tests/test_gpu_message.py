"""A GPU trainer on a machine without one: one line naming trainer=cpu, not Lightning's exception."""

from __future__ import annotations

import pytest
import torch

from hih.pipeline import build, check_accelerator, compose


def test_paper_experiment_without_a_gpu_names_trainer_cpu(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    cfg = compose("train", ["experiment=paper/wflw", "model=hih_c"], output_dir=tmp_path)
    with pytest.raises(RuntimeError) as err:
        build(cfg)
    message = str(err.value)
    assert "\n" not in message and "experiment=paper/*" in message and "add trainer=cpu" in message
    check_accelerator(compose("train", ["experiment=paper/wflw", "trainer=cpu"], output_dir=tmp_path))  # no error
    with pytest.raises(RuntimeError, match="trainer.accelerator=gpu asks for a GPU.*add trainer=cpu"):
        check_accelerator(compose("train", ["trainer=gpu"], output_dir=tmp_path))
