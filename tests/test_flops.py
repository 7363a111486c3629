"""hih-flops: the CLI's flops.json agrees with the model it composes; paper-size models match Tables 1, 5, 6."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from hih.cli.flops import flops_record
from hih.cli.flops import main as flops_main
from hih.config import config_dir
from hih.methods import get_method, method_names

TINY = [
    "model.net.channels=16",
    "model.net.width=8",
    "data.num_landmarks=7",
    "data.input_size=64",
    "data.heatmap_size=16",
]


def composed(overrides: list[str]):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="flops", overrides=overrides)


def test_cli_writes_flops_json_matching_the_model(tmp_path: Path, monkeypatch, capsys) -> None:
    overrides = ["model=hih_c", "model.decimal_size=4", *TINY]
    # In-process run of the console script's entry point (a subprocess would re-import torch: slow on CI).
    monkeypatch.setattr(sys, "argv", ["hih-flops", *overrides, f"hydra.run.dir={tmp_path}"])
    flops_main()
    record = json.loads((tmp_path / "flops.json").read_text())
    printed = capsys.readouterr().out
    assert "GFLOPs" in printed and "hih_c" in printed

    net = instantiate(composed(overrides).model.net).eval()
    assert record["params_m"] == pytest.approx(sum(p.numel() for p in net.parameters()) / 1e6, abs=1e-4)
    assert record["params_m_paper"] > record["params_m"]  # identity-shortcut projections of the official code
    assert record["gflops"] > 0
    assert (record["model"], record["stacks"], record["decimal_size"]) == ("hih_c", 1, 4)
    assert (record["input_size"], record["num_landmarks"]) == (64, 7)
    assert net(torch.zeros(1, 3, 64, 64)).head.shape == (1, 7, 4, 4)


@pytest.mark.parametrize("name", method_names())
def test_every_model_config_composes_and_instantiates(name: str) -> None:
    cfg = composed([f"model={name}", "model.net.channels=16", "data.input_size=64", "data.heatmap_size=16"])
    assert cfg.model.name == name
    # Only the terms the method trains: the head's weight exactly when it has a head.
    assert set(cfg.model.loss) >= {"heatmap"} and ("head" in cfg.model.loss) == (cfg.model.net.head != "none")
    assert cfg.model.codec.heatmap_size == 16
    net = instantiate(cfg.model.net).eval()
    out = net(torch.zeros(1, 3, 64, 64))
    assert len(out.heatmaps) == cfg.model.stacks
    codec = instantiate(cfg.model.codec)
    assert codec.head_key == out.head_key == get_method(name).output_key
    assert codec.decode(out.for_codec()).shape == (1, 98, 2)
    # hih-flops counts it
    record = flops_record(cfg)
    assert record["model"] == name and record["params_m"] > 0 and record["gflops"] > 0


def model_configs_missing() -> list[str]:
    """Registered methods without conf/model/<name>.yaml (a method is its module plus its config)."""
    return [name for name in method_names() if not (Path(config_dir()) / "model" / f"{name}.yaml").is_file()]


def test_every_registered_method_has_a_model_config() -> None:
    assert model_configs_missing() == []
    # A throwaway method registered here is seen by the same listing the per-method tests run over.
    from hih.methods import _registry, register

    base = get_method("baseline")
    register(_registry.Method("zz_throwaway", base.codec, dict(base.codec_kwargs)))
    try:
        assert "zz_throwaway" in method_names() and model_configs_missing() == ["zz_throwaway"]
    finally:
        _registry._REGISTRY.pop("zz_throwaway", None)


# (config, stacks) -> the paper's params (M) and GFLOPs, Tables 1, 5, 6 (WFLW: 98 points, 256 input, 8x8 decimal).
PAPER = {
    ("baseline", 1): (5.33, 6.67),
    ("hih_c", 1): (10.37, 6.99),
    ("hih_c", 2): (14.47, 10.38),
    ("hih_t", 1): (24.08, 6.91),
    ("wov", 1): (5.03, 6.91),
    ("wom", 1): (4.76, 6.85),
}


@pytest.mark.parametrize("name,stacks", sorted(PAPER))
def test_paper_sizes(name: str, stacks: int) -> None:
    record = flops_record(composed([f"model={name}", f"model.stacks={stacks}"]))
    params, gflops = PAPER[name, stacks]
    assert record["params_m_paper"] == pytest.approx(params, rel=0.02)
    assert record["gflops_paper"] == pytest.approx(gflops, rel=0.05)
