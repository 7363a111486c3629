"""recipe=authors_release: its loss against a hand computation, its layer options against their output
sizes, and its composition with the quickstart and the paper experiment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hih.losses import decimal_soft_cls
from hih.methods import build_net
from hih.models.heads import HIHCHead
from hih.models.hourglass import Hourglass
from hih.pipeline import compose


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def test_cls_loss_is_kl_of_the_two_softmaxes_element_mean():
    # One face, two landmarks, d = 2: four cells each. Written out cell by cell, not with the code under test.
    pred = np.array([[[0.0, 1.0], [2.0, -1.0]], [[0.5, 0.5], [0.5, 0.5]]])
    target = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]])
    per_landmark = []
    for n in range(2):
        p, q = _softmax(target[n].ravel()), _softmax(pred[n].ravel())
        per_landmark.append(sum(p[i] * (math.log(p[i]) - math.log(q[i])) for i in range(4)) / 4)
    # KLDivLoss(reduction="mean") over the (1, 2, 2, 2) maps: the sum over all 8 elements / 8.
    expected = (per_landmark[0] + per_landmark[1]) / 2
    got = decimal_soft_cls(torch.tensor(pred)[None].float(), torch.tensor(target)[None].float(), torch.ones(1, 2))
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # First landmark by hand: softmax(target) = (e, 1, 1, 1) / (e + 3).
    e = math.e
    p0 = np.array([e, 1, 1, 1]) / (e + 3)
    logq0 = np.array([0.0, 1.0, 2.0, -1.0]) - math.log(1 + e + e**2 + math.exp(-1))
    assert per_landmark[0] == pytest.approx(float((p0 * (np.log(p0) - logq0)).sum() / 4))
    # A landmark of weight 0 does not count.
    only_first = decimal_soft_cls(
        torch.tensor(pred)[None].float(), torch.tensor(target)[None].float(), torch.tensor([[1.0, 0.0]])
    )
    assert only_first.item() == pytest.approx(per_landmark[0], rel=1e-5)


@pytest.mark.parametrize(("padding", "sizes"), [(0, [64, 31, 16, 8]), (1, [64, 32, 16, 8])])
def test_hih_c_pool_padding_output_sizes(padding, sizes):
    head = HIHCHead(8, 3, heatmap_size=64, decimal_size=8, width=8, pool_padding=padding)
    x = torch.zeros(1, 8, 64, 64)
    seen = [x.shape[-1]]
    x = head.pool(head.conv(x))
    seen.append(x.shape[-1])
    for block in head.blocks:
        x = block(x)
        seen.append(x.shape[-1])
    assert seen == sizes
    assert head(torch.zeros(1, 8, 64, 64)).shape == (1, 3, 8, 8)


def test_hih_c_pool_padding_is_checked():
    with pytest.raises(ValueError, match="pool_padding"):
        HIHCHead(8, 3, heatmap_size=32, decimal_size=8, width=8, pool_padding=2)
    with pytest.raises(ValueError, match="gives a 7x7 map, not 8x8"):  # one halving: nothing rounds 7 back to 8
        HIHCHead(8, 3, heatmap_size=16, decimal_size=8, width=8, pool_padding=0)
    assert (
        HIHCHead(8, 3, heatmap_size=32, decimal_size=8, width=8, pool_padding=0)(torch.zeros(1, 8, 32, 32)).shape[-1]
        == 8
    )


def test_align_corners_changes_the_upsampling_only():
    torch.manual_seed(0)
    a = Hourglass(8, depth=1)
    b = Hourglass(8, depth=1, align_corners=True)
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    x = torch.randn(1, 8, 8, 8)
    ya, yb = a(x), b(x)
    assert ya.shape == yb.shape == x.shape
    assert not torch.allclose(ya, yb)
    net = build_net(head="hih_c", num_landmarks=3, channels=8, input_size=64, hourglass_depth=2, align_corners=True)
    assert all(h.align_corners for h in net.backbone.modules() if isinstance(h, Hourglass))
    with pytest.raises(ValueError, match="align_corners"):
        build_net(head="none", num_landmarks=3, backbone="timm:resnet18", align_corners=True)


RECIPE = {
    "model.loss.head": 0.05,
    "model.loss.stack_reduction": "mean",
    "model.net.align_corners": True,
    "labels.decimal_quantizer": "round",
}
DECIMAL = {
    "model.decimal_size": 8,
    "model.codec.decimal_sigma": 1.0,
    "model.codec.decimal_decode": "corner",
    "model.codec.decimal_quantizer": "round",
    "model.loss.decimal_loss": "cls",
}


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


@pytest.mark.parametrize("experiment", ["quickstart", "paper/wflw"])
@pytest.mark.parametrize("model", ["hih_c", "hih_t"])
def test_recipe_composes_with_both_experiments(experiment, model):
    plain = compose("train", [f"experiment={experiment}", f"model={model}"])
    cfg = compose("train", [f"experiment={experiment}", f"model={model}", "recipe=authors_release"])
    assert cfg.data.input_size == plain.data.input_size and cfg.module.optimizer == plain.module.optimizer
    for key, value in {**RECIPE, **DECIMAL}.items():
        assert _get(cfg, key) == value, key
    assert plain.model.loss.decimal_loss == "l2" and "align_corners" not in plain.model.net  # defaults unchanged
    if model == "hih_c":
        assert cfg.model.net.pool_padding == 0 and "pool_padding" not in plain.model.net


@pytest.mark.parametrize("model", ["baseline", "wov", "wom", "hih_l"])
def test_recipe_composes_with_every_head(model):
    cfg = compose("train", [f"model={model}", "recipe=authors_release"])
    for key, value in RECIPE.items():
        assert _get(cfg, key) == value, key
    if model == "hih_l":  # keeps its floor quantiser and centre decode, takes the cls loss
        assert cfg.model.loss.decimal_loss == "cls" and cfg.model.codec.decimal_decode == "centre"
    else:
        assert "decimal_loss" not in cfg.model.loss


@pytest.mark.parametrize("model", ["hih_c", "hih_t", "wom"])
def test_recipe_builds(model):
    from hydra.utils import instantiate

    cfg = compose(
        "train",
        [f"model={model}", "recipe=authors_release", "model.channels=8", "model.head_width=8", "data.num_landmarks=3"],
    )
    net = instantiate(cfg.model.net)
    codec = instantiate(cfg.model.codec)
    out = net(torch.zeros(1, 3, 128, 128))
    assert out.heatmaps[-1].shape == (1, 3, 32, 32)
    if model != "wom":
        assert out.head.shape == (1, 3, 8, 8) and codec.decimal_size == 8


@pytest.mark.parametrize(
    "run", ["hih_c", "hih_t", "hih_l", "hih_c_l2", "hih_t_l2", "hih_c_tuned", "hih_t_tuned", "wov", "wom"]
)
def test_decimal_recipe_sweep_runs_compose(run, monkeypatch):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from hih.config import config_dir

    monkeypatch.setenv("HIH_RECIPE_BACKBONE", "/runs/backbone.ckpt")
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = hydra_compose("train", ["sweep=decimal_recipe", f"+sweep/decimal_recipe={run}"], return_hydra_config=True)
    assert cfg.model.name == run.split("_l2")[0].split("_tuned")[0] and cfg.sweep_name == "decimal_recipe"
    assert list(cfg.sweep.seeds) == [0, 1, 2] and cfg.data.input_size == 128
    for key, value in RECIPE.items():
        assert _get(cfg, key) == value, key
    if run in ("wov", "wom"):  # the recipe's every-model part; an offset head has no d and its own loss
        assert "decimal_size" not in cfg.model and "decimal_loss" not in cfg.model.loss
    else:
        assert cfg.model.decimal_size == 8
        assert cfg.model.loss.decimal_loss == ("l2" if run.endswith("_l2") else "cls")
    if run.endswith("_tuned"):
        assert cfg.module.init_from == "/runs/backbone.ckpt" and cfg.module.head_lr == 10 * cfg.module.optimizer.lr
    else:
        assert cfg.module.init_from is None and cfg.module.head_lr is None
