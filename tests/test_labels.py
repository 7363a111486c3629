"""conf/labels: the paper configs take the authors' label settings, the quickstart keeps ours,
whatever model is picked; every app composes with the group; cls trains (a tiny run)."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hih.methods import codec_parameters, get_method, method_names
from hih.pipeline import compose

PAPER = ["paper/wflw", "paper/300w", "paper/cofw"]
AUTHORS = {
    "integer_target": "cell",
    "decimal_quantizer": "round",
    "head_init_std": 0.001,
    "crop_from": "landmarks",
    "crop_scale": 1.2,
}
OURS = {
    "integer_target": "subpixel",
    "decimal_quantizer": "floor",
    "head_init_std": None,
    "crop_from": "box",
    "crop_scale": 1.25,
}


def _settings(cfg) -> dict:
    """The label settings as the model / data actually receive them (None: the model has no such key)."""
    codec, net, dm = cfg.model.codec, cfg.model.net, cfg.data.datamodule
    return {
        "integer_target": codec.get("integer_target"),
        "decimal_quantizer": codec.get("decimal_quantizer"),
        "head_init_std": net.get("init_std"),
        "crop_from": dm.crop_from,
        "crop_scale": dm.crop_scale,
    }


@pytest.mark.parametrize("experiment", PAPER)
def test_paper_experiments_take_the_authors_labels(experiment):
    cfg = compose("train", [f"experiment={experiment}"])
    assert _settings(cfg) == AUTHORS
    # What `hih-train experiment=paper/wflw --cfg job --resolve` prints, inside the model's codec.
    text = OmegaConf.to_yaml(OmegaConf.create({"codec": OmegaConf.to_container(cfg.model.codec, resolve=True)}))
    assert "  integer_target: cell\n" in text and "  decimal_quantizer: round\n" in text
    # The paper's L2 stays (the authors' cls is an override, see the experiment's comment).
    assert cfg.model.loss.decimal_loss == "l2" and cfg.model.loss.stack_reduction == "sum"


def test_quickstart_keeps_ours_and_labels_override_wins():
    assert _settings(compose("train", ["model=hih_c"])) == OURS
    assert _settings(compose("train", ["experiment=paper/wflw", "labels=ours", "model=hih_c"])) == OURS
    assert _settings(compose("train", ["labels=authors", "model=hih_c"])) == AUTHORS


def _head_layers(net) -> list:
    return [m for m in net.head.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


@pytest.mark.parametrize("model", method_names())
def test_every_model_builds_under_the_authors_labels(model):
    headed = get_method(model).head is not None
    small = ["model.channels=8"] + (["model.head_width=8"] if headed else [])
    cfg = compose("train", ["experiment=paper/wflw", f"model={model}", *small])
    codec = instantiate(cfg.model.codec)
    got = _settings(cfg)
    # Every model is built on base/heatmap, base/decimal or base/offset, which take the labels' settings.
    assert codec.integer_target == "cell"
    if "decimal_quantizer" in codec_parameters(model):
        # round, the authors', except where a bin-centre decode pins floor (round + centre is off by half a bin)
        expected = "floor" if codec.decimal_decode == "centre" else "round"
        assert codec.decimal_quantizer == expected
    else:
        assert got["decimal_quantizer"] is None
    assert got["head_init_std"] == (0.001 if headed else None)
    net = instantiate(cfg.model.net)
    assert (net.head is None) == (not headed) and net.head_key == get_method(model).output_key
    if headed:  # the head takes init_std: its output layer is drawn from N(0, std^2) with zero bias
        wide = compose("train", ["experiment=paper/wflw", f"model={model}", *small, "labels.head_init_std=0.05"])
        torch.manual_seed(0)
        last = _head_layers(instantiate(wide.model.net))[-1]
        assert last.weight.std().item() == pytest.approx(0.05, rel=0.35), model
        assert last.bias is None or not last.bias.any()
        assert _head_layers(net)[-1].weight.std().item() == pytest.approx(0.001, rel=0.35), model


@pytest.mark.parametrize("app", ["eval", "export", "predict", "flops", "quantization"])
def test_every_app_has_the_labels_group(app):
    cfg = compose(app, ["labels=authors"])
    assert cfg.labels.integer_target == "cell"
    if "model" in cfg:
        assert cfg.model.codec.integer_target == "cell"
    if "datamodule" in cfg.get("data", {}):  # hih-flops has the data sizes only
        assert cfg.data.datamodule.crop_from == "landmarks"


@pytest.mark.slow
def test_authors_loss_and_labels_train(tmp_path):
    """decimal_loss=cls with the authors' weight and stack mean, on the authors' labels: a tiny run."""
    from hih.data.synthetic import ensure_synthetic
    from hih.pipeline import train
    from tiny import N_TEST, N_TRAIN, tiny  # tests/tiny.py

    ensure_synthetic(tmp_path / "faces" / "synthetic", n_train=N_TRAIN, n_test=N_TEST, workers=1, progress=False)
    loss = ["model.loss.decimal_loss=cls", "model.loss.head=0.05", "model.loss.stack_reduction=mean"]
    run = tmp_path / "run"
    cfg = compose(
        "train",
        tiny(tmp_path / "faces", "model=hih_c", "model.stacks=2", "labels=authors", "trainer.max_epochs=2", *loss),
        output_dir=run,
    )
    metrics = train(cfg)
    assert math.isfinite(metrics["test/nme"]) and metrics["test/nme"] > 0
    rows = (run / "csv" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    col = header.index("train/decimal_epoch")
    decimal = [float(r.split(",")[col]) for r in rows[1:] if r.split(",")[col]]
    assert len(decimal) == 2 and all(math.isfinite(v) and v > 0 for v in decimal)
    # The cls term of these targets is about 4e-4 at a uniform prediction (softmax of a peak-1
    # Gaussian is flat, and the KL is divided by d * d); L2 there is about 0.04: it is the cls term.
    assert all(v < 0.005 for v in decimal), decimal
    # The module trained with those settings (its saved hyper-parameters, as a resume would see them).
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]["loss"]
    assert (saved["decimal_loss"], saved["head"], saved["stack_reduction"]) == ("cls", 0.05, "mean")


@pytest.mark.slow
def test_cli_cfg_job_resolve_shows_the_authors_codec(tmp_path):
    """--cfg job --resolve through the console script shows the codec's values, not the interpolation."""
    from cli import run_cli

    out = run_cli("hih-train", ["experiment=paper/wflw", "--cfg", "job", "--resolve"], cwd=tmp_path, timeout=120).stdout
    codec = OmegaConf.create(out).model.codec
    assert (codec.integer_target, codec.decimal_quantizer) == ("cell", "round")
