"""hih-train end to end, in-process, for every head: compose as the CLI does, train one tiny epoch, test.

``hih.pipeline.train`` is the whole body of the ``hih-train`` console script, so these runs are the
real thing on 24 synthetic faces at 64 px (the CLI's Hydra-app path is covered in test_eval.py).
"""

from __future__ import annotations

import json
import math

import pytest

from hih.checkpoints import load_state_dict
from hih.data.datasets import get_layout
from hih.methods import method_names
from hih.pipeline import compose, output_dir, train

pytestmark = pytest.mark.slow

HEADS = method_names()  # every registered method, a new one included
PNG = b"\x89PNG\r\n\x1a\n"

from tiny import tiny  # noqa: E402  (tests/tiny.py)


def expected_keys() -> list[str]:
    """The design notes' flat keys: NME, FR@10, AUC@10 on the full test set and on each WFLW subset."""
    keys = ["test/nme", "test/fr_10", "test/auc_10"]
    for subset in get_layout("wflw").subset_names:
        keys += [f"test/nme/{subset}", f"test/fr_10/{subset}", f"test/auc_10/{subset}"]
    return keys


@pytest.mark.parametrize("head", HEADS)
def test_train_and_test_every_head(head, data_dir, tmp_path):
    run = tmp_path / "run"
    cfg = compose("train", tiny(data_dir, f"model={head}"), output_dir=run)
    assert cfg.model.name == head

    metrics = train(cfg)

    written = json.loads((run / "metrics.json").read_text())
    assert written == metrics  # the return value (the sweepers' objective) is what was written
    missing = [k for k in expected_keys() if k not in written]
    assert not missing, f"metrics.json lacks {missing}"
    assert all(k.startswith("test/") for k in written)
    assert all(math.isfinite(v) for v in written.values()), written
    assert written["test/nme"] > 0
    assert 0 <= written["test/fr_10"] <= 100 and 0 <= written["test/auc_10"] <= 1
    for name in ("ced.png", "predictions.png"):
        assert (run / name).read_bytes()[:8] == PNG, name
    last = run / "checkpoints" / "last.ckpt"
    assert last.is_file()
    assert any(k.startswith("net.") for k in load_state_dict(last))  # loads as plain tensors
    assert (run / "csv" / "metrics.csv").is_file()  # the default logger


def test_output_dir_needs_hydra_or_an_override():
    cfg = compose("train")
    with pytest.raises(ValueError, match=r"paths\.output_dir=DIR"):
        output_dir(cfg)


def test_resume_from_a_missing_checkpoint_fails_before_training(data_dir, tmp_path):
    cfg = compose("train", tiny(data_dir, "ckpt_path=last"), output_dir=tmp_path / "run")
    with pytest.raises(FileNotFoundError, match=r"checkpoints/last\.ckpt"):
        train(cfg)
    assert not (tmp_path / "run" / "csv").exists()  # nothing was built or logged
