"""The worked example of docs/adding_a_method.md: hih/methods/local_offset.py + conf/model/local_offset.yaml
are all it takes; the method registers itself, trains, tests, plots and exports through the suite."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from hih.data.synthetic import ensure_synthetic
from hih.methods import build_codec, build_net, compute_losses, get_method, head_output, method_names, register
from hih.models import ModelOutput
from hih.pipeline import compose, train
from tiny import N_TEST, N_TRAIN, tiny  # noqa: E402  (tests/tiny.py)

S, H = 64, 16


def test_registered_on_first_use_and_ideal_decode_is_exact():
    method = get_method("local_offset")  # imports hih.methods.local_offset
    assert "local_offset" in method_names()
    assert head_output("local_offset") is method and not method.head_is_heatmap
    codec = build_codec("local_offset", input_size=S, heatmap_size=H)
    x = torch.rand(3, 7, 2, dtype=torch.float64) * (S - 1)
    # The ideal network (targets fed back as outputs) recovers the landmarks up to float rounding.
    torch.testing.assert_close(codec.decode(codec.targets_as_outputs(codec.encode(x))), x)
    # The integer heatmap alone loses the decimal part: up to one cell diagonal with the corner anchor.
    integer = codec.decode_integer(codec.encode(x)["heatmap"], anchor="corner")
    assert ((x - integer) >= 0).all() and ((x - integer) < codec.stride).all()


def test_loss_term_comes_from_the_registry():
    codec = build_codec("local_offset", input_size=S, heatmap_size=H)
    targets = codec.encode(torch.rand(2, 5, 2) * S)
    perfect = codec.targets_as_outputs(targets)
    out = ModelOutput([targets["heatmap"]], perfect["local_offset"], "local_offset")
    assert compute_losses(out, targets)["local_offset"].item() == pytest.approx(0.0, abs=1e-7)
    out.head = out.head + 0.25
    losses = compute_losses(out, targets, {"head": 2.0})
    assert losses["local_offset"].item() == pytest.approx(0.25, rel=1e-5)
    assert losses["loss"].item() == pytest.approx(losses["heatmap"].item() + 2.0 * 0.25, rel=1e-5)
    net = build_net("local_offset", 5, channels=8, input_size=S, hourglass_depth=2, width=4)
    assert net(torch.zeros(1, 3, S, S)).head.shape == (1, 5, 2, H, H)


def test_a_method_writing_a_known_output_differently_is_refused():
    wov = get_method("wov")
    clash = type(wov)("wov_l1", wov.codec, head=wov.head, output_key="offset", loss=lambda *a: 0)
    with pytest.raises(ValueError, match="writes output 'offset' like 'wov'"):
        register(clash)


@pytest.mark.slow
def test_trains_end_to_end_with_hih_train(tmp_path):
    data = tmp_path / "faces"
    ensure_synthetic(data / "synthetic", n_train=N_TRAIN, n_test=N_TEST, workers=1, progress=False)
    run = tmp_path / "run"
    cfg = compose("train", tiny(data, "model=local_offset"), output_dir=run)
    metrics = train(cfg)
    written = json.loads((run / "metrics.json").read_text())
    assert written == metrics and math.isfinite(metrics["test/nme"])
    assert "test/nme_integer" in metrics  # a head: the integer-only numbers too (paper Table 7)
    with open(next((run / "csv").rglob("metrics.csv"))) as f:
        columns = next(csv.reader(f))
    assert "train/local_offset_epoch" in columns  # the head's term is logged under its output key
    assert (run / "predictions.png").is_file()


def test_a_throwaway_method_reaches_the_listings_and_the_report(tmp_path):
    """Registered in the test, never named in the suite's code: the method lists, the model configs'
    codec lookup and hih-report's Table 8 plot (methods with a decimal resolution) see it."""
    from hih.analysis.report import Run, plot_decimal
    from hih.codecs import HIHCodec
    from hih.methods import _registry

    hih_c = get_method("hih_c")
    name = "zz_decimal"
    register(
        type(hih_c)(
            name,
            HIHCodec,
            head=hih_c.head,
            output_key="decimal",
            loss=hih_c.loss,
            head_is_heatmap=True,
            head_metric=hih_c.head_metric,
        )
    )
    try:
        assert name in method_names()
        assert type(build_codec(name, decimal_size=4)) is HIHCodec
        runs = [
            Run(
                i,
                None,
                [f"model={name}", f"model.decimal_size={d}"],
                "completed",
                {"test/nme": 5.0 - i},
                {"model": {"name": name, "decimal_size": d, "net": {"head": name}}},
            )
            for i, d in enumerate((4, 8))
        ]
        assert plot_decimal(runs, tmp_path / "decimal.png") is not None  # one line, two resolutions
    finally:
        _registry._REGISTRY.pop(name, None)
    assert plot_decimal(runs, tmp_path / "again.png") is None  # unregistered: not a decimal method any more


def _doc_config() -> str:
    """The model config docs/adding_a_method.md tells a reader to write (its section 2)."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "adding_a_method.md").read_text()
    section = doc[doc.index("### 2. The config") :]
    return section[section.index("```yaml") + len("```yaml") : section.index("```", section.index("```yaml") + 7)]


@pytest.mark.parametrize("base,name", [("offset", "local_offset"), ("decimal", "hih_c")])
def test_a_model_config_written_from_the_doc_composes(tmp_path, base, name):
    """The doc's config, as written, on either base with a head: net.head comes from model.name."""
    from hydra.utils import instantiate

    text = _doc_config().replace("base/offset@_here_", f"base/{base}@_here_")
    text = text.replace("name: local_offset", f"name: {name}")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "from_doc.yaml").write_text(text)
    cfg = compose("train", [f"hydra.searchpath=[file://{tmp_path}]", "model=from_doc", "model.channels=8"])
    assert "head:" not in text.split("net:")[1].split("loss:")[0]  # the doc's config does not name the head
    assert cfg.model.net.head == name and cfg.model.codec.name == name
    net = instantiate(cfg.model.net)
    assert net.head_key == get_method(name).output_key
